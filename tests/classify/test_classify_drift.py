"""Input drift in classify and the service, on the demo classifier: held-out chips are like
training; the same chips saved BGR (an OpenCV ``imwrite`` of an RGB array), hazy, or as
0-1 floats are flagged in the classify summary; ``--input-drift fail`` refuses them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from PIL import Image

from tilecast.apps.classify import classify
from tilecast.bundle import load_bundle
from tilecast.cli.main import cli
from tilecast.demo.chips import LABELS, SPLIT_SEEDS, generate_chip
from tilecast.errors import InputDriftError

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "classify-demo"
N = 24


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(BUNDLE)


@pytest.fixture(scope="module")
def chips() -> list[np.ndarray]:
    first = SPLIT_SEEDS["test"] + 400  # test split, past what other tests use
    return [generate_chip(seed=first + i, label=LABELS[i % 4]).image for i in range(N)]


def _save_png(folder: Path, images: list[np.ndarray]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    uris = []
    for i, image in enumerate(images):
        path = folder / f"chip_{i:02d}.png"
        Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(path)
        uris.append(str(path))
    return uris


def _save_float_tif(folder: Path, images: list[np.ndarray]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    uris = []
    for i, image in enumerate(images):
        path = folder / f"chip_{i:02d}.tif"
        c, h, w = image.shape
        with rasterio.open(
            path, "w", driver="GTiff", width=w, height=h, count=c, dtype="float32"
        ) as dst:
            dst.write(image.astype(np.float32) / 255.0)
        uris.append(str(path))
    return uris


def test_held_out_chips_are_like_training(bundle, chips, tmp_path):
    run = classify(bundle, _save_png(tmp_path, chips), batch_size=8)
    drift = run.summary.input_drift
    assert drift is not None and drift.judged and drift.flags == (), drift.summary()


def test_chips_saved_bgr_are_flagged_swapped(bundle, chips, tmp_path):
    run = classify(bundle, _save_png(tmp_path, [c[::-1] for c in chips]), batch_size=8)
    assert [f.kind for f in run.summary.input_drift.flags] == ["swapped"]
    assert "read as BGR" in run.summary.input_drift.summary()


def test_hazy_chips_are_flagged(bundle, chips, tmp_path):
    hazy = [(c * 0.4 + 150).astype(np.uint8) for c in chips]
    run = classify(bundle, _save_png(tmp_path, hazy), batch_size=8)
    kinds = {f.kind for f in run.summary.input_drift.flags}
    assert "mean" in kinds and "range" in kinds  # the bundle records training's percentiles


def test_float_chips_are_refused_by_dtype_and_fail_mode_stops(bundle, chips, tmp_path):
    # a uint8 contract refuses 0-1 floats outright: named rejections, not a quiet answer
    run = classify(bundle, _save_float_tif(tmp_path / "f", chips[:4]), batch_size=4)
    assert run.summary.rejected == 4
    assert all("float32" in reason for reason in run.summary.rejections.values())
    uris = _save_png(tmp_path / "bgr", [c[::-1] for c in chips])
    with pytest.raises(InputDriftError, match="input unlike training data: bands look swapped"):
        classify(bundle, uris, batch_size=8, input_drift="fail")


def test_the_cli_summary_says_it(chips, tmp_path):
    folder = tmp_path / "bgr"
    _save_png(folder, [c[::-1] for c in chips])
    result = CliRunner().invoke(cli, ["classify", str(BUNDLE), str(folder)])
    assert result.exit_code == 0, result.output
    assert "input      bands look swapped" in result.stderr
    failed = CliRunner().invoke(
        cli, ["classify", str(BUNDLE), str(folder), "--input-drift", "fail"]
    )
    assert failed.exit_code == 1 and "InputDriftError" in failed.output
