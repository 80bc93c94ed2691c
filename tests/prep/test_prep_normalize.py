"""Guard -> fill -> normalise: sentinels never change a valid pixel's output or the stats."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tilecast.errors import ContractError, InputError, SentinelError, UnknownNameError
from tilecast.prep import fill_invalid, guard_pixels, normalize, valid_statistics

NODATA = -32768.0
SENTINELS = (math.nan, math.inf, -math.inf, NODATA, -999.0, -999.25, -9999.0)


def clean_image(seed: int, c: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-100, 100, size=(c, h, w)).astype(np.float32)


def inject(image: np.ndarray, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``image`` with ``n`` sentinels (of every kind) in random elements, and the
    (H, W) mask of the pixels that stay valid: no sentinel in any channel, and NoData in
    some channels but not all (GDAL's rule: NoData makes a pixel invalid only in every band).
    """
    rng = np.random.default_rng(seed)
    dirty = image.copy()
    flat = rng.integers(0, image.size, size=n)
    kinds = rng.integers(0, len(SENTINELS), size=n)
    dirty.reshape(-1)[flat] = np.asarray(SENTINELS, dtype=np.float64)[kinds]
    with np.errstate(invalid="ignore"):
        is_nodata = dirty == np.float32(NODATA)
    changed = dirty != image  # NaN != anything
    sentinel = (changed & ~is_nodata).any(axis=0)
    valid = ~sentinel & ~is_nodata.all(axis=0)
    return dirty, valid


@st.composite
def cases(draw: st.DrawFn):
    c = draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    image = clean_image(draw(st.integers(0, 2**32 - 1)), c, h, w)
    n = draw(st.integers(0, 2 * c * h * w))
    mean = draw(st.lists(st.floats(-50, 50), min_size=c, max_size=c))
    std = draw(st.lists(st.floats(0.01, 100), min_size=c, max_size=c))
    return image, draw(st.integers(0, 2**32 - 1)), n, mean, std


@settings(max_examples=120, deadline=None)
@given(case=cases(), policy=st.sampled_from(["mean", "zero", "constant"]))
def test_valid_pixels_normalise_exactly_as_the_clean_image(case, policy: str) -> None:
    image, seed, n, mean, std = case
    dirty, expected_valid = inject(image, seed, n)
    guard = guard_pixels(dirty, nodata=NODATA)
    np.testing.assert_array_equal(guard.valid, expected_valid)
    untouched = (dirty == image).all(axis=0)  # valid pixels whose values are the clean ones

    filled = fill_invalid(dirty, guard.valid, policy=policy, mean=mean, value=3.0)
    assert filled.dtype == np.float32 and filled.shape == image.shape
    assert np.isfinite(filled).all()
    out = normalize(filled, mean=mean, std=std)
    expected = normalize(image, mean=mean, std=std)
    np.testing.assert_array_equal(out[:, untouched], expected[:, untouched])
    invalid = ~guard.valid
    if policy == "mean":  # the mean fill normalises to exactly 0
        assert (out[:, invalid] == 0).all()
    elif policy == "zero":
        assert (filled[:, invalid] == 0).all()
    else:
        assert (filled[:, invalid] == 3.0).all()


@settings(max_examples=100, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 12), st.integers(1, 12)), min_size=1, max_size=4),
    c=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    density=st.floats(0, 3),
)
def test_statistics_ignore_any_number_of_sentinels(shapes, c: int, seed: int, density: float):
    rng = np.random.default_rng(seed)
    cleans = [clean_image(int(rng.integers(2**32)), c, h, w) for h, w in shapes]
    dirties, masks = [], []
    for i, img in enumerate(cleans):
        dirty, _ = inject(img, seed + i, int(density * img.size))
        dirties.append(dirty)
        masks.append(guard_pixels(dirty, nodata=NODATA).valid)
    if not any(m.any() for m in masks):
        with pytest.raises(InputError, match="no valid pixels"):
            valid_statistics(iter(dirties), iter(masks))
        return
    values = np.concatenate(  # valid pixels keep their values (NoData in some bands only)
        [img[:, m].astype(np.float64) for img, m in zip(dirties, masks, strict=True)], axis=1
    )
    mean, std = valid_statistics((d for d in dirties), (m for m in masks))
    assert len(mean) == len(std) == c
    assert mean == pytest.approx(tuple(values.mean(axis=1)), rel=1e-9, abs=1e-12)
    assert std == pytest.approx(tuple(values.std(axis=1)), rel=1e-9, abs=1e-12)


