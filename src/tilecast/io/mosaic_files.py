"""Raster files the region merge writes: intermediate mosaics on disk, COGs out.

The merge arithmetic (``tilecast.merge``) is pure numpy; it reads tiles through
:mod:`tilecast.io.tile_files`; everything here writes files:

- :class:`MosaicWriter` fills one tiled, compressed intermediate GeoTIFF per output layer block
  by block (each write is exactly one internal tile, so nothing is re-read or re-compressed),
  for a whole region or one band of rows of it, and builds overview levels from it, one level
  from the previous, one 512-px block at a time, with the layer's reducer
  (``tilecast.merge.overviews``);
- :func:`write_cog` streams a VRT of such files (one per band, each level likewise) into a
  Cloud-Optimized GeoTIFF with ``rasterio.shutil.copy(driver="COG",
  overviews="FORCE_USE_EXISTING")``, atomically (temporary sibling, then rename), after
  building the levels the bands could not. GDAL's COG driver only copies blocks then; left to
  compute a multi-level pyramid itself, GDAL 3.10's peak memory grows with the raster (see
  ``tilecast.merge.overviews``). Memory does not grow with the mosaic's size;
- the hidden folders the files live in until the COGs are written are
  :mod:`tilecast.io.merge_scratch`'s;
- :func:`gdal_block_cache` caps GDAL's block cache while a merge runs (GDAL's default is 5% of
  RAM, which would otherwise hold dirty intermediate blocks up to that size).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
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

from tilecast.errors import InputError, StorageError
from tilecast.grid import PixelGrid, Window
from tilecast.io.storage import atomic_local_path

__all__ = [
    "COG_BLOCKSIZE",
    "LayerSpec",
    "MosaicWriter",
    "Part",
    "gdal_block_cache",
    "sha256_file",
    "write_cog",
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
    """One tiled, compressed intermediate GeoTIFF per layer, filled block by block, and its
    overview levels.

    ``grid`` is the raster the writer fills: a whole region, or one band of it (then the
    band's own grid, and windows in the band's pixels). Use as a context manager around the
    writes; :meth:`finish` closes the intermediates and builds the overview levels. The files
    are ``{scratch}/{prefix}{layer}.tif`` and ``...{layer}.ovr{k}.tif``. The intermediates'
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
        prefix: str = "",
    ) -> None:
        if block < 16 or block % 16:
            raise InputError(f"block must be a positive multiple of 16, {block} is given")
        self.grid = grid
        self.layers = dict(layers)
        self.block = block
        self.paths = {name: scratch / f"{prefix}{name}.tif" for name in self.layers}
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
        """Write one block (``window`` in the writer's pixels) of every layer."""
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

    def finish(self, level_shapes: Sequence[tuple[int, int]]) -> dict[str, list[Path]]:
        """Close the intermediates and build each layer's overview levels of ``level_shapes``
        (largest first, each the halving of the one above). Returns each layer's files: the
        intermediate, then its levels."""
        self._close()
        files: dict[str, list[Path]] = {}
        for name, spec in self.layers.items():
            files[name] = [self.paths[name]]
            for k, shape in enumerate(level_shapes, start=1):
                level = self.paths[name].with_name(f"{self.paths[name].stem}.ovr{k}.tif")
                _reduce_level(files[name][-1], level, shape=shape, spec=spec, grid=self.grid)
                files[name].append(level)
        return files


@dataclass(frozen=True)
class Part:
    """A file holding the rows ``window`` (full width) of one level of a mosaic."""

    window: Window
    path: Path


def write_cog(
    uri: str,
    *,
    name: str,
    grid: PixelGrid,
    spec: LayerSpec,
    levels: Sequence[Sequence[Part]],
    level_shapes: Sequence[tuple[int, int]],
    tags: Mapping[str, str],
    workdir: Path,
) -> str:
    """Write layer ``name`` of a mosaic on ``grid`` as a COG at ``uri``, atomically; returns
    its sha256.

    ``levels[0]`` are the full-resolution parts, ``levels[k]`` the parts of overview level
    ``k`` (shape ``level_shapes[k - 1]``), each list top to bottom and covering its level
    exactly. Levels of ``level_shapes`` beyond those given are built here, each from the level
    above, one block at a time. GDAL then streams a VRT of the parts, listing the levels as its
    overviews, into the COG: the bytes depend on the pixels only, not on how they were cut.
    Files made here (in ``workdir``) are removed; the parts are the caller's.
    """
    if not levels or len(levels) > len(level_shapes) + 1:
        raise InputError(
            f"{uri}: expected the full-resolution parts and at most {len(level_shapes)} "
            f"overview levels, {len(levels)} level(s) are given"
        )
    shapes = [grid.shape, *level_shapes]
    made: list[Path] = []
    try:
        sources: list[Path | list[Part]] = []
        for k, parts in enumerate(levels):
            _check_parts(uri, k, parts, shapes[k])
            sources.append(list(parts))
        for k in range(len(levels), len(shapes)):
            above = _level_path(
                sources[k - 1],
                workdir / f"{name}.level{k - 1}.vrt",
                grid=grid,
                shape=shapes[k - 1],
                spec=spec,
                made=made,
            )
            level = workdir / f"{name}.level{k}.tif"
            made.append(level)
            _reduce_level(above, level, shape=shapes[k], spec=spec, grid=grid)
            sources.append(level)
        overviews = [
            _level_path(
                source,
                workdir / f"{name}.level{k}.vrt",
                grid=grid,
                shape=shapes[k],
                spec=spec,
                made=made,
            )
            for k, source in enumerate(sources[1:], start=1)
        ]
        base = sources[0]
        assert isinstance(base, list)
        vrt = workdir / f"{name}.vrt"
        made.append(vrt)
        vrt.write_text(_vrt_xml(grid, spec, base, overviews, tags), encoding="utf-8")
        with atomic_local_path(uri, suffix=".tif") as tmp:
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
                raise StorageError(f"{uri}: cannot write the COG ({exc})") from exc
            return sha256_file(tmp)
    finally:
        for path in made:
            path.unlink(missing_ok=True)


