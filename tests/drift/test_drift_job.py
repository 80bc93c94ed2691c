"""Input drift in the tiled job: basemaps unlike the training data are flagged, with reasons,
in the run log (``input_drift``: pooled and per region) and on the command line; the demo
scenes are not; ``input_drift: fail`` stops the run with the reason.

The bundle is the shipped demo model (trained on the synthetic scenes), the basemaps are a
held-out demo scene stored as a user might receive it: as is, bands in BGR order with no
colour interpretation, hazy (brightened, low contrast), and scaled to 0-1 as float32 (with a
float32-input copy of the demo bundle, so the dtype check lets it through and only the
statistics can tell).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from rts.rts_support import make_config, tiles_for, write_quad_basemap
from tilecast.apps.rts.job import RtsJob
from tilecast.demo.scene import generate_scene
from tilecast.errors import InputDriftError
from tilecast.run import killpoints

REPO = Path(__file__).resolve().parents[2]
DEMO_BUNDLE = REPO / "models" / "rts-demo"
SIDE = 384
QUAD = 192


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return generate_scene(seed=3001, height=SIDE, width=SIDE).image


def _untag(basemap: Path) -> None:
    """Nothing in the files says which band is which (GDAL's colour interpretation undefined)."""
    for path in basemap.glob("*.tif"):
        with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
            dst.colorinterp = [ColorInterp.undefined] * dst.count


def _run(tmp: Path, image: np.ndarray, *, bundle: Path = DEMO_BUNDLE, untagged: bool = False):
    basemap = write_quad_basemap(tmp / "basemap", image, quad=QUAD)
    if untagged:
        _untag(basemap)
    config = make_config(
        bundle=bundle, basemap=basemap, out=tmp / "out", tile_size=128, scales=[1.0], tta="none"
    )
    result = RtsJob(config, tiles_for(image, tile_size=128, stride=128)).run()
    runlog = json.loads((tmp / "out" / "logs" / "inference_log.json").read_text())
    return result, runlog["input_drift"]


def _kinds(drift: dict) -> set[str]:
    return {flag["kind"] for flag in drift["verdict"]["flags"]}


def test_the_demo_scene_is_like_training(scene, tmp_path):
    result, drift = _run(tmp_path, scene)
    assert result.complete and drift["verdict"]["judged"]
    assert drift["verdict"]["flags"] == [], drift["verdict"]
    assert drift["mode"] == "warn"
    assert set(drift["regions"]) == {"test"} and not drift["regions"]["test"]["flags"]


def test_bgr_stored_without_colour_interpretation_is_flagged_as_swapped(scene, tmp_path):
    bgr = np.ascontiguousarray(scene[::-1])
    result, drift = _run(tmp_path, bgr, untagged=True)
    with rasterio.open(next((tmp_path / "basemap").glob("*.tif"))) as src:
        assert not {"red", "green", "blue"} & {ci.name for ci in src.colorinterp}
    assert result.complete  # warn: the run goes on
    assert _kinds(drift) == {"swapped"}
    reason = drift["verdict"]["flags"][0]["reason"]
    assert "swapped" in reason and "BGR" in reason
    assert {f["kind"] for f in drift["regions"]["test"]["flags"]} == {"swapped"}


def test_a_hazy_basemap_is_flagged_in_the_run_log_and_the_report(scene, tmp_path):
    from tilecast.apps.rts.report import make_report

    hazy = np.where(scene > 0, scene * 0.4 + 150, 0).astype(np.uint8)
    _, drift = _run(tmp_path, hazy)
    assert "mean" in _kinds(drift)
    assert any("std above" in f["reason"] for f in drift["verdict"]["flags"])
    summary = make_report(str(tmp_path / "out"), n_chips=0)
    assert any(
        c.level == "warn" and c.text.startswith("basemap unlike the training data: band R: mean")
        for c in summary.checks
    )
    html = (tmp_path / "out" / "report" / "index.html").read_text()
    assert re.search(r"Input drift</div><div class=\"v\">\d flag\(s\)", html)  # the card
    assert "input against training" in html  # the per-region table's column
    rows = re.findall(r"<tr[^>]*><td>test</td>.*?</tr>", html)
    assert any("MISSING" in row and "std above" in row for row in rows), rows


def test_a_basemap_scaled_to_0_1_float_is_flagged_as_another_scaling(
    scene, tmp_path, float_demo_bundle
):
    unit = scene.astype(np.float32) / 255.0
    _, drift = _run(tmp_path, unit, bundle=float_demo_bundle)
    assert _kinds(drift) == {"scaling"}
    assert (
        "0-1 values where the model was trained on 0-255" in drift["verdict"]["flags"][0]["reason"]
    )
    channels = drift["verdict"]["channels"]
    assert all(row["mean"] < 1.0 for row in channels)


def test_fail_mode_stops_the_run_and_says_why(scene, tmp_path):
    hazy = np.where(scene > 0, scene * 0.4 + 150, 0).astype(np.uint8)
    basemap = write_quad_basemap(tmp_path / "basemap", hazy, quad=QUAD)
    config = make_config(
        bundle=DEMO_BUNDLE, basemap=basemap, out=tmp_path / "out", tile_size=128, scales=[1.0]
    )
    config = config.model_copy(
        update={"input": config.input.model_copy(update={"input_drift": "fail"})}
    )
    with pytest.raises(InputDriftError, match="input unlike training data: band R: mean"):
        RtsJob(config, tiles_for(hazy, tile_size=128, stride=128)).run()
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    runlog = json.loads((tmp_path / "out" / "logs" / "inference_log.json").read_text())
    assert runlog["input_drift"]["mode"] == "fail" and runlog["status"] != "complete"


def test_a_restart_carries_the_statistics_on(scene, tmp_path, monkeypatch):
    """Crashed after a checkpoint and restarted: the statistics equal an unbroken run's."""
    _, drift_whole = _run(tmp_path / "whole", scene)
    part = tmp_path / "part"
    basemap = write_quad_basemap(part / "basemap", scene, quad=QUAD)
    config = make_config(
        bundle=DEMO_BUNDLE,
        basemap=basemap,
        out=part / "out",
        tile_size=128,
        scales=[1.0],
        tta="none",
        checkpoint_every=3,
    )
    tiles = tiles_for(scene, tile_size=128, stride=128)
    checkpoints = []

    def crash_at_second_checkpoint(name: str) -> None:
        if name == "runlog.write":
            checkpoints.append(name)
            if len(checkpoints) == 2:
                raise RuntimeError("crash")

    monkeypatch.setattr(killpoints, "reached", crash_at_second_checkpoint)
    with pytest.raises(RuntimeError, match="crash"):
        RtsJob(config, tiles).run()
    monkeypatch.undo()
    first = json.loads((part / "out" / "logs" / "inference_log.json").read_text())
    assert 0 < first["n_tiles_processed"] < len(tiles)
    RtsJob(config, tiles).run()
    runlog = json.loads((part / "out" / "logs" / "inference_log.json").read_text())
    assert runlog["input_drift"]["moments"] == drift_whole["moments"]
