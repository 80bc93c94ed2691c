"""Geodesic size against independent computations; pixel statistics on hand-built arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from pyproj import Geod, Proj, Transformer
from vector_support import CRS, RES, X0, Y0, grid_for

from tilecast.grid import Window
from tilecast.vector.attributes import (
    TileIndex,
    TileWindow,
    centroid_lat_lon,
    format_scales,
    geodesic_area_perimeter,
    order_key,
    pixel_stats,
    polygon_mask,
    polygon_window,
)

SIDE = 300.0  # a 300 m square whose upper-left corner is the test grid's origin, 67.5 N
SQUARE = shapely.box(X0, Y0 - SIDE, X0 + SIDE, Y0)


def equal_area_m2(geom: shapely.Geometry) -> float:
    """Independent: area in EPSG:6931 (Lambert azimuthal equal-area, WGS84), 1 m edges."""
    to_laea = Transformer.from_crs(CRS, "EPSG:6931", always_xy=True)
    dense = shapely.segmentize(geom, 1.0)
    return shapely.transform(
        dense, lambda c: np.column_stack(to_laea.transform(c[:, 0], c[:, 1]))
    ).area


def scale_factor(geom: shapely.Geometry) -> float:
    """EPSG:3413's point scale factor k at the centroid (conformal: lengths scale by k)."""
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(
        geom.centroid.x, geom.centroid.y
    )
    return Proj(CRS).get_factors(lon, lat).meridional_scale


def test_the_square_lies_at_67_5_north() -> None:
    lat, lon = centroid_lat_lon(SQUARE)
    assert lat == pytest.approx(67.5, abs=0.01)
    back = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(lon, lat)
    assert back == pytest.approx((SQUARE.centroid.x, SQUARE.centroid.y), abs=1e-6)


def test_geodesic_area_matches_an_equal_area_projection() -> None:
    area, _ = geodesic_area_perimeter(SQUARE)
    assert area == pytest.approx(equal_area_m2(SQUARE), rel=1e-3)
    assert area == pytest.approx(SIDE**2 / scale_factor(SQUARE) ** 2, rel=1e-3)


def test_geodesic_area_matches_geod_on_the_densified_corners() -> None:
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    ring = np.asarray(shapely.segmentize(SQUARE, 5.0).exterior.coords)
    lon, lat = to_lonlat.transform(ring[:, 0], ring[:, 1])
    expected, expected_perimeter = Geod(ellps="WGS84").polygon_area_perimeter(lon, lat)
    area, perimeter = geodesic_area_perimeter(SQUARE)
    assert area == pytest.approx(abs(expected), rel=1e-3)
    assert perimeter == pytest.approx(expected_perimeter, rel=1e-3)


def test_planar_polar_stereographic_area_is_off_by_more_than_one_percent() -> None:
    # EPSG:3413 is true to scale at 70 N; at 67.5 N its planar area is 1.65 % too large
    # (k = 1.0082, area factor k**2 = 1.0165): 90 000 m2 planar vs 88 540.7 m2 geodesic.
    area, _ = geodesic_area_perimeter(SQUARE)
    excess = SQUARE.area / area - 1
    assert 0.01 < excess < 0.02
    assert excess == pytest.approx(0.0165, abs=5e-4)


def test_perimeter_follows_the_conformal_scale() -> None:
    _, perimeter = geodesic_area_perimeter(SQUARE)
    assert perimeter == pytest.approx(4 * SIDE / scale_factor(SQUARE), rel=1e-4)


def test_holes_and_parts_and_orientation() -> None:
    inner = shapely.box(X0 + 100, Y0 - 200, X0 + 200, Y0 - 100)
    holed = SQUARE.difference(inner)
    area, perimeter = geodesic_area_perimeter(holed)
    outer_area, outer_perimeter = geodesic_area_perimeter(SQUARE)
    inner_area, inner_perimeter = geodesic_area_perimeter(inner)
    assert area == pytest.approx(outer_area - inner_area, rel=1e-9)
    assert perimeter == pytest.approx(outer_perimeter + inner_perimeter, rel=1e-9)
    assert area == pytest.approx(equal_area_m2(holed), rel=1e-3)
    reversed_rings = shapely.Polygon(
        list(holed.exterior.coords)[::-1], [list(holed.interiors[0].coords)[::-1]]
    )
    assert geodesic_area_perimeter(reversed_rings) == pytest.approx((area, perimeter))
    both = shapely.MultiPolygon([SQUARE, shapely.box(X0 + 1000, Y0 - 90, X0 + 1090, Y0)])
    assert geodesic_area_perimeter(both)[0] == pytest.approx(
        outer_area + geodesic_area_perimeter(both.geoms[1])[0], rel=1e-9
    )
    assert geodesic_area_perimeter(shapely.MultiPolygon()) == (0.0, 0.0)


