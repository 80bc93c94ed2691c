"""Fill invalid pixels by a declared policy, without letting sentinels into arithmetic."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from tilecast.errors import ContractError, InputError, UnknownNameError

__all__ = ["FillPolicy", "fill_invalid"]

FillPolicy = Literal["mean", "zero", "constant"]
FILL_POLICIES: tuple[str, ...] = get_args(FillPolicy)


def fill_invalid(
    image: np.ndarray,
    valid: np.ndarray,
    *,
    policy: FillPolicy,
    mean: Sequence[float] | None = None,
    value: float | None = None,
) -> np.ndarray:
    """A new float32 copy of ``image`` whose invalid pixels hold a fill value.

    ``image`` is (C, H, W) (or (H, W), one channel; the result has the same shape);
    ``valid`` is a bool (H, W) mask (every channel of an invalid pixel is filled) or a bool
    mask of the image's own shape. Fill values: ``"mean"`` the channel's mean (it becomes 0
    after normalisation with that mean), ``"zero"`` 0.0, ``"constant"`` ``value``.

    Only valid elements are ever read from ``image``; invalid ones are never converted or
    computed with, so object arrays holding ``None`` or ``"NA"`` work too.
    """
    if policy not in FILL_POLICIES:
        raise UnknownNameError("fill policy", str(policy), list(FILL_POLICIES))
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise InputError(
            f"fill_invalid expects a (C, H, W) or (H, W) image, an array of shape "
            f"{image.shape} is given"
        )
    planes = image if image.ndim == 3 else image[np.newaxis]
    n_channels = planes.shape[0]

    valid = np.asarray(valid)
    if valid.dtype != np.bool_:
        raise InputError(f"valid must be a bool mask, dtype {valid.dtype} is given")
    if valid.shape == image.shape:
        mask = valid if image.ndim == 3 else valid[np.newaxis]
    elif valid.shape == planes.shape[1:]:
        mask = np.broadcast_to(valid, planes.shape)
    else:
        raise InputError(
            f"valid has shape {valid.shape} but the image has shape {image.shape}; expected "
            f"{planes.shape[1:]} or {image.shape}"
        )

    fill = _fill_values(policy, n_channels, mean=mean, value=value)
    out = np.empty(planes.shape, dtype=np.float32)
    for c in range(n_channels):
        channel_valid = mask[c]
        out[c][channel_valid] = planes[c][channel_valid]
        out[c][~channel_valid] = fill[c]
    return out if image.ndim == 3 else out[0]


def _fill_values(
    policy: str, n_channels: int, *, mean: Sequence[float] | None, value: float | None
) -> np.ndarray:
    if policy == "zero":
        return np.zeros(n_channels, dtype=np.float32)
    if policy == "constant":
        if value is None:
            raise ContractError('fill policy "constant" needs a value, none is given')
        if not math.isfinite(float(value)):
            raise ContractError(f"fill value must be a finite number, {value!r} is given")
        return np.full(n_channels, value, dtype=np.float32)
    # "mean"
    if mean is None:
        raise ContractError('fill policy "mean" needs the per-channel mean, none is given')
    means = tuple(float(m) for m in mean)
    if len(means) != n_channels:
        raise ContractError(f"mean has {len(means)} values but the image has {n_channels} channels")
    if not all(math.isfinite(m) for m in means):
        raise ContractError(f"mean must hold finite numbers, {means} is given")
    return np.asarray(means, dtype=np.float32)
