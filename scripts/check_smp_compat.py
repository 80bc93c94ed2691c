"""Check ``smp_unet`` against real segmentation_models_pytorch: same state_dict, same outputs.

Two steps in two virtualenvs, because smp and torchvision are not installed in tilecast's:

1. ``make``, in a side venv that has smp (``python3 -m venv /tmp/smpvenv &&
   /tmp/smpvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
   segmentation-models-pytorch==0.6.0``): for each case in :data:`CASES`, build
   ``smp.Unet(..., encoder_weights=None)`` from a fixed seed, run a few training-mode forward
   passes so the BatchNorm running statistics are not the identity, and save the state_dict,
   an input and smp's eval-mode output to ``{refs}/{case}.pt``::

       /tmp/smpvenv/bin/python scripts/check_smp_compat.py make --refs /tmp/smpref

2. ``check``, in tilecast's venv: build ``ResNetUnet`` with the same parameters, require the
   identical key set and shapes, ``load_state_dict(strict=True)``, and compare the eval-mode
   output with smp's (max abs difference at most ``--atol``, default 1e-5)::

       .venv/bin/python scripts/check_smp_compat.py check --refs /tmp/smpref

``check`` prints one line per case and exits with status 1 if any case fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

# (encoder_name, in_channels, classes, encoder_depth, decoder_channels or None for smp's default)
CASES: list[tuple[str, int, int, int, tuple[int, ...] | None]] = [
    ("resnet18", 3, 1, 5, None),
    ("resnet34", 3, 1, 5, None),
    ("resnet34", 4, 2, 5, None),
    ("resnet50", 3, 1, 5, None),
    ("resnet34", 3, 1, 3, (64, 32, 16)),
    ("resnet50", 3, 2, 4, (128, 64, 32, 16)),
]
INPUT_HW = (96, 128)  # multiples of 32, not square


def case_name(encoder: str, in_channels: int, classes: int, depth: int) -> str:
    return f"{encoder}_in{in_channels}_k{classes}_d{depth}"


def case_params(
    encoder: str, in_channels: int, classes: int, depth: int, decoder: tuple[int, ...] | None
) -> dict[str, Any]:
    """The keyword arguments both ``smp.Unet`` and ``ResNetUnet`` take for a case."""
    params: dict[str, Any] = {
        "encoder_name": encoder,
        "in_channels": in_channels,
        "classes": classes,
        "encoder_depth": depth,
    }
    if decoder is not None:
        params["decoder_channels"] = decoder
    return params


def make_references(refs: Path, seed: int) -> None:
    """Write one reference file per case with real smp (run in the side venv)."""
    import segmentation_models_pytorch as smp

    refs.mkdir(parents=True, exist_ok=True)
    for index, case in enumerate(CASES):
        name = case_name(*case[:4])
        params = case_params(*case)
        torch.manual_seed(seed + index)
        model = smp.Unet(encoder_weights=None, **params)
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model(torch.randn(2, params["in_channels"], 64, 64))
        model.eval()
        x = torch.randn(2, params["in_channels"], *INPUT_HW)
        with torch.no_grad():
            y = model(x)
        torch.save(
            {
                "params": params,
                "versions": {"smp": str(smp.__version__), "torch": str(torch.__version__)},
                "parameter_count": sum(p.numel() for p in model.parameters()),
                "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "input": x,
                "output": y,
            },
            refs / f"{name}.pt",
        )
        print(f"{name}: wrote {refs / name}.pt")


def check_case(path: Path, atol: float) -> bool:
    """Load one reference into ``ResNetUnet``; print the result; True when it matches."""
    from tilecast.models import ResNetUnet

    ref = torch.load(path, map_location="cpu", weights_only=True)
    model = ResNetUnet(**ref["params"])
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in ref["state_dict"].items()}
    if ours != theirs:
        missing = sorted(theirs.keys() - ours.keys())
        extra = sorted(ours.keys() - theirs.keys())
        shapes = [k for k in ours.keys() & theirs.keys() if ours[k] != theirs[k]]
        print(
            f"{path.stem}: FAIL layout: smp only {missing[:5]}, ours only {extra[:5]}, "
            f"shapes differ {shapes[:5]}"
        )
        return False
    model.load_state_dict(ref["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        got = model(ref["input"])
    diff = (got - ref["output"]).abs().max().item()
    count = sum(p.numel() for p in model.parameters())
    ok = got.shape == ref["output"].shape and diff <= atol and count == ref["parameter_count"]
    print(
        f"{path.stem}: {'ok' if ok else 'FAIL'} keys={len(ours)} parameters={count} "
        f"(smp {ref['parameter_count']}) output {tuple(got.shape)} max abs diff {diff:.3g} "
        f"(smp {ref['versions']['smp']}, torch {ref['versions']['torch']})"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["make", "check"])
    parser.add_argument("--refs", type=Path, default=Path("/tmp/smpref"))
    parser.add_argument("--seed", type=int, default=1000, help="make: seed of the first case")
    parser.add_argument("--atol", type=float, default=1e-5, help="check: max abs difference")
    args = parser.parse_args(argv)
    if args.step == "make":
        make_references(args.refs, args.seed)
        return 0
    paths = [args.refs / f"{case_name(*case[:4])}.pt" for case in CASES]
    absent = [str(p) for p in paths if not p.exists()]
    if absent:
        print(f"missing references {absent}; run the 'make' step first", file=sys.stderr)
        return 2
    results = [check_case(path, args.atol) for path in paths]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
