"""Window algebra: properties checked by hypothesis, plus the edges spelled out."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tilecast.errors import InputError
from tilecast.grid import Window

coords = st.integers(min_value=-1000, max_value=1000)
sizes = st.integers(min_value=0, max_value=300)
windows = st.builds(Window, coords, coords, sizes, sizes)
nonempty = st.builds(Window, coords, coords, sizes.map(lambda n: n + 1), sizes.map(lambda n: n + 1))


def pixels(w: Window | None) -> set[tuple[int, int]]:
    if w is None:
        return set()
    return {(r, c) for r in range(w.row, w.row_stop) for c in range(w.col, w.col_stop)}


small = st.builds(
    Window,
    st.integers(-10, 10),
    st.integers(-10, 10),
    st.integers(0, 8),
    st.integers(0, 8),
)


def test_named_axes_and_slices() -> None:
    w = Window(row=2, col=3, height=4, width=5)
    assert w.yx == (2, 3)
    assert w.shape == w.hw == (4, 5)
    assert (w.row_stop, w.col_stop, w.area, w.is_empty) == (6, 8, 20, False)
    assert np.zeros((10, 10))[w.slices].shape == w.shape
    assert Window(0, 0, 0, 3).is_empty


def test_frozen_hashable_ordered() -> None:
    w = Window(1, 2, 3, 4)
    with pytest.raises(AttributeError):
        w.row = 5  # type: ignore[misc]
    assert {w: "x"}[Window(1, 2, 3, 4)] == "x"
    assert sorted([Window(1, 0, 1, 1), Window(0, 5, 1, 1)])[0] == Window(0, 5, 1, 1)
    assert Window(np.int64(1), 2, 3, 4) == w
    assert type(Window(np.int64(1), 2, 3, 4).row) is int


@pytest.mark.parametrize(
    "args", [(0.5, 0, 1, 1), (0, 0, -1, 1), (0, 0, 1, -1), (True, 0, 1, 1), ("1", 0, 1, 1)]
)
def test_bad_fields(args: tuple) -> None:
    with pytest.raises(InputError):
        Window(*args)


@given(windows, windows)
def test_intersection_commutative_and_contained(a: Window, b: Window) -> None:
    i = a.intersection(b)
    assert i == b.intersection(a)
    if i is not None:
        assert a.contains(i) and b.contains(i)
        assert not i.is_empty
        assert a.intersects(b)


@given(small, small)
def test_intersection_is_set_intersection(a: Window, b: Window) -> None:
    assert pixels(a.intersection(b)) == pixels(a) & pixels(b)


@given(windows, windows, windows)
def test_intersection_associative(a: Window, b: Window, c: Window) -> None:
    def meet(x: Window | None, y: Window | None) -> Window | None:
        return None if x is None or y is None else x.intersection(y)

    assert meet(meet(a, b), c) == meet(a, meet(b, c))


@given(windows, windows)
def test_union_contains_both(a: Window, b: Window) -> None:
    u = a.union(b)
    assert u == b.union(a) or (a.is_empty and b.is_empty)
    for w in (a, b):
        if not w.is_empty:
            assert u.contains(w)


@given(st.lists(nonempty, min_size=1, max_size=6))
def test_bounding_is_smallest(ws: list[Window]) -> None:
    b = Window.bounding(ws)
    assert all(b.contains(w) for w in ws)
    assert b.row == min(w.row for w in ws) and b.col_stop == max(w.col_stop for w in ws)
    assert b == Window.bounding(reversed(ws))


def test_bounding_of_nothing() -> None:
    with pytest.raises(InputError, match="empty"):
        Window.bounding([Window(0, 0, 0, 5)])


@given(windows, windows)
def test_relative_to_translate_round_trip(inner: Window, outer: Window) -> None:
    rel = inner.relative_to(outer)
    assert rel.shape == inner.shape
    assert rel.translate(outer.row, outer.col) == inner
    if outer.contains(inner):
        assert Window(0, 0, *outer.shape).contains(rel)


@given(nonempty, st.integers(-3, 50))
def test_pad(w: Window, n: int) -> None:
    if w.height + 2 * n < 0 or w.width + 2 * n < 0:
        with pytest.raises(InputError):
            w.pad(n)
        return
    p = w.pad(n)
    assert p.shape == (w.height + 2 * n, w.width + 2 * n)
    assert p.pad(-n) == w
    if n >= 0:
        assert p.contains(w)


@given(windows, st.integers(0, 400), st.integers(0, 400))
def test_clip_to(w: Window, h: int, wd: int) -> None:
    c = w.clip_to(h, wd)
    assert c == w.intersection(Window(0, 0, h, wd))
    if c is not None:
        assert c.row >= 0 and c.col >= 0 and c.row_stop <= h and c.col_stop <= wd


@given(nonempty, st.integers(0, 200), st.integers(0, 200))
def test_centered_keeps_the_centre(w: Window, dh: int, dw: int) -> None:
    c = w.centered(w.height + 2 * dh, w.width + 2 * dw)
    # centre in doubled coordinates, to stay integer
    assert 2 * c.row + c.height == 2 * w.row + w.height
    assert 2 * c.col + c.width == 2 * w.col + w.width
    assert c.contains(w)
    assert c.centered(w.height, w.width) == w


def test_centered_refuses_half_pixels() -> None:
    with pytest.raises(InputError, match=r"changes by 0 x 1 px, which must be even"):
        Window(0, 0, 4, 4).centered(5, 4)


def test_touching_windows_do_not_intersect() -> None:
    assert Window(0, 0, 2, 2).intersection(Window(0, 2, 2, 2)) is None
    assert Window(0, 0, 2, 2).union(Window(0, 2, 2, 2)) == Window(0, 0, 2, 4)
