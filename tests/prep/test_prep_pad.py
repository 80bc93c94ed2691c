"""Pad to a multiple and crop back: exact round trip at every size, every mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tilecast.errors import InputError, UnknownNameError
from tilecast.prep import Padding, crop_padding, pad_to_multiple, padding_for

MULTIPLES = (1, 2, 8, 16, 32, 64)
MODES = ("reflect", "replicate", "constant")


def coordinate_image(height: int, width: int, channels: int = 2) -> np.ndarray:
    """Pixel values encode (channel, y, x), so any misplaced pixel shows as a wrong value."""
    c, y, x = np.meshgrid(np.arange(channels), np.arange(height), np.arange(width), indexing="ij")
    return (c * 1_000_000 + y * 1000 + x).astype(np.float32)


@pytest.mark.parametrize("multiple", MULTIPLES)
def test_padding_for_is_smallest_multiple_at_every_size(multiple: int) -> None:
    for size in range(1, 201):
        p = padding_for(size, 201 - size, multiple=multiple)
        hp, wp = p.padded_shape
        assert hp % multiple == 0 and wp % multiple == 0
        assert size <= hp < size + multiple
        assert 201 - size <= wp < 201 - size + multiple
        assert (p.height, p.width) == (size, 201 - size)
        assert p.is_noop == (size % multiple == 0 and (201 - size) % multiple == 0)


@settings(max_examples=150, deadline=None)
@given(
    height=st.integers(1, 200),
    width=st.integers(1, 200),
    multiple=st.sampled_from(MULTIPLES),
    mode=st.sampled_from(MODES),
    leading=st.sampled_from([(), (1,), (3,), (2, 1)]),
)
def test_pad_then_crop_is_exact(
    height: int, width: int, multiple: int, mode: str, leading: tuple[int, ...]
) -> None:
    n = int(np.prod(leading))  # 1 for ()
    image = coordinate_image(height, width, n).reshape((*leading, height, width))
    padded, padding = pad_to_multiple(image, multiple=multiple, mode=mode, value=-5.0)
    hp, wp = padded.shape[-2:]
    assert padded.shape[:-2] == image.shape[:-2]
    assert (hp, wp) == padding.padded_shape
    assert hp % multiple == 0 and wp % multiple == 0
    assert hp - multiple < height <= hp and wp - multiple < width <= wp
    # Pixel (0, 0) stays put: the original occupies the top-left corner of the padded array.
    np.testing.assert_array_equal(padded[..., :height, :width], image)
    cropped = crop_padding(padded, padding)
    assert cropped.shape == image.shape
    np.testing.assert_array_equal(cropped, image)
    if mode == "constant" and not padding.is_noop:
        assert (padded[..., height:, :] == -5.0).all()
        assert (padded[..., :, width:] == -5.0).all()
    if mode != "constant":  # reflect and replicate only ever copy existing pixels
        assert set(np.unique(padded)) <= set(np.unique(image))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [8, 32, 64, 96])
def test_aligned_input_gets_no_padding(mode: str, size: int) -> None:
    image = coordinate_image(size, size)
    padded, padding = pad_to_multiple(image, multiple=32 if size % 32 == 0 else 8, mode=mode)
    assert padding.bottom == 0 and padding.right == 0 and padding.is_noop
    assert padded is image
    np.testing.assert_array_equal(crop_padding(padded, padding), image)


def test_well_log_checklist_case() -> None:
    p = padding_for(500, 6180, multiple=32)
    assert p == Padding(height=500, width=6180, bottom=12, right=28)
    assert p.padded_shape == (512, 6208)
    scan = coordinate_image(500, 6180, channels=1)
    padded, padding = pad_to_multiple(scan, multiple=32)
    assert padded.shape == (1, 512, 6208)
    assert padding == p
    np.testing.assert_array_equal(crop_padding(padded, padding), scan)


def test_reflect_mirrors_without_repeating_the_edge() -> None:
    row = np.arange(5, dtype=np.float32)[None, :]  # (1, 5)
    padded, _ = pad_to_multiple(row, multiple=8, mode="reflect")
    np.testing.assert_array_equal(padded[0], [0, 1, 2, 3, 4, 3, 2, 1])
    padded, _ = pad_to_multiple(row, multiple=8, mode="replicate")
    np.testing.assert_array_equal(padded[0], [0, 1, 2, 3, 4, 4, 4, 4])


@pytest.mark.parametrize("shape", [(1, 1), (3, 40), (2, 1), (1, 33)])
def test_reflect_pad_larger_than_image_does_not_fail(shape: tuple[int, int]) -> None:
    image = coordinate_image(*shape, channels=1)[0]
    padded, padding = pad_to_multiple(image, multiple=32, mode="reflect")
    assert padded.shape == (32, 64 if shape[1] > 32 else 32)
    np.testing.assert_array_equal(crop_padding(padded, padding), image)
    # An axis of size 1 has nothing to mirror: it repeats its single pixel (replicate).
    if shape[0] == 1:
        assert (padded == padded[0]).all()
    if shape[1] == 1:
        assert (padded == padded[:, :1]).all()


def test_crop_padding_accepts_tensors_and_refuses_wrong_shapes() -> None:
    padding = padding_for(30, 50, multiple=16)
    t = torch.arange(2 * 32 * 64, dtype=torch.float32).reshape(2, 32, 64)
    cropped = crop_padding(t, padding)
    assert isinstance(cropped, torch.Tensor)
    assert tuple(cropped.shape) == (2, 30, 50)
    assert torch.equal(cropped, t[:, :30, :50])
    with pytest.raises(InputError, match=r"\(32, 64\).*\(2, 31, 64\)"):
        crop_padding(torch.zeros(2, 31, 64), padding)
    with pytest.raises(InputError, match=r"\(32, 64\)"):
        crop_padding(np.zeros((30, 50)), padding)  # the unpadded array is not accepted


@pytest.mark.parametrize(
    ("height", "width", "multiple"),
    [(0, 5, 32), (5, 0, 32), (-1, 5, 32), (5, 5, 0), (5, 5, -32), (5.0, 5, 32), (True, 5, 32)],
)
def test_padding_for_refuses_bad_sizes(height: object, width: object, multiple: object) -> None:
    with pytest.raises(InputError, match="must be"):
        padding_for(height, width, multiple=multiple)  # type: ignore[arg-type]


def test_unknown_mode_is_named() -> None:
    with pytest.raises(UnknownNameError, match=r"'wrap'.*reflect"):
        pad_to_multiple(np.zeros((3, 3)), multiple=4, mode="wrap")  # type: ignore[arg-type]


def test_padding_is_a_hashable_value() -> None:
    a = padding_for(500, 6180, multiple=32)
    b = Padding(500, 6180, 12, 28)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.bottom = 0  # type: ignore[misc]
