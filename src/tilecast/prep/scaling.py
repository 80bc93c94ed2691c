"""Value scaling: raw, [0, 1] or [-1, 1], from a declared input range."""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
import torch

from tilecast.errors import ContractError, InputError, UnknownNameError
from tilecast.prep.arrays import Array, as_tensor, like_input

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
    image: Array,
    *,
    scaling: ValueScaling,
    input_range: tuple[float, float],
) -> Array:
    """float32 values: ``"raw"`` unchanged, ``"unit"`` (x - lo) / (hi - lo), ``"symmetric"``
    2 * unit - 1, for a numpy array or a torch tensor on any device (same kind out).

    Arithmetic is float32, as ``torch`` training code does it (``x.float() / 255``), so
    uint8 0 and 255 map exactly to 0 and 1 (unit) or -1 and 1 (symmetric). Values outside
    ``input_range`` are not clipped. The result is always a new array.
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
    x = as_tensor(image).to(torch.float32, copy=True)  # always a new array
    if scaling != "raw":
        x = scale_tensor(x, lo=lo, span=hi - lo, symmetric=scaling == "symmetric")
    return like_input(x, image)


def scale_tensor(x: torch.Tensor, *, lo: float, span: float, symmetric: bool) -> torch.Tensor:
    """``(x - lo) / span`` (then ``* 2 - 1``) of a float32 tensor, in float32, as a new tensor.

    The one implementation of value scaling: the host path above and the step baked into a
    model program (:mod:`tilecast.bundle.baked`) both call it, so they round alike.
    """
    x = (x - lo) / span
    if symmetric:
        x = x * 2.0 - 1.0
    return x
