"""Two runs on one output at once: the lease lets one through; the output equals a single run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rts_support import make_config, smooth_rgb, tile_hashes, tiles_for, write_quad_basemap

from tilecast.apps.rts.job import RtsJob
from tilecast.apps.rts.tilelist import format_tile_list
from tilecast.run.lease import LeaseHeldError, LeaseRecord

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_second_run_on_a_busy_output_is_refused(make_bundle, tmp_path):
    bundle = make_bundle("export")
    image = smooth_rgb(3, 256, 256)
    basemap = write_quad_basemap(tmp_path / "basemap", image, quad=128)
    # enough tiles that the first run is still going when the second has loaded its bundle
    tiles = tiles_for(image, tile_size=64, stride=16)
    RtsJob(make_config(bundle=bundle, basemap=basemap, out=tmp_path / "single"), tiles).run()
    reference = tile_hashes(tmp_path / "single")

    out = tmp_path / "shared"
    config = make_config(bundle=bundle, basemap=basemap, out=out, workers=1)
    config_path = tmp_path / "shared.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    tile_list = tmp_path / "tiles.csv"
    tile_list.write_text(format_tile_list(tiles))
    command = [sys.executable, str(REPO / "scripts" / "inference.py")]
    command += ["--config", str(config_path), "--tile-list", str(tile_list), "--no-products"]
    first = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lease_file = out / "logs" / "inference.lease"
    deadline = time.monotonic() + 120
    while not lease_file.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    holder = LeaseRecord.model_validate_json(lease_file.read_text())

    with pytest.raises(LeaseHeldError) as err:
        RtsJob(config, tiles).run()
    still_running = first.poll() is None
    assert first.wait(timeout=300) == 0, first.stderr.read().decode()[-2000:]
    assert still_running, "the first run ended before the second one asked; make it longer"
    message = str(err.value)
    assert f"is being written by run {holder.owner}" in message
    assert f"pid {holder.pid}" in message and holder.expires in message

    assert tile_hashes(out) == reference
    log = json.loads((out / "logs" / "inference_log.json").read_text())
    assert log["status"] == "complete" and len(log["runs"]) == 1
    assert log["runs"][0]["run_id"] == holder.owner
    assert not lease_file.exists()  # released at the end
