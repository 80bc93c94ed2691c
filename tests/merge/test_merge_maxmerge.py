"""The pixel-wise maximum at the array level: order independence, ties, NoData, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilecast.errors import InputError
from tilecast.grid import Window
from tilecast.merge import (
    BINARY_NODATA,
    check_tile_values,
    merge_max,
    new_accumulators,
    threshold_mask,
)

CANVAS = (9, 11)
PROBS = [-1.0, 0.0, -0.0, 0.25, 0.5, 0.75, 1.0]  # -1 is NoData; -0.0 and 0.0 compare equal
SCALE_VALUES = [0.25, 0.5, 1.0]


@st.composite
def tile(draw: st.DrawFn) -> tuple[Window, np.ndarray, np.ndarray]:
    height = draw(st.integers(1, CANVAS[0]))
    width = draw(st.integers(1, CANVAS[1]))
    row = draw(st.integers(0, CANVAS[0] - height))
    col = draw(st.integers(0, CANVAS[1] - width))
    n = height * width
    prob = np.array(draw(st.lists(st.sampled_from(PROBS), min_size=n, max_size=n)), np.float32)
    scale = np.array(
        draw(st.lists(st.sampled_from(SCALE_VALUES), min_size=n, max_size=n)), np.float32
    )
    scale[prob == -1] = -1
    return (
        Window(row, col, height, width),
        prob.reshape(height, width),
        scale.reshape(height, width),
    )


def merged(tiles: list[tuple[Window, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    prob, scale = new_accumulators(CANVAS)
    for window, tile_prob, tile_scale in tiles:
        rows, cols = window.slices
        merge_max(prob[rows, cols], scale[rows, cols], tile_prob, tile_scale)
    return prob, scale


def expected(tiles: list[tuple[Window, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the lexicographic max of the valid (prob, scale) pairs, by plain Python."""
    prob = np.full(CANVAS, -1.0, np.float32)
    scale = np.full(CANVAS, -1.0, np.float32)
    for r in range(CANVAS[0]):
        for c in range(CANVAS[1]):
            pairs = [
                (float(p[r - w.row, c - w.col]), float(s[r - w.row, c - w.col]))
                for w, p, s in tiles
                if w.row <= r < w.row_stop
                and w.col <= c < w.col_stop
                and p[r - w.row, c - w.col] != -1
            ]
            if pairs:
                prob[r, c], scale[r, c] = max(pairs)
    return prob + np.float32(0), scale


@settings(max_examples=150, deadline=None)
@given(tiles=st.lists(tile(), min_size=1, max_size=6), data=st.data())
def test_merge_is_order_independent_to_the_byte(tiles, data) -> None:
    order = data.draw(st.permutations(range(len(tiles))))
    prob_a, scale_a = merged(tiles)
    prob_b, scale_b = merged([tiles[k] for k in order])
    assert prob_a.tobytes() == prob_b.tobytes()  # -0.0 vs 0.0 would differ here
    assert scale_a.tobytes() == scale_b.tobytes()
    want_prob, want_scale = expected(tiles)
    np.testing.assert_array_equal(prob_a, want_prob)
    np.testing.assert_array_equal(scale_a, want_scale)
    assert not np.signbit(prob_a[prob_a == 0]).any()


@settings(max_examples=50, deadline=None)
@given(tiles=st.lists(tile(), min_size=1, max_size=4))
def test_pixels_no_valid_tile_covers_stay_nodata(tiles) -> None:
    prob, scale = merged(tiles)
    covered = np.zeros(CANVAS, bool)
    for window, tile_prob, _ in tiles:
        covered[window.slices] |= tile_prob != -1
    assert (prob[~covered] == -1).all() and (scale[~covered] == -1).all()
    assert (prob[covered] >= 0).all() and (scale[covered] > 0).all()


def test_ties_keep_the_larger_scale_either_way() -> None:
    p = np.full((1, 2), 0.5, np.float32)
    coarse = np.full((1, 2), 0.5, np.float32)
    fine = np.full((1, 2), 1.0, np.float32)
    for first, second in ((coarse, fine), (fine, coarse)):
        prob, scale = new_accumulators((1, 2))
        merge_max(prob, scale, p, first)
        merge_max(prob, scale, p, second)
        assert (scale == 1.0).all()


def test_nodata_tile_pixels_never_overwrite() -> None:
    prob, scale = new_accumulators((1, 3))
    merge_max(
        prob, scale, np.array([[0.0, 0.25, -1]], np.float32), np.array([[1, 1, -1]], np.float32)
    )
    merge_max(
        prob, scale, np.array([[-1, -1, -1]], np.float32), np.array([[-1, -1, -1]], np.float32)
    )
    np.testing.assert_array_equal(prob, [[0.0, 0.25, -1]])
    np.testing.assert_array_equal(scale, [[1, 1, -1]])


def test_merge_max_refuses_misaligned_or_mistyped_views() -> None:
    prob, scale = new_accumulators((4, 4))
    with pytest.raises(InputError, match=r"tile prob has shape \(3, 4\), expected \(4, 4\)"):
        merge_max(prob, scale, np.zeros((3, 4), np.float32), np.zeros((3, 4), np.float32))
    with pytest.raises(InputError, match="tile prob must be float32, float64 is given"):
        merge_max(prob, scale, np.zeros((4, 4)), np.zeros((4, 4), np.float32))


def test_check_tile_values_names_each_problem() -> None:
    prob = np.array([[0.5, 1.5, np.nan, -1]], np.float32)
    scale = np.array([[1.0, 1.0, 1.0, 0.5]], np.float32)
    with pytest.raises(InputError) as info:
        check_tile_values(prob, scale, tile_id="x1")
    text = str(info.value)
    assert "tile x1" in text
    assert "1 pixel(s) NoData in one band only" in text
    assert "2 valid probabilities outside [0, 1] or not finite" in text
    check_tile_values(
        np.array([[0, 1, -1]], np.float32), np.array([[1, 0.5, -1]], np.float32), tile_id="ok"
    )


def test_threshold_mask_is_prob_at_or_above_threshold_with_nodata() -> None:
    prob = np.array([[-1, 0, 0.3, 0.29999998, 1]], np.float32)
    out = threshold_mask(prob, 0.3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[BINARY_NODATA, 0, 1, 0, 1]])
    with pytest.raises(InputError, match=r"threshold must lie in \[0, 1\], 1.5 is given"):
        threshold_mask(prob, 1.5)
