"""Digitising with the shipped bundle: contract, exact crop, masked pixels, batch == single,
one scan per model call with the process's oneDNN setting left alone."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.digitise import (
    curves_of,
    digitise,
    digitise_many,
    predict_scan,
    predict_scans,
)
from tilecast.apps.welllog.records import CurveSpec, ScanRecord
from tilecast.bundle import load_bundle
from tilecast.bundle.load import Bundle
from tilecast.demo.welllog_scan import MISSING_PIXEL, generate_scan
from tilecast.errors import InputError
from tilecast.models.unet import group_count

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "welllog-demo"

pytestmark = pytest.mark.filterwarnings("ignore::tilecast.errors.TilecastWarning")


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle(BUNDLE)


def test_bundle_verifies_and_declares_the_serving_contract(bundle: Bundle) -> None:
    contract = bundle.contract
    assert bundle.golden_max_error is not None  # golden pairs from the training code ran
    assert contract.golden.source == "training"
    assert contract.input.channels == 1 and contract.input.channel_order == "L"
    assert contract.input.dtype == "uint8"
    assert contract.alignment.multiple == 32
    assert float(MISSING_PIXEL) in contract.sentinels.values
    assert {-999.0, -999.25}.issubset(contract.sentinels.values)
    assert contract.sentinels.nan and "NA" in contract.sentinels.strings
    assert contract.postprocessing.activation == "softmax"
    assert contract.model.classes == 3
    params = contract.model.params
    assert contract.model.architecture == "veernet" and params["depth"] == 5
    assert params["norm"] == "group"
    for width in params["widths"]:  # every GroupNorm group spans at least 16 channels
        assert width // group_count(width, params["min_group_channels"]) >= 16


@pytest.mark.parametrize("shape", [(97, 203), (128, 256), (33, 65)])
def test_off_stride_sizes_come_back_exactly_cropped(bundle: Bundle, shape) -> None:
    image = generate_scan(31, width=shape[1], height=max(64, shape[0]), missing=False).image
    image = np.ascontiguousarray(image[: shape[0]])
    result = predict_scan(bundle, image)
    assert result.probabilities.shape == (3, *shape)
    assert result.valid.shape == shape
    assert result.padding.shape == shape
    assert result.padding.padded_shape == tuple(-(-n // 32) * 32 for n in shape)
    assert np.allclose(result.probabilities.sum(axis=0), 1.0, atol=1e-5)


def test_missing_pixels_are_masked_counted_and_read_as_gaps(bundle: Bundle) -> None:
    scan = generate_scan(32, width=400, height=128, n_curves=1, missing=False)
    image = scan.image.copy()
    image[:, 100:140] = MISSING_PIXEL  # a dropout stripe across the whole height
    image[:10, 300:310] = MISSING_PIXEL
    curves = digitise(
        bundle, image, scan.record, step=abs(scan.record.bottom_depth - scan.record.top_depth) / 399
    )
    assert curves.counts["missing_pixels"] == 128 * 40 + 100
    assert curves.counts["missing_pixels[0.0]"] == 128 * 40 + 100
    assert curves.counts["masked_columns"] == 50
    (values,) = curves.values.values()
    assert np.isnan(values[100:140]).all()  # one sample per column: the stripe is a gap
    assert curves.registration["padding"] == {"bottom": 0, "right": 16}


def test_file_nodata_value_is_masked_too(bundle: Bundle) -> None:
    image = generate_scan(33, width=200, height=96, missing=False).image.copy()
    image[:, :20] = 255
    plain = predict_scan(bundle, image)
    masked = predict_scan(bundle, image, nodata=255)
    white = image == 255  # the block, and any paper pixel the noise pushed to 255
    assert plain.valid.all()
    assert np.array_equal(masked.valid, ~white)
    assert dict(masked.sentinel_counts) == {"nodata": int(white.sum())}


def assert_same_curves(a: DigitisedCurves, b: DigitisedCurves) -> None:
    assert np.array_equal(a.depth, b.depth) and a.step == b.step
    assert a.values.keys() == b.values.keys()
    for name in a.values:
        assert np.array_equal(a.values[name], b.values[name], equal_nan=True)
    assert a.counts == b.counts and a.registration == b.registration


def mixed_scans() -> tuple[list[np.ndarray], list[ScanRecord]]:
    """Four same-size scans, two that pad to the same shape, one of its own; 1 and 2 curves,
    with and without missing pixels."""
    sizes = [(96, 256)] * 4 + [(90, 250), (70, 230), (128, 300)]
    scans = [
        generate_scan(40 + i, width=w, height=max(h, 64), missing=i % 2 == 0)
        for i, (h, w) in enumerate(sizes)
    ]
    images = [np.ascontiguousarray(s.image[:h]) for s, (h, _) in zip(scans, sizes, strict=True)]
    return images, [s.record for s in scans]


def test_batched_equals_one_at_a_time_bit_for_bit(bundle: Bundle) -> None:
    images, records = mixed_scans()
    assert {len(r.curves) for r in records} == {1, 2}
    single = [predict_scan(bundle, image) for image in images]
    single_curves = [digitise(bundle, image, r) for image, r in zip(images, records, strict=True)]
    for p, r, curves in zip(single, records, single_curves, strict=True):
        assert_same_curves(curves, curves_of(bundle, p, r))
    for batch_size in (1, 3, 8):  # one, a short last batch, more than all
        batched = predict_scans(bundle, images, batch_size=batch_size)
        for a, b in zip(single, batched, strict=True):
            assert np.array_equal(a.probabilities, b.probabilities)
            assert np.array_equal(a.valid, b.valid)
            assert a.padding == b.padding
        curves = digitise_many(bundle, images, records, batch_size=batch_size)
        for a, b in zip(single_curves, curves, strict=True):
            assert_same_curves(a, b)


class SpyModel:
    """The bundle's model, recording each call's input shape and the oneDNN switch."""

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.model = model
        self.calls: list[tuple[tuple[int, ...], bool]] = []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls.append((tuple(batch.shape), torch.backends.mkldnn.enabled))
        return self.model(batch)


@pytest.mark.parametrize("onednn", [True, False])
def test_the_model_sees_one_scan_per_call_and_the_onednn_switch_is_left_alone(
    bundle: Bundle, onednn: bool
) -> None:
    # batch invariance comes from batches of one (oneDNN picks kernels by batch size), not
    # from flipping the process-wide backend switch under other threads' feet
    images, records = mixed_scans()
    spy = SpyModel(bundle.model)
    spied = dataclasses.replace(bundle, model=spy)
    saved = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = onednn  # not mkldnn.flags(): that one warns about TF32
    try:
        reference = [digitise(bundle, image, r) for image, r in zip(images, records, strict=True)]
        curves = digitise_many(spied, images, records, batch_size=4)
        predict_scans(spied, images[:4], batch_size=4)
        assert torch.backends.mkldnn.enabled is onednn
    finally:
        torch.backends.mkldnn.enabled = saved
    assert len(spy.calls) == len(images) + 4
    assert all(shape[0] == 1 and flag is onednn for shape, flag in spy.calls)
    for a, b in zip(reference, curves, strict=True):
        assert_same_curves(a, b)


def test_a_bad_scan_in_a_batch_is_refused_before_any_scan_runs(bundle: Bundle) -> None:
    images, records = mixed_scans()
    spy = SpyModel(bundle.model)
    bad = [images[0], images[1], images[2].astype(np.float32)]
    with pytest.raises(InputError, match="uint8"):
        digitise_many(dataclasses.replace(bundle, model=spy), bad, records[:3], batch_size=4)
    assert spy.calls == []


def test_bad_inputs_are_refused(bundle: Bundle) -> None:
    scan = generate_scan(34, width=200, height=96, n_curves=2)
    extra = CurveSpec(name="SP", unit="mV", left=-100, right=100)
    too_many = ScanRecord(**{**scan.record.model_dump(), "curves": (*scan.record.curves, extra)})
    with pytest.raises(InputError, match="at most 2"):
        digitise(bundle, scan.image, too_many)
    with pytest.raises(InputError, match="grayscale"):
        digitise(bundle, np.stack([scan.image, scan.image]), scan.record)
    with pytest.raises(InputError, match="uint8"):
        digitise(bundle, scan.image.astype(np.float32), scan.record)
    with pytest.raises(InputError, match="one each"):
        digitise_many(bundle, [scan.image], [], batch_size=1)
    with pytest.raises(InputError, match="batch_size"):
        digitise_many(bundle, [scan.image], [scan.record], batch_size=0)