def test_statistics_are_streamed_and_population() -> None:
    a = np.array([[[1.0, 2.0]], [[10.0, 10.0]]])
    b = np.array([[[3.0, 4.0, 5.0]], [[10.0, 30.0, -999.0]]])
    mask_b = np.array([[True, True, False]])
    mean, std = valid_statistics(iter([a, b]), iter([np.ones((1, 2), bool), mask_b]))
    assert mean == pytest.approx((2.5, 15.0), rel=1e-12)
    assert std == pytest.approx((math.sqrt(1.25), math.sqrt(75.0)), rel=1e-12)
    # Without masks every pixel counts; a planar (H, W) image is one channel.
    mean, std = valid_statistics([np.array([[2.0, 4.0], [4.0, 6.0]])])
    assert mean == (4.0,) and std == pytest.approx((math.sqrt(2.0),))


def test_statistics_stay_accurate_with_a_large_offset() -> None:
    rng = np.random.default_rng(0)
    images = [(1e6 + rng.standard_normal((1, 64, 64))).astype(np.float64) for _ in range(8)]
    values = np.concatenate([im.ravel() for im in images])
    mean, std = valid_statistics(images)
    assert mean[0] == pytest.approx(values.mean(), rel=1e-12)
    assert std[0] == pytest.approx(values.std(), rel=1e-9)


def test_statistics_refuse_bad_input() -> None:
    with pytest.raises(SentinelError, match="1 non-finite"):
        valid_statistics([np.array([[[1.0, np.nan]]])])
    with pytest.raises(InputError, match="2 channels but earlier images have 1"):
        valid_statistics([np.zeros((1, 2, 2)), np.zeros((2, 2, 2))])
    with pytest.raises(InputError, match="fewer masks"):
        valid_statistics([np.zeros((1, 2, 2))] * 2, [np.ones((2, 2), bool)])
    with pytest.raises(InputError, match="more masks"):
        valid_statistics([np.zeros((1, 2, 2))], [np.ones((2, 2), bool)] * 2)
    with pytest.raises(InputError, match=r"shape \(2, 2\).*\(3, 2\)"):
        valid_statistics([np.zeros((1, 2, 2))], [np.ones((3, 2), bool)])
    with pytest.raises(InputError, match="no images"):
        valid_statistics([])


def test_normalize_values_and_dtype() -> None:
    image = np.array([[[0, 10]], [[255, 5]]], dtype=np.uint8)
    out = normalize(image, mean=[5.0, 5.0], std=[5.0, 2.0])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[[-1.0, 1.0]], [[125.0, 0.0]]])
    batch = np.stack([image, image])
    np.testing.assert_array_equal(normalize(batch, mean=[5, 5], std=[5, 2])[1], out)
    planar = normalize(np.array([[2.0, 4.0]]), mean=[2.0], std=[2.0])
    np.testing.assert_array_equal(planar, [[0.0, 1.0]])


def test_normalize_does_not_modify_its_input() -> None:
    image = np.ones((1, 2, 2), dtype=np.float32)
    normalize(image, mean=[1.0], std=[1.0])
    assert (image == 1).all()


def test_normalize_refuses_non_finite_input() -> None:
    image = np.zeros((3, 4, 4), dtype=np.float32)
    image[0, 0, 0], image[1, 2, 3], image[2, 3, 3] = np.nan, np.inf, -np.inf
    with pytest.raises(SentinelError, match="normalize received 3 non-finite values"):
        normalize(image, mean=[0, 0, 0], std=[1, 1, 1])


