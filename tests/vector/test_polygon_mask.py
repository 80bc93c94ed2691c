"""The attribute mask (pixel centres inside a lattice polygon) agrees with GDAL's rasterisation."""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from rasterio.features import geometry_mask, shapes
from shapely.geometry import shape

from tilecast.grid import PixelGrid, Window, window_transform
from tilecast.vector.attributes import polygon_mask


def test_polygon_mask_equals_gdal_rasterisation_on_lattice_polygons():
    rng = np.random.default_rng(7)
    grid = PixelGrid(
        x0=500.0, y0=9000.0, res_x=3.0, res_y=3.0, width=64, height=48, crs="EPSG:3413"
    )
    blobs = rng.random((48, 64)) > 0.55  # ragged shapes with holes and corner touches
    window = Window(row=5, col=9, height=30, width=40)
    a, b, c, d, e, f = window_transform(grid, window)
    transform = Affine(a, b, c, d, e, f)
    sub = blobs[5:35, 9:49].astype(np.uint8)
    checked = 0
    for geojson, _ in shapes(sub, mask=sub.astype(bool), connectivity=8, transform=transform):
        geom = shapely.make_valid(shape(geojson))
        ours = polygon_mask(grid, window, geom)
        gdal = geometry_mask([geom], out_shape=window.shape, transform=transform, invert=True)
        assert ours.shape == window.shape
        np.testing.assert_array_equal(ours, gdal)
        checked += int(ours.sum())
    assert checked == int(sub.sum())  # every object pixel was inside exactly one polygon
