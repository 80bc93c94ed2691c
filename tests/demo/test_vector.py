import geopandas as gpd
import pytest
from shapely.geometry import Polygon, box

from tilecast.errors import InputError, StorageError
from tilecast.io.vector import read_polygons, write_polygons


def test_polygons_and_attributes_round_trip(tmp_path):
    uri = tmp_path / "out" / "shapes.gpkg"
    shapes = [box(0, 0, 3, 3), Polygon([(10, 10), (16, 10), (13, 15)])]
    write_polygons(uri, shapes, crs="EPSG:3413", attributes={"rts_id": [1, 2], "kind": ["a", "b"]})
    frame = read_polygons(uri)
    assert isinstance(frame, gpd.GeoDataFrame)
    assert frame.crs.to_epsg() == 3413
    assert frame["rts_id"].tolist() == [1, 2]
    assert frame["kind"].tolist() == ["a", "b"]
    assert frame.geometry.iloc[1].equals(shapes[1])
    assert [p.name for p in uri.parent.iterdir()] == ["shapes.gpkg"]  # no temporary left


def test_rewrite_replaces_the_whole_file(tmp_path):
    uri = tmp_path / "shapes.gpkg"
    write_polygons(uri, [box(0, 0, 1, 1)] * 3, crs="EPSG:3413", attributes={"n": [1, 2, 3]})
    write_polygons(uri, [box(0, 0, 1, 1)], crs="EPSG:3413", attributes={"n": [9]})
    assert read_polygons(uri)["n"].tolist() == [9]


def test_empty_layer_keeps_its_crs(tmp_path):
    uri = tmp_path / "empty.gpkg"
    write_polygons(uri, [], crs="EPSG:3413", attributes={"rts_id": []})
    frame = read_polygons(uri)
    assert len(frame) == 0
    assert frame.crs.to_epsg() == 3413


def test_attribute_length_must_match(tmp_path):
    with pytest.raises(InputError, match=r"'rts_id' must have one value per geometry \(2\), 1"):
        write_polygons(
            tmp_path / "x.gpkg", [box(0, 0, 1, 1)] * 2, crs="EPSG:3413", attributes={"rts_id": [1]}
        )
    assert not list(tmp_path.iterdir())


def test_missing_file_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError, match=r"missing\.gpkg"):
        read_polygons(tmp_path / "missing.gpkg")
