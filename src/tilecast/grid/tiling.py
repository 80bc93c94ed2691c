"""Tiles in map coordinates, the fixed tile lattice, and a cache-friendly visiting order.

The lattice
    Tiles of ``tile_size`` px start every ``stride`` px, counted from the grid origin
    ``(x0, y0)``: lattice tile ``(row, col)`` is the pixel window
    ``Window(row * stride, col * stride, tile_size, tile_size)``. Because the lattice is
    anchored at the origin and not at the requested bbox, two tile grids over overlapping
    bboxes of the same basemap agree on every shared tile: same id, same bbox.

Tile ids
    ``f"r{row:07d}_c{col:07d}"`` with the lattice row and column (see :func:`tile_id_for`):
    stable (a function of the tile's position alone, never of which other tiles are in the
    list), sortable (string order is row-major order), and safe as a file name.

Tile bboxes are computed from integer pixel offsets (``x0 + col * res_x``), so they lie
exactly on the pixel grid and :func:`~tilecast.grid.pixelgrid.snap_bbox` takes them back to
the same window.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from tilecast.errors import InputError
from tilecast.grid.pixelgrid import SNAP_TOLERANCE_PX, PixelGrid, snap_bbox, window_bounds
from tilecast.grid.windows import Window, as_finite, as_positive_int

__all__ = [
    "NAME_PATTERN",
    "Tile",
    "TileListError",
    "iter_tile_grid",
    "make_tile_grid",
    "order_for_locality",
    "tile_id_for",
    "tile_window",
]

#: What a tile id or region name may look like. Both end up in file names
#: (``tiles/{tile_id}.tif``, ``merged/region_{region}_prob.tif``), so no separators, no
#: spaces, no leading dot or dash.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_ID_DIGITS = 7
_ID_LIMIT = 10**_ID_DIGITS


class TileListError(InputError):
    """A tile list (or a tile in it) is malformed; the message names the source and line."""


def _check_name(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{kind} must be a non-empty string, {value!r} is given")
    if not NAME_PATTERN.fullmatch(value):
        raise InputError(
            f"{kind} {value!r} is not allowed: use letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit (it becomes part of a file name)"
        )
    return value


@dataclass(frozen=True, order=True)
class Tile:
    """A tile of a tile list: an id, its bbox in the basemap CRS and an optional region."""

    tile_id: str
    minx: float
    miny: float
    maxx: float
    maxy: float
    region: str | None = None

    def __post_init__(self) -> None:
        _check_name("tile_id", self.tile_id)
        for name in ("minx", "miny", "maxx", "maxy"):
            object.__setattr__(
                self, name, as_finite(f"tile {self.tile_id}: {name}", getattr(self, name))
            )
        if self.minx >= self.maxx or self.miny >= self.maxy:
            raise InputError(
                f"tile {self.tile_id}: expected minx < maxx and miny < maxy, found "
                f"minx={self.minx!r}, miny={self.miny!r}, maxx={self.maxx!r}, maxy={self.maxy!r}"
            )
        if self.region is not None:
            _check_name(f"tile {self.tile_id}: region", self.region)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)``."""
        return (self.minx, self.miny, self.maxx, self.maxy)


def _format_tile_id(row: int, col: int) -> str:
    if not (0 <= row < _ID_LIMIT and 0 <= col < _ID_LIMIT):
        raise InputError(
            f"lattice position (row {row}, col {col}) has no tile id: both must be in "
            f"[0, {_ID_LIMIT}), i.e. the tile must lie right of and below the lattice origin"
        )
    return f"r{row:0{_ID_DIGITS}d}_c{col:0{_ID_DIGITS}d}"


def _lattice_index(name: str, offset: float, stride_m: float) -> int:
    steps = offset / stride_m
    index = round(steps)
    if abs(steps - index) > SNAP_TOLERANCE_PX:
        raise InputError(
            f"{name} is {steps!r} lattice steps of {stride_m!r} from the origin; a tile must "
            f"start on the lattice (a whole number of steps)"
        )
    return index


