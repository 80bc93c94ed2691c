"""Bilinear resize through torch, for numpy arrays and tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tilecast.errors import InputError
from tilecast.prep import resize_bilinear


def ramp(c: int, h: int, w: int) -> np.ndarray:
    return np.arange(c * h * w, dtype=np.float32).reshape(c, h, w) * 0.37 - 11.0


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("antialias", [False, True])
def test_identity_size_returns_equal_values(align_corners: bool, antialias: bool) -> None:
    image = ramp(3, 7, 9)
    out = resize_bilinear(image, (7, 9), align_corners=align_corners, antialias=antialias)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, image)
    assert out is not image
    t = torch.from_numpy(image)
    out_t = resize_bilinear(t, (7, 9), align_corners=align_corners, antialias=antialias)
    assert torch.equal(out_t, t) and out_t.data_ptr() != t.data_ptr()


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 24),
    w=st.integers(1, 24),
    oh=st.integers(1, 48),
    ow=st.integers(1, 48),
    value=st.floats(-1000, 1000, width=32),
    align_corners=st.booleans(),
    antialias=st.booleans(),
)
def test_constant_image_stays_constant(h, w, oh, ow, value, align_corners, antialias) -> None:
    image = np.full((2, h, w), value, dtype=np.float32)
    out = resize_bilinear(image, (oh, ow), align_corners=align_corners, antialias=antialias)
    assert out.shape == (2, oh, ow)
    np.testing.assert_allclose(out, value, rtol=1e-5, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(2, 20), w=st.integers(2, 20), oh=st.integers(2, 40), ow=st.integers(2, 40))
def test_align_corners_preserves_corner_pixels(h: int, w: int, oh: int, ow: int) -> None:
    image = ramp(2, h, w) ** 2  # not linear, so only the corners are guaranteed
    out = resize_bilinear(image, (oh, ow), align_corners=True)
    # The first corner is exact by construction (source index 0 * scale == 0).
    np.testing.assert_array_equal(out[:, 0, 0], image[:, 0, 0])
    # torch computes the far source index as (out - 1) * float32((in - 1) / (out - 1)), which
    # can miss in - 1 by an ulp, mixing in the neighbour with a weight of ~1e-7: the far
    # corners are exact whenever that product is exact, and within float32 rounding always.
    spread = float(image.max() - image.min())
    for y_in, y_out in ((0, 0), (h - 1, oh - 1)):
        for x_in, x_out in ((0, 0), (w - 1, ow - 1)):
            got, want = out[:, y_out, x_out], image[:, y_in, x_in]
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * max(h, w) * spread)
            if _exact_far_index(h, oh) and _exact_far_index(w, ow):
                np.testing.assert_array_equal(got, want)


def _exact_far_index(n_in: int, n_out: int) -> bool:
    scale = np.float32(n_in - 1) / np.float32(n_out - 1)
    return np.float32(n_out - 1) * scale == np.float32(n_in - 1)


@pytest.mark.parametrize(("n_in", "n_out"), [(5, 9), (3, 5), (9, 5), (17, 33), (8, 8)])
def test_align_corners_corners_exact_for_exact_scales(n_in: int, n_out: int) -> None:
    image = np.random.default_rng(n_in).uniform(-1e6, 1e6, size=(1, n_in, n_in))
    out = resize_bilinear(image.astype(np.float32), (n_out, n_out), align_corners=True)
    corners = (slice(None), [0, 0, -1, -1], [0, -1, 0, -1])
    np.testing.assert_array_equal(out[corners], image.astype(np.float32)[corners])


def test_numpy_in_numpy_out_and_tensor_in_tensor_out() -> None:
    image = np.random.default_rng(1).integers(0, 256, size=(3, 10, 14), dtype=np.uint8)
    out = resize_bilinear(image, (5, 7))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (3, 5, 7)
    t = torch.from_numpy(image)
    out_t = resize_bilinear(t, (5, 7))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    assert out_t.device == t.device
    np.testing.assert_array_equal(out_t.numpy(), out)
    # Halving with align_corners=False averages 2x2 blocks exactly.
    expected = image.astype(np.float32).reshape(3, 5, 2, 7, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_batches_keep_their_batch_axis() -> None:
    batch = np.stack([ramp(1, 8, 8), ramp(1, 8, 8) * 2])
    out = resize_bilinear(batch, (16, 4))
    assert out.shape == (2, 1, 16, 4)
    np.testing.assert_array_equal(out[1], resize_bilinear(batch[1], (16, 4)))
    out_t = resize_bilinear(torch.from_numpy(batch).double(), (16, 4))
    assert tuple(out_t.shape) == (2, 1, 16, 4) and out_t.dtype == torch.float32


@pytest.mark.parametrize(("shape", "size"), [((3, 1024, 1024), (512, 512)), ((3, 300, 500), (600, 1000))])  # fmt: skip
def test_the_values_do_not_depend_on_threads_channels_or_batch(shape, size) -> None:
    """Bitwise: the same values on 1 and 2 torch threads, and a channel's values do not depend on
    the channels or images beside it (a batch of scale contexts equals each context alone).
    torch's multi-channel CPU kernel rounds differently on one thread than on two (3 x 1024 px
    of noise to 512 px: 155704 of 786432 values differed); its one-channel kernel does not."""
    rng = np.random.default_rng(3)
    batch = rng.random((2, *shape), dtype=np.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = resize_bilinear(batch, size)
        torch.set_num_threads(2)
        two = resize_bilinear(batch, size)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(one, two)
    for i in range(2):
        np.testing.assert_array_equal(one[i], resize_bilinear(batch[i], size))
        for c in range(shape[0]):
            np.testing.assert_array_equal(one[i, c], resize_bilinear(batch[i, c][None], size)[0])


@pytest.mark.parametrize("size", [(0, 4), (4, -1), (4.5, 4), (4,), "44"])
def test_bad_sizes_are_refused(size) -> None:
    with pytest.raises(InputError, match="size must be"):
        resize_bilinear(ramp(1, 4, 4), size)


def test_bad_arrays_are_refused() -> None:
    with pytest.raises(InputError, match=r"\(C, H, W\) or \(N, C, H, W\).*\(4, 4\)"):
        resize_bilinear(np.zeros((4, 4), dtype=np.float32), (2, 2))
    with pytest.raises(InputError, match="list"):
        resize_bilinear([[[1.0]]], (2, 2))  # type: ignore[type-var]
