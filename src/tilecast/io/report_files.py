"""The files of the RTS QC report: every read it makes, and its one write.

Everything is read small, so the report's memory does not grow with a region's size:

- region mosaics from a fine COG overview level (at most 4x coarser than full resolution),
  in horizontal strips, reduced to the target shape by a *maximum*, so a slump a few pixels
  wide still shows at overview scale (:func:`read_reduced`);
- the basemap quad by quad, each quad's part of the view read decimated and pasted where the
  view has no valid pixel yet (first quad in file-name order wins, as in
  :class:`~tilecast.io.basemap.Basemap`) (:func:`read_basemap_view`);
- the run logs (``logs/inference_log.json`` and ``logs/inference_log.<shard>.json``) and the
  GeoPackage as they are.

The report is written atomically (:func:`write_report`).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window as RioWindow

from tilecast.errors import StorageError
from tilecast.grid.pixelgrid import window_bounds
from tilecast.grid.windows import Window
from tilecast.io import storage
from tilecast.io.bands import gdal_error_text
from tilecast.io.basemap import Basemap
from tilecast.io.vsi import open_raster

__all__ = [
    "MOSAIC_KINDS",
    "PREDICTIONS_LAYER",
    "RasterInfo",
    "RunLogFile",
    "find_mosaics",
    "mosaic_name",
    "raster_info",
    "read_basemap_view",
    "read_predictions",
    "read_reduced",
    "read_run_logs",
    "rgb_band_positions",
    "write_report",
]

MOSAIC_KINDS = ("prob", "binary", "scale")
PREDICTIONS_PATH = "vectors/rts_predictions.gpkg"
PREDICTIONS_LAYER = "rts_predictions"
_MOSAIC_NAME = re.compile(r"^region_(?P<region>.+)_(?P<kind>prob|binary|scale)\.tif$")
_LOG_NAME = re.compile(r"^inference_log(\.(?P<shard>[^/]+))?\.json$")


def mosaic_name(region: str, kind: str) -> str:
    """``merged/region_{region}_{kind}.tif``, relative to the output directory."""
    return f"merged/region_{region}_{kind}.tif"


# -- run logs and the mosaic listing --------------------------------------------------------


@dataclass(frozen=True)
class RunLogFile:
    """One run log: its name under ``logs/``, its content, or why it could not be read."""

    name: str
    data: dict[str, Any] | None
    error: str | None = None

    @property
    def shard(self) -> str | None:
        match = _LOG_NAME.match(self.name)
        return match.group("shard") if match else None


def read_run_logs(output: str) -> list[RunLogFile]:
    """``logs/inference_log.json`` first (when present), then the shard logs by name."""
    logs_dir = storage.join(output, "logs")
    if not storage.exists(logs_dir):
        return []
    try:
        names = [n for n in storage.list_files(logs_dir) if _LOG_NAME.match(n)]
    except StorageError:
        return []
    names.sort(key=lambda n: (n != "inference_log.json", n))
    found = []
    for name in names:
        uri = storage.join(logs_dir, name)
        try:
            data = json.loads(storage.read_text(uri))
        except (StorageError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            found.append(RunLogFile(name, None, f"cannot read {name}: {exc}"))
            continue
        if not isinstance(data, dict):
            found.append(
                RunLogFile(name, None, f"{name} holds a {type(data).__name__}, not an object")
            )
            continue
        found.append(RunLogFile(name, data))
    return found


def find_mosaics(output: str) -> dict[str, dict[str, str]]:
    """``{region: {kind: uri}}`` for every ``merged/region_{region}_{kind}.tif`` present."""
    merged = storage.join(output, "merged")
    if not storage.exists(merged):
        return {}
    found: dict[str, dict[str, str]] = {}
    for name in storage.list_files(merged):
        match = _MOSAIC_NAME.match(name)
        if match:
            found.setdefault(match.group("region"), {})[match.group("kind")] = storage.join(
                merged, name
            )
    return found


def read_predictions(output: str) -> Any | None:
    """The ``rts_predictions`` layer as a GeoDataFrame; None when the GeoPackage is missing.

    Raises :class:`StorageError` when the file exists but cannot be read as a layer.
    """
    from tilecast.io.vector import list_layers, read_polygons

    uri = storage.join(output, PREDICTIONS_PATH)
    if not storage.exists(uri):
        return None
    layers = list_layers(uri)
    layer = PREDICTIONS_LAYER if PREDICTIONS_LAYER in layers else (layers[0] if layers else None)
    return read_polygons(uri, layer=layer)


# -- rasters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RasterInfo:
    """A raster's header: size, extent ``(minx, miny, maxx, maxy)``, CRS, NoData, dtype."""

    uri: str
    width: int
    height: int
    bounds: tuple[float, float, float, float]
    crs: str | None
    res: tuple[float, float]
    nodata: float | None
    dtype: str

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)


