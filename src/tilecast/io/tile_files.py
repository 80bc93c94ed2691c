"""Per-tile prediction files read back: their header, their windows, many reads of few files.

- :func:`read_header`: a raster's grid, band count, types and NoData, without its pixels;
- :func:`read_tile_window`: a window of a tile file, checked to lie where the plan says
  (transform, size, CRS) and to be a tile file (bands, NoData, encoding), decoded to float32
  (probability, winning scale; NoData -1) whatever its encoding
  (:mod:`tilecast.apps.rts.tile_codec`);
- :class:`HeldTiles`: the same reads with files kept open (least recently read closed first),
  for readers that come back to the same tiles (measuring neighbouring polygons).

The merge (``tilecast.merge``) and the vectoriser read tiles only through here;
:mod:`tilecast.io.mosaic_files` writes what the merge makes of them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window as RioWindow

from tilecast.apps.rts.tile_codec import TileFormat, tile_format
from tilecast.errors import InputError, StorageError
from tilecast.grid import SNAP_TOLERANCE_PX, PixelGrid, Window
from tilecast.io.raster import grid_of
from tilecast.io.vsi import env_for, open_raster

__all__ = ["HeldTiles", "RasterHeader", "read_header", "read_tile_window"]


@dataclass(frozen=True)
class RasterHeader:
    """What the merge needs to know about a raster file without reading its pixels."""

    uri: str
    grid: PixelGrid
    count: int
    dtypes: tuple[str, ...]
    nodata: float | None


def _open(uri: str) -> Any:
    try:
        return open_raster(uri)
    except RasterioError as exc:
        raise StorageError(f"{uri}: cannot open as a raster ({exc})") from exc


def read_header(uri: str | os.PathLike[str]) -> RasterHeader:
    """The grid, band count, types and NoData of a raster; refuses rotated or CRS-less ones."""
    text = os.fspath(uri)
    with env_for(text), _open(text) as src:
        grid = grid_of(src.crs, src.transform, width=src.width, height=src.height, where=text)
        return RasterHeader(
            uri=text, grid=grid, count=src.count, dtypes=tuple(src.dtypes), nodata=src.nodata
        )


@functools.lru_cache(maxsize=8)
def _crs(text: str) -> CRS:
    return CRS.from_user_input(text)


def _check_tile(src: Any, uri: str, *, grid: PixelGrid) -> TileFormat:
    problems = []
    if (src.height, src.width) != grid.shape:
        problems.append(
            f"size {src.width} x {src.height} px (expected {grid.width} x {grid.height})"
        )
    t = src.transform
    off_x = abs(t.c - grid.x0) / grid.res_x
    off_y = abs(t.f - grid.y0) / grid.res_y
    if (
        off_x > SNAP_TOLERANCE_PX
        or off_y > SNAP_TOLERANCE_PX
        or abs(t.a - grid.res_x) > SNAP_TOLERANCE_PX * grid.res_x
        or abs(-t.e - grid.res_y) > SNAP_TOLERANCE_PX * grid.res_y
        or t.b != 0
        or t.d != 0
    ):
        problems.append(
            f"transform {tuple(t)[:6]} (expected {grid.transform}; "
            f"origin off by ({off_x:.6g}, {off_y:.6g}) px)"
        )
    if src.crs is None or src.crs != _crs(grid.crs):
        problems.append(f"CRS {src.crs.to_string() if src.crs else None} (expected {grid.crs})")
    fmt = None
    try:
        fmt = tile_format(
            dtypes=src.dtypes,
            nodata=src.nodata,
            scales=src.scales,
            offsets=src.offsets,
            tags=src.tags(),
        )
    except InputError as exc:
        problems.append(str(exc).removeprefix("tile file: "))
    if problems:
        raise InputError(f"{uri}: tile file does not match the merge plan: " + "; ".join(problems))
    assert fmt is not None
    return fmt


def read_tile_window(uri: str, window: Window, *, grid: PixelGrid) -> np.ndarray:
    """``window`` (in the tile's own pixels) of a tile file, as float32 ``(2, h, w)``:
    probability and winning scale, NoData -1, whatever the file's encoding (read from the file,
    decoded by :mod:`tilecast.apps.rts.tile_codec`).

    ``grid`` is where the plan says the tile file lies; a file whose size, transform, CRS, bands,
    NoData or encoding differ raises :class:`InputError` naming the file and each difference.
    The file is opened for this read only; :class:`HeldTiles` keeps files open for many.
    """
    with HeldTiles(max_open=1) as tiles:
        return tiles.read(uri, window, grid=grid)


@dataclass
class _Held:
    src: Any
    fmt: TileFormat
    grid: PixelGrid


class HeldTiles:
    """Tile files kept open for many window reads, each opened and checked once.

    Reads equal :func:`read_tile_window`'s. Opening a GeoTIFF and checking it costs more than
    reading a small window of it, and a reader that measures neighbouring polygons comes back
    to the same few tiles; at most ``max_open`` files are open (the least recently read is
    closed first). A context manager: leaving it closes every file.
    """

    def __init__(self, *, max_open: int = 64) -> None:
        if max_open < 1:
            raise InputError(f"max_open must be >= 1, {max_open!r} is given")
        self._max_open = max_open
        self._open: dict[str, _Held] = {}  # insertion order = least recently read first

    def __enter__(self) -> HeldTiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, uri: str, window: Window, *, grid: PixelGrid) -> np.ndarray:
        """``window`` of the tile file ``uri`` lying at ``grid``: see :func:`read_tile_window`."""
        if not grid.window.contains(window) or window.is_empty:
            raise InputError(
                f"{uri}: window {window} is not inside the tile ({grid.width} x {grid.height} px)"
            )
        with env_for(uri):
            held = self._held(uri, grid)
            try:
                raw = held.src.read(
                    window=RioWindow(window.col, window.row, window.width, window.height)
                )
            except RasterioError as exc:
                raise StorageError(f"{uri}: cannot read window {window} ({exc})") from exc
        return held.fmt.decode(raw)

    def _held(self, uri: str, grid: PixelGrid) -> _Held:
        held = self._open.pop(uri, None)
        if held is None:
            while len(self._open) >= self._max_open:
                oldest = next(iter(self._open))
                self._close(oldest, self._open.pop(oldest))
            src = _open(uri)
            try:
                held = _Held(src, _check_tile(src, uri, grid=grid), grid)
            except BaseException:
                src.close()
                raise
        elif held.grid != grid:
            try:
                held = _Held(held.src, _check_tile(held.src, uri, grid=grid), grid)
            except BaseException:
                self._close(uri, held)
                raise
        self._open[uri] = held  # now the most recently read
        return held

    @staticmethod
    def _close(uri: str, held: _Held) -> None:
        with env_for(uri):
            held.src.close()

    def close(self) -> None:
        while self._open:
            uri = next(iter(self._open))
            self._close(uri, self._open.pop(uri))
