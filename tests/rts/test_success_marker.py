"""``{output}/_SUCCESS``: written last, only by a finished run; a stale one goes at the next start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rts_support import make_config, smooth_rgb, tiles_for, write_quad_basemap

from tilecast.apps.rts.job import RtsJob
from tilecast.apps.rts.sink import TileSink
from tilecast.apps.rts.tilelist import format_tile_list
from tilecast.bundle import load_bundle
from tilecast.cli.rts import rts
from tilecast.run.success import read_success, write_success


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, make_bundle):
    root = tmp_path_factory.mktemp("success")
    image = smooth_rgb(5, 192, 192)
    basemap = write_quad_basemap(root / "basemap", image, quad=96)
    tiles = tiles_for(image, tile_size=64, stride=64)
    tile_list = root / "tiles.csv"
    tile_list.write_text(format_tile_list(tiles))
    return make_bundle("export"), basemap, tiles, tile_list


def write_config(path: Path, config) -> Path:
    data = config.model_dump(mode="json")
    data["products"] = {"merge": True, "vectorize": False, "report": False}
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_finished_run_writes_success_last(inputs, tmp_path):
    bundle, basemap, tiles, tile_list = inputs
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", make_config(bundle=bundle, basemap=basemap, out=out))
    result = CliRunner().invoke(
        rts, ["run", "--config", str(config), "--tile-list", str(tile_list)]
    )
    assert result.exit_code == 0, result.output
    marker = out / "_SUCCESS"
    assert f"success    {marker}" in result.output
    summary = json.loads(marker.read_text())
    log = json.loads((out / "logs" / "inference_log.json").read_text())
    assert summary["n_tiles_total"] == len(tiles) == log["n_tiles_total"]
    assert summary["n_tiles_processed"] + summary["n_tiles_skipped"] == len(tiles)
    assert summary["bundle_digest"] == load_bundle(bundle).digest
    assert summary["runs"][0]["run_ids"] == [log["runs"][0]["run_id"]]
    assert summary["runs"][0]["shard"] is None
    assert summary["products"]["merged"]  # the mosaics were made before it
    # written last: nothing in the output is newer
    newest = max(p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p != marker)
    assert marker.stat().st_mtime_ns >= newest


def test_an_interrupted_run_has_no_success_and_removes_a_stale_one(inputs, tmp_path, monkeypatch):
    bundle, basemap, tiles, _ = inputs
    out = tmp_path / "out"
    config = make_config(bundle=bundle, basemap=basemap, out=out, checkpoint_every=1)
    (out).mkdir()
    (out / "_SUCCESS").write_text('{"left": "by an earlier run"}')

    real_commit = TileSink.commit
    calls = []

    def failing_commit(self, out_tile, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise OSError("disk went away")
        return real_commit(self, out_tile, **kwargs)

    monkeypatch.setattr(TileSink, "commit", failing_commit)
    with pytest.raises(OSError, match="disk went away"):
        RtsJob(config, tiles).run()
    assert not (out / "_SUCCESS").exists()  # the stale marker went before any tile
    assert write_success(str(out)) is None  # the log is not complete: no marker
    assert not (out / "_SUCCESS").exists()

    monkeypatch.setattr(TileSink, "commit", real_commit)
    result = RtsJob(config, tiles).run()  # the restart finishes
    assert result.complete
    summary = write_success(str(out))
    assert summary is not None and read_success(str(out)) == summary
    assert summary["n_tiles_total"] == len(tiles)
    assert len(summary["runs"][0]["run_ids"]) == 2  # the interrupted run and the restart
