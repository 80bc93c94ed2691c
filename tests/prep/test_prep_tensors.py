"""One implementation on tensors: every op gives a torch tensor the same answer as numpy, bit for
bit, and keeps the tensor's kind (and device).

numpy's own ``np.pad`` is the reference for the reflect and replicate modes, including pads
wider than the image (torch's kernel refuses those; the op pads in steps).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tilecast.prep import (
    fill_invalid,
    guard_pixels,
    normalize,
    pad_to_multiple,
    reorder_channels,
    resize_bilinear,
    scale_values,
)
from tilecast.prep.arrays import LazyCounts


def dirty(seed: int, c: int, h: int, w: int, dtype: type) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        image = rng.uniform(-100, 100, size=(c, h, w)).astype(dtype)
        kinds = np.array([math.nan, math.inf, -math.inf, -999.0, -999.25, 7.0], dtype=dtype)
    else:
        image = rng.integers(1, 200, size=(c, h, w)).astype(dtype)
        kinds = np.array([0, 7], dtype=dtype)
    flat = rng.integers(0, image.size, size=image.size // 3)
    image.reshape(-1)[flat] = kinds[rng.integers(0, len(kinds), size=flat.size)]
    image[:, 0, :] = 7  # a row of NoData in every band
    return image


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    c=st.integers(1, 4),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    dtype=st.sampled_from([np.float32, np.float64, np.uint8, np.uint16, np.int16]),
)
def test_guard_on_a_tensor_equals_guard_on_numpy(seed, c, h, w, dtype) -> None:
    image = dirty(seed, c, h, w, dtype)
    on_numpy = guard_pixels(image, nodata=7)
    on_torch = guard_pixels(torch.from_numpy(image), nodata=7)
    assert isinstance(on_torch.valid, torch.Tensor) and isinstance(on_numpy.valid, np.ndarray)
    np.testing.assert_array_equal(on_torch.valid.numpy(), on_numpy.valid)
    assert isinstance(on_torch.counts, LazyCounts)
    assert dict(on_torch.counts) == dict(on_numpy.counts)
    assert on_torch.n_invalid == on_numpy.n_invalid == sum(on_numpy.counts.values())


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    c=st.integers(1, 4),
    h=st.integers(1, 10),
    w=st.integers(1, 10),
    scaling=st.sampled_from(["raw", "unit", "symmetric"]),
    policy=st.sampled_from(["mean", "zero", "constant"]),
)
def test_fill_scale_normalise_on_a_tensor_equal_numpy_bit_for_bit(
    seed, c, h, w, scaling, policy
) -> None:
    image = dirty(seed, c, h, w, np.float32)
    valid = guard_pixels(image, nodata=7).valid
    mean = [float(v) for v in np.linspace(-3, 3, c)]
    std = [float(v) for v in np.linspace(0.5, 2, c)]

    def chain(x, ok):
        filled = fill_invalid(x, ok, policy=policy, mean=mean, value=2.5)
        scaled = scale_values(filled, scaling=scaling, input_range=(-100.0, 100.0))
        return normalize(scaled, mean=mean, std=std)

    a = chain(image, valid)
    b = chain(torch.from_numpy(image), torch.from_numpy(valid))
    assert isinstance(b, torch.Tensor) and b.dtype == torch.float32
    np.testing.assert_array_equal(b.numpy(), a)


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    multiple=st.sampled_from([1, 8, 32, 64]),
    mode=st.sampled_from(["reflect", "replicate"]),
    lead=st.sampled_from([(), (1,), (3,)]),
    dtype=st.sampled_from([np.float32, np.uint8, np.uint16]),
)
def test_reflect_and_replicate_equal_numpys_pad_at_any_width(h, w, multiple, mode, lead, dtype):
    image = np.arange(int(np.prod(lead or (1,))) * h * w).reshape(*lead, h, w).astype(dtype)
    padded, padding = pad_to_multiple(image, multiple=multiple, mode=mode)
    widths = [(0, 0)] * len(lead) + [(0, padding.bottom), (0, padding.right)]
    numpy_mode = {"reflect": "reflect", "replicate": "edge"}[mode]
    # numpy's reflect also repeats the one pixel of an axis of size 1
    reference = image if padding.is_noop else np.pad(image, widths, mode=numpy_mode)
    assert padded.dtype == image.dtype
    np.testing.assert_array_equal(padded, reference)
    tensor, _ = pad_to_multiple(torch.from_numpy(image), multiple=multiple, mode=mode)
    np.testing.assert_array_equal(tensor.numpy(), reference)


def test_reorder_and_resize_keep_tensors_tensors() -> None:
    image = np.arange(3 * 4 * 6, dtype=np.float32).reshape(3, 4, 6)
    t = torch.from_numpy(image)
    bgr = reorder_channels(t, source="RGB", target="BGR")
    assert isinstance(bgr, torch.Tensor)
    np.testing.assert_array_equal(bgr.numpy(), image[::-1])
    small = resize_bilinear(t, (2, 3))
    assert isinstance(small, torch.Tensor)
    np.testing.assert_array_equal(small.numpy(), resize_bilinear(image, (2, 3)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_ops_stay_on_the_gpu() -> None:  # pragma: no cover - runs where a GPU is present
    image = torch.from_numpy(dirty(1, 3, 16, 16, np.float32)).cuda()
    guard = guard_pixels(image, nodata=7)
    assert guard.valid.is_cuda
    filled = fill_invalid(image, guard.valid, policy="zero")
    assert filled.is_cuda and normalize(filled, mean=[0] * 3, std=[1] * 3).is_cuda
