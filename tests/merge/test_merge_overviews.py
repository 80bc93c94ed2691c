"""Overview levels: the reducers, the level shapes, and the levels inside the written COGs."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from merge_support import GRID, make_tiles, write_tiles

from tilecast.errors import UnknownNameError
from tilecast.merge import merge_region, plan_region
from tilecast.merge.overviews import get_reducer, overview_shapes, reduce_average, reduce_mode


def test_overview_shapes_halve_down_to_one_block_with_at_least_one_level() -> None:
    assert overview_shapes((8192, 8192), blocksize=512) == [
        (4096,) * 2,
        (2048,) * 2,
        (1024,) * 2,
        (512,) * 2,
    ]
    assert overview_shapes((1025, 300), blocksize=512) == [(513, 150), (257, 75)]
    assert overview_shapes((224, 256), blocksize=512) == [(112, 128)]
    assert overview_shapes((1, 1), blocksize=512) == []


def test_average_ignores_nodata_and_pads_odd_edges() -> None:
    block = np.array(
        [
            [0.5, -1, -1, -1, 0.25],
            [0.25, 0.0, -1, -1, 0.75],
            [1.0, 1.0, 0.0, 0.5, -1],
        ],
        np.float32,
    )
    out = reduce_average(block, -1.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0.25, -1, 0.5], [1.0, 0.25, -1]])


def test_mode_takes_the_majority_and_ties_to_the_larger_value() -> None:
    binary = np.array([[1, 0, 0, 0, 255, 255], [0, 1, 0, 1, 255, 0]], np.uint8)
    np.testing.assert_array_equal(reduce_mode(binary, 255), [[1, 0, 0]])
    scale = np.array([[0.5, 0.5, 1.0, -1], [1.0, 0.5, 0.5, -1]], np.float32)
    np.testing.assert_array_equal(reduce_mode(scale, -1.0), [[0.5, 1.0]])
    with pytest.raises(
        UnknownNameError, match="unknown overview reducer 'cubic'; known: average, mode"
    ):
        get_reducer("cubic")


def test_cog_overviews_are_the_reduced_full_resolution(tmp_path) -> None:
    refs = write_tiles(tmp_path, make_tiles(6, 9, seed=5))  # 224 x 320 px: odd-free, one level
    out = {name: tmp_path / f"{name}.tif" for name in ("prob", "binary", "scale")}
    merge_region(
        plan_region(refs, grid=GRID),
        out_prob=str(out["prob"]),
        out_binary=str(out["binary"]),
        out_scale=str(out["scale"]),
        threshold=0.5,
        strategy="streaming",
        block=64,
    )
    for name, reduce, nodata in (
        ("prob", reduce_average, -1.0),
        ("binary", reduce_mode, 255),
        ("scale", reduce_mode, -1.0),
    ):
        with rasterio.open(out[name]) as src:
            full = src.read(1)
            assert src.overviews(1) == [2]
            assert src.tags()["overview_resampling"] == ("average" if name == "prob" else "mode")
        with rasterio.open(out[name], overview_level=0) as ovr:
            np.testing.assert_array_equal(ovr.read(1), reduce(full, nodata), err_msg=name)
