"""The basemap reader: the only code that reads basemap pixels.

A basemap is one raster file (GeoTIFF/COG), a GDAL VRT, or a directory of COG quads that lie
on one pixel grid. :func:`open_basemap` checks the files (see :mod:`tilecast.io.quads`) and
returns a :class:`Basemap` whose :meth:`Basemap.read` takes a boundless integer
:class:`~tilecast.grid.windows.Window` in the basemap's grid and returns the pixels and a
validity mask. Pixels no quad covers and pixels GDAL's dataset mask calls invalid (the
internal mask, else the alpha band, else NoData in *every* band: see :mod:`tilecast.io.bands`)
are invalid, and read as the fill value (NoData, or 0 without one) in every band.

Reads go through a block cache (:mod:`tilecast.io.blocks`): each quad is decoded in aligned
blocks, once, and neighbouring tiles and scale contexts share the decoded blocks.
:meth:`Basemap.read_region_direct` reads the same window without the cache (the baseline and
the tests' reference).

Where quads overlap, a pixel comes from the first quad (in file-name order) valid there.
Alpha bands are not returned as data: they only say which pixels are valid.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.errors import CRSError

from tilecast.errors import InputError, StorageError
from tilecast.grid.pixelgrid import PixelGrid
from tilecast.grid.windows import Window
from tilecast.io.blocks import (
    Block,
    BlockCache,
    HandleMode,
    HandlePool,
    ReadStats,
    StatsCounter,
    fill_value_for,
    read_pixels,
)
from tilecast.io.quads import FootprintIndex, Quad, assemble, basemap_files, read_header

__all__ = ["Basemap", "ReadStats", "open_basemap"]


def open_basemap(
    uri: str,
    *,
    block_cache_bytes: int = 1 << 30,
    handles: HandleMode = "pool",
    channel_order: str | None = None,
) -> Basemap:
    """Open a raster, a VRT or a directory of COG quads as one basemap.

    ``channel_order`` names every band of the files (``RGBA``: the fourth band is alpha),
    overriding their colour interpretation. Raises :class:`InputError` when the quads
    disagree (CRS, pixel size, bands, dtype, NoData, alignment) or a file's georeferencing is
    invalid (no CRS, rotated, not north-up), naming the file; :class:`StorageError` when a
    file cannot be opened.
    """
    kind, paths = basemap_files(uri)
    pool = HandlePool(mode=handles)
    headers = []
    try:
        for path in paths:
            header, src = read_header(path, channel_order=channel_order)
            src.close()
            headers.append(header)
        grid, quads = assemble(headers)
    except BaseException:
        pool.close()
        raise
    interp = headers[0].interp
    return Basemap(
        uri=str(uri),
        kind=kind,
        grid=grid,
        quads=quads,
        interp=tuple(ci.name for ci in interp),
        channel_order=headers[0].info.layout.channel_order,
        pool=pool,
        block_cache_bytes=block_cache_bytes,
    )


class Basemap:
    """An open basemap; thread-safe: many threads may call :meth:`read` at once."""

    def __init__(
        self,
        *,
        uri: str,
        kind: str,
        grid: PixelGrid,
        quads: Sequence[Quad],
        interp: tuple[str, ...],
        channel_order: str | None,
        pool: HandlePool,
        block_cache_bytes: int,
    ) -> None:
        self.uri = uri
        self.kind = kind  # "file" (one raster or VRT) or "quads"
        self.grid = grid
        self.quads = tuple(quads)
        self.band_colorinterp = interp
        self.channel_order = channel_order
        info = self.quads[0].info
        self.count = len(info.bands)
        self.dtype = info.dtype
        self.nodata = info.nodata
        self.fill_value = fill_value_for(info.nodata, info.dtype)
        self._pool = pool
        self._stats = StatsCounter()
        self._cache = BlockCache(block_cache_bytes, self._stats)
        self._index = FootprintIndex([q.footprint for q in self.quads])
        self._closed = False
        self._close_lock = threading.Lock()

    # -- description ---------------------------------------------------------------------

    @property
    def mask_rule(self) -> str:
        """Which of GDAL's rules says what is valid: ``mask``, ``alpha``, ``nodata`` or ``none``."""
        return self.quads[0].info.layout.mask

    @property
    def crs(self) -> str:
        return self.grid.crs

    def crs_matches(self, crs: str) -> bool:
        """Whether ``crs`` (``EPSG:n``, WKT, PROJ string) is the basemap's CRS.

        Compared as CRS objects, so ``EPSG:3413`` and its WKT agree; :class:`InputError` when
        ``crs`` cannot be parsed.
        """
        try:
            return CRS.from_user_input(crs) == CRS.from_user_input(self.grid.crs)
        except CRSError as exc:
            raise InputError(f"cannot parse CRS {crs!r} ({exc})") from exc

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the basemap grid in pixels."""
        return self.grid.shape

    @property
    def stats(self) -> ReadStats:
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    @property
    def cache_bytes(self) -> int:
        """Bytes of decoded blocks held now."""
        return self._cache.nbytes

    def quads_for(self, window: Window) -> list[Quad]:
        """The quads sharing at least one pixel with ``window``, in file-name order."""
        return [self.quads[i] for i in self._index.query(window)]

    def __repr__(self) -> str:
        return (
            f"Basemap({self.uri!r}, {self.kind}, {len(self.quads)} file(s), "
            f"{self.grid.width} x {self.grid.height} px, {self.count} x {self.dtype.name}, "
            f"nodata={self.nodata!r}, crs={self.crs})"
        )

    # -- reading -------------------------------------------------------------------------

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """``(array (count, h, w) in the basemap dtype, valid (h, w) bool)`` for any window."""
        out, valid = self._start(window)
        for quad, local in self._parts(window):
            bh, bw = quad.info.block_height, quad.info.block_width
            for br in range(local.row // bh, (local.row_stop - 1) // bh + 1):
                for bc in range(local.col // bw, (local.col_stop - 1) // bw + 1):
                    bwin = Window(
                        br * bh,
                        bc * bw,
                        min(bh, quad.footprint.height - br * bh),
                        min(bw, quad.footprint.width - bc * bw),
                    )
                    block = self._cache.get(
                        (quad.index, br, bc), lambda q=quad, w=bwin: self._decode(q, w)
                    )
                    sub = local.intersection(bwin)
                    assert sub is not None
                    self._paste(out, valid, block, sub.relative_to(bwin), quad, sub, window)
        return out, valid

    def read_region_direct(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """The same as :meth:`read`, without the block cache: one rasterio read per quad.

        Counts, in :attr:`stats`, the blocks each quad read touches (as if GDAL decoded them
        afresh), so the naive baseline's read amplification can be measured.
        """
        out, valid = self._start(window)
        for quad, local in self._parts(window):
            block = read_pixels(
                self._pool,
                quad.info,
                row=local.row,
                col=local.col,
                height=local.height,
                width=local.width,
            )
            blocks, pixels = _blocks_touched(quad, local)
            self._stats.add(blocks_decoded=blocks, pixels_decoded=pixels)
            whole = Window(0, 0, local.height, local.width)
            self._paste(out, valid, block, whole, quad, local, window)
        return out, valid

    def _start(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(window, Window):
            raise InputError(f"read expects a tilecast Window, {type(window).__name__} is given")
        if self._closed:
            raise StorageError(f"{self.uri}: the basemap is closed")
        self._stats.add(window_reads=1)
        out = np.full((self.count, window.height, window.width), self.fill_value, self.dtype)
        valid = np.zeros(window.shape, dtype=bool)
        return out, valid

    def _parts(self, window: Window) -> list[tuple[Quad, Window]]:
        """Each quad the window touches, with the touched part in the quad's own pixels."""
        parts = []
        for i in self._index.query(window):
            quad = self.quads[i]
            part = window.intersection(quad.footprint)
            if part is not None:
                parts.append((quad, part.relative_to(quad.footprint)))
        return parts

    def _decode(self, quad: Quad, bwin: Window) -> Block:
        block = read_pixels(
            self._pool,
            quad.info,
            row=bwin.row,
            col=bwin.col,
            height=bwin.height,
            width=bwin.width,
        )
        self._stats.add(blocks_decoded=1, pixels_decoded=bwin.area)
        return block

    def _paste(
        self,
        out: np.ndarray,
        valid: np.ndarray,
        block: Block,
        src: Window,
        quad: Quad,
        local: Window,
        window: Window,
    ) -> None:
        """Copy ``block[src]`` to where quad pixels ``local`` fall in ``window``."""
        dst = local.translate(quad.footprint.row, quad.footprint.col).relative_to(window)
        rows, cols = dst.slices
        srows, scols = src.slices
        data, mask = block.data[:, srows, scols], block.valid[srows, scols]
        if quad.index not in self._index.overlapping:
            out[:, rows, cols] = data
            valid[rows, cols] = mask
            return
        take = mask & ~valid[rows, cols]  # first valid quad wins
        target = out[:, rows, cols]
        target[:, take] = data[:, take]
        valid[rows, cols] |= take

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._pool.close()
        self._cache.clear()

    def __enter__(self) -> Basemap:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _blocks_touched(quad: Quad, local: Window) -> tuple[int, int]:
    """How many cache blocks of ``quad`` the quad-local window touches, and their pixels."""
    bh, bw = quad.info.block_height, quad.info.block_width
    h, w = quad.footprint.height, quad.footprint.width
    r0, r1 = local.row // bh, (local.row_stop - 1) // bh
    c0, c1 = local.col // bw, (local.col_stop - 1) // bw
    rows = sum(min(bh, h - r * bh) for r in range(r0, r1 + 1))
    cols = sum(min(bw, w - c * bw) for c in range(c0, c1 + 1))
    return (r1 - r0 + 1) * (c1 - c0 + 1), rows * cols
