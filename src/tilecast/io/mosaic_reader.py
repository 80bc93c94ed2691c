"""Window reads from a single-file raster on a north-up pixel grid (region mosaics, tile files).

:func:`open_mosaic` opens a GeoTIFF (a region COG or any single raster) and keeps the handle
open; :meth:`MosaicReader.read` returns one band of an integer pixel
:class:`~tilecast.grid.Window` of the raster's own grid. Windows are boundless: pixels outside
the raster read as the NoData value (0 without one), so callers never clip by hand.
:meth:`MosaicReader.blocks` walks the raster in square blocks, row-major, so a region larger
than memory can be processed a block at a time.

It returns the stored values: a per-tile prediction file in an integer encoding holds codes,
so tile files are read with :func:`tilecast.io.tile_files.read_tile_window`, which decodes
them (:mod:`tilecast.apps.rts.tile_codec`).

Georeferencing is checked when the file is opened: a rotated, sheared or south-up transform
is refused (:meth:`tilecast.grid.PixelGrid.from_affine`), as is a raster without a CRS.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window as RioWindow

from tilecast.errors import InputError, StorageError
from tilecast.grid import PixelGrid, Window
from tilecast.io.raster import grid_of
from tilecast.io.vsi import open_raster

__all__ = ["MosaicReader", "open_mosaic", "read_grid"]


def _open(text: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return open_raster(text)
    except RasterioError as exc:
        raise StorageError(f"{text}: cannot open as a raster ({exc})") from exc


def read_grid(uri: str | os.PathLike[str]) -> PixelGrid:
    """The pixel grid of a raster, from its header alone."""
    text = os.fspath(uri)
    src = _open(text)
    try:
        return grid_of(src.crs, src.transform, width=src.width, height=src.height, where=text)
    finally:
        src.close()


class MosaicReader:
    """An open raster: its :attr:`grid`, :attr:`nodata`, :attr:`dtype`, band :attr:`count`."""

    def __init__(self, uri: str | os.PathLike[str]) -> None:
        self.uri = os.fspath(uri)
        self._src: Any = _open(self.uri)
        try:
            self.grid: PixelGrid = grid_of(
                self._src.crs,
                self._src.transform,
                width=self._src.width,
                height=self._src.height,
                where=self.uri,
            )
        except InputError:
            self._src.close()
            raise
        self.nodata: float | None = self._src.nodata
        self.dtype = np.dtype(self._src.dtypes[0])
        self.count: int = self._src.count

    def __repr__(self) -> str:
        g = self.grid
        return f"MosaicReader({self.uri!r}, {g.width} x {g.height} px, {self.dtype}, nodata={self.nodata})"

    @property
    def fill_value(self) -> Any:
        """What pixels outside the raster read as: the NoData value, or 0 without one."""
        if self.nodata is None or (math.isnan(self.nodata) and self.dtype.kind != "f"):
            return self.dtype.type(0)
        return self.dtype.type(self.nodata)

    def read(self, window: Window, *, band: int = 1) -> np.ndarray:
        """Band ``band`` (1-based) of ``window`` as a ``window.shape`` array (boundless)."""
        if not 1 <= band <= self.count:
            raise InputError(f"{self.uri}: band must be in 1..{self.count}, {band} is given")
        if self._src.closed:
            raise StorageError(f"{self.uri}: the reader is closed")
        out = np.full(window.shape, self.fill_value, dtype=self.dtype)
        inside = window.clip_to(self.grid.height, self.grid.width)
        if inside is None:
            return out
        rio_window = RioWindow(inside.col, inside.row, inside.width, inside.height)
        try:
            data = self._src.read(band, window=rio_window)
        except RasterioError as exc:
            raise StorageError(
                f"{self.uri}: cannot read rows {inside.row}:{inside.row_stop}, "
                f"cols {inside.col}:{inside.col_stop} ({exc})"
            ) from exc
        out[inside.relative_to(window).slices] = data
        return out

    def blocks(self, size: int) -> Iterator[Window]:
        """Windows of at most ``size`` x ``size`` px covering the raster, row-major."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InputError(f"block size must be a positive integer, {size!r} is given")
        height, width = self.grid.shape
        for row in range(0, height, size):
            for col in range(0, width, size):
                yield Window(row, col, min(size, height - row), min(size, width - col))

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> MosaicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_mosaic(uri: str | os.PathLike[str]) -> MosaicReader:
    """Open a raster for window reads; use it as a context manager or call ``close()``."""
    return MosaicReader(uri)