def test_polygon_pixels_are_the_ones_whose_centre_is_inside() -> None:
    grid = grid_for(10, 10)
    # pixels (2..4, 3..5) plus (5, 3): an L
    geom = shapely.union(
        shapely.box(X0 + 3 * RES, Y0 - 5 * RES, X0 + 6 * RES, Y0 - 2 * RES),
        shapely.box(X0 + 3 * RES, Y0 - 6 * RES, X0 + 4 * RES, Y0 - 5 * RES),
    )
    window = polygon_window(grid, geom)
    assert window == Window(2, 3, 4, 3)
    mask = polygon_mask(grid, window, geom)
    expected = np.zeros((4, 3), bool)
    expected[:3, :] = True
    expected[3, 0] = True
    assert np.array_equal(mask, expected)


def test_pixel_stats_ignore_nodata_and_list_scales_largest_first() -> None:
    mask = np.array([[1, 1, 0], [1, 1, 1]], bool)
    prob = np.array([[0.5, 0.7, 0.99], [-1, np.nan, 0.6]], np.float32)
    scale = np.array([[0.5, 1.0, 2.0], [-1, 0.5, 0.25]], np.float32)
    stats = pixel_stats(mask, prob, scale, prob_nodata=-1, scale_nodata=-1)
    valid = np.array([0.5, 0.7, 0.6], np.float32).astype(np.float64)
    assert stats.mean_prob == pytest.approx(valid.mean(), rel=1e-12)
    assert stats.max_prob == pytest.approx(float(np.float32(0.7)), rel=1e-12)
    assert stats.scales == (1.0, 0.5, 0.25)
    empty = pixel_stats(mask & False, prob, scale, prob_nodata=-1, scale_nodata=-1)
    assert math.isnan(empty.mean_prob) and math.isnan(empty.max_prob) and empty.scales == ()


def test_scales_print_as_the_decimals_they_came_from() -> None:
    assert format_scales([1.0, 0.5]) == "1.0,0.5"
    assert format_scales(np.array([0.75, 0.3], np.float32).tolist()) == "0.75,0.3"
    assert format_scales([]) == ""


def test_tile_index_finds_the_tiles_sharing_pixels() -> None:
    tiles = [
        TileWindow("a", Window(0, 0, 40, 40), "a.tif"),
        TileWindow("b", Window(0, 32, 40, 40), "b.tif"),
        TileWindow("c", Window(40, 0, 40, 40), "c.tif"),
    ]
    index = TileIndex(tiles)
    assert [t.tile_id for t in index.query(Window(10, 33, 5, 5))] == ["a", "b"]
    assert [t.tile_id for t in index.query(Window(39, 39, 2, 1))] == ["a", "b", "c"]
    assert [t.tile_id for t in index.query(Window(0, 40, 40, 1))] == ["b"]
    assert index.query(Window(200, 200, 5, 5)) == []
    assert len(TileIndex([])) == 0 and TileIndex([]).query(Window(0, 0, 1, 1)) == []


def test_order_is_north_to_south_then_west_to_east() -> None:
    north = shapely.box(X0 + 100, Y0 - 10, X0 + 110, Y0)
    west = shapely.box(X0, Y0 - 60, X0 + 10, Y0 - 50)
    east = shapely.box(X0 + 50, Y0 - 60, X0 + 60, Y0 - 50)
    assert sorted([east, west, north], key=order_key) == [north, west, east]


def test_a_polygon_on_the_antimeridian() -> None:
    x, y = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(180.0, 67.5)
    square = shapely.box(x - 150, y - 150, x + 150, y + 150)
    _, lon = centroid_lat_lon(square)
    assert abs(lon) == pytest.approx(180.0, abs=1e-6)
    area, perimeter = geodesic_area_perimeter(square)
    assert area == pytest.approx(equal_area_m2(square), rel=1e-3)
    assert perimeter == pytest.approx(4 * SIDE / scale_factor(square), rel=1e-4)
