"""The region mosaics are COGs with exactly the declared profile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from merge_support import GRID, make_tiles, write_tiles
from rasterio.crs import CRS
from rio_cogeo.cogeo import cog_validate

from tilecast.merge import merge_region, plan_region

PROFILES = {
    "prob": ("float32", -1.0, "probability"),
    "binary": ("uint8", 255.0, "rts_binary"),
    "scale": ("float32", -1.0, "winning_scale"),
}


@pytest.fixture(scope="module", params=["memory", "streaming"])
def mosaics(request, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp(f"cog-{request.param}")
    refs = write_tiles(root, make_tiles(6, 7, seed=11))  # 224 x 256 px, under one 512 block
    out = {name: root / "merged" / f"region_x_{name}.tif" for name in PROFILES}
    merge_region(
        plan_region(refs, grid=GRID, name="x"),
        out_prob=str(out["prob"]),
        out_binary=str(out["binary"]),
        out_scale=str(out["scale"]),
        threshold=0.375,
        strategy=request.param,
        block=48,
    )
    return out


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_mosaic_is_a_valid_cog_with_the_declared_profile(mosaics, name) -> None:
    path = mosaics[name]
    valid, errors, warnings = cog_validate(str(path))
    assert valid, errors
    assert not errors and not warnings, (errors, warnings)
    dtype, nodata, description = PROFILES[name]
    with rasterio.open(path) as src:
        assert src.count == 1
        assert src.dtypes == (dtype,)
        assert src.nodata == nodata
        assert src.compression is not None and src.compression.name == "lzw"
        assert src.crs == CRS.from_epsg(3413)
        assert src.res == (3.0, 3.0)
        assert src.transform.b == 0 and src.transform.d == 0 and src.transform.e < 0
        assert src.profile["tiled"] and src.block_shapes == [(512, 512)]
        assert src.overviews(1), "overviews present"
        assert src.descriptions == (description,)
        assert src.tags()["region"] == "x" and float(src.tags()["threshold"]) == 0.375
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"


def test_binary_is_prob_at_or_above_threshold_and_nodata_matches(mosaics) -> None:
    with rasterio.open(mosaics["prob"]) as src:
        prob = src.read(1)
    with rasterio.open(mosaics["binary"]) as src:
        binary = src.read(1)
    with rasterio.open(mosaics["scale"]) as src:
        scale = src.read(1)
    nodata = prob == -1
    assert nodata.any() and (~nodata).any()
    np.testing.assert_array_equal(binary[nodata], 255)
    np.testing.assert_array_equal(binary[~nodata], (prob[~nodata] >= 0.375).astype(np.uint8))
    assert set(np.unique(binary)) == {0, 1, 255}
    assert (prob[~nodata] >= 0).all() and (prob[~nodata] <= 1).all()
    np.testing.assert_array_equal(scale == -1, nodata)
    assert set(np.unique(scale[~nodata])) <= {0.5, 1.0}


def test_no_temporaries_are_left_beside_the_mosaics(mosaics) -> None:
    names = sorted(p.name for p in mosaics["prob"].parent.iterdir())
    assert names == sorted(p.name for p in mosaics.values())


def test_overviews_of_a_larger_mosaic_follow_gdal_auto(tmp_path) -> None:
    refs = write_tiles(tmp_path, make_tiles(20, 20, seed=1, offset=(0, 0)))  # 672 px a side
    out = {name: tmp_path / f"{name}.tif" for name in PROFILES}
    merge_region(
        plan_region(refs, grid=GRID),
        out_prob=str(out["prob"]),
        out_binary=str(out["binary"]),
        out_scale=str(out["scale"]),
        threshold=0.5,
        strategy="streaming",
        block=256,
    )
    for path in out.values():
        assert cog_validate(str(path))[0]
        with rasterio.open(path) as src:
            assert src.overviews(1) == [2]
