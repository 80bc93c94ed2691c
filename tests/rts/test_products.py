"""The whole chain on a small run: tiles -> region COGs -> GeoPackage -> run log totals -> report."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate
from rts_support import make_config, smooth_rgb, tiles_for, write_quad_basemap

from tilecast.apps.rts.config import ProductsSection
from tilecast.apps.rts.job import RtsJob
from tilecast.apps.rts.products import make_products
from tilecast.grid import Tile


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, make_bundle):
    root = tmp_path_factory.mktemp("products")
    image = smooth_rgb(5, 256, 288)
    basemap = write_quad_basemap(root / "basemap", image, quad=128)
    tiles = tiles_for(image, tile_size=64, stride=32)
    # two regions: west and east halves of the tile list
    tiles = [
        Tile(t.tile_id, t.minx, t.miny, t.maxx, t.maxy, "west" if i % 9 < 4 else "east")
        for i, t in enumerate(tiles)
    ]
    config = make_config(
        bundle=make_bundle("export"), basemap=basemap, out=root / "out", threshold=0.5
    )
    RtsJob(config, tiles).run()
    made = make_products(str(root / "out"), ProductsSection(min_area_m2=0.0), basemap=str(basemap))
    return root / "out", made


def test_every_region_has_valid_cogs_with_the_specified_profile(finished_run):
    out, made = finished_run
    assert set(made.regions) == {"west", "east"}
    for region in made.regions:
        for layer, dtype, nodata in [
            ("prob", "float32", -1.0),
            ("binary", "uint8", 255),
            ("scale", "float32", -1.0),
        ]:
            path = out / "merged" / f"region_{region}_{layer}.tif"
            valid, errors, _ = cog_validate(str(path))
            assert valid, errors
            with rasterio.open(path) as src:
                assert src.dtypes[0] == dtype and src.nodata == nodata
                assert src.crs.to_epsg() == 3413 and src.res == (3.0, 3.0)
                assert src.compression.name == "lzw"
                assert src.overviews(1)
        with (
            rasterio.open(out / "merged" / f"region_{region}_prob.tif") as p,
            rasterio.open(out / "merged" / f"region_{region}_binary.tif") as b,
        ):
            prob, binary = p.read(1), b.read(1)
            assert ((prob >= 0) & (prob <= 1) | (prob == -1)).all()
            np.testing.assert_array_equal(binary == 1, prob >= 0.5)
            np.testing.assert_array_equal(binary == 255, prob == -1)


def test_polygons_read_back_with_geopandas_and_gdal(finished_run):
    out, made = finished_run
    path = out / "vectors" / "rts_predictions.gpkg"
    frame = gpd.read_file(path)
    assert frame.crs.to_epsg() == 3413
    assert len(frame) == made.n_polygons > 0
    assert list(frame.columns[:-1]) == [
        "rts_id", "area_m2", "perimeter_m", "centroid_lat", "centroid_lon", "mean_prob",
        "max_prob", "detection_scale", "tile_ids", "region",
    ]  # fmt: skip
    info = pyogrio.read_info(path)
    assert info["geometry_type"] == "MultiPolygon"
    assert frame["rts_id"].is_unique and (frame["max_prob"] >= 0.5).all()
    assert frame["centroid_lat"].between(60, 75).all()
    assert frame["area_m2"].sum() / 1e6 == pytest.approx(made.total_area_km2, rel=1e-6)


def test_run_log_gets_the_total_area_and_the_report_exists(finished_run):
    out, made = finished_run
    log = json.loads((out / "logs" / "inference_log.json").read_text())
    assert log["total_rts_area_km2"] == pytest.approx(made.total_area_km2, abs=1e-6)
    assert log["final_check"]["n_missing"] == 0
    html = (out / "report" / "index.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
    assert f"{made.n_polygons}" in html
