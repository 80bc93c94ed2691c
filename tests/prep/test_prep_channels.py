"""Channel order is permuted by name."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilecast.errors import InputError
from tilecast.prep import channel_names, channel_permutation, reorder_channels


def named_image(order: str, h: int = 3, w: int = 4) -> np.ndarray:
    """Each channel is filled with the code point of its name, so a wrong permutation shows."""
    return np.stack([np.full((h, w), ord(name), dtype=np.float32) for name in order])


def test_rgb_bgr_round_trip_is_identity() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(3, 5, 6), dtype=np.uint8)
    bgr = reorder_channels(rgb, source="RGB", target="BGR")
    np.testing.assert_array_equal(bgr, rgb[::-1])
    back = reorder_channels(bgr, source="BGR", target="RGB")
    np.testing.assert_array_equal(back, rgb)
    assert back.dtype == np.uint8


def test_permutation_by_letters() -> None:
    assert channel_permutation("RGB", "BGR") == (2, 1, 0)
    assert channel_permutation("RGBN", "NRGB") == (3, 0, 1, 2)
    assert channel_permutation("BGRN", "RGBN") == (2, 1, 0, 3)
    assert channel_permutation("rgb", "RGB") == (0, 1, 2)
    assert channel_permutation("GRAY", "L") == (0,)
    assert channel_names("GRAY") == ("GRAY",) and channel_names("RGBN") == ("R", "G", "B", "N")


@settings(max_examples=100, deadline=None)
@given(data=st.data(), letters=st.sampled_from(["RGB", "RGBN", "ABCDEFG"]))
def test_reorder_puts_each_named_channel_in_place(data: st.DataObject, letters: str) -> None:
    source = "".join(data.draw(st.permutations(letters)))
    target = "".join(data.draw(st.permutations(letters)))
    out = reorder_channels(named_image(source), source=source, target=target)
    assert out.shape == (len(letters), 3, 4)
    for j, name in enumerate(target):
        assert (out[j] == ord(name)).all()
    perm = channel_permutation(source, target)
    assert sorted(perm) == list(range(len(letters)))
    assert "".join(source[i] for i in perm) == target


def test_same_order_returns_the_input_itself() -> None:
    image = named_image("RGB")
    assert reorder_channels(image, source="RGB", target="RGB") is image
    gray = np.zeros((1, 4, 4))
    assert reorder_channels(gray, source="GRAY", target="L") is gray
    planar = np.zeros((4, 4))  # (H, W) counts as one channel
    assert reorder_channels(planar, source="GRAY", target="GRAY") is planar


def test_mismatched_orders_name_both() -> None:
    with pytest.raises(InputError, match="cannot reorder RGB into RGBN"):
        reorder_channels(named_image("RGB"), source="RGB", target="RGBN")
    with pytest.raises(InputError, match="cannot reorder GRAY into RGB"):
        channel_permutation("GRAY", "RGB")
    with pytest.raises(InputError, match="cannot reorder RGB into BGN"):
        channel_permutation("RGB", "BGN")


def test_channel_count_must_match_source() -> None:
    with pytest.raises(InputError, match=r"RGB has 3 channels but the image has 4"):
        reorder_channels(np.zeros((4, 2, 2)), source="RGB", target="BGR")
    with pytest.raises(InputError, match=r"RGB has 3 channels but the image has 1"):
        reorder_channels(np.zeros((2, 2)), source="RGB", target="BGR")


@pytest.mark.parametrize("order", ["", "RRG", "R-B", "  "])
def test_bad_orders_are_refused(order: str) -> None:
    with pytest.raises(InputError, match="channel order"):
        channel_names(order)
