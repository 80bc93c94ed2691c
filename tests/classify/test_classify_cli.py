"""``tilecast classify`` end to end on PNG/JPEG/TIFF files written in tmp_path."""

from __future__ import annotations

import csv
import json
import types
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from classify_support import write_png
from click.testing import CliRunner

from tilecast.apps.classify import classify, expand_inputs
from tilecast.apps.classify.predictor import ClassPredictor
from tilecast.bundle import load_bundle
from tilecast.bundle.runtime import activate
from tilecast.cli.main import cli
from tilecast.predict.views import tta_views

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

RED, BLUE, GRAY = (230, 20, 20), (20, 20, 230), (128, 128, 128)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    write_png(folder / "a_red.png", RED, height=50, width=70)
    write_png(folder / "b_gray.png", GRAY, height=32, width=32)
    write_png(folder / "c_mono.png", (100,), height=20, width=20)  # one channel: wrong
    (folder / "d_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    from PIL import Image

    Image.new("RGB", (40, 36), BLUE).save(folder / "e_blue.jpg", quality=95)
    pixels = np.zeros((3, 24, 24), np.uint8)
    pixels[2] = 220
    with rasterio.open(
        folder / "f_blue.tif", "w", driver="GTiff", count=3, width=24, height=24, dtype="uint8"
    ) as dst:
        dst.write(pixels)
    return folder


def test_classify_a_folder_counts_rejections_and_goes_on(make_classifier, images, tmp_path) -> None:
    out = tmp_path / "results.csv"
    result = CliRunner().invoke(
        cli,
        [
            "classify",
            str(make_classifier()),
            str(images),
            "--batch-size",
            "2",
            "--tta",
            "minimal",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {Path(r["input"]).name: r for r in csv.DictReader(out.open())}
    assert list(rows) == [
        "a_red.png",
        "b_gray.png",
        "c_mono.png",
        "d_corrupt.png",
        "e_blue.jpg",
        "f_blue.tif",
    ]
    assert rows["a_red.png"]["label"] == "red" and rows["a_red.png"]["uncertain"] == "False"
    assert (rows["a_red.png"]["width"], rows["a_red.png"]["height"]) == ("70", "50")
    assert "resize 70x50->32x32 (fixed, bilinear)" in rows["a_red.png"]["checks"]
    assert "size 32x32 as trained" in rows["b_gray.png"]["checks"]
    assert rows["a_red.png"]["top_k"].startswith("red:")
    assert rows["b_gray.png"]["uncertain"] == "True" and rows["b_gray.png"]["positives"] == ""
    assert rows["e_blue.jpg"]["label"] == "blue" and rows["f_blue.tif"]["label"] == "blue"
    assert rows["c_mono.png"]["status"] == "rejected"
    assert "the image has 1" in rows["c_mono.png"]["reason"]
    assert "cannot open as a raster" in rows["d_corrupt.png"]["reason"]
    err = result.stderr
    assert "6: 4 classified (1 uncertain), 2 rejected; TTA minimal, batch 2" in err
    assert "ETA" in err and "6/6 images" in err
    assert "rejected   " + str(images / "d_corrupt.png") in err


def test_rgb_png_read_and_a_bgr_contract_reorders(make_classifier, images) -> None:
    """Quiet defect: PIL writes RGB; a model trained on BGR (OpenCV) must see the channels
    reordered. Its label map is in its own order, so a red image is 'red' for both."""
    png = str(images / "a_red.png")
    rgb = classify(load_bundle(make_classifier()), [png]).rows[0]
    bgr_bundle = load_bundle(make_classifier(channel_order="BGR", labels=("blue", "green", "red")))
    bgr = classify(bgr_bundle, [png]).rows[0]
    assert rgb.answer.label == "red" and bgr.answer.label == "red"
    assert "channel order RGB" in rgb.checks
    assert "channel order RGB->BGR" in bgr.checks
    # with the channel order forced to what the file is not, the answer changes: the
    # reorder is what makes it right
    forced = classify(bgr_bundle, [png], channel_order="BGR").rows[0]
    assert forced.answer.label == "blue"


def test_tta_views_are_averaged_after_the_activation(make_classifier) -> None:
    bundle = load_bundle(make_classifier())
    ramp = torch.linspace(-3, 3, 32)

    def lopsided(x: torch.Tensor) -> torch.Tensor:  # left-right asymmetric logits
        return torch.stack(
            [(x[:, 0] * ramp).mean((1, 2)), x[:, 1].mean((1, 2)), -(x[:, 0] * ramp).mean((1, 2))], 1
        )

    fake = types.SimpleNamespace(contract=bundle.contract, model=lopsided)
    batch = [torch.rand(3, 32, 32), torch.rand(3, 32, 32)]
    found = ClassPredictor(fake, tta_views("minimal"))(batch)
    x = torch.stack(batch)
    expected = (
        activate(bundle.contract, lopsided(x)) + activate(bundle.contract, lopsided(x.flip(-1)))
    ) / 2
    np.testing.assert_allclose(found, expected.numpy(), atol=1e-6)
    plain = ClassPredictor(fake, tta_views("none"))(batch)
    assert not np.allclose(found, plain, atol=1e-3)


def test_inputs_from_a_glob_and_a_list_file(images, tmp_path) -> None:
    listing = tmp_path / "inputs.txt"
    listing.write_text("# chips\nimages/e_blue.jpg\n\n" + str(images / "a_red.png") + "\n")
    found = expand_inputs([str(images / "*.tif"), str(listing), str(images / "a_red.png")])
    assert [Path(u).name for u in found] == ["f_blue.tif", "e_blue.jpg", "a_red.png"]


def test_jsonl_on_stdout(make_classifier, images) -> None:
    result = CliRunner().invoke(
        cli, ["classify", str(make_classifier()), str(images / "a_red.png")]
    )
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["label"] == "red" and record["status"] == "classified"
    assert [t["label"] for t in record["top_k"]] == ["red", "green"]


def test_every_input_rejected_is_an_error(make_classifier, images) -> None:
    result = CliRunner().invoke(
        cli, ["classify", str(make_classifier()), str(images / "c_mono.png")]
    )
    assert result.exit_code == 1
    assert "1 rejected" in result.stderr


def test_each_command_refuses_the_other_task(
    make_classifier, make_bundle, images, tmp_path
) -> None:
    runner = CliRunner()
    png = str(images / "a_red.png")
    wrong = runner.invoke(cli, ["classify", str(make_bundle("state_dict")), png])
    assert wrong.exit_code == 1 and "a segmentation bundle; classify needs" in wrong.output
    other = runner.invoke(cli, ["predict", str(make_classifier()), png, str(tmp_path / "p.tif")])
    assert other.exit_code == 1 and "a classification bundle; predict" in other.output
