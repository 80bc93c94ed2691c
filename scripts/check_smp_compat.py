"""Check ``smp_unet`` and ``smp_unetplusplus`` against real segmentation_models_pytorch.

Two steps in two virtualenvs, because smp and torchvision are not installed in tilecast's
(``make test-compat`` builds the side venv, ``.venv-compat``, and runs ``tests/compat``, which
use this script):

1. ``make``, in a venv that has smp (``torch==2.14.1 torchvision==0.29.1
   segmentation-models-pytorch==0.6.0``): for each case, build smp's model
   (``smp.Unet`` or ``smp.UnetPlusPlus``, ``encoder_weights=None``) from a fixed seed, give
   every BatchNorm non-trivial statistics and affine parameters (:func:`nontrivial_batchnorm`),
   and save the state_dict, a random input and smp's eval-mode output to
   ``{refs}/{case}.pt``::

       .venv-compat/bin/python scripts/check_smp_compat.py make --refs /tmp/smpref

2. ``check``, in tilecast's venv: build tilecast's architecture with the same parameters,
   require the identical key set and shapes and the same parameter count,
   ``load_state_dict(strict=True)``, and compare the eval-mode output with smp's (max abs
   difference at most ``--atol``, default 1e-5); print one table row per case and exit 1 if
   any case fails::

       .venv/bin/python scripts/check_smp_compat.py check --refs /tmp/smpref

``layout`` (smp's venv) writes the training team's plain layout for one case: the smp model's
weights as a PyTorch Lightning checkpoint (``model.``-prefixed keys under ``state_dict``), its
``config.yaml`` describing the model in smp's terms, and ``normalization_stats.json``, for
``tilecast bundle create`` to turn into a bundle::

    .venv-compat/bin/python scripts/check_smp_compat.py layout --case Unet_resnet18_in3_k1_d5 \\
        --out build/smp-layout

``--case NAME`` (repeatable) limits ``make`` and ``check`` to some cases; ``check --json PATH``
also writes the results as JSON (``tests/compat`` reads them).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

SEED = 1000
INPUT_HW = (96, 128)  # multiples of 32, not square
TILECAST_ARCHITECTURES = {"Unet": "smp_unet", "UnetPlusPlus": "smp_unetplusplus"}


@dataclass(frozen=True)
class Case:
    """One smp model: its class, encoder and the parameters that shape it."""

    architecture: str  # smp's class name
    encoder: str
    in_channels: int = 3
    classes: int = 1
    depth: int = 5
    decoder: tuple[int, ...] | None = None  # None: smp's default

    @property
    def name(self) -> str:
        return (
            f"{self.architecture}_{self.encoder}_in{self.in_channels}_k{self.classes}_d{self.depth}"
        )

    def params(self) -> dict[str, Any]:
        """The keyword arguments both smp's class and tilecast's architecture take."""
        params: dict[str, Any] = {
            "encoder_name": self.encoder,
            "in_channels": self.in_channels,
            "classes": self.classes,
            "encoder_depth": self.depth,
        }
        if self.decoder is not None:
            params["decoder_channels"] = self.decoder
        return params


# Unet and UnetPlusPlus with resnet18/34 at smp's defaults (the first four) are what
# tests/compat checks; the rest cover the other encoder, channel and class counts and
# shallower encoders (run them all: `make` and `check` without --case).
CASES: list[Case] = [
    *(Case(arch, enc) for arch in TILECAST_ARCHITECTURES for enc in ("resnet18", "resnet34")),
    *(
        case
        for arch in TILECAST_ARCHITECTURES
        for case in (
            Case(arch, "resnet34", in_channels=4, classes=2),
            Case(arch, "resnet50"),
            Case(arch, "resnet34", depth=3, decoder=(64, 32, 16)),
            Case(arch, "resnet50", classes=2, depth=4, decoder=(128, 64, 32, 16)),
        )
    ),
]


def select(names: list[str] | None) -> list[Case]:
    if not names:
        return CASES
    by_name = {c.name: c for c in CASES}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; known: {', '.join(by_name)}")
    return [by_name[n] for n in names]


def nontrivial_batchnorm(model: torch.nn.Module, *, in_channels: int, seed: int) -> None:
    """Give every BatchNorm random affine parameters, then run training-mode passes so the
    running mean and variance are the statistics of real activations, not 0 and 1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.75 + 0.5 * torch.rand(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
        model.train()
        for _ in range(3):
            model(torch.randn(2, in_channels, 64, 64, generator=generator))
    model.eval()


def build_smp(case: Case, seed: int) -> torch.nn.Module:
    """smp's model for ``case`` (run where smp is installed), with non-trivial BatchNorm."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    model = getattr(smp, case.architecture)(encoder_weights=None, **case.params())
    nontrivial_batchnorm(model, in_channels=case.in_channels, seed=seed)
    return model


def make_references(refs: Path, cases: list[Case], seed: int) -> None:
    """Write one reference file per case with real smp (run in the side venv)."""
    import segmentation_models_pytorch as smp

    refs.mkdir(parents=True, exist_ok=True)
    for index, case in enumerate(CASES):
        if case not in cases:
            continue
        model = build_smp(case, seed + index)
        generator = torch.Generator().manual_seed(seed + 100 + index)
        x = torch.randn(2, case.in_channels, *INPUT_HW, generator=generator)
        with torch.no_grad():
            y = model(x)
        torch.save(
            {
                "case": case.name,
                "architecture": case.architecture,
                "params": case.params(),
                "versions": {"smp": str(smp.__version__), "torch": str(torch.__version__)},
                "parameter_count": sum(p.numel() for p in model.parameters()),
                "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "input": x,
                "output": y,
            },
            refs / f"{case.name}.pt",
        )
        print(f"{case.name}: wrote {refs / case.name}.pt")


def write_layout(out: Path, case: Case, seed: int) -> None:
    """The training team's layout for ``case``, from smp's model (run in the side venv)."""
    import yaml

    model = build_smp(case, seed)
    out.mkdir(parents=True, exist_ok=True)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    checkpoint = {"state_dict": state, "epoch": 41, "global_step": 12_300}
    torch.save(checkpoint, out / "best_model.pth")
    order = "RGBN"[: case.in_channels] if case.in_channels <= 4 else None
    if order is None:
        raise SystemExit(f"{case.name}: layouts are written for 1-4 input channels")
    stats = {
        "mean": [400.0 + 50 * i for i in range(case.in_channels)],
        "std": [150.0 + 10 * i for i in range(case.in_channels)],
        "dataset_version": f"smp-compat-{case.name}",
    }
    (out / "normalization_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    smp_model: dict[str, Any] = {
        "architecture": case.architecture,
        "encoder": case.encoder,  # as initze/thaw-slump-segmentation names it
        "encoder_weights": "imagenet",  # where training started; the checkpoint has it all
        "in_channels": case.in_channels,
        "classes": case.classes,
    }
    if case.depth != 5:
        smp_model["encoder_depth"] = case.depth
    if case.decoder is not None:
        smp_model["decoder_channels"] = list(case.decoder)
    config = {
        "model_name": f"smp-compat-{case.architecture.lower()}-{case.encoder}",
        "model_version": "1.0.0",
        "model": smp_model,
        "input": {
            "channel_order": order,
            "dtype": "uint16",
            "value_scaling": "raw",
            "nodata_fill": "mean",
            "input_range": [0, 10000],
        },
        "postprocessing": {
            "activation": "sigmoid" if case.classes == 1 else "softmax",
            "labels": ["background", "slump"],
            "threshold": 0.5,
        },
        "loss_function": "FocalLoss",  # training-only keys are ignored
    }
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"{case.name}: wrote the training layout {out}")


@dataclass(frozen=True)
class Result:
    case: str
    architecture: str
    encoder: str
    keys_equal: bool
    keys: int
    parameters: int
    smp_parameters: int
    max_abs_diff: float | None
    max_abs_output: float | None  # smp's output, so that a difference of 0 means something
    ok: bool
    note: str
    versions: str


def check_case(path: Path, atol: float) -> Result:
    """Load one reference into tilecast's architecture and compare (tilecast's venv)."""
    from tilecast.models import build_model

    ref = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(TILECAST_ARCHITECTURES[ref["architecture"]], ref["params"])
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in ref["state_dict"].items()}
    count = sum(p.numel() for p in model.parameters())
    versions = f"smp {ref['versions']['smp']}, torch {ref['versions']['torch']}"
    common = {
        "case": path.stem,
        "architecture": ref["architecture"],
        "encoder": ref["params"]["encoder_name"],
        "keys": len(ours),
        "parameters": count,
        "smp_parameters": ref["parameter_count"],
        "versions": versions,
    }
    if ours != theirs:
        missing = sorted(theirs.keys() - ours.keys())
        extra = sorted(ours.keys() - theirs.keys())
        shapes = [k for k in ours.keys() & theirs.keys() if ours[k] != theirs[k]]
        note = (
            f"smp only {len(missing)} {missing[:3]}, tilecast only {len(extra)} {extra[:3]}, "
            f"shapes differ {len(shapes)} {shapes[:3]}"
        )
        return Result(
            **common,
            keys_equal=False,
            max_abs_diff=None,
            max_abs_output=None,
            ok=False,
            note=f"layout: {note}",
        )
    model.load_state_dict(ref["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        got = model(ref["input"])
    diff = (got - ref["output"]).abs().max().item()
    ok = got.shape == ref["output"].shape and diff <= atol and count == ref["parameter_count"]
    scale = ref["output"].abs().max().item()
    return Result(
        **common,
        keys_equal=True,
        max_abs_diff=diff,
        max_abs_output=scale,
        ok=ok,
        note=f"output {tuple(got.shape)}, max |output| {scale:.3g}",
    )


def table(results: list[Result], atol: float) -> str:
    """The results as a Markdown table."""
    rows = [
        "| architecture | encoder | case | keys identical | keys | parameters (tilecast / smp) "
        f"| max abs diff (<= {atol:g}) | max abs output | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        diff = "-" if r.max_abs_diff is None else f"{r.max_abs_diff:.3g}"
        scale = "-" if r.max_abs_output is None else f"{r.max_abs_output:.3g}"
        rows.append(
            f"| {r.architecture} | {r.encoder} | {r.case} | {'yes' if r.keys_equal else 'NO'} "
            f"| {r.keys} | {r.parameters:,} / {r.smp_parameters:,} | {diff} | {scale} "
            f"| {'ok' if r.ok else 'FAIL: ' + r.note} |"
        )
    versions = sorted({r.versions for r in results})
    return "\n".join(rows) + f"\nreferences made with {'; '.join(versions)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[1:]),
    )
    parser.add_argument("step", choices=["make", "check", "layout"])
    parser.add_argument("--refs", type=Path, default=Path("/tmp/smpref"))
    parser.add_argument("--case", action="append", help="limit to these cases (repeatable)")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the first case")
    parser.add_argument("--atol", type=float, default=1e-5, help="check: max abs difference")
    parser.add_argument("--out", type=Path, help="layout: the training directory to write")
    parser.add_argument("--json", type=Path, help="check: also write the results as JSON here")
    args = parser.parse_args(argv)
    cases = select(args.case)
    if args.step == "make":
        make_references(args.refs, cases, args.seed)
        return 0
    if args.step == "layout":
        if args.out is None or len(cases) != 1 or not args.case:
            parser.error("layout needs --out and exactly one --case")
        write_layout(args.out, cases[0], args.seed)
        return 0
    paths = [args.refs / f"{case.name}.pt" for case in cases]
    absent = [str(p) for p in paths if not p.exists()]
    if absent:
        print(f"missing references {absent}; run the 'make' step first", file=sys.stderr)
        return 2
    results = [check_case(path, args.atol) for path in paths]
    print(table(results, args.atol))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
