"""Raster files of the region merge: tile windows in, intermediate mosaics on disk, COGs out.

The merge arithmetic (``tilecast.merge``) is pure numpy; everything here touches files:

- :func:`read_header` and :func:`read_tile_window` read a per-tile prediction GeoTIFF, checking
  that it is where the plan says (transform, size, CRS) and is a tile file (bands, NoData,
  encoding), and decode it to float32 whatever its encoding;
- :func:`region_arrays` makes the two whole-region accumulators of the in-memory strategy, in
  RAM or as ``np.memmap`` files in a scratch directory;
- :class:`MosaicWriter` fills one tiled, compressed intermediate GeoTIFF per output layer block
  by block (each write is exactly one internal tile, so nothing is re-read or re-compressed),
  builds the overview levels from it, one level from the previous, one 512-px block at a time,
  with the layer's reducer (``tilecast.merge.overviews``), then streams a VRT of the
  intermediate and its levels into a Cloud-Optimized GeoTIFF with
  ``rasterio.shutil.copy(driver="COG", overviews="FORCE_USE_EXISTING")``, atomically (temporary
  sibling, then rename). GDAL's COG driver only copies blocks then; left to compute a
  multi-level pyramid itself, GDAL 3.10's peak memory grows with the raster (see
  ``tilecast.merge.overviews``). Memory does not grow with the mosaic's size;
- :func:`gdal_block_cache` caps GDAL's block cache while a merge runs (GDAL's default is 5% of
  RAM, which would otherwise hold dirty intermediate blocks up to that size).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window as RioWindow

from tilecast.apps.rts.tile_codec import TileFormat, tile_format
from tilecast.errors import InputError, StorageError
from tilecast.grid import SNAP_TOLERANCE_PX, PixelGrid, Window
from tilecast.io.raster import grid_of
from tilecast.io.storage import atomic_local_path, is_local, local_path, remove_temporaries
from tilecast.io.vsi import open_raster

__all__ = [
    "COG_BLOCKSIZE",
    "LayerSpec",
    "MosaicWriter",
    "RasterHeader",
    "gdal_block_cache",
    "read_header",
    "read_tile_window",
    "region_arrays",
    "remove_leftovers",
    "scratch_directory",
    "sha256_file",
]

#: Internal tile size of the output COGs (DESIGN: internally tiled, 512).
COG_BLOCKSIZE = 512
#: Compression of the intermediate mosaics (fast; they live only until the COG is written).
_INTERMEDIATE_COMPRESSION = {"compress": "zstd", "zstd_level": 1}
#: Internal tile of the overview level files, and the block each level is computed in.
_LEVEL_BLOCK = 512


@dataclass(frozen=True)
class LayerSpec:
    """One output layer of a mosaic: pixel type, NoData, band name, and how an overview level
    reduces each 2 x 2 group of the level above (``reduce(block, nodata) -> block / 2``)."""

    dtype: str
    nodata: float
    description: str
    overview: str  # the reducer's name, recorded in the file's tags
    reduce: Callable[[np.ndarray, float], np.ndarray]


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
    with _open(text) as src:
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
    """
    if not grid.window.contains(window) or window.is_empty:
        raise InputError(
            f"{uri}: window {window} is not inside the tile ({grid.width} x {grid.height} px)"
        )
    with _open(uri) as src:
        fmt = _check_tile(src, uri, grid=grid)
        try:
            raw = src.read(window=RioWindow(window.col, window.row, window.width, window.height))
        except RasterioError as exc:
            raise StorageError(f"{uri}: cannot read window {window} ({exc})") from exc
    return fmt.decode(raw)


