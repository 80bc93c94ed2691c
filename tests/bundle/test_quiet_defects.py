"""One test per row of DESIGN.md's quiet-defect table (the bundle-level rows).

The statistics rows (wrong file, edited mean) are in test_bundle_integrity.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from support import STATS, rgb_draft, stats_bytes, tiny_unet
from tilecast.bundle import create_bundle, load_bundle
from tilecast.bundle.contract import InputSpec, Postprocessing, default_steps
from tilecast.bundle.frozen import InferenceModel, training_ops
from tilecast.bundle.runtime import infer, prepare
from tilecast.bundle.stats import NormalizationStats
from tilecast.errors import BundleError, InputError, SentinelError


class CoordinateEcho(torch.nn.Module):
    """Returns its first input channel: an output pixel shows which input pixel it came from."""

    alignment = 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1]


class Recorder(torch.nn.Module):
    """Records what reaches the model; fails the test if a non-finite value does."""

    alignment = 32

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert torch.isfinite(x).all(), "a sentinel reached the model"
        self.seen.append(x.clone())
        return x[:, :1] * 0.0


def echo_contract(tmp_path, *, dtype="float32"):
    draft = rgb_draft(
        input=InputSpec(
            channels=1, channel_order="L", dtype=dtype, value_scaling="raw", input_range=(0, 1e7)
        ),
        postprocessing=Postprocessing(activation="none", labels=("value",), threshold=0.5),
        preprocessing=default_steps(baked=()),
    )
    stats = json.dumps({"mean": [0.0], "std": [1.0], "dataset_version": "echo"}).encode()
    return create_bundle(CoordinateEcho(), draft, stats_bytes=stats, out=tmp_path / "echo")


# -- model left in train mode / gradients on --------------------------------------------------


def test_model_in_train_mode_is_put_in_eval_and_a_later_flip_is_caught():
    net = tiny_unet(norm="batch")
    net.train()
    model = InferenceModel(net, source="test")
    assert not any(m.training for m in net.modules())
    assert not any(p.requires_grad for p in net.parameters())
    out = model(torch.zeros(1, 3, 32, 32))
    assert not out.requires_grad and out.is_inference()
    next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)).train()
    with pytest.raises(BundleError, match="training mode at inference"):
        model(torch.zeros(1, 3, 32, 32))
    with pytest.raises(BundleError, match="inference-only"):
        model.train()


def test_program_exported_in_training_mode_is_detected():
    net = tiny_unet(norm="batch").train()
    program = torch.export.export(net, (torch.zeros(2, 3, 32, 32),))
    assert training_ops(program.graph), "train-mode batch-norm must be visible in the graph"
    program_eval = torch.export.export(tiny_unet(norm="batch").eval(), (torch.zeros(2, 3, 32, 32),))
    assert training_ops(program_eval.graph) == []


def test_loaded_bundle_model_is_frozen(make_bundle):
    b = load_bundle(make_bundle("state_dict"))
    assert not any(m.training for m in b.model.module.modules())
    with pytest.raises(BundleError):
        b.model.train()


# -- input not a multiple of the network's stride ---------------------------------------------


@pytest.mark.parametrize(("h", "w"), [(1, 1), (31, 33), (75, 103), (64, 96), (500, 97)])
def test_off_stride_input_is_padded_and_cropped_to_the_exact_extent(tmp_path, h, w):
    bundle = echo_contract(tmp_path)
    rows, cols = np.mgrid[0:h, 0:w]
    image = (rows * 10000 + cols).astype(np.float32)[None]  # each pixel encodes its position
    result = infer(bundle.contract, bundle.stats, bundle.model, image, channel_order="L")
    assert result.probabilities.shape == (1, h, w)
    assert result.padding.padded_shape == (-(-h // 32) * 32, -(-w // 32) * 32)
    np.testing.assert_array_equal(result.probabilities[0], image[0])


def test_unet_output_is_the_cropped_output_of_the_manually_padded_input(make_bundle):
    b = load_bundle(make_bundle("state_dict", baked=()))
    rng = np.random.default_rng(1)
    image = rng.integers(1, 255, size=(3, 70, 90), dtype=np.uint8)
    result = infer(b.contract, b.stats, b.model, image, channel_order="RGB")
    x = (image.astype(np.float32) - np.array(STATS["mean"], np.float32)[:, None, None]) / np.array(
        STATS["std"], np.float32
    )[:, None, None]
    x = np.pad(x, ((0, 0), (0, 26), (0, 6)), mode="reflect")
    expected = torch.sigmoid(b.model(torch.from_numpy(x[None])))[0, :, :70, :90].numpy()
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-6)


# -- sentinels reaching arithmetic ------------------------------------------------------------


def test_sentinels_never_reach_the_normaliser_or_the_model(tmp_path):
    draft = rgb_draft(
        input=InputSpec(
            channels=3,
            channel_order="RGB",
            dtype="float32",
            value_scaling="raw",
            input_range=(0, 255),
        ),
        preprocessing=default_steps(baked=()),
    )
    bundle = create_bundle(CoordinateEcho(), draft, stats_bytes=stats_bytes(), out=tmp_path / "rec")
    recorder = Recorder()  # the bundle's contract, a model that inspects what reaches it
    rng = np.random.default_rng(2)
    image = rng.uniform(1, 255, size=(3, 40, 50)).astype(np.float32)
    image[0, 3, 4] = np.nan
    image[1, 5, 6] = -999.0
    image[2, 7, 8] = -999.25
    image[:, 9, 10] = np.inf
    image[0, 11, 12] = -9999.0
    image[:, 20:, 45:] = 7.0  # the raster's own NoData
    result = infer(bundle.contract, bundle.stats, recorder, image, channel_order="RGB", nodata=7.0)
    counts = dict(result.sentinel_counts)
    assert counts["nan"] == 1 and counts["+inf"] == 1
    assert counts["-999.0"] == 1 and counts["-999.25"] == 1 and counts["-9999.0"] == 1
    assert counts["nodata"] == 20 * 5
    assert int((~result.valid).sum()) == sum(counts.values())
    seen = recorder.seen[-1][0].numpy()
    # invalid pixels reach the model as the fill value (the mean, 0 after normalising)
    for r, c in [(3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (25, 47)]:
        np.testing.assert_allclose(seen[:, r, c], 0.0, atol=1e-6)
    # valid pixels are normalised exactly as without any sentinel around
    mean = np.array(STATS["mean"], np.float32)[:, None, None]
    std = np.array(STATS["std"], np.float32)[:, None, None]
    expected = (image - mean) / std
    v = result.valid
    np.testing.assert_allclose(seen[:, :40, :50][:, v], expected[:, v], rtol=1e-6)


def test_the_normaliser_itself_refuses_non_finite_values():
    from tilecast.prep import normalize

    with pytest.raises(SentinelError):
        normalize(np.full((3, 2, 2), np.nan, np.float32), mean=[0, 0, 0], std=[1, 1, 1])


# -- preprocessing that differs from training: channel order, scaling, dtype -------------------


def test_bgr_model_fed_an_rgb_image_gets_it_reordered(tmp_path):
    bgr = rgb_draft(
        input=InputSpec(
            channels=3,
            channel_order="BGR",
            dtype="uint8",
            value_scaling="raw",
            input_range=(0, 255),
        )
    )
    bundle = create_bundle(tiny_unet(), bgr, stats_bytes=stats_bytes(), out=tmp_path / "bgr")
    rng = np.random.default_rng(3)
    rgb = rng.integers(1, 255, size=(3, 64, 64), dtype=np.uint8)
    from_rgb = infer(bundle.contract, bundle.stats, bundle.model, rgb, channel_order="RGB")
    from_bgr = infer(
        bundle.contract, bundle.stats, bundle.model, rgb[::-1].copy(), channel_order="BGR"
    )
    np.testing.assert_array_equal(from_rgb.probabilities, from_bgr.probabilities)
    wrong = infer(bundle.contract, bundle.stats, bundle.model, rgb, channel_order="BGR")
    assert not np.allclose(wrong.probabilities, from_rgb.probabilities, atol=1e-4)


@pytest.mark.parametrize(
    ("image", "order", "message"),
    [
        (np.zeros((4, 8, 8), np.uint8), "RGBN", "takes 3 channel"),
        (np.zeros((3, 8, 8), np.uint16), "RGB", "expects uint8"),
        (np.zeros((3, 8, 8), np.uint8), "RGBN", "names 4 channels"),
        (np.zeros((3, 8, 8), np.uint8), "RGN", "cannot reorder|letters"),
    ],
)
def test_inputs_that_do_not_fit_the_contract_are_refused(make_bundle, image, order, message):
    b = load_bundle(make_bundle())
    with pytest.raises(InputError, match=message):
        infer(b.contract, b.stats, b.model, image, channel_order=order)


def test_steps_run_once_whether_baked_or_on_the_host(make_bundle):
    """Host-side and baked normalisation give the same output; the host never repeats a baked step."""
    baked = load_bundle(make_bundle("export", baked=("scale_values", "normalize")))
    host = load_bundle(make_bundle("export", baked=()))
    rng = np.random.default_rng(4)
    image = rng.integers(1, 255, size=(3, 50, 70), dtype=np.uint8)
    a = infer(baked.contract, baked.stats, baked.model, image, channel_order="RGB")
    b = infer(host.contract, host.stats, host.model, image, channel_order="RGB")
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
    prepared = prepare(baked.contract, baked.stats, image, channel_order="RGB")
    # the host left the pixels in raw units: normalising is the program's job
    np.testing.assert_array_equal(prepared.array[:, :50, :70], image.astype(np.float32))
    assert baked.contract.baked_steps == ("scale_values", "normalize")
    assert host.contract.baked_steps == ()


def test_unit_and_symmetric_scaling_feed_the_model_the_declared_range(tmp_path):
    for scaling, lo, hi in [("unit", 0.0, 1.0), ("symmetric", -1.0, 1.0)]:
        draft = rgb_draft(
            input=InputSpec(
                channels=1,
                channel_order="L",
                dtype="uint8",
                value_scaling=scaling,
                input_range=(0, 255),
            ),
            postprocessing=Postprocessing(activation="none", labels=("value",), threshold=0.5),
            preprocessing=default_steps(baked=()),
        )
        stats = json.dumps({"mean": [0.0], "std": [1.0], "dataset_version": "s"}).encode()
        bundle = create_bundle(CoordinateEcho(), draft, stats_bytes=stats, out=tmp_path / scaling)
        image = np.array([[[0, 255, 51]]], dtype=np.uint8)
        out = infer(bundle.contract, bundle.stats, bundle.model, image, channel_order="L")
        np.testing.assert_allclose(
            out.probabilities[0, 0], [lo, hi, lo + (hi - lo) * 0.2], atol=1e-6
        )


def test_stats_object_is_what_the_file_says(make_bundle):
    b = load_bundle(make_bundle())
    assert b.stats == NormalizationStats.model_validate(STATS)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (20, 32), (32, 97)])
def test_exported_program_serves_images_down_to_one_alignment_cell(make_bundle, h, w):
    b = load_bundle(make_bundle("export"))
    image = np.full((3, h, w), 120, dtype=np.uint8)
    out = infer(b.contract, b.stats, b.model, image, channel_order="RGB")
    assert out.probabilities.shape == (1, h, w)
    assert np.isfinite(out.probabilities).all()
