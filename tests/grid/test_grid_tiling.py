"""The tile lattice: coverage, overlap, stable ids, and the locality order."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilecast.errors import InputError
from tilecast.grid import (
    PixelGrid,
    Tile,
    Window,
    iter_tile_grid,
    make_tile_grid,
    order_for_locality,
    tile_id_for,
    tile_window,
    window_bounds,
)

BASEMAP = PixelGrid(-2_400_000.0, -300_000.0, 3.0, 3.0, 900, 700, "EPSG:3413")


def bbox_of(grid: PixelGrid, w: Window) -> tuple[float, float, float, float]:
    return window_bounds(grid, w)


pixel_boxes = st.builds(
    lambda r, c, h, w: Window(r, c, h, w),
    st.integers(0, 650),
    st.integers(0, 850),
    st.integers(1, 300),
    st.integers(1, 300),
)
tilings = st.sampled_from([(64, 32), (64, 64), (48, 16), (50, 20), (512, 256)])


@settings(max_examples=60, deadline=None)
@given(pixel_boxes, tilings, st.sampled_from([3.0, 0.5, 4.77]))
def test_tiles_cover_every_pixel_and_only_overlapping_lattice_tiles(
    box: Window, tiling: tuple[int, int], res: float
) -> None:
    tile_size, stride = tiling
    grid = PixelGrid(-2_400_000.0, -300_000.0, res, res, 900, 700, "EPSG:3413")
    tiles = make_tile_grid(grid, bbox=bbox_of(grid, box), tile_size=tile_size, stride=stride)
    extent = box.clip_to(grid.height, grid.width)
    assert extent is not None
    wins = [tile_window(grid, t) for t in tiles]  # every tile bbox is on the pixel grid
    assert all(w.shape == (tile_size, tile_size) for w in wins)
    assert all(w.row % stride == 0 and w.col % stride == 0 for w in wins)
    count = np.zeros(extent.shape, dtype=int)
    for w in wins:
        part = w.intersection(extent)
        assert part is not None, f"{w} does not touch the bbox {extent}"
        count[part.relative_to(extent).slices] += 1
    assert count.min() >= 1
    # exactly the lattice tiles overlapping the bbox: none missing, including margin-only ones
    expected = {
        (r, c)
        for r in range(0, extent.row_stop, stride)
        for c in range(0, extent.col_stop, stride)
        if Window(r, c, tile_size, tile_size).intersects(extent)
    }
    assert {w.yx for w in wins} == expected
    assert [t.tile_id for t in tiles] == sorted(t.tile_id for t in tiles)
    assert len({t.tile_id for t in tiles}) == len(tiles)


def test_neighbours_overlap_by_tile_size_minus_stride() -> None:
    tiles = make_tile_grid(BASEMAP, tile_size=64, stride=48)
    by_id = {t.tile_id: tile_window(BASEMAP, t) for t in tiles}
    checked = 0
    for tile_id, w in by_id.items():
        r, c = int(tile_id[1:8]), int(tile_id[10:])
        right = by_id.get(f"r{r:07d}_c{c + 1:07d}")
        below = by_id.get(f"r{r + 1:07d}_c{c:07d}")
        if right is not None:
            assert w.intersection(right) == Window(w.row, w.col + 48, 64, 16)
            checked += 1
        if below is not None:
            assert w.intersection(below) == Window(w.row + 48, w.col, 16, 64)
            checked += 1
    assert checked > 100


def test_default_covers_whole_grid_and_leaves_it_at_the_far_edges() -> None:
    tiles = make_tile_grid(BASEMAP)  # 512 / 256 over 700 x 900 px
    assert [t.tile_id for t in tiles] == [f"r{r:07d}_c{c:07d}" for r in range(3) for c in range(4)]
    last = tile_window(BASEMAP, tiles[-1])
    assert last == Window(512, 768, 512, 512)  # boundless past the raster: read as NoData
    assert tiles[0].bounds == (-2_400_000.0, -301_536.0, -2_398_464.0, -300_000.0)


@settings(max_examples=40, deadline=None)
@given(pixel_boxes, pixel_boxes)
def test_ids_are_stable_when_the_bbox_changes(a: Window, b: Window) -> None:
    ta = {
        t.tile_id: t
        for t in make_tile_grid(BASEMAP, bbox=bbox_of(BASEMAP, a), tile_size=64, stride=32)
    }
    tb = {
        t.tile_id: t
        for t in make_tile_grid(BASEMAP, bbox=bbox_of(BASEMAP, b), tile_size=64, stride=32)
    }
    for tile_id in ta.keys() & tb.keys():
        assert ta[tile_id] == tb[tile_id]
    by_bounds_a = {t.bounds: t.tile_id for t in ta.values()}
    for t in tb.values():
        assert by_bounds_a.get(t.bounds, t.tile_id) == t.tile_id


def test_tile_id_for_agrees_with_make_tile_grid() -> None:
    for t in make_tile_grid(BASEMAP, tile_size=64, stride=32):
        assert tile_id_for(BASEMAP.x0, BASEMAP.y0, t.minx, t.maxy, stride_m=32 * 3.0) == t.tile_id


def test_tile_id_for() -> None:
    assert tile_id_for(
        -2_400_000, -300_000, -2_400_000 + 768 * 34, -300_000 - 768 * 12, stride_m=768
    ) == ("r0000012_c0000034")
    with pytest.raises(InputError, match="lattice"):
        tile_id_for(0, 0, 100.0, 0, stride_m=768)
    with pytest.raises(InputError, match="origin"):
        tile_id_for(0, 0, -768.0, 0, stride_m=768)


def test_bbox_outside_is_clipped_or_refused() -> None:
    minx, miny, maxx, maxy = BASEMAP.bounds
    inside = make_tile_grid(BASEMAP, tile_size=64, stride=32)
    bigger = make_tile_grid(
        BASEMAP, bbox=(minx - 1e4, miny - 1e4, maxx + 1e4, maxy + 1e4), tile_size=64, stride=32
    )
    assert bigger == inside
    with pytest.raises(InputError, match="does not overlap"):
        make_tile_grid(BASEMAP, bbox=(maxx + 1, miny, maxx + 100, maxy))


def test_unaligned_bbox_is_widened_to_whole_pixels() -> None:
    x, y = BASEMAP.x0, BASEMAP.y0
    # 1 m inside pixel column 64 and row 64: that pixel must still be covered
    tiles = make_tile_grid(
        BASEMAP,
        bbox=(x + 192 + 2, y - 192 - 2, x + 192 + 2.5, y - 192 - 1),
        tile_size=64,
        stride=64,
    )
    assert [tile_window(BASEMAP, t) for t in tiles] == [Window(64, 64, 64, 64)]


def test_region_and_iterator() -> None:
    tiles = make_tile_grid(BASEMAP, tile_size=256, stride=128, region="alaska")
    assert all(t.region == "alaska" for t in tiles)
    assert list(iter_tile_grid(BASEMAP, tile_size=256, stride=128, region="alaska")) == tiles


@pytest.mark.parametrize(
    "kwargs",
    [{"stride": 600}, {"stride": 0}, {"tile_size": 0}, {"region": "a/b"}, {"bbox": (1, 2, 3)}],
)
def test_bad_tiling_arguments(kwargs: dict) -> None:
    with pytest.raises(InputError):
        make_tile_grid(BASEMAP, **kwargs)


def test_tile_validation() -> None:
    Tile("r0000001_c0000002", 0, 0, 1, 1)
    for bad in [
        ("", 0, 0, 1, 1),
        ("../x", 0, 0, 1, 1),
        ("t", 1, 0, 1, 1),
        ("t", 0, 0, 1, float("nan")),
    ]:
        with pytest.raises(InputError):
            Tile(*bad)
    with pytest.raises(InputError):
        Tile("t", 0, 0, 1, 1, region="has space")


def test_order_for_locality_is_z_order_on_the_lattice() -> None:
    lattice = [Window(-256 + 256 * r, 1024 + 256 * c, 512, 512) for r in range(8) for c in range(8)]
    shuffled = lattice[:]
    random.Random(0).shuffle(shuffled)
    order = order_for_locality(shuffled)
    assert sorted(order) == list(range(64))
    visited = [shuffled[i] for i in order]
    assert visited == [
        lattice[i] for i in order_for_locality(lattice)
    ]  # input order does not matter
    assert [w.yx for w in visited[:4]] == [(-256, 1024), (-256, 1280), (0, 1024), (0, 1280)]
    for start in range(0, 64, 16):  # every 16 consecutive windows fill a 4x4 block
        block = visited[start : start + 16]
        assert Window.bounding(block).shape == (512 + 3 * 256, 512 + 3 * 256)


def test_order_for_locality_edges() -> None:
    assert order_for_locality([]) == []
    assert order_for_locality([Window(3, 3, 1, 1)]) == [0]
    same = [Window(0, 0, 4, 4), Window(0, 0, 2, 2), Window(0, 0, 4, 4)]
    assert order_for_locality(same) == [1, 0, 2]


def test_grid_package_does_no_io_imports() -> None:
    code = (
        "import sys, tilecast.grid\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'rasterio', 'fsspec', 'torch'})\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
