"""Integer pixel windows and their algebra.

A :class:`Window` is a rectangle of whole pixels in some raster's grid: ``row``/``col`` of
its upper-left pixel and its ``height``/``width``. It is *boundless*: ``row`` and ``col`` may
be negative or lie beyond the raster, because tiles near a border and scale contexts read
past the edge (the reader fills NoData there). Only integers: there is no float in this
module and so no tolerance.

Windows are frozen, hashable and ordered (row, col, height, width), so they can key a
manifest or a dict; every method returns a new window.

Conventions:

- Pixel ``(r, c)`` is inside a window when ``row <= r < row_stop`` and ``col <= c < col_stop``.
- An *empty* window (height or width 0) holds no pixels. :meth:`Window.intersection`
  returns ``None`` when two windows share no pixel (touching edges share none);
  :meth:`Window.union` and :meth:`Window.bounding` ignore empty windows.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass

from tilecast.errors import InputError

__all__ = ["Window"]


def as_int(name: str, value: object) -> int:
    """``value`` as a plain int; refuses floats and bools instead of truncating them."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be an integer, {value!r} is given")
    try:
        return operator.index(value)  # int or numpy integer, never a float
    except TypeError:
        raise InputError(f"{name} must be an integer, {value!r} is given") from None


def as_finite(name: str, value: object) -> float:
    """``value`` as a finite float; refuses bools, non-numbers, NaN and infinities."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number, {value!r} is given")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, {value!r} is given") from None
    if not math.isfinite(number):
        raise InputError(f"{name} must be finite, {value!r} is given")
    return number


def as_positive_int(name: str, value: object) -> int:
    """:func:`as_int`, and at least 1."""
    number = as_int(name, value)
    if number < 1:
        raise InputError(f"{name} must be at least 1, {number} is given")
    return number


@dataclass(frozen=True, order=True)
class Window:
    """A boundless rectangle of pixels: upper-left ``(row, col)`` and ``(height, width)``."""

    row: int
    col: int
    height: int
    width: int

    def __post_init__(self) -> None:
        for name in ("row", "col", "height", "width"):
            object.__setattr__(self, name, as_int(name, getattr(self, name)))
        if self.height < 0 or self.width < 0:
            raise InputError(
                f"window height and width must be >= 0, ({self.height}, {self.width}) is given"
            )

    # -- named axes -------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``, the shape of the array this window reads."""
        return (self.height, self.width)

    @property
    def hw(self) -> tuple[int, int]:
        """``(height, width)``; the same as :attr:`shape`."""
        return (self.height, self.width)

    @property
    def yx(self) -> tuple[int, int]:
        """``(row, col)`` of the upper-left pixel."""
        return (self.row, self.col)

    @property
    def row_stop(self) -> int:
        """One past the last row."""
        return self.row + self.height

    @property
    def col_stop(self) -> int:
        """One past the last column."""
        return self.col + self.width

    @property
    def area(self) -> int:
        return self.height * self.width

    @property
    def is_empty(self) -> bool:
        return self.height == 0 or self.width == 0

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices; index an array only with a window inside it (no negatives)."""
        return (slice(self.row, self.row_stop), slice(self.col, self.col_stop))

    # -- algebra ----------------------------------------------------------------------------

    def intersection(self, other: Window) -> Window | None:
        """The pixels in both windows, or ``None`` when they share none."""
        row, col = max(self.row, other.row), max(self.col, other.col)
        row_stop = min(self.row_stop, other.row_stop)
        col_stop = min(self.col_stop, other.col_stop)
        if row_stop <= row or col_stop <= col:
            return None
        return Window(row, col, row_stop - row, col_stop - col)

    def intersects(self, other: Window) -> bool:
        """Whether the two windows share at least one pixel."""
        return self.intersection(other) is not None

    def union(self, other: Window) -> Window:
        """The smallest window holding every pixel of both (empty windows are ignored)."""
        if other.is_empty:
            return self
        if self.is_empty:
            return other
        row, col = min(self.row, other.row), min(self.col, other.col)
        row_stop = max(self.row_stop, other.row_stop)
        col_stop = max(self.col_stop, other.col_stop)
        return Window(row, col, row_stop - row, col_stop - col)

    @staticmethod
    def bounding(windows: Iterable[Window]) -> Window:
        """The smallest window holding every pixel of ``windows``; empty ones are ignored."""
        found = [w for w in windows if not w.is_empty]
        if not found:
            raise InputError("bounding window of no pixels: every window given is empty")
        row = min(w.row for w in found)
        col = min(w.col for w in found)
        row_stop = max(w.row_stop for w in found)
        col_stop = max(w.col_stop for w in found)
        return Window(row, col, row_stop - row, col_stop - col)

    def contains(self, other: Window) -> bool:
        """Whether ``other``'s rectangle lies inside this one (edges may coincide)."""
        return (
            self.row <= other.row
            and self.col <= other.col
            and other.row_stop <= self.row_stop
            and other.col_stop <= self.col_stop
        )

    def translate(self, drow: int, dcol: int) -> Window:
        """The same size, moved by ``drow`` rows and ``dcol`` columns."""
        return Window(
            self.row + as_int("drow", drow),
            self.col + as_int("dcol", dcol),
            self.height,
            self.width,
        )

    def pad(self, n: int) -> Window:
        """Grown by ``n`` pixels on every side (a negative ``n`` shrinks it)."""
        n = as_int("n", n)
        if self.height + 2 * n < 0 or self.width + 2 * n < 0:
            raise InputError(
                f"cannot pad a {self.width} x {self.height} (width x height) window by {n}"
            )
        return Window(self.row - n, self.col - n, self.height + 2 * n, self.width + 2 * n)

    def relative_to(self, outer: Window) -> Window:
        """This window in the coordinates of ``outer`` (``outer``'s upper-left pixel is 0, 0).

        Pure translation: the result may extend outside ``outer``; check
        ``outer.contains(self)`` first where that matters.
        """
        return Window(self.row - outer.row, self.col - outer.col, self.height, self.width)

    def clip_to(self, height: int, width: int) -> Window | None:
        """The part inside a ``height`` x ``width`` raster, or ``None`` when nothing is."""
        height, width = as_int("height", height), as_int("width", width)
        if height < 0 or width < 0:
            raise InputError(f"raster shape must be >= 0, ({height}, {width}) is given")
        return self.intersection(Window(0, 0, height, width))

    def centered(self, height: int, width: int) -> Window:
        """A ``height`` x ``width`` window with the same centre.

        The size change must be even on each axis so that the centre stays on the same
        pixel boundary; otherwise :class:`InputError`.
        """
        height, width = as_int("height", height), as_int("width", width)
        if height < 0 or width < 0:
            raise InputError(f"window height and width must be >= 0, ({height}, {width}) is given")
        dh, dw = height - self.height, width - self.width
        if dh % 2 or dw % 2:
            raise InputError(
                f"cannot centre a {width} x {height} (width x height) window on a "
                f"{self.width} x {self.height} one: "
                f"the size changes by {dw} x {dh} px, which must be even on both axes"
            )
        return Window(self.row - dh // 2, self.col - dw // 2, height, width)
