"""Sampled per-channel statistics: exact sums and histograms that merge in any order."""

from __future__ import annotations

import json

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tilecast.drift import ChannelMoments, sample_moments


def _sample(image, valid=None, order="RGB", stride=1) -> ChannelMoments:
    return sample_moments(
        image,
        valid,
        source_order=order,
        target_order="RGB",
        channels=("R", "G", "B"),
        value_range=(0.0, 255.0),
        stride=stride,
    ).resolve()


def test_statistics_of_the_valid_pixels_in_the_models_channel_order():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(3, 64, 48), dtype=np.uint8)
    valid = rng.random((64, 48)) > 0.3
    m = _sample(image[::-1].copy(), valid, order="BGR")  # stored BGR, named so
    values = image[:, valid].astype(np.float64)
    assert m.count.tolist() == [valid.sum()] * 3
    np.testing.assert_allclose(m.mean, values.mean(axis=1))
    np.testing.assert_allclose(m.std, values.std(axis=1))
    assert m.minimum.tolist() == values.min(axis=1).tolist()
    for q in (0.01, 0.5, 0.99):  # to a bin (one grey level)
        assert np.all(np.abs(m.quantile(q) - np.quantile(values, q, axis=1)) <= 1.0)


def test_nan_and_values_outside_the_range_are_handled():
    image = np.full((3, 8, 8), 0.5, np.float32)
    image[:, 0, 0] = np.nan  # not counted: the guard counts it
    image[:, 1, :] = -3.0  # below the range: counted, in the "below" bin
    image[:, 2, :] = 300.0  # above
    m = _sample(torch.from_numpy(image))
    assert m.count.tolist() == [63] * 3
    assert m.hist[:, 0].tolist() == [8] * 3 and m.hist[:, -1].tolist() == [8] * 3
    assert m.minimum.tolist() == [-3.0] * 3 and m.maximum.tolist() == [300.0] * 3
    assert np.allclose(m.fraction_outside([0, 0, 0], [255, 255, 255]), 16 / 63)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_merging_parts_equals_the_whole_and_round_trips_json(parts, seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(3, 16 * parts, 20), dtype=np.uint8)
    whole = _sample(image)
    merged = ChannelMoments.empty(("R", "G", "B"), 0.0, 255.0)
    for k in range(parts):
        merged = merged.merged(_sample(image[:, 16 * k : 16 * (k + 1)]))
    again = ChannelMoments.from_json(json.loads(json.dumps(merged.to_json())))
    assert again.to_json() == whole.to_json()


def test_sampling_takes_every_stride_th_row_and_column():
    image = np.zeros((3, 8, 8), np.uint8)
    image[:, ::4, ::4] = 200
    m = _sample(image, stride=4)
    assert m.count.tolist() == [4] * 3 and m.mean.tolist() == [200.0] * 3
