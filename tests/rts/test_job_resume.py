"""Kill the job with SIGKILL mid-way, restart it: same tiles, and a run log that tells the truth."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rasterio
import yaml
from rts_support import make_config, smooth_rgb, tile_hashes, tiles_for, write_quad_basemap

from tilecast.apps.rts.job import RtsJob
from tilecast.apps.rts.tilelist import format_tile_list

REPO = Path(__file__).resolve().parents[2]


def write_inputs(tmp_path: Path, bundle: Path, out: Path) -> tuple[Path, Path, list]:
    image = smooth_rgb(11, 384, 384)
    basemap = write_quad_basemap(tmp_path / "basemap", image, quad=192)
    tiles = tiles_for(image, tile_size=64, stride=32)
    tile_list = tmp_path / "tiles.csv"
    tile_list.write_text(format_tile_list(tiles))
    config = make_config(bundle=bundle, basemap=basemap, out=out, checkpoint_every=3, workers=2)
    config_path = tmp_path / f"{out.name}.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return config_path, tile_list, tiles


def visible_tiles(out: Path) -> list[Path]:
    """Tile files a reader would pick up (a killed writer's hidden temporaries are not tiles)."""
    return [p for p in (out / "tiles").glob("*.tif") if not p.name.startswith(".")]


def start(config: Path, tile_list: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            str(REPO / "scripts" / "inference.py"),
            "--config",
            str(config),
            "--tile-list",
            str(tile_list),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def assert_log_consistent(out: Path, n_tiles: int, *, complete: bool) -> dict:
    log = json.loads((out / "logs" / "inference_log.json").read_text())
    for tile_id, entry in log["tiles"].items():
        if entry["status"] == "done":
            path = out / "tiles" / f"{tile_id}.tif"
            assert path.exists(), f"{tile_id} is listed as done but has no file"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    if complete:
        assert log["status"] == "complete" and len(log["tiles"]) == n_tiles
        check = log["final_check"]
        assert check["n_listed"] == n_tiles and check["n_missing"] == 0
        assert check["n_done"] + check["n_skipped"] == n_tiles
    return log


@pytest.mark.slow
def test_sigkill_and_restart_gives_the_same_outputs(make_bundle, tmp_path):
    bundle = make_bundle("export")
    config_ref, tile_list, tiles = write_inputs(tmp_path, bundle, tmp_path / "reference")
    from tilecast.apps.rts.config import load_config

    RtsJob(load_config(config_ref), tiles).run()
    reference = tile_hashes(tmp_path / "reference")
    assert len(reference) == len(tiles)

    out = tmp_path / "killed"
    config, _, _ = write_inputs(tmp_path, bundle, out)
    kills = 0
    for target in (len(tiles) // 4, len(tiles) // 2):
        proc = start(config, tile_list)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            done = len(visible_tiles(out)) if (out / "tiles").exists() else 0
            if done >= target:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.05)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        # whatever is visible is whole: every tile file opens and has its two bands
        for path in visible_tiles(out):
            with rasterio.open(path) as src:
                assert src.count == 2 and src.read(1).shape == (64, 64)
        if (out / "logs" / "inference_log.json").exists():
            assert_log_consistent(out, len(tiles), complete=False)
    assert kills == 2
    proc = start(config, tile_list)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    log = assert_log_consistent(out, len(tiles), complete=True)
    assert len(log["runs"]) >= 2, "the restart resumed the earlier run's log"
    assert tile_hashes(out) == reference
    assert not [p for p in (out / "tiles").iterdir() if p.name.startswith(".")], "temporaries left"
