"""Per-polygon attributes: geodesic size, WGS84 centroid, probability statistics, scales, tiles.

Size on the ellipsoid
    Polar stereographic EPSG:3413 is conformal, not equal-area: its true-scale latitude is
    70 N, so planar areas are too small north of it and too large south of it (several percent
    between 60 and 74 N). ``area_m2`` and ``perimeter_m`` are therefore measured on the WGS84
    ellipsoid: the polygon's straight map edges are first densified (every
    :data:`DENSIFY_M` metres, ``shapely.segmentize``) so that the lon/lat polygon follows them,
    then every vertex is transformed to lon/lat and ``pyproj.Geod.geometry_area_perimeter``
    integrates along geodesics, ring by ring (``polygon_area_perimeter``, which unwraps
    longitudes, so a slump on the antimeridian is fine). Holes count: their area is
    subtracted and their length added to the perimeter.

Pixel statistics
    A polygon's pixels are those whose centre lies inside it (``geometry_mask``); every
    polygon from :mod:`tilecast.vector.polygonize` has its vertices on pixel corners, so that
    is exactly the object's pixels. Statistics ignore NoData and non-finite values.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

from tilecast.errors import InputError
from tilecast.grid import PixelGrid, Window, snap_bbox, window_transform

__all__ = [
    "DENSIFY_M",
    "PolygonRecord",
    "ProbabilityStats",
    "TileIndex",
    "TileReader",
    "TileWindow",
    "centroid_lat_lon",
    "detecting_tiles",
    "format_scales",
    "geodesic_area_perimeter",
    "order_key",
    "pixel_stats",
    "polygon_mask",
    "polygon_window",
]

#: Longest straight map edge (metres) before a polygon is transformed to lon/lat.
DENSIFY_M = 10.0

_GEOD = Geod(ellps="WGS84")


@functools.lru_cache(maxsize=8)
def _to_lonlat(crs: str) -> Transformer:
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def _lonlat(geom: BaseGeometry, crs: str) -> BaseGeometry:
    transformer = _to_lonlat(crs)

    def project(coords: np.ndarray) -> np.ndarray:
        lon, lat = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geom, project)


def geodesic_area_perimeter(
    geom: BaseGeometry, *, crs: str = "EPSG:3413", densify_m: float = DENSIFY_M
) -> tuple[float, float]:
    """``(area_m2, perimeter_m)`` of a (Multi)Polygon in ``crs`` on the WGS84 ellipsoid.

    The area is each shell's less its holes'; the perimeter is the length of every ring,
    holes included (as shapely's ``length``). Ring orientation does not matter.
    """
    if densify_m <= 0 or not math.isfinite(densify_m):
        raise InputError(f"densify_m must be a positive number of metres, {densify_m!r} is given")
    area = perimeter = 0.0
    for polygon in shapely.get_parts(geom):
        if polygon.is_empty:
            continue
        dense = _lonlat(shapely.segmentize(polygon, densify_m), crs)
        for i, ring in enumerate([dense.exterior, *dense.interiors]):
            xy = np.asarray(ring.coords)
            ring_area, ring_perimeter = _GEOD.polygon_area_perimeter(xy[:, 0], xy[:, 1])
            area += abs(ring_area) if i == 0 else -abs(ring_area)
            perimeter += ring_perimeter
    return area, perimeter


def centroid_lat_lon(geom: BaseGeometry, *, crs: str = "EPSG:3413") -> tuple[float, float]:
    """``(lat, lon)`` in WGS84 of the planar centroid in ``crs``."""
    c = geom.centroid
    lon, lat = _to_lonlat(crs).transform(c.x, c.y)
    return float(lat), float(lon)


def polygon_window(grid: PixelGrid, geom: BaseGeometry) -> Window:
    """The pixel window of ``geom``'s bounds, which must lie on ``grid``'s pixel lines."""
    return snap_bbox(grid, *geom.bounds)


def polygon_mask(grid: PixelGrid, window: Window, geom: BaseGeometry) -> np.ndarray:
    """Boolean ``window.shape`` array: True where a pixel's centre is inside ``geom``.

    The polygons lie on pixel lines, so no centre is ever on a boundary (the same answer as
    GDAL's rasterisation, without a GDAL environment per polygon).
    """
    a, b, c, d, e, f = window_transform(grid, window)
    cols, rows = np.meshgrid(np.arange(window.width) + 0.5, np.arange(window.height) + 0.5)
    xs = a * cols + b * rows + c
    ys = d * cols + e * rows + f
    return shapely.contains_xy(geom, xs, ys)


def _valid(values: np.ndarray, nodata: float | None) -> np.ndarray:
    ok = np.isfinite(values)
    if nodata is not None and not math.isnan(nodata):
        ok &= values != values.dtype.type(nodata)
    return ok


@dataclass(frozen=True)
class ProbabilityStats:
    mean_prob: float  # NaN when no covered pixel is valid
    max_prob: float
    scales: tuple[float, ...]  # distinct winning scales inside, largest first


def pixel_stats(
    mask: np.ndarray,
    prob: np.ndarray,
    scale: np.ndarray,
    *,
    prob_nodata: float | None,
    scale_nodata: float | None,
) -> ProbabilityStats:
    """Mean and max probability and the distinct winning scales over the masked valid pixels."""
    if not (mask.shape == prob.shape == scale.shape):
        raise InputError(
            f"mask, probability and scale windows must have one shape, "
            f"{mask.shape}, {prob.shape} and {scale.shape} are given"
        )
    inside = prob[mask & _valid(prob, prob_nodata)].astype(np.float64)
    won = scale[mask & _valid(scale, scale_nodata)]
    scales = tuple(sorted({float(s) for s in np.unique(won) if s > 0}, reverse=True))
    if inside.size == 0:
        return ProbabilityStats(math.nan, math.nan, scales)
    return ProbabilityStats(float(inside.mean()), float(inside.max()), scales)


def format_scales(scales: Iterable[float]) -> str:
    """``"1.0,0.5"``: float32 scale values shown as the decimal they were written from."""
    return ",".join(repr(float(f"{s:.6g}")) for s in scales)


@dataclass(frozen=True)
class TileWindow:
    """A committed tile: its id, its pixel window in the mosaic's grid, its file."""

    tile_id: str
    window: Window
    uri: str


class TileIndex:
    """The tiles that share pixels with a window; footprints bucketed in square cells."""

    def __init__(self, tiles: Sequence[TileWindow], *, cell: int | None = None) -> None:
        self._tiles = list(tiles)
        sizes = [max(t.window.height, t.window.width) for t in self._tiles]
        self._cell = max(1, cell or (max(sizes) if sizes else 1))
        self._cells: dict[tuple[int, int], list[int]] = {}
        for i, t in enumerate(self._tiles):
            for key in self._keys(t.window):
                self._cells.setdefault(key, []).append(i)

    def __len__(self) -> int:
        return len(self._tiles)

    def _keys(self, w: Window) -> Iterable[tuple[int, int]]:
        n = self._cell
        for r in range(w.row // n, (w.row_stop - 1) // n + 1):
            for c in range(w.col // n, (w.col_stop - 1) // n + 1):
                yield r, c

    def query(self, window: Window) -> list[TileWindow]:
        """Tiles sharing at least one pixel with ``window``, by tile id."""
        if window.is_empty:
            return []
        found = {i for key in self._keys(window) for i in self._cells.get(key, ())}
        hits = [self._tiles[i] for i in found if self._tiles[i].window.intersects(window)]
        return sorted(hits, key=lambda t: t.tile_id)


TileReader = Callable[[TileWindow, Window], tuple[np.ndarray, float | None]]


def detecting_tiles(
    window: Window,
    mask: np.ndarray,
    *,
    index: TileIndex,
    threshold: float,
    read_tile: TileReader,
) -> list[str]:
    """Ids of the tiles whose own probability reaches ``threshold`` on a masked pixel.

    ``read_tile(tile, local)`` returns band 1 (probability) of ``local`` (a window in the
    tile's own grid) and the tile's NoData value.
    """
    ids = []
    for tile in index.query(window):
        shared = tile.window.intersection(window)
        assert shared is not None
        sub = mask[shared.relative_to(window).slices]
        if not sub.any():
            continue
        prob, nodata = read_tile(tile, shared.relative_to(tile.window))
        hit = sub & _valid(prob, nodata) & (prob >= threshold)
        if hit.any():
            ids.append(tile.tile_id)
    return ids


@dataclass(frozen=True)
class PolygonRecord:
    """One slump polygon (EPSG:3413 MultiPolygon) and the attributes written with it."""

    geometry: MultiPolygon
    rts_id: int
    area_m2: float
    perimeter_m: float
    centroid_lat: float
    centroid_lon: float
    mean_prob: float
    max_prob: float
    detection_scale: str
    tile_ids: str
    region: str = ""


def order_key(geom: BaseGeometry) -> tuple[float, float, float, float, bytes]:
    """Stable reading order: north to south by top edge, then west to east (ties: bounds, WKB)."""
    minx, miny, maxx, maxy = geom.bounds
    return (-maxy, minx, -miny, maxx, shapely.to_wkb(geom, output_dimension=2))
