"""Tile files in each encoding: what GDAL users read, what the job writes, and products from
quantised tiles against a float32 run of the same job."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rts_support import make_config, smooth_rgb, tiles_for, write_quad_basemap

from tilecast.apps.rts.config import parse_config
from tilecast.apps.rts.job import RtsJob
from tilecast.apps.rts.plan import WorkItem
from tilecast.apps.rts.sink import TileSink
from tilecast.apps.rts.tile_codec import get_encoding, quantise
from tilecast.apps.rts.tiles import TilePayload
from tilecast.errors import ContractError, InputError
from tilecast.grid import PixelGrid, Tile, Window, snap_bbox, window_bounds, window_grid
from tilecast.io.tile_files import read_tile_window
from tilecast.merge import merge_output
from tilecast.predict.batched import TileOutput
from tilecast.vector import vectorize_output

SCALES = (1.0, 0.5)
H, W = 48, 64
GRID = PixelGrid(
    x0=-2_400_000.0, y0=-300_000.0, res_x=3.0, res_y=3.0, width=W, height=H, crs="EPSG:3413"
)


def smooth_probability(seed: int, shape=(H, W)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    prob = 0.5 + 0.45 * np.sin(rows / 7.0 + seed) * np.cos(cols / 5.0)
    return (prob + rng.normal(0, 0.01, shape)).clip(0, 1).astype(np.float32)


def commit(root: Path, encoding: str, prob, index, valid, *, threshold: float = 0.5):
    window = Window(0, 0, H, W)
    tile = Tile("t1", *window_bounds(GRID, window), region="r")
    payload = TilePayload(item=WorkItem(tile=tile, window=window, views=()), sentinel_counts={})
    out = TileOutput(key="t1", probability=prob, winning_scale=index, valid=valid, payload=payload)
    sink = TileSink(
        str(root),
        grid=GRID,
        scales=SCALES,
        threshold=threshold,
        tags={"tilecast_model": "m 1"},
        encoding=encoding,
    )
    return sink.commit(out), Path(sink.path_for("t1"))


def inputs(seed: int = 0):
    prob = smooth_probability(seed)
    index = (np.random.default_rng(seed).random((H, W)) > 0.6).astype(np.uint8)
    valid = np.ones((H, W), bool)
    valid[:10, :20] = False
    return prob, index, valid


@pytest.mark.parametrize(("encoding", "dtype", "nodata"), [("uint16", "uint16", 65535), ("uint8", "uint8", 255)])  # fmt: skip
def test_gdal_users_read_true_probabilities_from_the_band_scale(tmp_path, encoding, dtype, nodata):
    prob, index, valid = inputs()
    done, path = commit(tmp_path, encoding, prob, index, valid)
    assert done.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    bound = get_encoding(encoding).max_error
    with rasterio.open(path) as src:
        assert src.dtypes == (dtype, dtype) and src.nodata == nodata
        assert src.descriptions == ("probability", "winning_scale")
        assert src.compression.name == "zstd"
        assert src.scales[1] == 1.0 and src.offsets == (0.0, 0.0)
        assert src.scales[0] == pytest.approx(1 / get_encoding(encoding).levels, rel=1e-15)
        tags = src.tags()
        assert tags["tile_encoding"] == encoding
        assert tags["winning_scale_codes"] == "1.0,0.5"
        assert tags["tilecast_model"] == "m 1" and tags["tile_id"] == "t1"
        # the generic recipe: masked read, then value = stored * scale + offset
        stored = src.read(masked=True)
        values = stored[0].astype(np.float64) * src.scales[0] + src.offsets[0]
    np.testing.assert_array_equal(stored.mask[0], ~valid)
    np.testing.assert_array_equal(stored.mask[1], ~valid)
    assert np.abs(values[valid] - prob[valid]).max() <= bound
    codes = [float(v) for v in tags["winning_scale_codes"].split(",")]
    np.testing.assert_array_equal(
        np.take(codes, stored[1].data[valid]), np.take(SCALES, index[valid])
    )


def test_float32_tiles_hold_the_values_as_before(tmp_path):
    prob, index, valid = inputs(1)
    _, path = commit(tmp_path, "float32", prob, index, valid)
    with rasterio.open(path) as src:
        assert src.dtypes == ("float32", "float32") and src.nodata == -1.0
        assert src.compression.name == "lzw"
        assert src.scales == (1.0, 1.0) and src.tags()["tile_encoding"] == "float32"
        data = src.read()
    expected = np.stack([prob, np.take(np.float32(SCALES), index)])
    expected[:, ~valid] = -1
    np.testing.assert_array_equal(data, expected)


@pytest.mark.parametrize("encoding", ["uint16", "uint8", "float32"])
def test_the_tile_reader_decodes_every_encoding_from_the_file(tmp_path, encoding):
    prob, index, valid = inputs(2)
    _, path = commit(tmp_path, encoding, prob, index, valid)
    window = Window(5, 7, 30, 40)
    got = read_tile_window(str(path), window, grid=GRID)
    rows, cols = window.slices
    want_prob = np.where(valid, prob, -1)[rows, cols]
    want_scale = np.where(valid, np.take(np.float32(SCALES), index), -1)[rows, cols]
    assert got.dtype == np.float32 and got.shape == (2, 30, 40)
    assert np.abs(got[0] - want_prob).max() <= get_encoding(encoding).max_error
    np.testing.assert_array_equal(got[0] == -1, want_prob == -1)
    np.testing.assert_array_equal(got[1], want_scale)


def test_qc_is_the_same_in_every_encoding(tmp_path):
    prob, index, valid = inputs(3)
    prob[20, 30], prob[21, 30], prob[22, 30] = np.nan, 1.5, -0.5
    prob[0, 0] = np.nan  # invalid: fixed, not counted
    for encoding in ("uint16", "uint8", "float32"):
        done, path = commit(tmp_path / encoding, encoding, prob, index, valid)
        assert (done.n_non_finite, done.n_clipped) == (1, 2)
        got = read_tile_window(str(path), GRID.window, grid=GRID)
        assert got[0][20, 30] == 0.0 and got[0][21, 30] == 1.0 and got[0][22, 30] == 0.0
        assert got[0][0, 0] == -1.0


def test_detected_is_judged_on_the_stored_probabilities(tmp_path):
    # every reader (the binary mosaic, the vectoriser) sees the stored value: a pixel at
    # 0.5 - 3e-6 is stored as exactly 0.5 in uint16, so the tile detects at 0.5
    prob = np.full((H, W), 0.2, np.float32)
    prob[3, 4] = 0.5 - 3e-6
    index, valid = np.zeros((H, W), np.uint8), np.ones((H, W), bool)
    as_float, _ = commit(tmp_path / "f", "float32", prob, index, valid)
    as_uint16, path = commit(tmp_path / "u", "uint16", prob, index, valid)
    assert not as_float.detected
    assert as_uint16.detected
    assert read_tile_window(str(path), GRID.window, grid=GRID)[0][3, 4] == 0.5
    below, _ = commit(tmp_path / "b", "uint16", np.full((H, W), 0.2, np.float32), index, valid)
    assert not below.detected


def test_a_file_of_another_format_is_refused_naming_the_difference(tmp_path):
    prob, index, valid = inputs(4)
    _, path = commit(tmp_path, "uint16", prob, index, valid)
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(winning_scale_codes="1.0;0.5")
    with pytest.raises(InputError, match=r"t1.tif: tile file does not match the merge plan: .*winning_scale_codes='1.0;0.5'"):  # fmt: skip
        read_tile_window(str(path), GRID.window, grid=GRID)


# -- the config ------------------------------------------------------------------------------


def test_the_encoding_is_a_config_key_with_uint16_by_default():
    base = "model: {bundle: b}\ninput: {basemap: m, basemap_version: v}\n"
    assert parse_config(base + "output: {path: o}\n").output.tile_encoding == "uint16"
    config = parse_config(base + "output: {path: o, tile_encoding: uint8}\n")
    assert config.output.tile_encoding == "uint8"
    with pytest.raises(ContractError, match=r"output.tile_encoding: .*'uint16', 'uint8' or 'float32' \(got 'int12'\)"):  # fmt: skip
        parse_config(base + "output: {path: o, tile_encoding: int12}\n")


# -- the job: quantised runs against a float32 run ---------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_bundle):
    """The same job in each encoding (tiles only), with a NoData corner in the basemap."""
    root = tmp_path_factory.mktemp("encodings")
    image = smooth_rgb(11, 160, 192)
    image[:, :40, :56] = 0  # NoData (0 in every band)
    basemap = write_quad_basemap(root / "basemap", image, quad=96)
    tiles = tiles_for(image, tile_size=64, stride=32)
    outs = {}
    for encoding in ("float32", "uint16", "uint8"):
        out = root / encoding
        config = make_config(
            bundle=make_bundle("export"),
            basemap=basemap,
            out=out,
            tile_encoding=encoding,
            threshold=1.0,  # nothing is "detected": no tile is left out of tile_ids below
        )
        RtsJob(config, tiles).run()
        outs[encoding] = out
    return outs, tiles, basemap, make_bundle("export")


def read_tiles(out: Path, tiles) -> dict[str, np.ndarray]:
    result = {}
    for tile in tiles:
        path = out / "tiles" / f"{tile.tile_id}.tif"
        if path.exists():
            with rasterio.open(path) as src:
                grid = PixelGrid.from_affine(
                    *tuple(src.transform)[:6], width=src.width, height=src.height, crs="EPSG:3413"
                )
            result[tile.tile_id] = read_tile_window(str(path), grid.window, grid=grid)
    return result


def quantised(values: np.ndarray, encoding: str) -> np.ndarray:
    """float32 probabilities (NoData -1) as the codec stores and decodes them."""
    fmt = get_encoding(encoding).format_for(SCALES)
    valid = values != -1
    codes = np.empty(values.shape, fmt.encoding.dtype)
    quantise(np.where(valid, values, 0), fmt.encoding.levels, out=codes)
    return np.where(valid, fmt.decode_probability(codes), np.float32(-1))


@pytest.mark.parametrize("encoding", ["uint16", "uint8"])
def test_each_quantised_tile_is_the_float32_tile_quantised(runs, encoding):
    outs, tiles, _, _ = runs
    exact = read_tiles(outs["float32"], tiles)
    coded = read_tiles(outs[encoding], tiles)
    assert set(coded) == set(exact) and len(exact) > 10
    bound = get_encoding(encoding).max_error
    for tile_id, f32 in exact.items():
        got = coded[tile_id]
        np.testing.assert_array_equal(got[0] == -1, f32[0] == -1)
        np.testing.assert_array_equal(got[1], f32[1])  # winning scales exact
        valid = f32[0] != -1
        assert np.abs(got[0][valid] - f32[0][valid]).max() <= bound
        # what the sink wrote is the codec's quantisation of the same model output
        np.testing.assert_array_equal(got[0], quantised(f32[0], encoding))
    with rasterio.open(next((outs[encoding] / "tiles").glob("*.tif"))) as src:
        assert src.dtypes[0] == encoding


def test_the_encoding_is_part_of_the_run_settings(runs):
    outs, tiles, basemap, bundle = runs
    config = make_config(bundle=bundle, basemap=basemap, out=outs["uint16"], tile_encoding="uint8")
    with pytest.raises(InputError, match="holds a run with another tile list or settings"):
        RtsJob(config, tiles).run()
    log = json.loads((outs["uint16"] / "logs" / "inference_log.json").read_text())
    assert log["n_tiles_processed"] > 0


def gap_threshold(values: np.ndarray, bound: float) -> float:
    """A threshold near the upper quartile with no value within ``bound`` of it."""
    unique = np.unique(values)
    gaps = np.flatnonzero(np.diff(unique.astype(np.float64)) > 4 * bound)
    start = np.searchsorted(unique, np.quantile(unique, 0.75))
    k = gaps[gaps >= start][0]
    return float((unique[k] + unique[k + 1]) / 2)


def test_products_from_uint16_tiles_match_the_float32_run(runs):
    """Merged probability within the bound (and exactly the float32 mosaic quantised), the
    binary mosaic and the polygons identical at a threshold no tile value is near, winning
    scales identical except where tiles tie once quantised."""
    outs, tiles, _, _ = runs
    bound = get_encoding("uint16").max_error
    exact = read_tiles(outs["float32"], tiles)
    values = np.concatenate([t[0][t[0] != -1] for t in exact.values()])
    threshold = gap_threshold(values, bound)
    assert not (np.abs(values.astype(np.float64) - threshold) <= 2 * bound).any()
    mosaics = {}
    polygons = {}
    for encoding in ("float32", "uint16"):
        out = str(outs[encoding])
        (result,) = merge_output(out, threshold=threshold)
        vectorize_output(out, threshold=threshold)
        polygons[encoding] = gpd.read_file(outs[encoding] / "vectors" / "rts_predictions.gpkg")
        mosaics[encoding] = {}
        for layer in ("prob", "binary", "scale"):
            with rasterio.open(getattr(result, layer)) as src:
                mosaics[encoding][layer] = src.read(1)
                region_grid = PixelGrid.from_affine(
                    *tuple(src.transform)[:6], width=src.width, height=src.height, crs="EPSG:3413"
                )
    f32, u16 = mosaics["float32"], mosaics["uint16"]
    valid = f32["prob"] != -1
    np.testing.assert_array_equal(u16["prob"] == -1, ~valid)
    assert np.abs(u16["prob"][valid] - f32["prob"][valid]).max() <= bound
    np.testing.assert_array_equal(u16["prob"], quantised(f32["prob"], "uint16"))
    np.testing.assert_array_equal(u16["binary"], f32["binary"])
    assert (f32["binary"] == 1).any() and (f32["binary"] == 0).any()
    # winning scale: the same wherever no two tiles tie at the maximum once quantised
    tied = tie_pixels(outs["uint16"], tiles, u16["prob"])
    assert (u16["scale"] == f32["scale"])[~tied].all()
    a, b = polygons["float32"], polygons["uint16"]
    assert len(a) == len(b) > 0
    assert a.geometry.to_wkb().tolist() == b.geometry.to_wkb().tolist()
    assert a["tile_ids"].tolist() == b["tile_ids"].tolist()
    for column in ("mean_prob", "max_prob"):
        assert np.abs(a[column].to_numpy() - b[column].to_numpy()).max() <= bound
    # a polygon's detection_scale may differ only where it covers a pixel whose scale did
    changed = [shapely.box(*window_bounds(region_grid, Window(int(r), int(c), 1, 1))) for r, c in np.argwhere(u16["scale"] != f32["scale"])]  # fmt: skip
    differs = a["detection_scale"].to_numpy() != b["detection_scale"].to_numpy()
    for geom in a.geometry[differs]:
        assert any(geom.intersects(box) for box in changed)


def tie_pixels(out: Path, tiles, merged_prob: np.ndarray) -> np.ndarray:
    """Pixels where tiles with different winning scales reach the merged maximum: there the
    tie-break (larger scale) may pick another tile than the float32 run's strict maximum."""
    grid = PixelGrid(
        x0=-2_400_000.0, y0=-300_000.0, res_x=3.0, res_y=3.0, width=10**4, height=10**4,
        crs="EPSG:3413",
    )  # fmt: skip
    decoded = read_tiles(out, tiles)
    windows = {t.tile_id: snap_bbox(grid, t.minx, t.miny, t.maxx, t.maxy) for t in tiles}
    region = Window.bounding(windows[k] for k in decoded)
    assert window_grid(grid, region).shape == merged_prob.shape
    low = np.full(merged_prob.shape, np.inf, np.float32)
    high = np.full(merged_prob.shape, -np.inf, np.float32)
    for tile_id, (prob, scale) in decoded.items():
        rows, cols = windows[tile_id].relative_to(region).slices
        at_max = (prob == merged_prob[rows, cols]) & (prob != -1)
        low[rows, cols] = np.where(at_max, np.minimum(low[rows, cols], scale), low[rows, cols])
        high[rows, cols] = np.where(at_max, np.maximum(high[rows, cols], scale), high[rows, cols])
    return high > low
