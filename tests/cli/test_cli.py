"""The command line as a user runs it: exit codes, messages, and the files it writes."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from tilecast.cli.main import cli
from tilecast.io.raster import Georef, write_raster


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_verify_passes_then_fails_after_a_changed_byte(bundle_copy):
    bundle = bundle_copy()
    ok = run("bundle", "verify", bundle)
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("OK ")
    weights = bundle / "model.pt2"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    bad = run("bundle", "verify", bundle)
    assert bad.exit_code == 1
    assert "model.pt2" in bad.output and "sha256" in bad.output
    assert "Traceback" not in bad.output


def test_inspect_shows_where_each_step_runs(make_bundle):
    out = run("bundle", "inspect", make_bundle())
    assert out.exit_code == 0, out.output
    lines = {
        line.split()[2]: line.split()[3]
        for line in out.output.splitlines()
        if line.startswith("step")
    }
    assert lines == {
        "guard_sentinels": "host",
        "reorder_channels": "host",
        "fill_invalid": "host",
        "scale_values": "model",
        "normalize": "model",
        "pad_to_multiple": "host",
    }
    as_json = run("bundle", "inspect", make_bundle(), "--json")
    assert '"normalization_stats_md5"' in as_json.output


def write_scene(path, *, height=70, width=90):
    rng = np.random.default_rng(0)
    image = rng.integers(1, 255, size=(3, height, width), dtype=np.uint8)
    image[:, :10, :] = 0  # a NoData strip
    georef = Georef(crs="EPSG:3413", transform=Affine(3.0, 0, -2_000_000.0, 0, -3.0, -500_000.0))
    write_raster(path, image, georef=georef, nodata=0)
    return image


def test_predict_on_a_file_whose_blocks_do_not_decode_says_so_with_gdals_message(
    make_bundle, tmp_path
):
    """It opened: not "cannot open", but which read failed and GDAL's own words, without -v."""
    write_scene(tmp_path / "whole.tif", height=600, width=600)  # LZW, 256-px internal tiles
    data = (tmp_path / "whole.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) * 2 // 3])
    out = run("predict", make_bundle(), tmp_path / "cut.tif", tmp_path / "o.tif")
    assert out.exit_code == 1
    message = out.output.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert "cut.tif: block decode failed reading the whole raster (600 x 600 px)" in message
    assert "IReadBlock failed" in message and "See previous exception" not in message
    assert "cannot open" not in message
    assert not (tmp_path / "o.tif").exists()


def test_predict_writes_a_georeferenced_probability_raster(make_bundle, tmp_path):
    write_scene(tmp_path / "scene.tif")
    out = run("predict", make_bundle(), tmp_path / "scene.tif", tmp_path / "prob.tif")
    assert out.exit_code == 0, out.output
    assert "90 x 70 px, 3 band(s) RGB" in out.output  # width x height
    assert "90 x 70 px float32, NoData -1" in out.output
    with rasterio.open(tmp_path / "scene.tif") as src, rasterio.open(tmp_path / "prob.tif") as dst:
        assert dst.crs == src.crs and dst.transform == src.transform
        assert (dst.count, dst.height, dst.width) == (1, 70, 90)
        assert dst.dtypes[0] == "float32" and dst.nodata == -1.0
        prob = dst.read(1)
        assert dst.tags()["tilecast_bundle_digest"]
    assert (prob[:10] == -1.0).all(), "NoData input gives NoData output"
    assert ((prob[10:] >= 0) & (prob[10:] <= 1)).all()


def test_predict_png_without_georeferencing(make_bundle, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(1, 255, size=(40, 50, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    out = run("predict", make_bundle(), tmp_path / "a.png", tmp_path / "a.tif")
    assert out.exit_code == 0, out.output
    with rasterio.open(tmp_path / "a.tif") as dst:
        assert dst.shape == (40, 50) and dst.crs is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("predict", "{bundle}", "{tmp}/missing.tif", "{tmp}/o.tif"), "cannot open as a raster"),
        (("bundle", "verify", "{tmp}"), "no manifest.json"),
        (
            ("predict", "{bundle}", "{tmp}/scene.tif", "{tmp}/o.tif", "--channel-order", "RGBN"),
            "channel order 'RGBN' names 4 band(s), the raster has 3 band(s) (red, green, blue)",
        ),
    ],
)
def test_errors_are_one_clear_line(make_bundle, tmp_path, args, message):
    write_scene(tmp_path / "scene.tif")
    filled = [a.format(bundle=make_bundle(), tmp=tmp_path) for a in args]
    out = run(*filled)
    assert out.exit_code == 1
    assert message in out.output and "Traceback" not in out.output


def test_create_from_a_python_model_and_a_draft(tmp_path):
    import yaml

    from support import stats_bytes

    draft = {
        "name": "py-model",
        "version": "2.0",
        "input": {
            "channels": 3,
            "channel_order": "BGR",
            "dtype": "uint8",
            "value_scaling": "unit",
            "input_range": [0, 255],
        },
        "postprocessing": {"activation": "sigmoid", "labels": ["bg", "fg"], "threshold": 0.3},
    }
    (tmp_path / "draft.yaml").write_text(yaml.safe_dump(draft))
    (tmp_path / "stats.json").write_bytes(
        stats_bytes(mean=[0.4, 0.45, 0.38], std=[0.12, 0.11, 0.13])
    )
    out = run(
        "bundle", "create", "--model-factory", "support:tiny_unet",
        "--draft", tmp_path / "draft.yaml", "--stats", tmp_path / "stats.json", "--out", tmp_path / "b",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    inspect = run("bundle", "inspect", tmp_path / "b", "--json")
    import json

    contract = json.loads(inspect.output)["contract"]
    assert contract["input"]["channel_order"] == "BGR"
    assert contract["alignment"]["multiple"] == 32  # derived from the model, not the draft
    assert contract["model"]["format"] == "export"
    assert contract["golden"]["source"] == "bundle"


def test_create_needs_exactly_one_source(tmp_path):
    out = CliRunner().invoke(cli, ["bundle", "create", "--out", str(tmp_path / "b")])
    assert out.exit_code == 2 and "either SOURCE" in out.output
