"""Vectorising a run's region mosaics into ``vectors/rts_predictions.gpkg``.

:func:`vectorize_region` turns one region's binary, probability and winning-scale mosaics
(one pixel grid) into :class:`PolygonRecord` s: polygons from the block-wise polygoniser
(:mod:`tilecast.vector.polygonize`),
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

Tasks. The work of a region comes in four steps that pickle their inputs and outputs, so a
cluster can run them as separate tasks (``tilecast rts launch``): :func:`plan_vectorize`
(headers and run logs only) gives a :class:`RegionVectors` per region, cut into bands of whole
``block`` rows; :func:`polygonize_band` reads one band's blocks and returns their pieces
(whole objects finished, pieces on block edges held); :func:`join_region` joins the held
pieces of every band in block order, which is the sequence the single-process polygoniser
sees, and splits the objects into chunks of about equal measuring cost;
:func:`measure_polygons` measures a chunk; :func:`write_vectorized` numbers and writes.
:func:`vectorize_region` and :func:`vectorize_output` chain the same functions lazily in one
process. Since every object is the same union of the same pieces and ids follow
:func:`order_key`, the GeoPackage's features do not depend on the number of bands or chunks.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from shapely.geometry import MultiPolygon

from tilecast.apps.rts.tile_codec import TILE_NODATA
from tilecast.errors import InputError
from tilecast.grid import PixelGrid, Window, snap_bbox, window_grid
from tilecast.io import storage
from tilecast.io.mosaic_reader import MosaicReader, open_mosaic, read_grid
from tilecast.io.tile_files import HeldTiles
from tilecast.io.vector import write_polygon_layer
from tilecast.merge.bands import balanced_chunks, band_windows
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
from tilecast.vector.polygonize import BlockPieces, block_pieces, block_rows, join_blocks

__all__ = [
    "DEFAULT_REGION",
    "LAYER",
    "PREDICTIONS_PATH",
    "RegionVectors",
    "TileIndexEntry",
    "VectorizePlan",
    "VectorizeResult",
    "join_region",
    "measure_polygons",
    "number_records",
    "plan_region_vectors",
    "plan_vectorize",
    "polygonize_band",
    "read_tile_index",
    "vectorize_output",
    "vectorize_region",
    "write_predictions",
    "write_vectorized",
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


def _read_tile(grid: PixelGrid, tiles: HeldTiles) -> TileReader:
    """The probability of a window of a tile file (decoded, whatever its encoding; NoData -1),
    after checking the file is the tile it should be (size, transform, CRS, bands); the files
    stay open in ``tiles`` for the polygons after (neighbours share tiles)."""

    def read(tile: TileWindow, local: Window) -> tuple[np.ndarray, float | None]:
        data = tiles.read(tile.uri, local, grid=window_grid(grid, tile.window))
        return data[0], TILE_NODATA

    return read


@dataclass(frozen=True)
class RegionVectors:
    """One region's vectorising, planned: its mosaics (one pixel grid), the tiles that may
    have detected its objects, the settings, and its bands of ``block`` rows. It pickles, so
    the tasks that polygonise bands, join them and measure polygons can run anywhere."""

    region: str
    binary: str
    prob: str
    scale: str
    grid: PixelGrid
    tiles: tuple[TileIndexEntry, ...]
    threshold: float
    min_area_m2: float
    block: int
    bands: tuple[Window, ...]


def plan_region_vectors(
    binary_uri: str,
    prob_uri: str,
    scale_uri: str,
    *,
    tiles: Sequence[TileIndexEntry],
    threshold: float,
    min_area_m2: float = 0.0,
    block: int = 2048,
    bands: int = 1,
    region: str = "",
) -> RegionVectors:
    """Check the settings and the binary mosaic's grid (its header) and cut the region into
    at most ``bands`` bands of whole ``block`` rows. The probability and winning-scale mosaics
    are checked against that grid when polygons are measured, so a cluster may plan and
    polygonise while they are still being written."""
    threshold = _check_threshold(threshold)
    if not math.isfinite(min_area_m2) or min_area_m2 < 0:
        raise InputError(f"min_area_m2 must be a number >= 0, {min_area_m2!r} is given")
    grid = read_grid(binary_uri)
    return RegionVectors(
        region=region,
        binary=binary_uri,
        prob=prob_uri,
        scale=scale_uri,
        grid=grid,
        tiles=tuple(tiles),
        threshold=threshold,
        min_area_m2=float(min_area_m2),
        block=block,
        bands=band_windows(grid.shape, block=block, bands=bands),
    )


def _band_pieces(plan: RegionVectors, binary: MosaicReader, index: int) -> Iterator[BlockPieces]:
    _same_grid(plan.grid, binary.grid, "the plan", plan.binary)
    rows = block_rows(plan.bands[index], plan.block)
    return block_pieces(binary, block=plan.block, rows=rows)


def polygonize_band(plan: RegionVectors, index: int) -> list[BlockPieces]:
    """The pieces of every block of band ``index`` (a task of its own; see
    :func:`join_region`)."""
    with open_mosaic(plan.binary) as binary:
        return list(_band_pieces(plan, binary, index))


def join_region(
    plan: RegionVectors, bands: Sequence[Sequence[BlockPieces]], *, chunks: int = 1
) -> list[list[MultiPolygon]]:
    """The region's objects from its bands' pieces (every band, in order), in ``chunks``
    lists of about equal measuring cost (the pixels of each polygon's window)."""
    geoms = list(
        join_blocks(itertools.chain.from_iterable(bands), grid=plan.grid, block=plan.block)
    )
    costs = [polygon_window(plan.grid, geom).area for geom in geoms]
    return [[geoms[i] for i in chunk] for chunk in balanced_chunks(costs, chunks)]


def measure_polygons(plan: RegionVectors, geoms: Iterable[MultiPolygon]) -> list[PolygonRecord]:
    """The records (``rts_id`` 0) of the polygons of at least ``min_area_m2``; a polygon's
    attributes depend only on it and the files, so any process may measure any of them."""
    with (
        open_mosaic(plan.prob) as prob,
        open_mosaic(plan.scale) as scale,
        HeldTiles() as tiles,
    ):
        _same_grid(plan.grid, prob.grid, plan.binary, plan.prob)
        _same_grid(plan.grid, scale.grid, plan.binary, plan.scale)
        index = TileIndex(_tile_windows(plan.grid, plan.tiles))
        read_tile = _read_tile(plan.grid, tiles)
        return [
            record
            for geom in geoms
            if (
                record := _measure(
                    geom,
                    grid=plan.grid,
                    prob=prob,
                    scale=scale,
                    index=index,
                    read_tile=read_tile,
                    threshold=plan.threshold,
                    min_area_m2=plan.min_area_m2,
                    region=plan.region,
                )
            )
            is not None
        ]


def number_records(records: Iterable[PolygonRecord]) -> list[PolygonRecord]:
    """The records in :func:`order_key` order, ``rts_id`` 1..n (independent of the order
    they were found or measured in)."""
    ordered = sorted(records, key=lambda r: order_key(r.geometry))
    return [replace(r, rts_id=i) for i, r in enumerate(ordered, start=1)]


def vectorize_region(
    binary_uri: str,
    prob_uri: str,
    scale_uri: str,
    *,
    tiles: Sequence[TileIndexEntry],
    threshold: float,
    min_area_m2: float = 0.0,
    block: int = 2048,
    bands: int = 1,
    region: str = "",
) -> list[PolygonRecord]:
    """Polygons and attributes of one region, ``rts_id`` 1..n in :func:`order_key` order.

    In this process, streaming: each band's blocks are read, joined and measured as they come
    (the functions a cluster runs as separate tasks, chained lazily); the result does not
    depend on ``bands``.
    """
    plan = plan_region_vectors(
        binary_uri,
        prob_uri,
        scale_uri,
        tiles=tiles,
        threshold=threshold,
        min_area_m2=min_area_m2,
        block=block,
        bands=bands,
        region=region,
    )
    return _vectorize_planned(plan)


def _vectorize_planned(plan: RegionVectors) -> list[PolygonRecord]:
    with open_mosaic(plan.binary) as binary:
        pieces = itertools.chain.from_iterable(
            _band_pieces(plan, binary, index) for index in range(len(plan.bands))
        )
        geoms = join_blocks(pieces, grid=plan.grid, block=plan.block)
        return number_records(measure_polygons(plan, geoms))


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


@dataclass(frozen=True)
class VectorizePlan:
    """A run output's vectorising, planned: every selected region and the GeoPackage."""

    output: str
    uri: str
    crs: str
    regions: tuple[RegionVectors, ...]


def plan_vectorize(
    output: str,
    *,
    threshold: float | None = None,
    min_area_m2: float = 0.0,
    regions: Sequence[str] | None = None,
    block: int = 2048,
    bands: int = 1,
    pending: bool = False,
) -> VectorizePlan:
    """Every ``merged/region_{r}_binary.tif`` (or the ``regions`` named) with its mosaics, the
    tile index from the run logs and the settings, checked before any polygon is made.
    ``threshold`` (for ``tile_ids``) defaults to the one the run logs record. With
    ``pending``, a region's probability and winning-scale mosaics may still be being written
    (a cluster measures once they are; measuring checks them)."""
    merged = storage.join(output, "merged")
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
    planned: list[RegionVectors] = []
    crs: str | None = None
    for region in selected:
        uris = {}
        for kind in ("binary", "prob", "scale"):
            name = f"region_{region}_{kind}.tif"
            if name not in files and (kind == "binary" or not pending):
                raise InputError(f"{merged}: region {region!r} has no {name}")
            uris[kind] = storage.join(merged, name)
        plan = plan_region_vectors(
            uris["binary"],
            uris["prob"],
            uris["scale"],
            tiles=[t for t in tiles if t.region == region],
            threshold=threshold,
            min_area_m2=min_area_m2,
            block=block,
            bands=bands,
            region=region,
        )
        if crs is not None and plan.grid.crs != crs:
            raise InputError(
                f"region {region!r} is in {plan.grid.crs}, the regions before it in {crs}: "
                "one GeoPackage holds one CRS"
            )
        crs = plan.grid.crs
        planned.append(plan)
    return VectorizePlan(
        output=output,
        uri=storage.join(output, PREDICTIONS_PATH),
        crs=crs or "EPSG:3413",
        regions=tuple(planned),
    )


def write_vectorized(
    plan: VectorizePlan, records: Sequence[Sequence[PolygonRecord]]
) -> VectorizeResult:
    """Write every region's records (``records[i]`` of ``plan.regions[i]``, in any order)
    into the GeoPackage, ``rts_id`` numbered across regions in region-name order."""
    if len(records) != len(plan.regions):
        raise InputError(
            f"expected the records of {len(plan.regions)} region(s), {len(records)} are given"
        )
    ordered: list[PolygonRecord] = []
    per_region: dict[str, int] = {}
    for region, found in zip(plan.regions, records, strict=True):
        numbered = number_records(found)
        per_region[region.region] = len(numbered)
        ordered.extend(numbered)
    ordered = [replace(r, rts_id=i) for i, r in enumerate(ordered, start=1)]
    killpoints.reached("vector.write")
    write_predictions(ordered, plan.uri, crs=plan.crs)
    return VectorizeResult(
        n_polygons=len(ordered),
        total_area_km2=sum(r.area_m2 for r in ordered) / 1e6,
        per_region=per_region,
        uri=plan.uri,
    )


def vectorize_output(
    output: str,
    *,
    threshold: float | None = None,
    min_area_m2: float = 0.0,
    regions: Sequence[str] | None = None,
    block: int = 2048,
    bands: int = 1,
) -> VectorizeResult:
    """Vectorise every region mosaic of a run output into ``vectors/rts_predictions.gpkg``,
    in this process (see :func:`plan_vectorize`; the result does not depend on ``bands``)."""
    storage.remove_temporaries(storage.join(output, "vectors"))  # a killed run's
    plan = plan_vectorize(
        output,
        threshold=threshold,
        min_area_m2=min_area_m2,
        regions=regions,
        block=block,
        bands=bands,
    )
    found = []
    for region in plan.regions:
        killpoints.reached("vector.region")
        found.append(_vectorize_planned(region))
    return write_vectorized(plan, found)
