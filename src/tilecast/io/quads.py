"""Finding, checking and indexing the files that make up a basemap.

A basemap is one raster, a VRT, or a directory of COG quads. Each file is opened once here to
read its header; the quads must share CRS, pixel size, bands, dtype and NoData, and lie on one
pixel grid (origins a whole number of pixels apart, within :data:`SNAP_TOLERANCE_PX`). Their
union is the basemap's :class:`PixelGrid`; each quad's *footprint* is its pixel window in that
grid, and a :class:`FootprintIndex` picks the quads a window touches.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from tilecast.errors import InputError, StorageError
from tilecast.grid.pixelgrid import SNAP_TOLERANCE_PX, PixelGrid
from tilecast.grid.windows import Window
from tilecast.io.bands import gdal_error_text
from tilecast.io.blocks import SourceInfo, describe_source
from tilecast.io.storage import is_local, join, list_files, local_path
from tilecast.io.vsi import open_raster

QUAD_SUFFIXES = (".tif", ".tiff")
RASTER_SUFFIXES = (*QUAD_SUFFIXES, ".vrt")


@dataclass(frozen=True)
class Quad:
    """One file of a basemap and where it sits in the basemap's pixel grid."""

    index: int
    name: str  # file name, for messages
    footprint: Window
    info: SourceInfo

    @property
    def path(self) -> str:
        return self.info.path


@dataclass(frozen=True)
class _Header:
    """What one file says about itself, as read at open."""

    name: str
    info: SourceInfo
    crs: Any  # rasterio CRS
    transform: Any  # affine.Affine
    interp: tuple[ColorInterp, ...]
    band_dtypes: tuple[str, ...]


def basemap_files(uri: str) -> tuple[str, list[str]]:
    """``("file", [uri])`` for one raster or VRT, ``("quads", [paths...])`` for a directory."""
    text = os.fspath(uri)
    if is_local(text):
        path = local_path(text)
        if not path.exists():
            raise StorageError(f"{text}: no such file or directory")
        if not path.is_dir():
            return "file", [str(path)]
        names = sorted(p.name for p in path.iterdir() if p.is_file())
        base = str(path)
    else:
        if text.lower().endswith(RASTER_SUFFIXES):
            return "file", [text]
        names = [n for n in list_files(text) if "/" not in n]
        base = text
    quads = [
        join(base, n) for n in names if n.lower().endswith(QUAD_SUFFIXES) and not n.startswith(".")
    ]
    if not quads:
        raise InputError(f"{text}: a basemap directory must hold *.tif quads, none found")
    return "quads", quads


def read_header(path: str, *, channel_order: str | None = None) -> tuple[_Header, Any]:
    """Open ``path`` and read its header; returns the header and the open dataset.

    ``channel_order`` names every band of the file (``A`` for alpha), overriding the bands'
    colour interpretation (see :func:`tilecast.io.bands.band_layout`).
    """
    name = PurePosixPath(path).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = open_raster(path)
    except RasterioError as exc:
        raise StorageError(f"{path}: cannot open as a raster ({gdal_error_text(exc)})") from exc
    try:
        info = describe_source(src, path, channel_order=channel_order)
    except BaseException:
        src.close()
        raise
    header = _Header(
        name=name,
        info=info,
        crs=src.crs,
        transform=src.transform,
        interp=tuple(src.colorinterp[i - 1] for i in info.bands),
        band_dtypes=tuple(src.dtypes[i - 1] for i in info.bands),
    )
    return header, src


def _check_header(h: _Header) -> PixelGrid:
    """The file's own grid; InputError for invalid georeferencing, mixed dtypes, bad NoData."""
    if h.crs is None:
        raise InputError(f"{h.name}: invalid georeferencing: the raster has no CRS")
    t = h.transform
    try:
        grid = PixelGrid.from_affine(
            *tuple(t)[:6],
            width=h.info.width,
            height=h.info.height,
            crs=h.crs.to_string(),
        )
    except InputError as exc:
        raise InputError(f"{h.name}: {exc}") from None
    if len(set(h.band_dtypes)) > 1:
        raise InputError(f"{h.name}: bands have different dtypes {h.band_dtypes}; expected one")
    nodata, dtype = h.info.nodata, h.info.dtype
    if nodata is not None and dtype.kind in "iu":
        limits = np.iinfo(dtype)
        if math.isnan(nodata) or nodata != int(nodata) or not limits.min <= nodata <= limits.max:
            raise InputError(f"{h.name}: NoData {nodata!r} is not a {dtype.name} value")
    return grid


