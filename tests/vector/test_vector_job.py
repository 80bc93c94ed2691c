"""A region vectorised on hand-built mosaics and tiles; the GeoPackage read back by GDAL."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from vector_support import (
    RES,
    X0,
    Y0,
    grid_for,
    write_region,
    write_run_log,
    write_tif,
    write_tile,
)

from tilecast.errors import InputError
from tilecast.grid import OffGridError, Window, window_bounds
from tilecast.vector import (
    LAYER,
    PREDICTIONS_PATH,
    TileIndexEntry,
    geodesic_area_perimeter,
    read_tile_index,
    vectorize_output,
    vectorize_region,
    write_predictions,
)
from tilecast.vector.job import FIELDS

H, W = 64, 80
THRESHOLD = 0.6
# tile id -> (row, col, height, width) in the region's grid; r0_c0 and r0_c1 overlap 8 columns
TILES = {
    "r0_c0": (0, 0, 40, 40),
    "r0_c1": (0, 32, 40, 40),
    "r1_c0": (32, 0, 32, 40),
}


@dataclass
class Region:
    uris: dict[str, str]
    tiles: list[TileIndexEntry]
    prob: np.ndarray


def build_region(root: Path, region: str = "a", *, row: int = 0) -> Region:
    """Three slumps (P1 an L across the tile overlap, P2 in r0_c1, P3 two pixels in r1_c0).

    Per-tile probabilities are built first; the mosaic is their pixel-wise maximum.
    """
    tile_prob = {k: np.zeros((H, W), np.float32) for k in TILES}
    scale = np.full((H, W), 1.0, np.float32)
    binary = np.zeros((H, W), np.uint8)
    # P1: rows 4..13, cols 28..37, without its top-right 4 x 4 corner (84 px)
    binary[4:14, 28:38] = 1
    binary[4:8, 34:38] = 0
    for k in ("r0_c0", "r0_c1"):
        tile_prob[k][binary == 1] = 0.55
    tile_prob["r0_c0"][10, 30] = 0.8  # r0_c0 detects P1
    tile_prob["r0_c0"][12, 36] = 0.7
    tile_prob["r0_c1"][12, 36] = 0.58  # r0_c1 stays below the threshold inside P1 ...
    tile_prob["r0_c1"][5, 35] = 0.95  # ... and reaches it only outside P1, inside its bbox
    scale[4:14, 33:38] = 0.5
    # P2: rows 20..25, cols 50..59 (60 px), seen by r0_c1 only, won at scale 0.5
    binary[20:26, 50:60] = 1
    tile_prob["r0_c1"][20:26, 50:60] = 0.9
    scale[20:26, 50:60] = 0.5
    # P3: two pixels (about 17.7 m2 on the ellipsoid)
    binary[50, 5:7] = 1
    tile_prob["r1_c0"][50, 5:7] = 0.65
    # keep only each tile's footprint, then merge by maximum
    prob = np.full((H, W), -1.0, np.float32)
    for k, (r, c, h, w) in TILES.items():
        inside = np.zeros((H, W), bool)
        inside[r : r + h, c : c + w] = True
        tile_prob[k][~inside] = -1
        prob = np.maximum(prob, tile_prob[k])
    prob[13, 28] = -1  # a NoData pixel inside P1 (binary says 1): ignored by the statistics
    scale[prob == -1] = -1
    binary[(prob == -1) & (binary == 0)] = 255
    uris = write_region(root / "merged", region, binary, prob, scale)
    for path in uris.values():  # move the region to its place in the basemap grid
        _shift(Path(path), row)
    entries = []
    for k, (r, c, h, w) in TILES.items():
        tile_id = f"{region}_{k}"
        uri = write_tile(
            root / "tiles",
            tile_id,
            tile_prob[k][r : r + h, c : c + w],
            scale[r : r + h, c : c + w],
            row=row + r,
            col=c,
        )
        bounds = window_bounds(grid_for(1, 1), Window(row + r, c, h, w))
        entries.append(TileIndexEntry(tile_id, bounds, uri, region))
    return Region(uris, entries, prob)


def _shift(path: Path, row: int) -> None:
    if row:
        with rasterio.open(path) as src:
            data, nodata = src.read(), src.nodata
        write_tif(path, data, nodata=nodata, row=row)


def run_region(region: Region, **kwargs) -> list:
    u = region.uris
    options = {"tiles": region.tiles, "threshold": THRESHOLD, "block": 16, **kwargs}
    return vectorize_region(u["binary"], u["prob"], u["scale"], **options)


@pytest.fixture
def region(tmp_path: Path) -> Region:
    return build_region(tmp_path)


def test_attributes_on_hand_built_data(region: Region) -> None:
    records = run_region(region)
    assert [r.rts_id for r in records] == [1, 2, 3]  # north to south
    p1, p2, p3 = records
    assert round(p1.geometry.area / RES**2) == 84
    inside = [0.55] * 81 + [0.8, 0.7]  # 84 px, one of them NoData
    expected = np.array(inside, np.float32).astype(np.float64)
    assert p1.mean_prob == pytest.approx(expected.mean(), rel=1e-12)
    assert p1.max_prob == pytest.approx(float(np.float32(0.8)))
    assert p1.detection_scale == "1.0,0.5"
    assert p1.tile_ids == "a_r0_c0"  # r0_c1's 0.95 lies in P1's bbox but not in P1
    assert (p2.mean_prob, p2.detection_scale, p2.tile_ids) == (
        pytest.approx(float(np.float32(0.9))),
        "0.5",
        "a_r0_c1",
    )
    assert (p3.detection_scale, p3.tile_ids) == ("1.0", "a_r1_c0")
    for r in records:
        area, perimeter = geodesic_area_perimeter(r.geometry)
        assert (r.area_m2, r.perimeter_m) == (area, perimeter)
        assert r.area_m2 < r.geometry.area  # south of 70 N the planar area is too large
        assert r.centroid_lat == pytest.approx(67.5, abs=0.01)
        assert r.centroid_lon == pytest.approx(-135.5, abs=0.01)
    assert p2.area_m2 == pytest.approx(60 * RES**2 / 1.0165, rel=1e-3)


def test_a_lower_threshold_lists_more_tiles(region: Region) -> None:
    p1 = run_region(region, threshold=0.58)[0]
    assert p1.tile_ids == "a_r0_c0,a_r0_c1"


def test_block_size_does_not_change_the_records(region: Region) -> None:
    small = run_region(region, block=7)
    big = run_region(region, block=10_000)
    assert small == big


def test_min_area_filter_uses_the_geodesic_area(region: Region) -> None:
    kept = run_region(region, min_area_m2=50.0)
    assert [round(r.geometry.area / RES**2) for r in kept] == [84, 60]
    assert [r.rts_id for r in kept] == [1, 2]
    p3_area = run_region(region)[2].area_m2
    assert p3_area < 18.0 < p3_area * 1.02  # 2 px = 18 m2 planar
    assert len(run_region(region, min_area_m2=p3_area)) == 3  # the bound is inclusive
    assert len(run_region(region, min_area_m2=18.0)) == 2  # planar area would keep P3


def test_mosaics_on_different_grids_are_refused(region: Region, tmp_path: Path) -> None:
    other = write_tif(tmp_path / "other.tif", np.zeros((H, W), np.float32), nodata=-1, col=1)
    u = region.uris
    with pytest.raises(InputError, match="not on the pixel grid"):
        vectorize_region(u["binary"], str(other), u["scale"], tiles=[], threshold=0.5)
    with pytest.raises(InputError, match=r"threshold must be in \(0, 1\], 0 is given"):
        vectorize_region(u["binary"], u["prob"], u["scale"], tiles=[], threshold=0)


def test_an_off_grid_tile_is_refused(region: Region) -> None:
    x0, y0, x1, y1 = region.tiles[0].bounds
    bad = TileIndexEntry("bad", (x0 + 1.0, y0, x1 + 1.0, y1), region.tiles[0].uri)
    with pytest.raises(OffGridError, match="tile bad"):
        run_region(region, tiles=[bad])


def read_back(path: Path) -> tuple[gpd.GeoDataFrame, dict]:
    frame = gpd.read_file(path, layer=LAYER)
    info = pyogrio.read_info(path, layer=LAYER)
    return frame, info


def check_schema(frame: gpd.GeoDataFrame, info: dict) -> None:
    assert info["layer_name"] == LAYER
    assert info["crs"] == "EPSG:3413" and frame.crs.to_epsg() == 3413
    assert info["geometry_type"] == "MultiPolygon"
    names = list(FIELDS)
    assert list(info["fields"]) == names
    assert list(frame.columns) == [*names, "geometry"]
    ogr = {"int64": "OFTInteger64", "float64": "OFTReal", "str": "OFTString"}
    assert list(info["ogr_types"]) == [ogr[t] for t in FIELDS.values()]
    assert list(info["dtypes"]) == [
        {"int64": "int64", "float64": "float64", "str": "object"}[t] for t in FIELDS.values()
    ]
    assert frame["rts_id"].dtype == np.int64
    for name, kind in FIELDS.items():
        if kind == "float64":
            assert frame[name].dtype == np.float64
        if kind == "str":
            assert all(isinstance(v, str) for v in frame[name])


def test_geopackage_reads_back_with_geopandas_and_gdal(region: Region, tmp_path: Path) -> None:
    records = run_region(region)
    path = tmp_path / PREDICTIONS_PATH
    write_predictions(records, str(path))
    frame, info = read_back(path)
    check_schema(frame, info)
    assert info["features"] == 3
    assert list(frame["rts_id"]) == [1, 2, 3]
    assert list(frame["tile_ids"]) == ["a_r0_c0", "a_r0_c1", "a_r1_c0"]
    assert list(frame["detection_scale"]) == ["1.0,0.5", "0.5", "1.0"]
    for geom, record in zip(frame.geometry, records, strict=True):
        assert geom.geom_type == "MultiPolygon"
        assert geom.normalize().equals(record.geometry)
    assert list(frame["area_m2"]) == [r.area_m2 for r in records]
    assert [p.name for p in path.parent.iterdir()] == ["rts_predictions.gpkg"]  # no leftovers


def test_an_empty_layer_keeps_its_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.gpkg"
    write_predictions([], str(path))
    frame, info = read_back(path)
    check_schema(frame, info)
    assert len(frame) == 0


def test_repeated_ids_are_refused(region: Region, tmp_path: Path) -> None:
    records = run_region(region)
    with pytest.raises(InputError, match=r"repeated: \[1\]"):
        write_predictions([records[0], records[0]], str(tmp_path / "x.gpkg"))


def build_output(root: Path) -> None:
    """Two regions ("a" at the origin, "b" 100 rows south) and a run log of two shards."""
    a = build_region(root, "a")
    b = build_region(root, "b", row=100)
    done = {t.tile_id: {"status": "done", "detected": True, "region": "a"} for t in a.tiles}
    shard2 = {t.tile_id: {"status": "done", "detected": True, "region": "b"} for t in b.tiles}
    shard2["b_r9_c9"] = {"status": "skipped", "reason": "all NoData", "region": "b"}
    write_run_log(root / "logs", done, threshold=THRESHOLD, name="inference_log.s0.json")
    write_run_log(root / "logs", shard2, threshold=THRESHOLD, name="inference_log.s1.json")


def test_vectorize_output_writes_one_layer_for_all_regions(tmp_path: Path) -> None:
    build_output(tmp_path)
    result = vectorize_output(str(tmp_path), min_area_m2=50.0, block=16)
    assert result.per_region == {"a": 2, "b": 2}
    assert result.n_polygons == 4
    frame, info = read_back(tmp_path / PREDICTIONS_PATH)
    check_schema(frame, info)
    assert result.uri == str(tmp_path / PREDICTIONS_PATH)
    assert list(frame["rts_id"]) == [1, 2, 3, 4]
    assert list(frame["region"]) == ["a", "a", "b", "b"]
    assert list(frame["tile_ids"]) == ["a_r0_c0", "a_r0_c1", "b_r0_c0", "b_r0_c1"]
    assert result.total_area_km2 == pytest.approx(frame["area_m2"].sum() / 1e6)
    assert frame.geometry.iloc[2].bounds[3] == pytest.approx(Y0 - 104 * RES)  # b is south
    only_b = vectorize_output(str(tmp_path), threshold=0.58, regions=["b"], block=16)
    assert only_b.per_region == {"b": 3}
    frame = gpd.read_file(tmp_path / PREDICTIONS_PATH)
    assert frame["tile_ids"].iloc[0] == "b_r0_c0,b_r0_c1"
    assert list(frame["rts_id"]) == [1, 2, 3]


def test_vectorize_output_errors_name_what_is_missing(tmp_path: Path) -> None:
    build_output(tmp_path)
    with pytest.raises(InputError, match=r"no binary mosaic for region\(s\) \['c'\]"):
        vectorize_output(str(tmp_path), regions=["c"])
    for log in (tmp_path / "logs").iterdir():
        log.unlink()
    with pytest.raises(InputError, match="no run log"):
        vectorize_output(str(tmp_path))


def test_tile_index_from_the_run_logs(tmp_path: Path) -> None:
    build_output(tmp_path)
    log = tmp_path / "logs" / "inference_log.s0.json"
    data = json.loads(log.read_text())
    data["tiles"]["a_r1_c0"]["detected"] = False
    log.write_text(json.dumps(data))
    every = read_tile_index(str(tmp_path))
    assert [t.tile_id for t in every] == [
        "a_r0_c0", "a_r0_c1", "a_r1_c0", "b_r0_c0", "b_r0_c1", "b_r1_c0",
    ]  # fmt: skip
    assert every[4].bounds == (X0 + 32 * RES, Y0 - 140 * RES, X0 + 72 * RES, Y0 - 100 * RES)
    assert every[4].region == "b"
    # a tile that found nothing at the run's threshold cannot reach a higher one: not opened
    at_run = read_tile_index(str(tmp_path), regions=["a"], threshold=THRESHOLD)
    assert [t.tile_id for t in at_run] == ["a_r0_c0", "a_r0_c1"]
    lower = read_tile_index(str(tmp_path), regions=["a"], threshold=0.5)
    assert [t.tile_id for t in lower] == ["a_r0_c0", "a_r0_c1", "a_r1_c0"]


def test_tiles_without_a_region_belong_to_region_all(tmp_path: Path) -> None:
    a = build_region(tmp_path, "all")
    write_run_log(tmp_path / "logs", {t.tile_id: {"status": "done"} for t in a.tiles})
    tiles = read_tile_index(str(tmp_path), regions=["all"])
    assert [(t.tile_id, t.region) for t in tiles] == [
        ("all_r0_c0", "all"), ("all_r0_c1", "all"), ("all_r1_c0", "all"),
    ]  # fmt: skip
    assert read_tile_index(str(tmp_path), regions=["a"]) == []
    result = vectorize_output(str(tmp_path), block=16)  # threshold from the run log (0.5)
    assert result.per_region == {"all": 3}
    frame = gpd.read_file(tmp_path / PREDICTIONS_PATH)
    assert list(frame["tile_ids"]) == ["all_r0_c0,all_r0_c1", "all_r0_c1", "all_r1_c0"]


def test_nan_statistics_survive_the_round_trip(region: Region, tmp_path: Path) -> None:
    record = replace(run_region(region)[0], mean_prob=math.nan, max_prob=math.nan)
    path = tmp_path / "nan.gpkg"
    write_predictions([record], str(path))
    frame = gpd.read_file(path)
    assert math.isnan(frame["mean_prob"].iloc[0])
    assert shapely.get_num_geometries(frame.geometry.iloc[0]) == 1
