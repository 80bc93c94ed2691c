"""``tilecast predict`` on real imagery nobody here made: GDAL's masks decide what is valid.

The two files (a Landsat 7 crop from rasterio's test data, see ``../shared/data/real/README.md``)
live beside the checkout, not in it; these tests skip with the reason where they are absent.
They are copied to ``tmp_path`` first and never modified.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from tilecast.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "real"
BUNDLE = ROOT / "models" / "rts-demo"
SHA256 = {
    "RGB.byte.tif": "d7cbe932c7ed74a627706a9e9df99f706df3e5abc7d45a49e9d00677a6b09eb4",
    "RGBA.byte.tif": "a579ade9448a89fe346f3c577e9c5b332109b50a437487329c8186118745a8ea",
}

pytestmark = pytest.mark.skipif(
    not all((REAL / name).is_file() for name in SHA256),
    reason=f"the real images are not beside this checkout ({REAL} is missing or incomplete)",
)


@pytest.fixture
def real(tmp_path: Path):
    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copyfile(REAL / name, target)
        assert hashlib.sha256(target.read_bytes()).hexdigest() == SHA256[name]
        return target

    return copy


def predict(source: Path, out: Path, *extra: str):
    result = CliRunner().invoke(
        cli, ["predict", *extra, str(BUNDLE), str(source), str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as dst:
        return dst.read(1), result.output


def test_rgb_with_nodata_zero_is_invalid_exactly_where_gdals_dataset_mask_says(real, tmp_path):
    source = real("RGB.byte.tif")
    with rasterio.open(source) as src:
        gdal_invalid = src.dataset_mask() == 0
        data = src.read()
    dark = (data == 0).any(axis=0) & ~gdal_invalid  # one or two bands 0, the others not
    assert dark.sum() == 710  # the pixels an "any band is NoData" rule would drop
    prob, output = predict(source, tmp_path / "rgb.tif")
    np.testing.assert_array_equal(prob == -1, gdal_invalid)
    assert (prob[dark] >= 0).all()
    assert f"invalid    {int(gdal_invalid.sum())} pixels (nodata: {int(gdal_invalid.sum())})" in (
        output
    )
    assert "validity from NoData in every band" in output


def test_rgba_runs_a_three_channel_model_with_alpha_as_the_mask(real, tmp_path):
    source = real("RGBA.byte.tif")
    with rasterio.open(source) as src:
        alpha_invalid = src.read(4) == 0
        assert src.count == 4
    prob, output = predict(source, tmp_path / "rgba.tif")
    np.testing.assert_array_equal(prob == -1, alpha_invalid)
    assert "791 x 718 px, 3 band(s) RGB" in output and "validity from its alpha band" in output
    assert "assuming" not in output  # the channel order is known: no guess
    # naming the alpha band explicitly gives the same file
    named, _ = predict(source, tmp_path / "named.tif", "--channel-order", "RGBA")
    np.testing.assert_array_equal(named, prob)


def test_the_two_masks_differ_where_alpha_and_nodata_disagree(real, tmp_path):
    rgb, _ = predict(real("RGB.byte.tif"), tmp_path / "a.tif")
    rgba, _ = predict(real("RGBA.byte.tif"), tmp_path / "b.tif")
    differ = (rgb == -1) != (rgba == -1)
    assert int(differ.sum()) == 38
    both = (rgb != -1) & (rgba != -1)
    # the same pixels, nearly the same answer: the demo model's GroupNorm statistics span the
    # whole image, so 38 pixels filled differently move every output a little
    np.testing.assert_allclose(rgb[both], rgba[both], atol=0.01)


def test_a_real_landsat_scene_is_flagged_as_unlike_the_synthetic_training_data(real, tmp_path):
    """The demo model was trained on synthetic PlanetScope-like scenes; a Landsat crop at 300 m
    has another radiometry: predict answers (warn) and says so, or refuses with fail."""
    src = real("RGB.byte.tif")
    result = CliRunner().invoke(cli, ["predict", str(BUNDLE), str(src), str(tmp_path / "p.tif")])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("input drift"))
    assert "band R: mean 44" in line and "std below" in line and "high spread" in line
    with rasterio.open(tmp_path / "p.tif") as dst:
        assert dst.tags()["tilecast_input_drift"] == line.removeprefix("input drift ")
    refused = CliRunner().invoke(
        cli, ["predict", "--input-drift", "fail", str(BUNDLE), str(src), str(tmp_path / "q.tif")]
    )
    assert refused.exit_code == 1 and "InputDriftError" in refused.output
    assert not (tmp_path / "q.tif").exists()