def _open(uri: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return open_raster(uri)
    except RasterioError as exc:
        raise StorageError(f"{uri}: cannot open as a raster ({exc})") from exc


def raster_info(uri: str) -> RasterInfo:
    with _open(uri) as src:
        b = src.bounds
        return RasterInfo(
            uri=uri,
            width=src.width,
            height=src.height,
            bounds=(b.left, b.bottom, b.right, b.top),
            crs=src.crs.to_string() if src.crs else None,
            res=(abs(src.transform.a), abs(src.transform.e)),
            nodata=src.nodata,
            dtype=src.dtypes[0],
        )


def read_reduced(
    uri: str,
    out_shape: tuple[int, int],
    *,
    max_overview_factor: int = 4,
    strip_bytes: int = 32 << 20,
) -> np.ndarray:
    """Band 1 of ``uri`` over its whole extent as a float32 ``out_shape`` array, NaN = NoData.

    Each output pixel is the maximum of the valid pixels it covers, so a slump much smaller
    than an output pixel still shows. The maximum is taken over the coarsest overview whose
    factor is at most ``max_overview_factor`` (full resolution when there is none): features
    smaller than that many pixels are already averaged into their surroundings there, larger
    ones keep their value. The level is read in horizontal strips of at most ``strip_bytes``,
    so memory is bounded by the output size, not the raster's.
    """
    out_h, out_w = out_shape
    out = np.full(out_shape, np.nan, dtype=np.float32)
    with _open(uri) as src:
        factor = min(src.height / out_h, src.width / out_w)
        nodata = src.nodata
        level = None
        for i, f in enumerate(src.overviews(1)):
            if f <= min(max_overview_factor, factor):
                level = i
    opened = _open(uri) if level is None else _open_level(uri, level)
    with opened as src:
        height, width = src.height, src.width
        row_edges = np.floor(np.arange(out_h + 1) * height / out_h).astype(np.int64)
        col_edges = np.floor(np.arange(out_w) * width / out_w).astype(np.int64)
        rows_per_strip = max(1, int(strip_bytes // (4 * width * max(1.0, height / out_h))))
        for r0 in range(0, out_h, rows_per_strip):
            r1 = min(out_h, r0 + rows_per_strip)
            s0, s1 = int(row_edges[r0]), max(int(row_edges[r1]), int(row_edges[r0]) + 1)
            try:
                data = src.read(1, window=RioWindow(0, s0, width, s1 - s0)).astype(np.float32)
            except RasterioError as exc:
                raise StorageError(f"{uri}: cannot read ({gdal_error_text(exc)})") from exc
            bad = ~np.isfinite(data)
            if nodata is not None and not math.isnan(nodata):
                bad |= data == np.float32(nodata)
            data[bad] = -np.inf
            starts = np.minimum(row_edges[r0:r1] - s0, s1 - s0 - 1)
            pooled = np.maximum.reduceat(data, starts, axis=0)
            pooled = np.maximum.reduceat(pooled, np.minimum(col_edges, width - 1), axis=1)
            pooled[np.isneginf(pooled)] = np.nan
            out[r0:r1] = pooled
    return out


def _open_level(uri: str, level: int) -> Any:
    """``uri`` opened at one of its overview levels (GDAL's OVERVIEW_LEVEL open option)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return open_raster(uri, OVERVIEW_LEVEL=level)
    except RasterioError as exc:
        raise StorageError(f"{uri}: cannot open overview level {level} ({exc})") from exc


# -- the basemap -----------------------------------------------------------------------------


def rgb_band_positions(basemap: Basemap) -> tuple[int, ...]:
    """Positions (0-based, among the basemap's data bands) of red, green and blue.

    From the bands' colour interpretation when it names all three; ``(0,)`` for one band
    (gray); otherwise the first three bands, taken as RGB.
    """
    names = list(basemap.band_colorinterp)
    if all(c in names for c in ("red", "green", "blue")):
        return (names.index("red"), names.index("green"), names.index("blue"))
    if basemap.count < 3:
        return (0,)
    return (0, 1, 2)


def read_basemap_view(
    basemap: Basemap,
    bounds: tuple[float, float, float, float],
    out_shape: tuple[int, int],
    *,
    bands: tuple[int, ...],
    on_error: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The basemap over map ``bounds`` resampled to ``out_shape``: ``(array (len(bands), h, w)
    float32, valid (h, w) bool)``.

    ``bands`` are positions among the basemap's data bands (see :func:`rgb_band_positions`).
    Each quad the view touches is read once, decimated by GDAL (average; overviews where the
    file has them) to the output pixels it covers; a quad's edge pixel may be stretched by
    less than one output pixel. Validity is GDAL's dataset mask (NoData, alpha or internal
    mask). When ``out_shape`` matches the view's size in basemap pixels and ``bounds`` lie on
    the basemap grid, pixels are copied unresampled.

    A quad that cannot be read raises :class:`StorageError`, or, with ``on_error``, is left
    out (its pixels invalid) and ``on_error`` gets the message: a report on a damaged basemap
    still shows what can be read.
    """
    minx, miny, maxx, maxy = bounds
    out_h, out_w = out_shape
    px = (maxx - minx) / out_w
    py = (maxy - miny) / out_h
    out = np.zeros((len(bands), out_h, out_w), dtype=np.float32)
    valid = np.zeros(out_shape, dtype=bool)
    grid = basemap.grid
    col0 = math.floor((minx - grid.x0) / grid.res_x + 1e-6)
    col1 = math.ceil((maxx - grid.x0) / grid.res_x - 1e-6)
    row0 = math.floor((grid.y0 - maxy) / grid.res_y + 1e-6)
    row1 = math.ceil((grid.y0 - miny) / grid.res_y - 1e-6)
    view = Window(row0, col0, max(1, row1 - row0), max(1, col1 - col0))
    for quad in basemap.quads_for(view):
        qminx, qminy, qmaxx, qmaxy = window_bounds(grid, quad.footprint)
        ix0, ix1 = max(minx, qminx), min(maxx, qmaxx)
        iy0, iy1 = max(miny, qminy), min(maxy, qmaxy)
        if ix0 >= ix1 or iy0 >= iy1:
            continue
        # output pixels the quad touches, and the map extent they cover (clipped to the quad)
        c0 = max(0, math.floor((ix0 - minx) / px + 1e-6))
        c1 = min(out_w, math.ceil((ix1 - minx) / px - 1e-6))
        r0 = max(0, math.floor((maxy - iy1) / py + 1e-6))
        r1 = min(out_h, math.ceil((maxy - iy0) / py - 1e-6))
        if c0 >= c1 or r0 >= r1:
            continue
        sx0, sx1 = max(qminx, minx + c0 * px), min(qmaxx, minx + c1 * px)
        sy1, sy0 = min(qmaxy, maxy - r0 * py), max(qminy, maxy - r1 * py)
        q_c0 = math.floor((sx0 - qminx) / grid.res_x + 1e-6)
        q_c1 = math.ceil((sx1 - qminx) / grid.res_x - 1e-6)
        q_r0 = math.floor((qmaxy - sy1) / grid.res_y + 1e-6)
        q_r1 = math.ceil((qmaxy - sy0) / grid.res_y - 1e-6)
        q_c1, q_r1 = max(q_c1, q_c0 + 1), max(q_r1, q_r0 + 1)
        window = RioWindow(q_c0, q_r0, q_c1 - q_c0, q_r1 - q_r0)
        shape = (r1 - r0, c1 - c0)
        indexes = [quad.info.bands[b] for b in bands]
        try:
            with _open(quad.path) as src:
                try:
                    data = src.read(
                        indexes,
                        window=window,
                        out_shape=(len(indexes), *shape),
                        resampling=Resampling.average,
                    )
                    mask = src.dataset_mask(window=window, out_shape=shape) > 0
                except RasterioError as exc:
                    raise StorageError(
                        f"{quad.path}: cannot read ({gdal_error_text(exc)})"
                    ) from exc
        except StorageError as exc:
            if on_error is None:
                raise
            on_error(str(exc))
            continue
        take = mask & ~valid[r0:r1, c0:c1]
        target = out[:, r0:r1, c0:c1]
        target[:, take] = data[:, take]
        valid[r0:r1, c0:c1] |= take
    return out, valid


# -- the report ------------------------------------------------------------------------------


def write_report(uri: str, html: str) -> None:
    """Write the report atomically (a reader sees the old page or the whole new one)."""
    storage.write_text(uri, html)
