"""Vectorising a run's region mosaics into ``vectors/rts_predictions.gpkg``.

:func:`vectorize_region` turns one region's binary, probability and winning-scale mosaics
(one pixel grid) into :class:`PolygonRecord` s: polygons from :func:`polygonize_blocks`,
dropped below ``min_area_m2`` (geodesic area), then measured; ``rts_id`` numbers them
1..n in :func:`order_key` order (north to south, west to east), so ids do not depend on the
block size or on the order objects were found in.

:func:`vectorize_output` does a whole run output: every ``merged/region_{r}_binary.tif``
(or the ``regions`` named), the tile index from the run logs (``logs/inference_log*.json``,
one per shard; the tiles marked ``done``, their windows from their own files' headers), and
one GeoPackage for all regions, ``rts_id`` numbered across regions in region-name order.

A tile is a candidate for ``tile_ids`` in its own region's mosaic only; a tile recorded
without a region (a tile list without a ``region`` column) belongs to region
:data:`DEFAULT_REGION` (``all``), as in the merge step. A tile the log records as ``"detected": false`` (no pixel at or above the run's
threshold) is not even opened when the vectoriser's threshold is at least the run's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tilecast.apps.rts.tile_codec import TILE_NODATA
from tilecast.errors import InputError
from tilecast.grid import PixelGrid, Window, snap_bbox, window_grid
from tilecast.io import storage
from tilecast.io.mosaic_files import read_tile_window
from tilecast.io.mosaic_reader import MosaicReader, open_mosaic, read_grid
from tilecast.io.vector import write_polygon_layer
from tilecast.run import killpoints
from tilecast.run.runlogs import RunLogs, read_run_logs
from tilecast.vector.attributes import (
    PolygonRecord,
    TileIndex,
    TileReader,
    TileWindow,
    centroid_lat_lon,
    detecting_tiles,
    format_scales,
    geodesic_area_perimeter,
    order_key,
    pixel_stats,
    polygon_mask,
    polygon_window,
)
from tilecast.vector.polygonize import polygonize_blocks

__all__ = [
    "DEFAULT_REGION",
    "LAYER",
    "PREDICTIONS_PATH",
    "TileIndexEntry",
    "VectorizeResult",
    "read_tile_index",
    "vectorize_output",
    "vectorize_region",
    "write_predictions",
]

#: Where the polygons go under a run's output path, and the layer's name.
PREDICTIONS_PATH = "vectors/rts_predictions.gpkg"
LAYER = "rts_predictions"

#: The region of tiles recorded without one (the merge step's rule: ``region_all_*.tif``).
DEFAULT_REGION = "all"

#: The layer's fields, in order, with their types (see ``io.vector.LAYER_DTYPES``).
FIELDS: dict[str, str] = {
    "rts_id": "int64",
    "area_m2": "float64",
    "perimeter_m": "float64",
    "centroid_lat": "float64",
    "centroid_lon": "float64",
    "mean_prob": "float64",
    "max_prob": "float64",
    "detection_scale": "str",
    "tile_ids": "str",
    "region": "str",
}

_BINARY = re.compile(r"region_(?P<region>.+)_binary\.tif")
_RUN_LOG = re.compile(r"inference_log(\.[^/]+)?\.json")


@dataclass(frozen=True)
class TileIndexEntry:
    """A committed tile: id, map bounds ``(minx, miny, maxx, maxy)``, file, region if any."""

    tile_id: str
    bounds: tuple[float, float, float, float]
    uri: str
    region: str | None = None


@dataclass(frozen=True)
class VectorizeResult:
    n_polygons: int
    total_area_km2: float
    per_region: dict[str, int] = field(default_factory=dict)
    uri: str = ""


def _check_threshold(threshold: float) -> float:
    value = float(threshold)
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise InputError(f"threshold must be in (0, 1], {threshold!r} is given")
    return value


def _same_grid(a: PixelGrid, b: PixelGrid, name_a: str, name_b: str) -> None:
    if a != b:
        raise InputError(f"{name_b} is not on the pixel grid of {name_a}: expected {a}, found {b}")


def _tile_windows(grid: PixelGrid, tiles: Sequence[TileIndexEntry]) -> list[TileWindow]:
    minx, miny, maxx, maxy = grid.bounds
    out = []
    for entry in tiles:
        x0, y0, x1, y1 = entry.bounds
        if x1 <= minx or x0 >= maxx or y1 <= miny or y0 >= maxy:
            continue  # another region's tile: it need not even share this grid
        window = snap_bbox(grid, *entry.bounds, tile_id=entry.tile_id)
        if window.intersects(grid.window):
            out.append(TileWindow(entry.tile_id, window, entry.uri))
    return out


def _read_tile(grid: PixelGrid) -> TileReader:
    """The probability of a window of a tile file (decoded, whatever its encoding; NoData -1),
    after checking the file is the tile it should be (size, transform, CRS, bands)."""

    def read(tile: TileWindow, local: Window) -> tuple[np.ndarray, float | None]:
        data = read_tile_window(tile.uri, local, grid=window_grid(grid, tile.window))
        return data[0], TILE_NODATA

    return read


def vectorize_region(
    binary_uri: str,
    prob_uri: str,
    scale_uri: str,
    *,
    tiles: Sequence[TileIndexEntry],
    threshold: float,
    min_area_m2: float = 0.0,
    block: int = 2048,
    region: str = "",
) -> list[PolygonRecord]:
    """Polygons and attributes of one region, ``rts_id`` 1..n in :func:`order_key` order."""
    threshold = _check_threshold(threshold)
    if not math.isfinite(min_area_m2) or min_area_m2 < 0:
        raise InputError(f"min_area_m2 must be a number >= 0, {min_area_m2!r} is given")
    with (
        open_mosaic(binary_uri) as binary,
        open_mosaic(prob_uri) as prob,
        open_mosaic(scale_uri) as scale,
    ):
        grid = binary.grid
        _same_grid(grid, prob.grid, binary_uri, prob_uri)
        _same_grid(grid, scale.grid, binary_uri, scale_uri)
        index = TileIndex(_tile_windows(grid, tiles))
        read_tile = _read_tile(grid)
        records = [
            record
            for geom in polygonize_blocks(binary, block=block)
            if (
                record := _measure(
                    geom,
                    grid=grid,
                    prob=prob,
                    scale=scale,
                    index=index,
                    read_tile=read_tile,
                    threshold=threshold,
                    min_area_m2=min_area_m2,
                    region=region,
                )
            )
            is not None
        ]
    records.sort(key=lambda r: order_key(r.geometry))
    return [replace(r, rts_id=i) for i, r in enumerate(records, start=1)]


def _measure(
    geom: Any,
    *,
    grid: PixelGrid,
    prob: MosaicReader,
    scale: MosaicReader,
    index: TileIndex,
    read_tile: TileReader,
    threshold: float,
    min_area_m2: float,
    region: str,
) -> PolygonRecord | None:
    area, perimeter = geodesic_area_perimeter(geom, crs=grid.crs)
    if area < min_area_m2:
        return None
    window = polygon_window(grid, geom)
    mask = polygon_mask(grid, window, geom)
    stats = pixel_stats(
        mask,
        prob.read(window),
        scale.read(window),
        prob_nodata=prob.nodata,
        scale_nodata=scale.nodata,
    )
    ids = detecting_tiles(window, mask, index=index, threshold=threshold, read_tile=read_tile)
    lat, lon = centroid_lat_lon(geom, crs=grid.crs)
    return PolygonRecord(
        geometry=geom,
        rts_id=0,
        area_m2=area,
        perimeter_m=perimeter,
        centroid_lat=lat,
        centroid_lon=lon,
        mean_prob=stats.mean_prob,
        max_prob=stats.max_prob,
        detection_scale=format_scales(stats.scales),
        tile_ids=",".join(ids),
        region=region,
    )


def write_predictions(
    records: Sequence[PolygonRecord], uri: str, *, crs: str = "EPSG:3413"
) -> None:
    """Write the records as the ``rts_predictions`` layer (MultiPolygon, ``crs``), atomically."""
    ids = [r.rts_id for r in records]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise InputError(f"rts_id must be unique in one GeoPackage, repeated: {dupes[:10]}")
    columns = {name: (dtype, [getattr(r, name) for r in records]) for name, dtype in FIELDS.items()}
    write_polygon_layer(
        uri,
        [r.geometry for r in records],
        crs=crs,
        columns=columns,
        layer=LAYER,
        geometry_type="MultiPolygon",
    )


def read_tile_index(
    output: str,
    *,
    regions: Sequence[str] | None = None,
    threshold: float | None = None,
) -> list[TileIndexEntry]:
    """The tiles the run logs under ``output`` record as done, with bounds from their files.

    Only tiles of ``regions`` when given; a tile without a region is in
    :data:`DEFAULT_REGION`. With ``threshold``,
    tiles a log records as not detected at a run threshold <= ``threshold`` are left out.
    """
    return _tile_index(read_run_logs(output), output, regions=regions, threshold=threshold)


def _tile_index(
    logs: RunLogs,
    output: str,
    *,
    regions: Sequence[str] | None,
    threshold: float | None,
) -> list[TileIndexEntry]:
    wanted = None if regions is None else set(regions)
    found: dict[str, str] = {}
    run_threshold = logs.settings.get("threshold")
    skip_undetected = (
        threshold is not None and run_threshold is not None and run_threshold <= threshold
    )
    for tile_id, entry in logs.tiles.items():
        if entry.get("status") != "done":
            continue
        if skip_undetected and entry.get("detected") is False:
            continue
        region = str(entry.get("region") or DEFAULT_REGION)
        if wanted is not None and region not in wanted:
            continue
        found[tile_id] = region
    entries = []
    for tile_id in sorted(found):
        uri = storage.join(output, "tiles", f"{tile_id}.tif")
        entries.append(TileIndexEntry(tile_id, read_grid(uri).bounds, uri, found[tile_id]))
    return entries


def vectorize_output(
    output: str,
    *,
    threshold: float | None = None,
    min_area_m2: float = 0.0,
    regions: Sequence[str] | None = None,
    block: int = 2048,
) -> VectorizeResult:
    """Vectorise every region mosaic of a run output into ``vectors/rts_predictions.gpkg``.

    ``threshold`` (for ``tile_ids``) defaults to the one the run logs record.
    """
    merged = storage.join(output, "merged")
    storage.remove_temporaries(storage.join(output, "vectors"))  # a killed run's
    files = set(storage.list_files(merged))
    available = sorted(m["region"] for f in files if (m := _BINARY.fullmatch(f)))
    if regions is None:
        selected = available
    else:
        selected = sorted(set(regions))
        missing = [r for r in selected if r not in available]
        if missing:
            raise InputError(
                f"{merged}: no binary mosaic for region(s) {missing}; found {available}"
            )
    logs = read_run_logs(output)
    threshold = _check_threshold(logs.threshold if threshold is None else threshold)
    tiles = _tile_index(logs, output, regions=selected, threshold=threshold)
    records: list[PolygonRecord] = []
    per_region: dict[str, int] = {}
    crs: str | None = None
    for region in selected:
        killpoints.reached("vector.region")
        uris = {}
        for kind in ("binary", "prob", "scale"):
            name = f"region_{region}_{kind}.tif"
            if name not in files:
                raise InputError(f"{merged}: region {region!r} has no {name}")
            uris[kind] = storage.join(merged, name)
        region_crs = read_grid(uris["binary"]).crs
        if crs is not None and region_crs != crs:
            raise InputError(
                f"region {region!r} is in {region_crs}, the regions before it in {crs}: "
                "one GeoPackage holds one CRS"
            )
        crs = region_crs
        found = vectorize_region(
            uris["binary"],
            uris["prob"],
            uris["scale"],
            tiles=[t for t in tiles if t.region == region],
            threshold=threshold,
            min_area_m2=min_area_m2,
            block=block,
            region=region,
        )
        per_region[region] = len(found)
        records.extend(found)
    records = [replace(r, rts_id=i) for i, r in enumerate(records, start=1)]
    uri = storage.join(output, PREDICTIONS_PATH)
    killpoints.reached("vector.write")
    write_predictions(records, uri, crs=crs or "EPSG:3413")
    return VectorizeResult(
        n_polygons=len(records),
        total_area_km2=sum(r.area_m2 for r in records) / 1e6,
        per_region=per_region,
        uri=uri,
    )
