"""Value scaling from a declared input range."""

from __future__ import annotations

import numpy as np
import pytest

from tilecast.errors import ContractError, InputError, UnknownNameError
from tilecast.prep import default_input_range, scale_values


def test_uint8_extremes_map_exactly() -> None:
    image = np.array([[[0, 255, 51]]], dtype=np.uint8)
    rng = default_input_range(image.dtype)
    assert rng == (0.0, 255.0)
    unit = scale_values(image, scaling="unit", input_range=rng)
    sym = scale_values(image, scaling="symmetric", input_range=rng)
    assert unit.dtype == sym.dtype == np.float32
    assert unit[0, 0, 0] == 0.0 and unit[0, 0, 1] == 1.0
    assert sym[0, 0, 0] == -1.0 and sym[0, 0, 1] == 1.0
    assert unit[0, 0, 2] == pytest.approx(0.2) and sym[0, 0, 2] == pytest.approx(-0.6)


def test_every_uint8_value_matches_torch_style_division() -> None:
    image = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    unit = scale_values(image, scaling="unit", input_range=(0, 255))
    np.testing.assert_array_equal(unit, image.astype(np.float32) / np.float32(255))
    assert unit.min() == 0.0 and unit.max() == 1.0


def test_uint16_and_raw() -> None:
    image = np.array([[0, 65535, 32768]], dtype=np.uint16)
    unit = scale_values(image, scaling="unit", input_range=default_input_range(np.uint16))
    assert unit[0, 0] == 0.0 and unit[0, 1] == 1.0
    raw = scale_values(image, scaling="raw", input_range=(0, 65535))
    assert raw.dtype == np.float32
    np.testing.assert_array_equal(raw, [[0.0, 65535.0, 32768.0]])


def test_custom_range_and_input_untouched() -> None:
    image = np.array([[-10.0, 0.0, 30.0]], dtype=np.float64)
    out = scale_values(image, scaling="symmetric", input_range=(-10.0, 30.0))
    np.testing.assert_allclose(out, [[-1.0, -0.5, 1.0]])
    assert image[0, 0] == -10.0
    raw = scale_values(out, scaling="raw", input_range=(0, 1))
    assert raw is not out and np.array_equal(raw, out)


def test_default_input_ranges() -> None:
    assert default_input_range(np.float32) == (0.0, 1.0)
    assert default_input_range(np.dtype("float64")) == (0.0, 1.0)
    with pytest.raises(InputError, match="int16"):
        default_input_range(np.int16)


@pytest.mark.parametrize("input_range", [(1.0, 1.0), (2.0, 1.0), (0.0, float("inf")), (0,)])
def test_bad_ranges_are_refused(input_range) -> None:
    with pytest.raises(ContractError, match="input_range"):
        scale_values(np.zeros((1, 2, 2)), scaling="unit", input_range=input_range)


def test_unknown_scaling_is_named() -> None:
    with pytest.raises(UnknownNameError, match=r"'imagenet'.*raw, symmetric, unit"):
        scale_values(np.zeros((1, 2, 2)), scaling="imagenet", input_range=(0, 1))  # type: ignore[arg-type]
