"""The contract applied to one image: the serving path every predictor builds on.

``prepare`` runs the host-side steps in the contract's order; the model program runs the
model-side steps; ``postprocess`` applies the activation and crops the padding back. Every
predictor in tilecast (the untiled reference path, the tiled job, the well-log service) goes
through these functions, so there is exactly one implementation of the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from tilecast.bundle.baked import scale_factors
from tilecast.bundle.contract import Contract
from tilecast.bundle.stats import NormalizationStats
from tilecast.errors import InputError
from tilecast.prep import (
    Padding,
    SentinelPolicy,
    crop_padding,
    fill_invalid,
    guard_pixels,
    normalize,
    pad_to_multiple,
    reorder_channels,
    resize_bilinear,
    scale_values,
)


@dataclass(frozen=True)
class Prepared:
    """A host-prepared image ready for the model program."""

    array: np.ndarray  # float32 (C, Hp, Wp), padded to the alignment multiple
    valid: np.ndarray  # bool (H, W) at the input's extent
    sentinel_counts: Mapping[str, int]
    padding: Padding


def sentinel_policy(contract: Contract) -> SentinelPolicy:
    s = contract.sentinels
    return SentinelPolicy(values=tuple(s.values), nan=s.nan, inf=s.inf, strings=tuple(s.strings))


def check_image(contract: Contract, image: np.ndarray, *, channel_order: str) -> None:
    spec = contract.input
    if image.ndim != 3:
        raise InputError(f"expected an image of shape (channels, rows, cols), got {image.shape}")
    if image.shape[0] != spec.channels:
        raise InputError(
            f"the model takes {spec.channels} channel(s) ({spec.channel_order}), "
            f"the image has {image.shape[0]}"
        )
    if len(channel_order) != image.shape[0] and channel_order not in ("L", "GRAY"):
        raise InputError(
            f"channel order {channel_order!r} names {len(channel_order)} channels, "
            f"the image has {image.shape[0]}"
        )
    if image.dtype.name != spec.dtype:
        raise InputError(
            f"the model expects {spec.dtype} pixels ({spec.value_scaling} over "
            f"{list(spec.input_range)}), the image is {image.dtype.name}"
        )


def fill_value_mean(contract: Contract, stats: NormalizationStats) -> list[float]:
    """The channel means in input units (the fill step runs before scaling)."""
    offset, factor = scale_factors(contract)
    return [m / factor + offset for m in stats.mean]


def prepare(
    contract: Contract,
    stats: NormalizationStats,
    image: np.ndarray,
    *,
    channel_order: str,
    nodata: float | None = None,
    valid: np.ndarray | None = None,
    resize_to: tuple[int, int] | None = None,
) -> Prepared:
    """Run the contract's host-side steps on one ``(C, H, W)`` image.

    ``valid`` is the reader's validity mask (GDAL's dataset mask: alpha band, internal mask,
    NoData; pixels no source covers); the guard's mask is combined with it, and pixels only
    the reader rejects are counted as ``"masked"``. ``nodata`` is the raster's NoData value:
    the guard counts a pixel whose every channel holds it as ``"nodata"`` (GDAL's rule). ``resize_to`` resamples (bilinear) right after the invalid pixels
    are filled and before any value scaling, so no sentinel is ever interpolated: this is how a
    multi-scale job feeds a downsampled context through the same contract.
    """
    check_image(contract, image, channel_order=channel_order)
    array: np.ndarray = image
    reader_valid = valid
    valid = None
    counts: Mapping[str, int] = {}
    padding: Padding | None = None
    for step in contract.preprocessing:
        if step.where != "host" and step.op != "pad_to_multiple":
            continue
        match step.op:
            case "guard_sentinels":
                guard = guard_pixels(array, policy=sentinel_policy(contract), nodata=nodata)
                valid, counts = guard.valid, dict(guard.counts)
                if reader_valid is not None:
                    masked = int((guard.valid & ~reader_valid).sum())
                    if masked:
                        counts["masked"] = masked
                    valid = guard.valid & reader_valid
            case "reorder_channels":
                array = reorder_channels(
                    array, source=channel_order, target=contract.input.channel_order
                )
            case "fill_invalid":
                assert valid is not None  # guard_sentinels is required and runs first
                policy = step.params.get("policy", "mean")
                array = fill_invalid(
                    array,
                    valid,
                    policy=policy,
                    mean=fill_value_mean(contract, stats) if policy == "mean" else None,
                    value=step.params.get("value"),
                )
                if resize_to is not None and tuple(array.shape[-2:]) != tuple(resize_to):
                    array = resize_bilinear(array, resize_to, align_corners=False)
            case "scale_values":
                array = scale_values(
                    array,
                    scaling=contract.input.value_scaling,
                    input_range=contract.input.input_range,
                )
            case "normalize":
                array = normalize(array, mean=stats.mean, std=stats.std)
            case "pad_to_multiple":
                array, padding = pad_to_multiple(
                    np.asarray(array, dtype=np.float32),
                    multiple=contract.alignment.multiple,
                    mode=contract.alignment.pad_mode,
                )
    assert valid is not None and padding is not None
    return Prepared(
        array=np.ascontiguousarray(array, dtype=np.float32),
        valid=valid,
        sentinel_counts=counts,
        padding=padding,
    )


def activate(contract: Contract, logits: torch.Tensor) -> torch.Tensor:
    """Logits (N, K, H, W) to probabilities with the contract's activation, float32."""
    logits = logits.float()
    match contract.postprocessing.activation:
        case "sigmoid":
            return torch.sigmoid(logits)
        case "softmax":
            return torch.softmax(logits, dim=1)
        case "none":
            return logits


@dataclass(frozen=True)
class Inference:
    """Probabilities for one image at its own extent, with the validity mask."""

    probabilities: np.ndarray  # float32 (K, H, W); values at invalid pixels are meaningless
    valid: np.ndarray  # bool (H, W)
    sentinel_counts: Mapping[str, int]
    padding: Padding


def infer(
    contract: Contract,
    stats: NormalizationStats,
    model: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    *,
    channel_order: str,
    nodata: float | None = None,
    valid: np.ndarray | None = None,
    resize_to: tuple[int, int] | None = None,
) -> Inference:
    """The whole contract on one image: host steps, model program, activation, crop.

    ``valid`` is the reader's validity mask (see :func:`prepare`). With ``resize_to`` the
    probabilities come back at the resized extent.
    """
    prepared = prepare(
        contract,
        stats,
        image,
        channel_order=channel_order,
        nodata=nodata,
        valid=valid,
        resize_to=resize_to,
    )
    batch = torch.from_numpy(prepared.array[None])
    probs = activate(contract, model(batch))[0]
    out = crop_padding(probs, prepared.padding).cpu().numpy().astype(np.float32, copy=False)
    return Inference(
        probabilities=out,
        valid=prepared.valid,
        sentinel_counts=prepared.sentinel_counts,
        padding=prepared.padding,
    )