def tile_id_for(
    grid_origin_x: float, grid_origin_y: float, minx: float, maxy: float, *, stride_m: float
) -> str:
    """The stable id of the tile whose upper-left corner is ``(minx, maxy)``.

    ``row = (grid_origin_y - maxy) / stride_m`` and ``col = (minx - grid_origin_x) / stride_m``
    must be whole numbers (within :data:`SNAP_TOLERANCE_PX` of a lattice step) and in
    ``[0, 10**7)``; the id is ``f"r{row:07d}_c{col:07d}"``. It depends only on the tile's
    position and the lattice (origin and stride), never on the other tiles of a list, and
    string order equals row-major lattice order. ``stride_m`` is the stride in map units
    (``stride * res``; square pixels assumed).
    """
    stride_m = as_finite("stride_m", stride_m)
    if stride_m <= 0:
        raise InputError(f"stride_m must be positive, {stride_m!r} is given")
    origin_x = as_finite("grid_origin_x", grid_origin_x)
    origin_y = as_finite("grid_origin_y", grid_origin_y)
    row = _lattice_index(f"maxy {maxy!r}", origin_y - as_finite("maxy", maxy), stride_m)
    col = _lattice_index(f"minx {minx!r}", as_finite("minx", minx) - origin_x, stride_m)
    return _format_tile_id(row, col)


def _snap_down(position: float) -> int:
    nearest = round(position)
    return nearest if abs(position - nearest) <= SNAP_TOLERANCE_PX else math.floor(position)


def _snap_up(position: float) -> int:
    nearest = round(position)
    return nearest if abs(position - nearest) <= SNAP_TOLERANCE_PX else math.ceil(position)


def _pixel_extent(grid: PixelGrid, bbox: tuple[float, float, float, float] | None) -> Window:
    """The pixels of ``grid`` that ``bbox`` touches, clipped to the raster."""
    if bbox is None:
        return grid.window
    if len(bbox) != 4:
        raise InputError(f"bbox must be (minx, miny, maxx, maxy), {bbox!r} is given")
    minx, miny, maxx, maxy = (
        as_finite(f"bbox {name}", v)
        for name, v in zip(("minx", "miny", "maxx", "maxy"), bbox, strict=True)
    )
    if minx >= maxx or miny >= maxy:
        raise InputError(f"bbox must have minx < maxx and miny < maxy, {bbox!r} is given")
    col = _snap_down((minx - grid.x0) / grid.res_x)
    col_stop = _snap_up((maxx - grid.x0) / grid.res_x)
    row = _snap_down((grid.y0 - maxy) / grid.res_y)
    row_stop = _snap_up((grid.y0 - miny) / grid.res_y)
    clipped = Window(row, col, row_stop - row, col_stop - col).clip_to(grid.height, grid.width)
    if clipped is None:
        raise InputError(f"bbox {bbox!r} does not overlap the grid extent {grid.bounds!r}")
    return clipped