def _same_nodata(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _whole_pixels(delta: float, res: float) -> int | None:
    """``delta / res`` as an int when within SNAP_TOLERANCE_PX of one, else None."""
    position = delta / res
    n = round(position)
    return n if abs(position - n) <= SNAP_TOLERANCE_PX else None


def _check_same_bands(headers: Sequence[_Header]) -> None:
    """Every quad has the same bands (count, and which one is alpha); else name the quads."""
    groups: dict[tuple[str, tuple[int, ...], int | None], list[str]] = {}
    for h in headers:
        layout = h.info.layout
        key = (layout.describe(), layout.data_bands, layout.alpha_band)
        groups.setdefault(key, []).append(h.name)
    if len(groups) > 1:
        listed = "; ".join(
            f"{key[0]}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
            f"{f' ({len(names)} quads)' if len(names) > 5 else ''}"
            for key, names in groups.items()
        )
        raise InputError(f"the basemap's quads do not all have the same bands: {listed}")


def assemble(headers: Sequence[_Header]) -> tuple[PixelGrid, list[Quad]]:
    """Check that the files form one basemap; its grid (union extent) and the placed quads."""
    grids = [_check_header(h) for h in headers]
    _check_same_bands(headers)
    first, g0 = headers[0], grids[0]
    offsets: list[tuple[int, int]] = []
    for h, g in zip(headers, grids, strict=True):
        differences = []
        if h.crs != first.crs:
            differences.append(f"CRS {g.crs} (expected {g0.crs})")
        # pixel sizes must agree so closely that a quad's far edge is off by < tolerance
        span = max(h.info.width, h.info.height, first.info.width, first.info.height)
        if (
            abs(g.res_x - g0.res_x) * span > SNAP_TOLERANCE_PX * g0.res_x
            or abs(g.res_y - g0.res_y) * span > SNAP_TOLERANCE_PX * g0.res_y
        ):
            differences.append(f"pixel size {g.res} (expected {g0.res})")
        if h.info.dtype != first.info.dtype:
            differences.append(f"dtype {h.info.dtype.name} (expected {first.info.dtype.name})")
        if not _same_nodata(h.info.nodata, first.info.nodata):
            differences.append(f"NoData {h.info.nodata!r} (expected {first.info.nodata!r})")
        if differences:
            raise InputError(
                f"quad {h.name} does not match quad {first.name}: " + "; ".join(differences)
            )
        dcol = _whole_pixels(g.x0 - g0.x0, g0.res_x)
        drow = _whole_pixels(g0.y0 - g.y0, g0.res_y)
        if dcol is None or drow is None:
            raise InputError(
                f"quad {h.name} is not aligned to the pixel grid of quad {first.name}: its origin "
                f"({g.x0!r}, {g.y0!r}) is ({(g.x0 - g0.x0) / g0.res_x:.6g}, "
                f"{(g0.y0 - g.y0) / g0.res_y:.6g}) px from ({g0.x0!r}, {g0.y0!r}); "
                f"expected whole pixels (within {SNAP_TOLERANCE_PX} px)"
            )
        offsets.append((drow, dcol))
    row0 = min(r for r, _ in offsets)
    col0 = min(c for _, c in offsets)
    quads = [
        Quad(
            index=i,
            name=h.name,
            footprint=Window(r - row0, c - col0, h.info.height, h.info.width),
            info=h.info,
        )
        for i, (h, (r, c)) in enumerate(zip(headers, offsets, strict=True))
    ]
    union = Window.bounding(q.footprint for q in quads)
    grid = PixelGrid(
        x0=g0.x0 + col0 * g0.res_x,
        y0=g0.y0 - row0 * g0.res_y,
        res_x=g0.res_x,
        res_y=g0.res_y,
        width=union.width,
        height=union.height,
        crs=g0.crs,
    )
    return grid, quads


class FootprintIndex:
    """Which quads a window touches: footprints bucketed by a cell the size of the largest quad.

    On a regular quad lattice each cell holds one quad and a window looks at the few cells it
    covers; irregular footprints are registered in every cell they overlap, so the answer is
    always exact (each candidate is checked against the window).
    """

    def __init__(self, footprints: Sequence[Window]) -> None:
        self._footprints = list(footprints)
        self._cell_h = max(w.height for w in self._footprints)
        self._cell_w = max(w.width for w in self._footprints)
        self._cells: dict[tuple[int, int], list[int]] = {}
        for i, w in enumerate(self._footprints):
            for cell in self._cells_of(w):
                self._cells.setdefault(cell, []).append(i)
        # quads that share pixels with another quad need first-valid-wins assembly
        self.overlapping = frozenset(
            i
            for i, w in enumerate(self._footprints)
            if any(j != i and w.intersects(self._footprints[j]) for j in self.query(w))
        )

    def _cells_of(self, w: Window) -> list[tuple[int, int]]:
        r0, r1 = w.row // self._cell_h, (w.row_stop - 1) // self._cell_h
        c0, c1 = w.col // self._cell_w, (w.col_stop - 1) // self._cell_w
        return [(r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]

    def query(self, window: Window) -> list[int]:
        """Indexes (ascending) of the footprints sharing at least one pixel with ``window``."""
        if window.is_empty:
            return []
        cells = self._cells
        found: set[int] = set()
        r0, r1 = window.row // self._cell_h, (window.row_stop - 1) // self._cell_h
        c0, c1 = window.col // self._cell_w, (window.col_stop - 1) // self._cell_w
        if (r1 - r0 + 1) * (c1 - c0 + 1) > len(cells):  # huge window: scan the occupied cells
            for (r, c), ids in cells.items():
                if r0 <= r <= r1 and c0 <= c <= c1:
                    found.update(ids)
        else:
            for r in range(r0, r1 + 1):
                for c in range(c0, c1 + 1):
                    found.update(cells.get((r, c), ()))
        return sorted(i for i in found if self._footprints[i].intersects(window))
