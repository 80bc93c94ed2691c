"""Per-channel normalisation and the statistics it needs, over valid pixels only."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from tilecast.errors import ContractError, InputError, SentinelError
from tilecast.prep.arrays import Array, as_tensor, dtype_kind, like_input

__all__ = ["normalize", "valid_statistics"]


def normalize(image: Array, *, mean: Sequence[float], std: Sequence[float]) -> Array:
    """float32 ``(x - mean[c]) / std[c]`` for a (C, H, W) image (channel axis -3, so
    (N, C, H, W) works too; an (H, W) array is one channel), a numpy array or a torch tensor
    on any device (the result is of the same kind, on that device).

    Refuses (:class:`SentinelError`) any non-finite input: guard and fill sentinels first
    (integer images cannot hold one, so they are not checked). Arithmetic is float32,
    elementwise, so a pixel's output depends on that pixel alone. The model-side step
    (:mod:`tilecast.bundle.baked`) calls :func:`normalize_tensor`, the same arithmetic.
    """
    kind = dtype_kind(image)
    if kind not in "biuf":
        raise InputError(f"normalize expects a numeric array, dtype {image.dtype} is given")
    if image.ndim < 2:
        raise InputError(
            f"normalize expects a (C, H, W) image, an array of shape {tuple(image.shape)} is given"
        )
    n_channels = image.shape[-3] if image.ndim >= 3 else 1
    means = _channel_values("mean", mean, n_channels)
    stds = _channel_values("std", std, n_channels)
    if any(s <= 0 for s in stds):
        raise ContractError(f"std must be positive for every channel, {stds} is given")
    x = as_tensor(image)
    if kind == "f":
        n_bad = int((~torch.isfinite(x)).sum())
        if n_bad:
            raise SentinelError(
                f"normalize received {n_bad} non-finite values; guard and fill sentinels first"
            )
    shape = (n_channels, 1, 1) if image.ndim >= 3 else (1, 1)
    m = torch.tensor(means, dtype=torch.float32, device=x.device).reshape(shape)
    s = torch.tensor(stds, dtype=torch.float32, device=x.device).reshape(shape)
    return like_input(normalize_tensor(x.to(torch.float32), m, s), image)


def normalize_tensor(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` in float32, broadcasting; a new tensor. The one implementation."""
    return (x - mean) / std


def _channel_values(name: str, values: Sequence[float], n_channels: int) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ContractError(f"{name} must be a sequence of numbers, {values!r} is given") from exc
    if len(numbers) != n_channels:
        raise ContractError(
            f"{name} has {len(numbers)} values but the image has {n_channels} channels"
        )
    if not all(math.isfinite(v) for v in numbers):
        raise ContractError(f"{name} must hold finite numbers, {numbers} is given")
    return numbers


def valid_statistics(
    images: Iterable[np.ndarray],
    valid: Iterable[np.ndarray] | None = None,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std over the valid pixels of a stream of images.

    ``images`` are (C, H, W) (or (H, W), one channel) and may differ in size; ``valid``
    yields one bool (H, W) mask per image (None: every pixel is valid). Pixels outside the
    masks are never read, so sentinels there cannot change the result. Accumulation is
    float64: each image contributes its count, mean and sum of squared deviations, merged
    with Chan et al.'s parallel update, so only one image is held at a time.

    Raises :class:`SentinelError` if a valid pixel is not finite, :class:`InputError` if
    the images disagree on the channel count, the masks do not fit, or a channel has no
    valid pixel at all.
    """
    masks = iter(valid) if valid is not None else None
    count: np.ndarray | None = None
    mean = m2 = np.zeros(0)
    for i, image in enumerate(images):
        arr = np.asarray(image)
        planes = arr if arr.ndim == 3 else arr[np.newaxis] if arr.ndim == 2 else None
        if planes is None:
            raise InputError(
                f"image {i} must be (C, H, W) or (H, W), an array of shape {arr.shape} is given"
            )
        if count is None:
            count = np.zeros(planes.shape[0], dtype=np.int64)
            mean = np.zeros(planes.shape[0], dtype=np.float64)
            m2 = np.zeros(planes.shape[0], dtype=np.float64)
        elif planes.shape[0] != count.size:
            raise InputError(
                f"image {i} has {planes.shape[0]} channels but earlier images have {count.size}"
            )
        if masks is None:
            values = planes.reshape(planes.shape[0], -1)
        else:
            try:
                mask = np.asarray(next(masks))
            except StopIteration:
                msg = f"valid has fewer masks than images (none for image {i})"
                raise InputError(msg) from None
            if mask.dtype != np.bool_ or mask.shape != planes.shape[1:]:
                raise InputError(
                    f"mask {i} must be a bool array of shape {planes.shape[1:]}, "
                    f"{mask.dtype} of shape {mask.shape} is given"
                )
            values = planes[:, mask]
        n = values.shape[1]
        if n == 0:
            continue
        x = values.astype(np.float64)
        if not np.isfinite(x).all():
            n_bad = int(x.size - np.count_nonzero(np.isfinite(x)))
            raise SentinelError(
                f"image {i} has {n_bad} non-finite values among its valid pixels; "
                f"guard sentinels and pass the masks"
            )
        batch_mean = x.mean(axis=1)
        batch_m2 = ((x - batch_mean[:, None]) ** 2).sum(axis=1)
        total = count + n
        delta = batch_mean - mean
        mean = mean + delta * (n / total)
        m2 = m2 + batch_m2 + delta**2 * (count * n / total)
        count = total
    if masks is not None and next(masks, None) is not None:
        raise InputError("valid has more masks than images")
    if count is None:
        raise InputError("valid_statistics received no images")
    if (count == 0).any():
        empty = [int(c) for c in np.flatnonzero(count == 0)]
        raise InputError(f"channels {empty} have no valid pixels; statistics are undefined")
    std = np.sqrt(m2 / count)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
