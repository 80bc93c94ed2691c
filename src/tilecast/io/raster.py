"""Reading and writing whole rasters (GeoTIFF, PNG, JPEG) through rasterio.

Arrays are channels-first ``(C, H, W)``. Georeferencing travels in :class:`Georef`.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from tilecast.errors import InputError, StorageError
from tilecast.grid import PixelGrid
from tilecast.io.bands import (
    ALPHA,
    INTERP_LETTERS,
    band_layout,
    gdal_error_text,
    read_window,
)
from tilecast.io.blocks import fill_value_for
from tilecast.io.storage import atomic_local_path, write_bytes
from tilecast.io.vsi import open_raster, without_credentials


@dataclass(frozen=True)
class Georef:
    """Where a raster sits: CRS (WKT or ``EPSG:n``; None for plain images) and affine transform."""

    crs: str | None
    transform: Affine

    @property
    def is_georeferenced(self) -> bool:
        return self.crs is not None and self.transform != Affine.identity()


@dataclass(frozen=True)
class RasterImage:
    """A whole raster read into memory: its data bands and GDAL's validity mask.

    An alpha band is not among the channels of ``array``; with the internal mask or NoData it
    decides ``valid`` (see :mod:`tilecast.io.bands`). Invalid pixels hold the fill value
    (NoData, or 0 without one) in every band.
    """

    array: np.ndarray  # (C, H, W), data bands only
    georef: Georef
    nodata: float | None
    uri: str
    channel_order: str | None = None  # of the data bands: colour interpretation or asked for
    valid: np.ndarray | None = None  # (H, W) bool, GDAL's dataset mask; None: all valid
    mask: str = "none"  # the rule behind ``valid``: mask, alpha, nodata or none

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.array.shape
        return c, h, w


def grid_of(crs: Any, transform: Affine, *, width: int, height: int, where: str) -> PixelGrid:
    """The :class:`PixelGrid` of a raster; InputError naming ``where`` when it has no CRS or
    a rotated, sheared or south-up transform (invalid georeferencing)."""
    if crs is None:
        raise InputError(f"{where}: invalid georeferencing: the raster has no CRS")
    try:
        return PixelGrid.from_affine(
            *tuple(transform)[:6], width=width, height=height, crs=crs.to_string()
        )
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def colorinterp_for(channel_order: str, count: int) -> list[ColorInterp]:
    """Colour interpretations that make a reader see ``channel_order`` ('RGB', 'BGR', 'L', 'RGBA')."""
    by_letter = {letter: ci for ci, letter in INTERP_LETTERS.items()}
    by_letter[ALPHA] = ColorInterp.alpha
    letters = "L" if channel_order in ("L", "GRAY") else channel_order
    if len(letters) != count or any(letter not in by_letter for letter in letters):
        raise InputError(f"channel order {channel_order!r} cannot describe {count} band(s)")
    return [by_letter[letter] for letter in letters]


def read_raster(uri: str | os.PathLike[str], *, channel_order: str | None = None) -> RasterImage:
    """Read a raster's data bands and validity. Plain images (PNG, JPEG) get an identity transform.

    ``channel_order`` names every band of the file (``RGBA``: band 4 is alpha), overriding the
    colour interpretation.
    """
    text = os.fspath(uri)
    return _read_all(text, text, error=StorageError, channel_order=channel_order)


def decode_raster(data: bytes, *, name: str) -> RasterImage:
    """An image file held in memory (PNG, TIFF, JPEG bytes), as :func:`read_raster` reads it.

    Bytes that no driver recognises raise :class:`InputError` naming ``name`` (the input is
    bad, not storage).
    """
    return _read_all(io.BytesIO(data), name, error=InputError)


def _open_source(source: str | io.BytesIO) -> Any:
    return open_raster(source) if isinstance(source, str) else rasterio.open(source)


def _read_all(
    source: str | io.BytesIO,
    text: str,
    *,
    error: type[Exception],
    channel_order: str | None = None,
) -> RasterImage:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = _open_source(source)
    except RasterioIOError as exc:
        raise error(f"{text}: cannot open as a raster ({gdal_error_text(exc)})") from exc
    with src:
        layout = band_layout(src, channel_order=channel_order, where=text)
        try:
            array, valid = read_window(src, layout, nodata=src.nodata, where=text)
        except StorageError as exc:
            raise error(str(exc)) from exc
        crs = src.crs.to_string() if src.crs else None
        georef = Georef(crs=crs, transform=src.transform)
        nodata = src.nodata
    if array.ndim != 3 or array.shape[0] == 0:
        raise InputError(f"{text}: expected a (bands, rows, cols) raster, got shape {array.shape}")
    if valid.all():
        mask_valid = None
    else:
        mask_valid = valid
        array[:, ~valid] = fill_value_for(nodata, array.dtype)
    return RasterImage(
        array=array,
        georef=georef,
        nodata=nodata,
        uri=text,
        channel_order=layout.channel_order,
        valid=mask_valid,
        mask=layout.mask,
    )


def gtiff_profile(array: np.ndarray, *, georef: Georef, nodata: float | None) -> dict[str, Any]:
    """The GeoTIFF creation profile of a ``(C, H, W)`` array."""
    if array.ndim != 3:
        raise InputError(f"expected a (bands, rows, cols) array, got shape {array.shape}")
    count, height, width = array.shape
    return {
        "driver": "GTiff",
        "count": count,
        "height": height,
        "width": width,
        "dtype": array.dtype.name,
        "crs": georef.crs,
        "transform": georef.transform,
        "nodata": nodata,
    }


@dataclass(frozen=True)
class GTiffCoding:
    """How GDAL stores a GeoTIFF's pixels: compression, its predictor and level, the blocks.

    ``predictor`` 1 is none, 2 horizontal differencing (integers), 3 floating point; ``level``
    is ``ZSTD_LEVEL`` for zstd and ``ZLEVEL`` for deflate. Rasters at least ``blocksize`` px in
    both directions are tiled in ``blocksize`` blocks (a multiple of 16), smaller ones and
    ``blocksize=None`` are stored in strips. ``interleave`` ``band`` or ``pixel``; None: pixel
    for multi-band uint8 (images), GDAL's default otherwise.
    """

    compress: str = "lzw"
    predictor: int = 1
    level: int | None = None
    blocksize: int | None = 256
    interleave: Literal["band", "pixel"] | None = None

    def creation_options(self, array: np.ndarray) -> dict[str, Any]:
        count, height, width = array.shape
        options: dict[str, Any] = {"compress": self.compress}
        if self.predictor != 1:
            options["predictor"] = self.predictor
        if self.level is not None:
            key = {"zstd": "zstd_level", "deflate": "zlevel"}.get(self.compress.lower())
            if key is None:
                raise InputError(f"a compression level needs zstd or deflate, not {self.compress}")
            options[key] = self.level
        size = self.blocksize
        if size is not None and height >= size and width >= size:
            options.update(tiled=True, blockxsize=size, blockysize=size)
        if self.interleave is not None:
            options["interleave"] = self.interleave
        elif count > 1 and array.dtype == np.uint8:
            options["interleave"] = "pixel"
        return options


def encode_gtiff(
    array: np.ndarray,
    *,
    georef: Georef,
    nodata: float | None,
    coding: GTiffCoding = GTiffCoding(),
    tags: dict[str, Any] | None = None,
    band_descriptions: Sequence[str] | None = None,
    band_scaling: Sequence[tuple[float, float]] | None = None,
    channel_order: str | None = None,
) -> bytes:
    """A ``(C, H, W)`` array as the bytes of a GeoTIFF, encoded in memory by GDAL.

    ``band_scaling`` gives each band's GDAL ``(scale, offset)`` (``value = stored * scale +
    offset``, what ``rasterio``'s ``src.scales``/``src.offsets`` return).
    """
    import warnings

    from rasterio.io import MemoryFile

    profile = gtiff_profile(array, georef=georef, nodata=nodata)
    count = array.shape[0]
    profile.update(coding.creation_options(array))
    if band_scaling is not None and len(band_scaling) != count:
        raise InputError(f"band_scaling has {len(band_scaling)} entries for {count} band(s)")
    with without_credentials(), MemoryFile() as mem, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with mem.open(**profile) as dst:
            dst.write(array)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
            for i, desc in enumerate(band_descriptions or [], start=1):
                dst.set_band_description(i, desc)
            if band_scaling is not None:
                dst.scales = tuple(float(s) for s, _ in band_scaling)
                dst.offsets = tuple(float(o) for _, o in band_scaling)
            if channel_order:
                dst.colorinterp = colorinterp_for(channel_order, count)
        return bytes(mem.getbuffer())


def write_raster(
    uri: str | os.PathLike[str],
    array: np.ndarray,
    *,
    georef: Georef,
    nodata: float | None,
    tags: dict[str, Any] | None = None,
    band_descriptions: list[str] | None = None,
    channel_order: str | None = None,
    compress: str = "lzw",
    tiled: bool = True,
) -> str:
    """Write a ``(C, H, W)`` array as a GeoTIFF, atomically; return the file's sha256."""
    # GDAL encodes in memory; the bytes reach the file through storage.write_bytes, which
    # raises on a full disk (GDAL only logs a failed flush, leaving a truncated file behind)
    data = encode_gtiff(
        array,
        georef=georef,
        nodata=nodata,
        coding=GTiffCoding(compress=compress, blocksize=256 if tiled else None),
        tags=tags,
        band_descriptions=band_descriptions,
        channel_order=channel_order,
    )
    write_bytes(uri, data)
    return hashlib.sha256(data).hexdigest()


def write_cog(
    uri: str | os.PathLike[str],
    array: np.ndarray,
    *,
    georef: Georef,
    nodata: float | None,
    channel_order: str | None = None,
    blocksize: int = 512,
    compress: str = "lzw",
    tags: dict[str, Any] | None = None,
) -> str:
    """Write a Cloud-Optimized GeoTIFF (GDAL's COG driver, with overviews), atomically.

    Returns the file's sha256.
    """
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy

    profile = gtiff_profile(array, georef=georef, nodata=nodata)
    count = array.shape[0]
    with without_credentials(), MemoryFile() as mem, mem.open(**profile) as tmp_ds:
        tmp_ds.write(array)
        if channel_order:
            tmp_ds.colorinterp = colorinterp_for(channel_order, count)
        if tags:
            tmp_ds.update_tags(**{k: str(v) for k, v in tags.items()})
        with atomic_local_path(uri, suffix=".tif") as tmp:
            rio_copy(
                tmp_ds,
                str(tmp),
                driver="COG",
                compress=compress.upper(),
                blocksize=blocksize,
                overview_resampling="average",
            )
            return hashlib.sha256(tmp.read_bytes()).hexdigest()
