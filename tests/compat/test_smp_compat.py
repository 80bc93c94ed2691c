"""tilecast's ``smp_unet`` / ``smp_unetplusplus`` against real segmentation_models_pytorch.

Runs ``scripts/check_smp_compat.py`` in the side venv ``.venv-compat`` (torch 2.14.1,
torchvision 0.29.1, segmentation-models-pytorch 0.6.0; ``make test-compat`` builds it once) and
checks, for Unet and UnetPlusPlus with resnet18/34 encoders at fixed seeds:

- smp's state_dict has exactly tilecast's keys and shapes, and the same parameter count;
- with smp's weights, tilecast's model gives smp's outputs within 1e-5 on random inputs;
- a training layout made with smp (a Lightning checkpoint, config.yaml in smp's terms) becomes
  a bundle through smp itself (``tilecast bundle create`` in the side venv, from this
  checkout), and that bundle, a torch.export program written by torch 2.14, loads here (torch
  2.13: its golden pairs are checked) and serves what tilecast's own implementation gives.

Skipped, with the reason, where the side venv does not exist (``.venv-compat``, or
``$TILECAST_COMPAT_VENV``); the results table is printed at the end of the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tilecast.bundle import load_bundle
from tilecast.bundle.checkpoints import load_weights, read_checkpoint
from tilecast.bundle.runtime import infer
from tilecast.models import build_model

ROOT = Path(__file__).resolve().parents[2]
# the side venv; TILECAST_COMPAT_VENV points elsewhere (another checkout's, a shared one)
COMPAT = Path(os.environ.get("TILECAST_COMPAT_VENV", ROOT / ".venv-compat"))
COMPAT_PYTHON = COMPAT / "bin" / "python"
SCRIPT = ROOT / "scripts" / "check_smp_compat.py"
PINS = {"torch": "2.14.1", "torchvision": "0.29.1", "segmentation_models_pytorch": "0.6.0"}
CASES = [
    "Unet_resnet18_in3_k1_d5",
    "Unet_resnet34_in3_k1_d5",
    "UnetPlusPlus_resnet18_in3_k1_d5",
    "UnetPlusPlus_resnet34_in3_k1_d5",
]
BUNDLED = ["Unet_resnet18_in3_k1_d5", "UnetPlusPlus_resnet34_in3_k1_d5"]
ATOL = 1e-5

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not COMPAT_PYTHON.exists(),
        reason=f"no side venv with real segmentation_models_pytorch ({COMPAT_PYTHON} is absent); "
        "`make test-compat` builds it (~5.5 GB) and runs these tests",
    ),
]


def run(*args: object, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; fail the test with its output if it fails.
    ``src`` comes first on the path, so the side venv runs this checkout's tilecast."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [str(a) for a in args]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited with {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def side_versions() -> dict[str, str]:
    """The side venv's versions; a side venv that cannot import smp fails (it is broken)."""
    probe = (
        "import json, torch, torchvision, segmentation_models_pytorch as smp; "
        "print(json.dumps({'torch': torch.__version__, 'torchvision': torchvision.__version__, "
        "'segmentation_models_pytorch': smp.__version__}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [str(COMPAT_PYTHON), "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{COMPAT} exists but cannot import torch, torchvision and smp (an interrupted "
            f"install?): rm {COMPAT / '.installed-v*'} and run `make test-compat` again\n"
            f"{proc.stderr[-2000:]}"
        )
    return json.loads(proc.stdout)


def test_side_venv_has_the_pinned_versions(side_versions):
    assert {k: v.split("+")[0] for k, v in side_versions.items()} == PINS


@pytest.fixture(scope="module")
def results(tmp_path_factory, side_versions, report_table) -> dict[str, dict]:
    """smp's references made in the side venv, checked here (tilecast's torch)."""
    refs = tmp_path_factory.mktemp("smpref")
    selection = [arg for case in CASES for arg in ("--case", case)]
    run(COMPAT_PYTHON, SCRIPT, "make", "--refs", refs, *selection)
    out = refs / "results.json"
    check = [sys.executable, SCRIPT, "check", "--refs", refs, "--json", out, *selection]
    proc = subprocess.run(
        [str(a) for a in check], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if not out.exists():  # rc 1 (a case failed) still writes the results; 2 or a crash does not
        pytest.fail(f"check step failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    report_table(f"{proc.stdout.strip()}\ntilecast side: torch {torch.__version__}")
    return {r["case"]: r for r in json.loads(out.read_text())}


@pytest.mark.parametrize("case", CASES)
def test_same_state_dict_and_outputs_as_smp(results, case):
    result = results[case]
    assert result["keys_equal"], result["note"]
    assert result["parameters"] == result["smp_parameters"]
    assert result["max_abs_diff"] <= ATOL, result["note"]
    assert result["max_abs_output"] > 0.1  # a real output, so a small difference means something


@pytest.fixture(scope="module", params=BUNDLED)
def smp_bundle(request, tmp_path_factory, side_versions) -> tuple[Path, Path]:
    """(training layout, bundle) both made in the side venv: the bundle built by smp."""
    root = tmp_path_factory.mktemp(request.param)
    layout, bundle = root / "layout", root / "bundle"
    run(COMPAT_PYTHON, SCRIPT, "layout", "--case", request.param, "--out", layout)
    run(COMPAT / "bin" / "tilecast", "-v", "bundle", "create", layout, "--out", bundle)
    return layout, bundle


def test_bundle_built_by_smp_loads_and_serves_here(smp_bundle, side_versions):
    layout, out = smp_bundle
    producer = json.loads((out / "manifest.json").read_text())["producer"]
    smp_version = side_versions["segmentation_models_pytorch"]
    assert producer["model_built_by"] == f"segmentation_models_pytorch {smp_version}"
    assert producer["torch"] == side_versions["torch"]

    # made by torch 2.14's exporter, read by this venv's torch; its golden pairs are checked
    bundle = load_bundle(out)
    assert bundle.contract.model.format == "export"

    # tilecast's own implementation with the training checkpoint: what serving must give
    spec = bundle.contract.model
    assert spec.architecture is not None
    net = build_model(spec.architecture, spec.params).eval()
    where = str(layout / "best_model.pth")
    load_weights(
        net, read_checkpoint((layout / "best_model.pth").read_bytes(), where=where), where=where
    )
    stats = json.loads((layout / "normalization_stats.json").read_text())
    image = np.random.default_rng(7).integers(0, 10_000, size=(3, 96, 64), dtype=np.uint16)
    mean = torch.tensor(stats["mean"]).view(3, 1, 1)
    std = torch.tensor(stats["std"]).view(3, 1, 1)
    with torch.no_grad():
        x = (torch.from_numpy(image.astype(np.float32)) - mean) / std
        expected = torch.sigmoid(net(x[None]))[0].numpy()
    got = infer(bundle.contract, bundle.stats, bundle.model, image, channel_order="RGB")
    np.testing.assert_allclose(got.probabilities, expected, atol=ATOL, rtol=0)