def _lattice_range(start: int, stop: int, *, tile_size: int, stride: int) -> range:
    """Lattice indices ``k`` whose tile ``[k*stride, k*stride + tile_size)`` meets ``[start, stop)``."""
    first = max(0, (start - tile_size) // stride + 1)
    last = (stop - 1) // stride
    return range(first, last + 1)


def iter_tile_grid(
    grid: PixelGrid,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    tile_size: int = 512,
    stride: int = 256,
    region: str | None = None,
) -> Iterator[Tile]:
    """The tiles of :func:`make_tile_grid`, one at a time, in the same (id) order."""
    tile_size = as_positive_int("tile_size", tile_size)
    stride = as_positive_int("stride", stride)
    if stride > tile_size:
        raise InputError(
            f"stride must be at most tile_size ({tile_size}) or pixels are left uncovered, "
            f"{stride} is given"
        )
    if region is not None:
        _check_name("region", region)
    extent = _pixel_extent(grid, bbox)
    rows = _lattice_range(extent.row, extent.row_stop, tile_size=tile_size, stride=stride)
    cols = _lattice_range(extent.col, extent.col_stop, tile_size=tile_size, stride=stride)
    for r in rows:
        for c in cols:
            tile_id = _format_tile_id(r, c)
            minx, miny, maxx, maxy = window_bounds(
                grid, Window(r * stride, c * stride, tile_size, tile_size)
            )
            yield Tile(tile_id, minx, miny, maxx, maxy, region)


def make_tile_grid(
    grid: PixelGrid,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    tile_size: int = 512,
    stride: int = 256,
    region: str | None = None,
) -> list[Tile]:
    """Every lattice tile that overlaps ``bbox`` (default: the whole grid), sorted by id.

    The bbox (in the grid's CRS) is widened outwards to whole pixels (an edge within
    :data:`SNAP_TOLERANCE_PX` of a grid line counts as on it) and clipped to the raster;
    a bbox that misses the raster raises :class:`InputError`. Every tile that overlaps the
    result is included, also one that meets it only in its stride margin, so every pixel is
    covered by at least one full tile and, away from the lattice origin, by
    ``(tile_size // stride) ** 2`` of them when ``stride`` divides ``tile_size``. Tiles at the
    right and bottom may extend past the raster (read as NoData). Neighbouring tiles overlap
    by ``tile_size - stride`` px. ``stride`` must be in ``[1, tile_size]``.
    """
    return list(iter_tile_grid(grid, bbox=bbox, tile_size=tile_size, stride=stride, region=region))


def tile_window(grid: PixelGrid, tile: Tile) -> Window:
    """The pixel window of ``tile`` in ``grid`` (the explicit snap; see ``snap_bbox``)."""
    return snap_bbox(grid, tile.minx, tile.miny, tile.maxx, tile.maxy, tile_id=tile.tile_id)


def _spread_bits(values: np.ndarray) -> np.ndarray:
    """Put bit ``i`` of each 32-bit value at bit ``2 i`` of a 64-bit one."""
    x = values.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    x = (x | (x << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    x = (x | (x << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    x = (x | (x << np.uint64(2))) & np.uint64(0x3333333333333333)
    x = (x | (x << np.uint64(1))) & np.uint64(0x5555555555555555)
    return x


def order_for_locality(windows: Sequence[Window]) -> list[int]:
    """An order (a permutation of ``range(len(windows))``) that visits nearby windows together.

    Windows are placed on the coarsest lattice their upper-left corners share (offsets from
    the smallest corner divided by their greatest common divisor, so a tile lattice of
    stride 256 becomes steps of 1) and visited in Morton (Z) order of that lattice: runs of
    consecutive windows fill 2x2, 4x4, ... blocks, so tiles and scale contexts that share
    source pixels are read close together in time. Windows with the same corner go smaller
    first, equal windows in input order. Pure and deterministic: the same windows give the
    same sequence whatever order they come in.
    """
    n = len(windows)
    if n == 0:
        return []
    rows = np.fromiter((w.row for w in windows), dtype=np.int64, count=n)
    cols = np.fromiter((w.col for w in windows), dtype=np.int64, count=n)
    rows -= rows.min()
    cols -= cols.min()
    step = math.gcd(int(np.gcd.reduce(rows)), int(np.gcd.reduce(cols))) or 1
    rows //= step
    cols //= step
    if max(int(rows.max()), int(cols.max())) >= 2**32:
        raise InputError("windows span more than 2**32 lattice steps; cannot order them")
    codes = _spread_bits(rows) << np.uint64(1) | _spread_bits(cols)
    heights = np.fromiter((w.height for w in windows), dtype=np.int64, count=n)
    widths = np.fromiter((w.width for w in windows), dtype=np.int64, count=n)
    return np.lexsort((widths, heights, codes)).tolist()  # stable; the last key sorts first
