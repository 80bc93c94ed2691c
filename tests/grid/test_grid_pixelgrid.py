"""The pixel grid, the explicit snapping step and its inverse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tilecast.errors import InputError
from tilecast.grid import (
    SNAP_TOLERANCE_PX,
    OffGridError,
    PixelGrid,
    Window,
    snap_bbox,
    window_bounds,
    window_grid,
    window_transform,
)

RESOLUTIONS = [3.0, 0.5, 4.77]
origins_x = st.sampled_from([-2_400_000.0, -4_194_304.0, 0.0, 1_234_567.25]) | st.floats(
    -4_500_000, 4_500_000, allow_nan=False
)
origins_y = st.sampled_from([-300_000.0, 4_194_304.0, 0.0, -987_654.5]) | st.floats(
    -4_500_000, 4_500_000, allow_nan=False
)
grids = st.builds(
    PixelGrid,
    x0=origins_x,
    y0=origins_y,
    res_x=st.sampled_from(RESOLUTIONS),
    res_y=st.sampled_from(RESOLUTIONS),
    width=st.integers(1, 3_000_000),
    height=st.integers(1, 3_000_000),
    crs=st.just("EPSG:3413"),
)
# boundless: windows may start before the raster or run past it
windows = st.builds(
    Window,
    st.integers(-100_000, 3_000_000),
    st.integers(-100_000, 3_000_000),
    st.integers(1, 4096),
    st.integers(1, 4096),
)

BASEMAP = PixelGrid(-2_400_000.0, -300_000.0, 3.0, 3.0, 10_000, 8_000, "EPSG:3413")


@given(grids, windows)
def test_snap_inverts_window_bounds(grid: PixelGrid, w: Window) -> None:
    assert snap_bbox(grid, *window_bounds(grid, w)) == w


@given(grids, windows)
def test_window_transform_matches_bounds(grid: PixelGrid, w: Window) -> None:
    a, b, c, d, e, f = window_transform(grid, w)
    minx, _, _, maxy = window_bounds(grid, w)
    assert (a, b, d, e) == (grid.res_x, 0.0, 0.0, -grid.res_y)
    assert (c, f) == (minx, maxy)
    sub = window_grid(grid, w)
    assert sub.transform == (a, b, c, d, e, f) and sub.shape == w.shape


@pytest.mark.parametrize(("edge", "index"), [("minx", 0), ("miny", 1), ("maxx", 2), ("maxy", 3)])
def test_off_grid_edge_names_tile_edge_and_offset(edge: str, index: int) -> None:
    bbox = list(window_bounds(BASEMAP, Window(10, 20, 512, 512)))
    bbox[index] += 1.5  # half a 3 m pixel
    with pytest.raises(OffGridError) as info:
        snap_bbox(BASEMAP, *bbox, tile_id="x0001_y0002")
    message = str(info.value)
    assert message.startswith(f"tile x0001_y0002: {edge} {bbox[index]!r} is 0.5 px off")
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)


@given(grids, windows, st.integers(0, 3), st.floats(1e-4, 1 - 1e-4))
def test_any_off_grid_shift_is_refused(grid: PixelGrid, w: Window, index: int, frac: float) -> None:
    bbox = list(window_bounds(grid, w))
    res = grid.res_x if index in (0, 2) else grid.res_y
    bbox[index] += frac * res
    if bbox[0] >= bbox[2] or bbox[1] >= bbox[3]:
        return
    name = ("minx", "miny", "maxx", "maxy")[index]
    with pytest.raises(OffGridError, match=rf"^bbox: {name} .* px off the basemap pixel grid"):
        snap_bbox(grid, *bbox)


def test_several_edges_off_are_all_named() -> None:
    minx, miny, maxx, maxy = window_bounds(BASEMAP, Window(0, 0, 4, 4))
    with pytest.raises(OffGridError, match=r"minx .* 0\.25 px off.*maxy .* 0\.1 px off"):
        snap_bbox(BASEMAP, minx + 0.75, miny, maxx, maxy - 0.3, tile_id="t")


def test_within_tolerance_snaps() -> None:
    minx, miny, maxx, maxy = window_bounds(BASEMAP, Window(5, 6, 7, 8))
    nudge = 0.5 * SNAP_TOLERANCE_PX * 3.0
    assert snap_bbox(BASEMAP, minx + nudge, miny - nudge, maxx, maxy) == Window(5, 6, 7, 8)
    with pytest.raises(OffGridError):
        snap_bbox(BASEMAP, minx + 3 * nudge, miny, maxx, maxy)


@pytest.mark.parametrize(
    "bbox",
    [
        (0.0, 0.0, 0.0, 3.0),
        (3.0, 0.0, 0.0, 3.0),
        (0.0, 3.0, 3.0, 0.0),
        (float("nan"), 0.0, 3.0, 3.0),
        (0.0, float("-inf"), 3.0, 3.0),
    ],
)
def test_degenerate_bbox(bbox: tuple[float, ...]) -> None:
    grid = PixelGrid(0.0, 0.0, 3.0, 3.0, 10, 10, "EPSG:3413")
    with pytest.raises(InputError) as info:
        snap_bbox(grid, *bbox)
    assert not isinstance(info.value, OffGridError)


def test_snap_is_boundless() -> None:
    bbox = window_bounds(BASEMAP, Window(-300, 9_900, 512, 512))
    assert snap_bbox(BASEMAP, *bbox) == Window(-300, 9_900, 512, 512)


def test_from_affine() -> None:
    grid = PixelGrid.from_affine(
        3.0, 0.0, -2_400_000.0, 0.0, -3.0, -300_000.0, width=10, height=20, crs="EPSG:3413"
    )
    assert grid == PixelGrid(-2_400_000.0, -300_000.0, 3.0, 3.0, 10, 20, "EPSG:3413")
    assert grid.transform == (3.0, 0.0, -2_400_000.0, 0.0, -3.0, -300_000.0)
    assert grid.bounds == (-2_400_000.0, -300_060.0, -2_399_970.0, -300_000.0)
    assert hash(grid) == hash(PixelGrid(-2_400_000, -300_000, 3, 3, 10, 20, "EPSG:3413"))


@pytest.mark.parametrize(
    ("coeffs", "phrase"),
    [
        ((3.0, 0.1, 0.0, 0.0, -3.0, 0.0), "rotated or sheared"),
        ((3.0, 0.0, 0.0, 0.2, -3.0, 0.0), "rotated or sheared"),
        ((3.0, 0.0, 0.0, 0.0, 3.0, 0.0), "not north-up"),
        ((-3.0, 0.0, 0.0, 0.0, -3.0, 0.0), "pixel width"),
    ],
)
def test_from_affine_refuses_invalid_georeferencing(coeffs: tuple, phrase: str) -> None:
    with pytest.raises(InputError, match=f"invalid georeferencing.*{phrase}"):
        PixelGrid.from_affine(*coeffs, width=10, height=10, crs="EPSG:3413")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"res_x": 0.0},
        {"res_y": -3.0},
        {"width": 0},
        {"height": 2.5},
        {"crs": ""},
        {"x0": float("inf")},
    ],
)
def test_bad_grid(kwargs: dict) -> None:
    base = {
        "x0": 0.0,
        "y0": 0.0,
        "res_x": 3.0,
        "res_y": 3.0,
        "width": 5,
        "height": 5,
        "crs": "EPSG:3413",
    }
    with pytest.raises(InputError):
        PixelGrid(**(base | kwargs))
