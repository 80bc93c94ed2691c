"""The job's merge step: run logs (single and sharded) to merged/ mosaics, and its refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from merge_support import done, make_tiles, oracle, write_run_log, write_tiles

from tilecast.grid import OffGridError
from tilecast.merge import MergeInputError, MissingTilesError, merge_output, read_run_logs
from tilecast.run.runlogs import RunLogError


def read(path: str) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


@pytest.fixture
def output(tmp_path: Path):
    """Two regions side by side, plus tiles without a region (-> 'all') and a skipped tile."""
    out = tmp_path / "run"
    north = make_tiles(3, 4, seed=1, prefix="n")
    south = make_tiles(3, 3, seed=2, prefix="s", offset=(200, 20))
    loose = make_tiles(2, 2, seed=3, prefix="l", offset=(400, 400))
    for tiles in (north, south, loose):
        write_tiles(out / "tiles", tiles)
    records = {t.tile_id: done("north") for t in north}
    records |= {t.tile_id: done("south") for t in south}
    records |= {t.tile_id: done() for t in loose}
    records["n9999"] = {"status": "skipped", "reason": "all NoData", "region": "north"}
    return out, records, {"north": north, "south": south, "all": loose}


def test_merges_each_region_with_the_run_log_threshold(output) -> None:
    out, records, groups = output
    write_run_log(out, records, threshold=0.625)
    results = merge_output(str(out), strategy="streaming", block=48)
    assert [r.region for r in results] == ["all", "north", "south"]
    for result in results:
        tiles = groups[result.region]
        assert result.threshold == 0.625 and result.merge.n_tiles == len(tiles)
        assert result.prob == str(out / "merged" / f"region_{result.region}_prob.tif")
        from tilecast.grid import Window

        region = Window.bounding(t.window for t in tiles)
        want_prob, want_scale = oracle(tiles, region)
        prob = read(result.prob)
        np.testing.assert_array_equal(prob, want_prob)
        np.testing.assert_array_equal(read(result.scale), want_scale)
        binary = read(result.binary)
        np.testing.assert_array_equal(binary, np.where(prob == -1, 255, prob >= 0.625))
        with rasterio.open(result.prob) as src:
            x0, y0 = src.transform.c, src.transform.f
        assert (x0, y0) == (-2_400_000.0 + region.col * 3, -300_000.0 - region.row * 3)
    names = sorted(p.name for p in (out / "merged").iterdir())
    assert names == sorted(
        f"region_{r}_{k}.tif" for r in groups for k in ("prob", "binary", "scale")
    )


def test_shard_logs_combine_into_the_same_mosaics(output, tmp_path) -> None:
    out, records, _ = output
    write_run_log(out, records)
    single = {r.region: r.merge.sha256 for r in merge_output(str(out))}
    (out / "logs" / "inference_log.json").unlink()
    ids = sorted(records)
    write_run_log(out, {k: records[k] for k in ids[::2]}, shard="a")
    write_run_log(out, {k: records[k] for k in ids[1::2]}, shard="b")
    sharded = {r.region: r.merge.sha256 for r in merge_output(str(out), strategy="memory")}
    assert sharded == single


def test_threshold_override_and_region_selection(output) -> None:
    out, records, _ = output
    write_run_log(out, records, threshold=0.5)
    (result,) = merge_output(str(out), threshold=0.875, regions=["south"])
    assert result.region == "south" and result.threshold == 0.875
    prob, binary = read(result.prob), read(result.binary)
    np.testing.assert_array_equal(binary, np.where(prob == -1, 255, prob >= 0.875))
    assert sorted(p.name for p in (out / "merged").iterdir())[0].startswith("region_south")
    with pytest.raises(
        MergeInputError,
        match=r"no done tiles in region.s. east; regions with done tiles: all, north, south",
    ):
        merge_output(str(out), regions=["east"])


def test_missing_tile_files_are_named_before_anything_is_written(output) -> None:
    out, records, _ = output
    write_run_log(out, records)
    (out / "tiles" / "n0102.tif").unlink()
    (out / "tiles" / "s0000.tif").unlink()
    with pytest.raises(
        MissingTilesError, match=r"2 tile\(s\) recorded as done .* n0102, s0000"
    ) as info:
        merge_output(str(out))
    assert info.value.missing == ["n0102", "s0000"]
    assert not (out / "merged").exists()


@pytest.mark.parametrize(
    ("key", "a", "b"),
    [("threshold", 0.5, 0.6), ("bundle_digest", "sha256:abc", "sha256:def")],
)
def test_shard_logs_that_disagree_are_refused(output, key, a, b) -> None:
    out, records, _ = output
    ids = sorted(records)
    write_run_log(out, {k: records[k] for k in ids[::2]}, shard="a", **{key: a})
    write_run_log(out, {k: records[k] for k in ids[1::2]}, shard="b", **{key: b})
    with pytest.raises(RunLogError, match=f"the run logs disagree on {key}") as info:
        merge_output(str(out), threshold=0.5)
    assert "inference_log.a.json" in str(info.value) and "inference_log.b.json" in str(info.value)
    assert not (out / "merged").exists()


def test_a_tile_recorded_differently_by_two_shards_is_refused(output) -> None:
    out, records, _ = output
    write_run_log(out, records, shard="a")
    write_run_log(out, {"n0000": done("north", sha256="1" * 64)}, shard="b")
    with pytest.raises(RunLogError, match="tile n0000 is recorded differently"):
        read_run_logs(str(out))


def test_no_run_log_and_no_done_tile_are_refused(output) -> None:
    out, _records, _ = output
    with pytest.raises(RunLogError, match=r"no run log \(inference_log\*.json\)"):
        merge_output(str(out))
    write_run_log(out, {"x": {"status": "skipped", "reason": "all NoData"}})
    with pytest.raises(MergeInputError, match="record no done tile to merge"):
        merge_output(str(out))


def test_a_tile_off_the_region_grid_is_refused(output) -> None:
    out, records, _ = output
    write_run_log(out, records)
    path = out / "tiles" / "n0001.tif"
    with rasterio.open(path, "r+") as dst:
        t = dst.transform
        dst.transform = rasterio.Affine(t.a, t.b, t.c + 1.5, t.d, t.e, t.f)
    with pytest.raises(OffGridError, match=r"tile n0001: minx .* 0.5 px off"):
        merge_output(str(out))
