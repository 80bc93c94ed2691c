"""Scale contexts as the run book defines them, checked on a coordinate-encoding image."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tilecast.errors import InputError
from tilecast.grid import (
    ScaleView,
    Window,
    context_size,
    context_window,
    crop_back_window,
    scale_views,
)


@pytest.mark.parametrize(
    ("scale", "size", "offset"), [(1.0, 512, 0), (0.5, 1024, 256), (0.25, 2048, 768)]
)
def test_run_book_scales(scale: float, size: int, offset: int) -> None:
    tile = Window(5120, 2560, 512, 512)
    assert context_size(512, scale) == size
    ctx = context_window(tile, scale)
    assert ctx.shape == (size, size)
    assert ctx.yx == (5120 - offset, 2560 - offset)
    assert crop_back_window(512, scale) == Window(offset, offset, 512, 512)
    assert tile.relative_to(ctx) == crop_back_window(512, scale)


def test_crop_back_finds_the_tile_pixels() -> None:
    """Pixel values encode their coordinates: the cropped centre must be the tile itself."""
    tile = Window(40, 72, 16, 16)
    rows, cols = np.mgrid[0:256, 0:256]
    scene = rows * 1000 + cols
    for view in scale_views(tile, [1.0, 0.5, 0.25]):
        context = scene[view.context.slices]
        np.testing.assert_array_equal(context[view.crop_back.slices], scene[tile.slices])


def test_scale_views() -> None:
    tile = Window(0, 0, 512, 512)
    views = scale_views(tile, [1.0, 0.5])
    assert views == (
        ScaleView(1.0, Window(0, 0, 512, 512), 512),
        ScaleView(0.5, Window(-256, -256, 1024, 1024), 512),
    )
    assert views[0].is_identity and not views[1].is_identity
    assert views[1].context_size == 1024
    assert len({*views}) == 2  # hashable


@pytest.mark.parametrize("scales", [[], [1.0, 1.0], "1.0", [1.0, 2.0]])
def test_bad_scale_lists(scales: list) -> None:
    with pytest.raises(InputError):
        scale_views(Window(0, 0, 512, 512), scales)


def test_scale_whose_context_is_not_whole() -> None:
    with pytest.raises(InputError, match=r"scale 0.3 gives a 1706.67 px context"):
        context_size(512, 0.3)


@pytest.mark.parametrize(
    ("tile", "scale"),
    [(5, 0.5), (512, 0.0), (512, 1.5), (512, -0.5), (512, float("nan")), (0, 1.0)],
)
def test_bad_scales(tile: int, scale: float) -> None:
    with pytest.raises(InputError):
        context_size(tile, scale)


def test_decimal_scales() -> None:
    assert context_size(512, 0.4) == 1280  # 2/5 exactly, though the float 0.4 is not
    assert context_size(512, 0.8) == 640


def test_non_square_tile() -> None:
    with pytest.raises(InputError, match="square"):
        context_window(Window(0, 0, 512, 256), 0.5)


@given(
    st.integers(-5000, 5000),
    st.integers(-5000, 5000),
    st.sampled_from([64, 256, 512]),
    st.sampled_from([1.0, 0.5, 0.25, 0.125]),
)
def test_context_contains_centred_tile(row: int, col: int, size: int, scale: float) -> None:
    tile = Window(row, col, size, size)
    ctx = context_window(tile, scale)
    assert ctx.contains(tile)
    assert 2 * ctx.row + ctx.height == 2 * tile.row + tile.height
    assert tile.relative_to(ctx) == crop_back_window(size, scale)
