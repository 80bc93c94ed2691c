"""Which basemap pixels are valid follows GDAL: internal mask, alpha band, else NoData in *every*
band (``rasterio``'s ``dataset_mask()`` is the judge).

The same scene is stored three ways (RGB with NoData 0, RGBA with an alpha band, RGB with an
internal mask band); every way gives byte-identical tiles, with NoData exactly where GDAL says
the input has none. Dark pixels with one band at 0 are data, not holes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rts_support import make_config, smooth_rgb, tile_hashes, tiles_for, write_quad_basemap

from tilecast.apps.rts.job import RtsJob
from tilecast.errors import InputError
from tilecast.io.basemap import open_basemap

H = W = 256
QUAD = 128


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """RGB pixels (>= 1 everywhere but the dark ones), and where they are valid: a margin and a
    hole invalid; dark pixels with one band 0 (and one with two bands 0) valid."""
    image = smooth_rgb(11, H, W)
    image[0, 40:48, 60:90] = 0  # dark water: red 0, green and blue not
    image[1:, 200:204, 150:170] = 0  # green and blue 0, red not
    valid = np.ones((H, W), bool)
    valid[:, :24] = False  # a margin (west)
    valid[:10, :] = False  # and north
    valid[150:180, 90:140] = False  # a hole inside
    return image, valid


def stored_with_nodata(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[:, ~valid] = 0  # every band 0: NoData
    return out


def stored_with_garbage(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Pixels under the mask hold anything: the mask alone must say they are invalid."""
    out = image.copy()
    noise = np.random.default_rng(5).integers(0, 256, size=image.shape, dtype=np.uint8)
    out[:, ~valid] = noise[:, ~valid]
    return out


@pytest.fixture(scope="module")
def basemaps(scene, tmp_path_factory) -> dict[str, Path]:
    image, valid = scene
    root = tmp_path_factory.mktemp("validity")
    return {
        "nodata": write_quad_basemap(
            root / "nodata", stored_with_nodata(image, valid), quad=QUAD, nodata=0
        ),
        "alpha": write_quad_basemap(
            root / "alpha",
            stored_with_garbage(image, valid),
            quad=QUAD,
            nodata=None,
            valid=valid,
            mask_as="alpha",
        ),
        "internal": write_quad_basemap(
            root / "internal",
            stored_with_garbage(image, valid),
            quad=QUAD,
            nodata=None,
            valid=valid,
            mask_as="internal",
        ),
    }


def gdal_mask(basemap: Path) -> np.ndarray:
    """GDAL's dataset mask of the whole quad basemap, assembled from each quad's own."""
    mask = np.zeros((H, W), bool)
    for quad in basemap.glob("quad_*.tif"):
        r, c = (int(v) for v in quad.stem.split("_")[1:])
        with rasterio.open(quad) as src:
            mask[r * QUAD : (r + 1) * QUAD, c * QUAD : (c + 1) * QUAD] = src.dataset_mask() > 0
    return mask


@pytest.mark.parametrize("kind", ["nodata", "alpha", "internal"])
def test_each_way_of_storing_validity_reads_as_gdals_mask(scene, basemaps, kind):
    image, valid = scene
    with open_basemap(str(basemaps[kind])) as bm:
        assert bm.count == 3 and bm.channel_order == "RGB"  # an alpha band is not a channel
        assert bm.mask_rule == kind if kind != "internal" else bm.mask_rule == "mask"
        data, read_valid = bm.read(bm.grid.window)
    np.testing.assert_array_equal(read_valid, gdal_mask(basemaps[kind]))
    np.testing.assert_array_equal(read_valid, valid)
    np.testing.assert_array_equal(data[:, valid], image[:, valid])  # dark pixels are data


def run_tiles(bundle: Path, basemap: Path, out: Path) -> dict[str, str]:
    image = np.zeros((3, H, W), np.uint8)
    config = make_config(bundle=bundle, basemap=basemap, out=out, tile_size=64, workers=2)
    result = RtsJob(config, tiles_for(image, tile_size=64, stride=64)).run()
    assert result.complete
    return tile_hashes(out)


def test_alpha_and_mask_band_basemaps_give_the_nodata_basemaps_tiles_byte_for_byte(
    scene, basemaps, make_bundle, tmp_path
):
    _, valid = scene
    bundle = make_bundle("export")
    hashes = {kind: run_tiles(bundle, path, tmp_path / kind) for kind, path in basemaps.items()}
    assert len(hashes["nodata"]) == 16
    assert hashes["alpha"] == hashes["nodata"]
    assert hashes["internal"] == hashes["nodata"]
    # NoData (-1) in the tiles exactly where GDAL says the input has no data
    prob = np.full((H, W), np.nan, np.float32)
    for tile in (tmp_path / "nodata" / "tiles").glob("*.tif"):
        with rasterio.open(tile) as src:
            col = round((src.transform.c - (-2_400_000.0)) / 3.0)
            row = round((-300_000.0 - src.transform.f) / 3.0)
            prob[row : row + 64, col : col + 64] = src.read(1)
    seen = ~np.isnan(prob)
    np.testing.assert_array_equal(prob[seen] == -1, ~valid[seen])
    assert (prob[40:48, 60:90] >= 0).all() and (prob[200:204, 150:170] >= 0).all()


def test_an_rgba_basemap_named_by_the_config_without_alpha_tagging(scene, make_bundle, tmp_path):
    """A 4th band nobody tagged alpha: ``input.channel_order: RGBA`` makes it the mask."""
    image, valid = scene
    stored = np.concatenate([stored_with_garbage(image, valid), np.where(valid, 255, 0)[None]])
    basemap = tmp_path / "untagged"
    write_quad_basemap(
        basemap, stored.astype(np.uint8), quad=256, nodata=None, channel_order="RGBL"
    )  # four bands, the last tagged gray
    tiles = tiles_for(image, tile_size=64, stride=64)
    config = make_config(bundle=make_bundle("export"), basemap=basemap, out=tmp_path / "a")
    with pytest.raises(InputError, match="4 band"):
        RtsJob(config, tiles).run()  # refused: a 4-band basemap for a 3-channel model
    named = config.model_copy(
        update={"input": config.input.model_copy(update={"channel_order": "RGBA"})}
    )
    assert RtsJob(named, tiles).run().complete
    reference = tmp_path / "ref"
    write_quad_basemap(reference, stored_with_nodata(image, valid), quad=256, nodata=0)
    expected = run_tiles(make_bundle("export"), reference, tmp_path / "ref-out")
    assert tile_hashes(tmp_path / "a") == expected


def test_quads_mixing_three_and_four_bands_are_refused_naming_them(scene, tmp_path):
    image, valid = scene
    mixed = tmp_path / "mixed"
    write_quad_basemap(mixed, stored_with_nodata(image, valid), quad=QUAD, nodata=None)
    rgba = tmp_path / "rgba"
    write_quad_basemap(rgba, image, quad=QUAD, nodata=None, valid=valid)
    (mixed / "quad_1_1.tif").write_bytes((rgba / "quad_1_1.tif").read_bytes())
    with pytest.raises(InputError) as err:
        open_basemap(str(mixed))
    message = str(err.value)
    assert "do not all have the same bands" in message
    assert "3 bands (red, green, blue): quad_0_0.tif, quad_0_1.tif, quad_1_0.tif" in message
    assert "4 bands (red, green, blue, alpha): quad_1_1.tif" in message
