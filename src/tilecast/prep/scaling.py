"""Value scaling: raw, [0, 1] or [-1, 1], from a declared input range."""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np

from tilecast.errors import ContractError, InputError, UnknownNameError

__all__ = ["ValueScaling", "default_input_range", "scale_values"]

ValueScaling = Literal["raw", "unit", "symmetric"]
VALUE_SCALINGS: tuple[str, ...] = get_args(ValueScaling)


def default_input_range(dtype: np.dtype | type) -> tuple[float, float]:
    """The conventional value range of a dtype: uint8 (0, 255), uint16 (0, 65535), float (0, 1).

    Other dtypes (int16, int32, bool, ...) have no convention everyone agrees on, so they
    raise :class:`InputError`: declare the range explicitly.
    """
    dt = np.dtype(dtype)
    if dt == np.uint8:
        return (0.0, 255.0)
    if dt == np.uint16:
        return (0.0, 65535.0)
    if dt.kind == "f":
        return (0.0, 1.0)
    raise InputError(
        f"no default input range for dtype {dt}; expected uint8, uint16 or a float dtype, "
        f"or declare input_range explicitly"
    )


def scale_values(
    image: np.ndarray,
    *,
    scaling: ValueScaling,
    input_range: tuple[float, float],
) -> np.ndarray:
    """float32 values: ``"raw"`` unchanged, ``"unit"`` (x - lo) / (hi - lo), ``"symmetric"``
    2 * unit - 1.

    Arithmetic is float32, as ``torch`` training code does it (``x.float() / 255``), so
    uint8 0 and 255 map exactly to 0 and 1 (unit) or -1 and 1 (symmetric). Values outside
    ``input_range`` are not clipped.
    """
    if scaling not in VALUE_SCALINGS:
        raise UnknownNameError("value scaling", str(scaling), list(VALUE_SCALINGS))
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError) as exc:
        raise ContractError(
            f"input_range must be two numbers (lo, hi), {input_range!r} is given"
        ) from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ContractError(f"input_range must be finite with hi > lo, ({lo}, {hi}) is given")
    x = np.asarray(image).astype(np.float32)  # always a new array
    if scaling == "raw":
        return x
    x -= np.float32(lo)
    x /= np.float32(hi - lo)
    if scaling == "symmetric":
        x *= np.float32(2.0)
        x -= np.float32(1.0)
    return x
