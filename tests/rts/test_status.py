"""``tilecast rts status``: where an output stands, read without touching it, local and on S3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rts_support import make_config, smooth_rgb, tiles_for, write_quad_basemap

from tilecast.apps.rts.tilelist import format_tile_list
from tilecast.cli.rts import rts
from tilecast.grid import Tile
from tilecast.io import storage
from tilecast.run.killpoints import ENV
from tilecast.run.lease import Lease, lease_uri_for
from tilecast.run.runlogs import RunLogError
from tilecast.run.status import read_status

REPO = Path(__file__).resolve().parents[2]


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def upload(local: Path, uri: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            storage.write_bytes(
                storage.join(uri, path.relative_to(local).as_posix()), path.read_bytes()
            )


def without_output(status) -> dict:
    data = status.to_json()
    data.pop("output")
    return data


@pytest.fixture(scope="module")
def killed(tmp_path_factory, make_bundle):
    """A run SIGKILLed at its second run-log checkpoint: tiles half done, its lease left behind."""
    root = tmp_path_factory.mktemp("status")
    image = smooth_rgb(3, 192, 192)
    tiles = tiles_for(image, tile_size=64, stride=32)
    first = tiles[0]
    width = first.maxx - first.minx
    far_west = Tile(  # on the grid, outside the basemap: skipped; first in locality order
        "far_west", first.minx - 10 * width, first.miny, first.maxx - 10 * width, first.maxy
    )
    tile_list = root / "tiles.csv"
    tile_list.write_text(format_tile_list([far_west, *tiles]))
    out = root / "out"
    config = make_config(
        bundle=make_bundle("export"),
        basemap=write_quad_basemap(root / "basemap", image, quad=96),
        out=out,
        checkpoint_every=3,
        threshold=0.5,
    ).model_dump(mode="json")
    config["products"] = {"report": False}
    config_path = root / "job.yaml"
    config_path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [
            *(sys.executable, str(REPO / "scripts" / "inference.py")),
            *("--config", str(config_path), "--tile-list", str(tile_list)),
        ],
        cwd=REPO,
        env={**os.environ, ENV: "runlog.write:2", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert (out / "logs" / "inference.lease").exists()
    return {"out": out, "config": config_path, "tile_list": tile_list, "n_listed": len(tiles) + 1}


def test_a_killed_run_is_incomplete_with_a_stale_lease(killed):
    out = killed["out"]
    before = tree(out)
    status = read_status(str(out))
    assert tree(out) == before  # read only: the lease stays where it was
    log = json.loads((out / "logs" / "inference_log.json").read_text())
    assert log["status"] == "running"  # what the killed run left
    (shard,) = status.shards
    done = [t for t, v in log["tiles"].items() if v["status"] == "done"]
    assert shard.state == status.state == "incomplete"
    assert "stopped before finishing (lease holder gone)" in shard.detail
    assert shard.n_listed == killed["n_listed"]
    assert shard.n_done == len(done) >= 3
    assert shard.skipped == {"outside the basemap": 1}
    assert shard.n_missing == killed["n_listed"] - len(log["tiles"]) > 0
    recorded = shard.n_done + 1
    assert shard.tiles_per_s == pytest.approx(recorded / (log["processing_time_hours"] * 3600))
    assert shard.eta_s == pytest.approx(shard.n_missing / shard.tiles_per_s)
    (lease,) = status.leases
    assert lease.name == "inference.lease" and lease.state == "holder gone" and lease.stale
    assert shard.lease == lease and lease.host and lease.pid
    assert status.products == {"merged": False, "vectors": False, "report": False}
    assert not status.success


def test_a_live_lease_makes_it_running(killed, tmp_path):
    """The killed output with its lease taken by a live run (this test) reads as running."""
    out = tmp_path / "out"
    upload(killed["out"], str(out))
    lease = Lease(lease_uri_for(str(out), None), ttl_s=600, settle_s=0)
    lease.acquire()
    try:
        status = read_status(str(out))
    finally:
        lease.release()
    (shard,) = status.shards
    assert shard.state == status.state == "running" and shard.detail == ""
    assert shard.lease is not None and shard.lease.state == "held"
    assert shard.lease.owner == lease.owner and shard.lease.pid == os.getpid()
    assert shard.eta_s == pytest.approx(shard.n_missing / shard.tiles_per_s)
    after = read_status(str(out))  # released: no lease, the run stopped
    assert after.leases == () and after.shards[0].state == "incomplete"
    assert "stopped before finishing (no lease)" in after.shards[0].detail


@pytest.fixture(scope="module")
def finished(killed, tmp_path_factory):
    """The killed output copied and resumed to the end with its products."""
    out = tmp_path_factory.mktemp("status-finished") / "out"
    upload(killed["out"], str(out))
    data = yaml.safe_load(killed["config"].read_text())
    data["output"]["path"] = str(out)
    config = out.parent / "job.yaml"
    config.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(
        rts, ["run", "--config", str(config), "--tile-list", str(killed["tile_list"])]
    )
    assert result.exit_code == 0, result.output
    return out


def test_a_finished_output_is_complete_with_products(finished, killed):
    status = read_status(str(finished))
    (shard,) = status.shards
    assert shard.state == status.state == "complete"
    assert (shard.n_done, shard.skipped, shard.n_missing) == (
        killed["n_listed"] - 1,
        {"outside the basemap": 1},
        0,
    )
    assert shard.eta_s is None and shard.lease is None and status.leases == ()
    log = json.loads((finished / "logs" / "inference_log.json").read_text())
    last = log["runs"][-1]
    resumed = killed["n_listed"] - last["tiles_already_recorded"]
    assert shard.tiles_per_s == pytest.approx(resumed / last["pipeline_s"])
    assert status.products == {"merged": True, "vectors": True, "report": False}
    assert status.success


def test_status_reads_the_same_on_s3(killed, finished, s3_bucket):
    for name, local in (("killed", killed["out"]), ("finished", finished)):
        remote = f"{s3_bucket}/status/{name}"
        upload(local, remote)
        assert without_output(read_status(remote)) == without_output(read_status(str(local)))
        # read only: the killed run's stale lease is still there, unchanged
        lease = storage.join(remote, "logs", "inference.lease")
        assert storage.exists(lease) == (name == "killed")


def test_status_command_prints_a_table_or_json(killed, finished):
    table = CliRunner().invoke(rts, ["status", "--output", str(killed["out"])])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0] == f"output     {killed['out']}: incomplete"
    assert lines[2].startswith("inference_log.json") and "incomplete" in lines[2]
    assert "skipped 1: outside the basemap" in table.output
    assert "lease      inference.lease: stale, holder gone: run " in table.output
    assert "products   merged: no, vectors: no, report: no; _SUCCESS: no" in table.output
    as_json = CliRunner().invoke(rts, ["status", "--output", str(finished), "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["state"] == "complete" and data["success"] is True
    assert data["shards"][0]["n_missing"] == 0 and data["leases"] == []


def test_status_of_a_path_without_a_run_says_what_it_expected(tmp_path):
    with pytest.raises(RunLogError, match=r"no run log .* or lease .* expected the output path"):
        read_status(str(tmp_path))
    result = CliRunner().invoke(rts, ["status", "--output", str(tmp_path)])
    assert result.exit_code == 1 and "RunLogError: no run log" in result.output