def _check_parts(uri: str, level: int, parts: Sequence[Part], shape: tuple[int, int]) -> None:
    row = 0
    for part in parts:
        if part.window.row != row or part.window.col != 0 or part.window.width != shape[1]:
            raise InputError(
                f"{uri}: level {level} part {part.window} does not continue the level's rows "
                f"at row {row} over its width {shape[1]}"
            )
        row = part.window.row_stop
    if row != shape[0]:
        raise InputError(f"{uri}: level {level} parts cover {row} rows, expected {shape[0]}")


def _level_path(
    source: Path | list[Part],
    vrt: Path,
    *,
    grid: PixelGrid,
    shape: tuple[int, int],
    spec: LayerSpec,
    made: list[Path],
) -> Path:
    """A level as one raster path: its file, or a VRT mosaic of its parts."""
    if isinstance(source, Path):
        return source
    if len(source) == 1:
        return source[0].path
    made.append(vrt)
    vrt.write_text(_mosaic_vrt_xml(grid, shape, spec, source), encoding="utf-8")
    return vrt


_GDAL_TYPES = {"float32": "Float32", "uint8": "Byte"}


def _level_transform(grid: PixelGrid, shape: tuple[int, int]) -> Affine:
    """The transform of a raster of ``shape`` over ``grid``'s extent (an overview level)."""
    height, width = shape
    return Affine(
        grid.res_x * grid.width / width, 0, grid.x0, 0, -grid.res_y * grid.height / height, grid.y0
    )


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
        "transform": _level_transform(grid, shape),
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


def _vrt_dataset(
    shape: tuple[int, int], crs: str, geotransform: Sequence[float]
) -> tuple[ET.Element, ET.Element]:
    height, width = shape
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = CRS.from_user_input(crs).to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in geotransform)
    return root, ET.Element("Metadata")


def _vrt_band(root: ET.Element, spec: LayerSpec, parts: Sequence[Part], width: int) -> ET.Element:
    """The VRT's band: every part a source at its rows."""
    band = ET.SubElement(root, "VRTRasterBand", dataType=_GDAL_TYPES[spec.dtype], band="1")
    ET.SubElement(band, "Description").text = spec.description
    ET.SubElement(band, "NoDataValue").text = repr(float(spec.nodata))
    for part in parts:
        source = ET.SubElement(band, "SimpleSource")
        ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = str(part.path)
        ET.SubElement(source, "SourceBand").text = "1"
        size = {"xSize": str(width), "ySize": str(part.window.height)}
        ET.SubElement(source, "SrcRect", xOff="0", yOff="0", **size)
        ET.SubElement(source, "DstRect", xOff="0", yOff=str(part.window.row), **size)
    return band


def _vrt_xml(
    grid: PixelGrid,
    spec: LayerSpec,
    base: Sequence[Part],
    levels: Sequence[Path],
    tags: Mapping[str, str],
) -> str:
    """A VRT of the full-resolution parts that lists the levels as its overviews, so GDAL's
    COG driver copies them instead of computing its own."""
    geotransform = (grid.x0, grid.res_x, 0.0, grid.y0, 0.0, -grid.res_y)
    root, metadata = _vrt_dataset(grid.shape, grid.crs, geotransform)
    root.append(metadata)
    for key, value in {**tags, "overview_resampling": spec.overview}.items():
        ET.SubElement(metadata, "MDI", key=key).text = value
    band = _vrt_band(root, spec, base, grid.width)
    for level in levels:
        overview = ET.SubElement(band, "Overview")
        ET.SubElement(overview, "SourceFilename", relativeToVRT="0").text = str(level)
        ET.SubElement(overview, "SourceBand").text = "1"
    return ET.tostring(root, encoding="unicode")


def _mosaic_vrt_xml(
    grid: PixelGrid, shape: tuple[int, int], spec: LayerSpec, parts: Sequence[Part]
) -> str:
    """A VRT of one overview level (``shape`` over ``grid``'s extent) made of its parts."""
    t = _level_transform(grid, shape)
    root, _ = _vrt_dataset(shape, grid.crs, (t.c, t.a, 0.0, t.f, 0.0, t.e))
    _vrt_band(root, spec, parts, shape[1])
    return ET.tostring(root, encoding="unicode")