@pytest.mark.parametrize(
    ("mean", "std", "pattern"),
    [
        ([0.0, 0.0], [1.0, 1.0, 1.0], "mean has 2 values but the image has 3 channels"),
        ([0.0] * 3, [1.0] * 4, "std has 4 values but the image has 3 channels"),
        ([0.0] * 3, [1.0, 0.0, 1.0], "std must be positive"),
        ([0.0] * 3, [1.0, -2.0, 1.0], "std must be positive"),
        ([0.0] * 3, [1.0, math.nan, 1.0], "std must hold finite"),
        ([0.0, math.inf, 0.0], [1.0] * 3, "mean must hold finite"),
    ],
)
def test_normalize_refuses_bad_statistics(mean, std, pattern: str) -> None:
    with pytest.raises(ContractError, match=pattern):
        normalize(np.zeros((3, 2, 2), dtype=np.float32), mean=mean, std=std)


def test_fill_reads_only_valid_elements() -> None:
    image = np.array([["1.5", "NA", None], [2, " -999.25 ", "4"]], dtype=object)
    valid = guard_pixels(image).valid
    out = fill_invalid(image, valid, policy="constant", value=-1.0)
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, [[1.5, -1.0, -1.0], [2.0, -1.0, 4.0]])


def test_fill_mean_per_channel_and_new_array() -> None:
    image = np.array([[[1.0, -999.0]], [[np.nan, 7.0]]], dtype=np.float32)
    valid = guard_pixels(image).valid  # both pixels invalid in some channel
    assert not valid.any()
    out = fill_invalid(image, valid, policy="mean", mean=(10.0, 20.0))
    np.testing.assert_array_equal(out, [[[10.0, 10.0]], [[20.0, 20.0]]])
    assert out is not image and image[0, 0, 1] == -999.0  # input untouched
    # A per-element mask of the image's own shape fills only those elements.
    elem = np.isfinite(image) & (image != -999.0)
    out = fill_invalid(image, elem, policy="zero")
    np.testing.assert_array_equal(out, [[[1.0, 0.0]], [[0.0, 7.0]]])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_a_wholly_valid_image_comes_back_as_a_new_float32_copy(dtype) -> None:
    rng = np.random.default_rng(5)
    image = (rng.random((3, 16, 24)) * 250).astype(dtype)
    valid = np.ones((16, 24), bool)
    out = fill_invalid(image, valid, policy="mean", mean=(1.0, 2.0, 3.0))
    assert out.dtype == np.float32 and not np.shares_memory(out, image)
    np.testing.assert_array_equal(out, image.astype(np.float32))
    out[0, 0, 0] = -5.0
    assert image[0, 0, 0] != -5.0
    # one invalid pixel: the same values elsewhere, the channel means there
    valid[3, 4] = False
    out = fill_invalid(
        torch.from_numpy(image), torch.from_numpy(valid), policy="mean", mean=(1.0, 2.0, 3.0)
    )
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out[:, 3, 4].numpy(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out.numpy()[:, valid], image.astype(np.float32)[:, valid])


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"policy": "mean"}, ContractError, "needs the per-channel mean"),
        ({"policy": "mean", "mean": [0.0]}, ContractError, "mean has 1 values but the image has 2"),
        ({"policy": "constant"}, ContractError, "needs a value"),
        ({"policy": "constant", "value": math.nan}, ContractError, "finite"),
        ({"policy": "median"}, UnknownNameError, "'median'.*constant, mean, zero"),
    ],
)
def test_fill_refuses_bad_policies(kwargs, error, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        fill_invalid(np.zeros((2, 3, 3)), np.ones((3, 3), bool), **kwargs)


def test_fill_refuses_mismatched_masks() -> None:
    with pytest.raises(InputError, match=r"valid has shape \(3, 4\) but the image has shape"):
        fill_invalid(np.zeros((2, 3, 3)), np.ones((3, 4), bool), policy="zero")
    with pytest.raises(InputError, match="bool mask"):
        fill_invalid(np.zeros((2, 3, 3)), np.ones((3, 3)), policy="zero")