@contextlib.contextmanager
def scratch_directory(near: str | os.PathLike[str]) -> Iterator[Path]:
    """A hidden temporary directory beside ``near`` (same file system as the outputs), removed
    at exit whatever happens. For outputs on an object store it is in the local temporary
    directory (``TMPDIR``): the COGs are built there and uploaded once each."""
    parent = local_path(near).parent if is_local(near) else Path(tempfile.gettempdir())
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=".merge-scratch-", dir=parent))
    except OSError as exc:
        raise StorageError(f"{parent}: cannot create a scratch directory ({exc})") from exc
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def region_arrays(
    shape: tuple[int, int], *, fill: float, scratch: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 arrays of ``shape`` filled with ``fill``: in RAM, or memory-mapped files in
    ``scratch`` when it is given (the OS pages them; resident memory stays what is touched)."""
    if scratch is None:
        return np.full(shape, fill, np.float32), np.full(shape, fill, np.float32)
    needed = 2 * 4 * shape[0] * shape[1]
    free = shutil.disk_usage(scratch).free
    if needed > free:
        raise StorageError(
            f"{scratch}: memory-mapping the region needs {needed} bytes of disk, {free} are free "
            "(use the streaming strategy)"
        )
    arrays = []
    for name in ("prob", "scale"):
        try:
            array = np.memmap(scratch / f"{name}.f32", dtype=np.float32, mode="w+", shape=shape)
        except OSError as exc:
            raise StorageError(f"{scratch}: cannot map a {shape} float32 array ({exc})") from exc
        for start in range(0, shape[0], 1024):  # fill row bands: no whole-size temporary
            array[start : start + 1024] = fill
        arrays.append(array)
    return arrays[0], arrays[1]


@contextlib.contextmanager
def gdal_block_cache(max_bytes: int) -> Iterator[None]:
    """Cap GDAL's (process-wide) block cache at ``max_bytes`` inside the block."""
    with rasterio.Env(GDAL_CACHEMAX=int(max_bytes)):
        yield


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 22) -> str:
    """The sha256 of a file, read in chunks (never the whole file in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class MosaicWriter:
    """Intermediate tiled GeoTIFFs (one per layer) filled block by block, then COGs.

    Use as a context manager around the writes; :meth:`finish` turns every intermediate into
    its COG at the given URI (atomically) and returns the sha256 of each. The intermediates'
    internal tile is ``block`` (a multiple of 16), and every write must be one whole block of
    the ``block`` lattice (clipped at the right and bottom edges), so each write fills exactly
    one internal tile.
    """

    def __init__(
        self,
        *,
        grid: PixelGrid,
        layers: Mapping[str, LayerSpec],
        block: int,
        scratch: Path,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        if block < 16 or block % 16:
            raise InputError(f"block must be a positive multiple of 16, {block} is given")
        self.grid = grid
        self.layers = dict(layers)
        self.block = block
        self.tags = dict(tags or {})
        self.paths = {name: scratch / f"{name}.intermediate.tif" for name in self.layers}
        self._datasets: dict[str, Any] = {}

    def __enter__(self) -> MosaicWriter:
        transform = Affine(*self.grid.transform)
        try:
            for name, spec in self.layers.items():
                dst = rasterio.open(
                    self.paths[name],
                    "w",
                    driver="GTiff",
                    width=self.grid.width,
                    height=self.grid.height,
                    count=1,
                    dtype=spec.dtype,
                    nodata=spec.nodata,
                    crs=self.grid.crs,
                    transform=transform,
                    tiled=True,
                    blockxsize=self.block,
                    blockysize=self.block,
                    bigtiff="IF_SAFER",
                    **_INTERMEDIATE_COMPRESSION,
                )
                self._datasets[name] = dst
        except RasterioError as exc:
            self._close()
            raise StorageError(f"cannot create the intermediate mosaic ({exc})") from exc
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        while self._datasets:
            _, dst = self._datasets.popitem()
            dst.close()

    def write(self, window: Window, arrays: Mapping[str, np.ndarray]) -> None:
        """Write one block (``window`` in the mosaic's pixels) of every layer."""
        if window.row % self.block or window.col % self.block:
            raise InputError(f"block write {window} is not on the {self.block}-px block lattice")
        if set(arrays) != set(self.layers):
            raise InputError(
                f"block write has layers {sorted(arrays)}, expected {sorted(self.layers)}"
            )
        rio_window = RioWindow(window.col, window.row, window.width, window.height)
        for name, array in arrays.items():
            spec = self.layers[name]
            if array.shape != window.shape or array.dtype != np.dtype(spec.dtype):
                raise InputError(
                    f"layer {name}: block of {array.shape} {array.dtype}, "
                    f"expected {window.shape} {spec.dtype}"
                )
            try:
                self._datasets[name].write(array, 1, window=rio_window)
            except RasterioError as exc:
                raise StorageError(f"{self.paths[name]}: cannot write {window} ({exc})") from exc

    def finish(
        self, outputs: Mapping[str, str], *, overview_shapes: Sequence[tuple[int, int]]
    ) -> dict[str, str]:
        """Close the intermediates, build each layer's overview levels (``overview_shapes``,
        largest first, each half the one above), and write each layer's COG to
        ``outputs[name]`` atomically. Returns the sha256 of each COG."""
        if set(outputs) != set(self.layers):
            raise InputError(f"outputs name {sorted(outputs)}, expected {sorted(self.layers)}")
        self._close()
        digests: dict[str, str] = {}
        for name, spec in self.layers.items():
            base = self.paths[name]
            levels = []
            above = base
            for k, shape in enumerate(overview_shapes, start=1):
                level = base.with_name(f"{base.stem}.ovr{k}.tif")
                _reduce_level(above, level, shape=shape, spec=spec, grid=self.grid)
                levels.append(level)
                above = level
            vrt = base.with_suffix(".vrt")
            vrt.write_text(_vrt_xml(self.grid, spec, base, levels, self.tags), encoding="utf-8")
            with atomic_local_path(outputs[name], suffix=".tif") as tmp:
                try:
                    rio_copy(
                        str(vrt),
                        str(tmp),
                        driver="COG",
                        compress="LZW",
                        blocksize=COG_BLOCKSIZE,
                        overviews="FORCE_USE_EXISTING",
                        bigtiff="IF_SAFER",
                    )
                except RasterioError as exc:
                    raise StorageError(f"{outputs[name]}: cannot write the COG ({exc})") from exc
                digests[name] = sha256_file(tmp)
            for path in (vrt, base, *levels):
                path.unlink(missing_ok=True)
        return digests


_GDAL_TYPES = {"float32": "Float32", "uint8": "Byte"}


def _level_profile(spec: LayerSpec, grid: PixelGrid, shape: tuple[int, int]) -> dict[str, Any]:
    height, width = shape
    return {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": spec.dtype,
        "nodata": spec.nodata,
        "crs": grid.crs,
        "transform": Affine(
            grid.res_x * grid.width / width,
            0,
            grid.x0,
            0,
            -grid.res_y * grid.height / height,
            grid.y0,
        ),
        "tiled": True,
        "blockxsize": _LEVEL_BLOCK,
        "blockysize": _LEVEL_BLOCK,
        "bigtiff": "IF_SAFER",
        **_INTERMEDIATE_COMPRESSION,
    }


def _reduce_level(
    above: Path, level: Path, *, shape: tuple[int, int], spec: LayerSpec, grid: PixelGrid
) -> None:
    """Write ``level`` (``shape``) from ``above``, one ``_LEVEL_BLOCK`` block at a time: each
    output block reduces the (at most) twice as large window above it."""
    height, width = shape
    try:
        with (
            rasterio.open(above) as src,
            rasterio.open(level, "w", **_level_profile(spec, grid, shape)) as dst,
        ):
            for row in range(0, height, _LEVEL_BLOCK):
                for col in range(0, width, _LEVEL_BLOCK):
                    h, w = min(_LEVEL_BLOCK, height - row), min(_LEVEL_BLOCK, width - col)
                    window = RioWindow(
                        2 * col,
                        2 * row,
                        min(2 * w, src.width - 2 * col),
                        min(2 * h, src.height - 2 * row),
                    )
                    reduced = spec.reduce(src.read(1, window=window), spec.nodata)
                    if reduced.shape != (h, w):
                        raise InputError(
                            f"overview reducer returned {reduced.shape} for a {(h, w)} block"
                        )
                    dst.write(reduced, 1, window=RioWindow(col, row, w, h))
    except RasterioError as exc:
        raise StorageError(f"{level}: cannot build the overview level ({exc})") from exc


def _vrt_xml(
    grid: PixelGrid, spec: LayerSpec, base: Path, levels: Sequence[Path], tags: Mapping[str, str]
) -> str:
    """A VRT of the full-resolution intermediate that lists the level files as its overviews,
    so GDAL's COG driver copies them instead of computing its own."""
    root = ET.Element("VRTDataset", rasterXSize=str(grid.width), rasterYSize=str(grid.height))
    ET.SubElement(root, "SRS").text = CRS.from_user_input(grid.crs).to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(
        repr(float(v)) for v in (grid.x0, grid.res_x, 0.0, grid.y0, 0.0, -grid.res_y)
    )
    metadata = ET.SubElement(root, "Metadata")
    for key, value in {**tags, "overview_resampling": spec.overview}.items():
        ET.SubElement(metadata, "MDI", key=key).text = value
    band = ET.SubElement(root, "VRTRasterBand", dataType=_GDAL_TYPES[spec.dtype], band="1")
    ET.SubElement(band, "Description").text = spec.description
    ET.SubElement(band, "NoDataValue").text = repr(float(spec.nodata))
    source = ET.SubElement(band, "SimpleSource")
    ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = str(base)
    ET.SubElement(source, "SourceBand").text = "1"
    rect = {"xOff": "0", "yOff": "0", "xSize": str(grid.width), "ySize": str(grid.height)}
    ET.SubElement(source, "SrcRect", **rect)
    ET.SubElement(source, "DstRect", **rect)
    for level in levels:
        overview = ET.SubElement(band, "Overview")
        ET.SubElement(overview, "SourceFilename", relativeToVRT="0").text = str(level)
        ET.SubElement(overview, "SourceBand").text = "1"
    return ET.tostring(root, encoding="unicode")


def remove_leftovers(directory: str | os.PathLike[str]) -> int:
    """Delete what killed merges left in ``directory``: hidden scratch directories and
    temporary COGs (``.{name}.*``); returns how many were removed. Neither is ever visible as
    an output, but they would pile up over restarts."""
    removed = remove_temporaries(directory)
    if not is_local(directory) or not local_path(directory).is_dir():
        return removed
    for path in local_path(directory).glob(".merge-scratch-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed
