import geopandas as gpd
import numpy as np
import rasterio

from tilecast.demo.files import write_scene


def test_scene_files_read_back_with_gdal_and_geopandas(scene, tmp_path):
    paths = write_scene(scene, tmp_path / "demo")
    assert paths.image.name == "scene.tif" and paths.truth.name == "truth.gpkg"
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["scene.tif", "truth.gpkg"]

    with rasterio.open(paths.image) as src:
        assert src.driver == "GTiff"
        assert src.count == 3 and src.dtypes == ("uint8", "uint8", "uint8")
        assert src.crs.to_epsg() == 3413
        assert src.res == (3.0, 3.0)
        assert src.transform == scene.transform
        assert src.nodata == 0
        assert src.descriptions == ("R", "G", "B")
        assert np.array_equal(src.read(), scene.image)
        masks = src.dataset_mask()
    assert np.array_equal(masks == 0, scene.truth == 255)

    frame = gpd.read_file(paths.truth)
    assert frame.crs.to_epsg() == 3413
    assert len(frame) == len(scene.slumps)
    assert frame["slump_id"].tolist() == list(range(1, len(scene.slumps) + 1))
    for geometry, polygon in zip(frame.geometry, scene.slumps, strict=True):
        assert geometry.geom_type == "Polygon"
        assert geometry.symmetric_difference(polygon).area < 1e-6 * polygon.area
