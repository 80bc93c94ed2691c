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
from tilecast.errors import BundleError, InputError
from tilecast.prep import (
    Padding,
    ResizePlan,
    SentinelPolicy,
    Size,
    crop_padding,
    fill_invalid,
    fixed_size_plan,
    guard_pixels,
    normalize,
    pad_to_multiple,
    reorder_channels,
    resize_bilinear,
    resize_image,
    scale_values,
    shorter_side_plan,
)
from tilecast.prep.arrays import Array, LazyCounts, as_tensor, numpy_dtype


@dataclass(frozen=True)
class Prepared:
    """An image prepared for the model program, on the device it was prepared on."""

    array: torch.Tensor  # float32 (C, Hp, Wp), padded to the alignment multiple
    valid: torch.Tensor  # bool (H, W) at the input's extent (after any resize_to: the input's)
    sentinel_counts: Mapping[str, int]  # read lazily: on a GPU, counting does not wait
    padding: Padding


def sentinel_policy(contract: Contract) -> SentinelPolicy:
    s = contract.sentinels
    return SentinelPolicy(values=tuple(s.values), nan=s.nan, inf=s.inf, strings=tuple(s.strings))


def check_image(contract: Contract, image: Array, *, channel_order: str) -> None:
    spec = contract.input
    if image.ndim != 3:
        raise InputError(
            f"expected an image of shape (channels, rows, cols), got {tuple(image.shape)}"
        )
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
    dtype = numpy_dtype(image).name
    if dtype != spec.dtype:
        raise InputError(
            f"the model expects {spec.dtype} pixels ({spec.value_scaling} over "
            f"{list(spec.input_range)}), the image is {dtype}"
        )


def resize_plan(contract: Contract, height: int, width: int) -> ResizePlan | None:
    """The contract's resize step for an image of this size (None: the contract has none)."""
    spec = contract.resize
    if spec is None:
        return None
    source = Size(height, width)
    if spec.policy == "fixed":
        return fixed_size_plan(source, Size(*spec.size))
    return shorter_side_plan(source, shorter_side=spec.shorter_side, crop=Size(*spec.crop))


def fill_value_mean(contract: Contract, stats: NormalizationStats) -> list[float]:
    """The channel means in input units (the fill step runs before scaling)."""
    offset, factor = scale_factors(contract)
    return [m / factor + offset for m in stats.mean]


def prepare(
    contract: Contract,
    stats: NormalizationStats,
    image: Array,
    *,
    channel_order: str,
    nodata: float | None = None,
    valid: Array | None = None,
    resize_to: tuple[int, int] | None = None,
    device: torch.device | str | None = None,
    valid_reason: str = "masked",
) -> Prepared:
    """Run the contract's host-side steps on one ``(C, H, W)`` image, as torch tensor ops.

    ``image`` is a numpy array or a tensor in its source dtype (uint8 basemap pixels stay
    uint8 until the fill step makes them float32), on the CPU or already on the model's
    device; ``device`` moves it there first. Every step runs where the tensor is: this is the
    one executor of a contract, on the host or on a GPU.

    ``valid`` is the reader's validity mask (GDAL's dataset mask: alpha band, internal mask,
    NoData; pixels no source covers); the guard's mask is combined with it, and pixels only
    the reader rejects are counted under ``valid_reason`` (``"masked"``; a reader that applied
    the NoData rule itself passes ``"nodata"`` and no ``nodata``, sparing the guard the same
    comparison). ``nodata`` is the raster's NoData value: the guard counts a pixel whose every
    channel holds it as ``"nodata"`` (GDAL's rule).
    A classifier's ``resize_image`` step (the policy it was trained with: a fixed size, or the
    shorter side then a centre crop) runs after the fill, so every image reaches the model
    at the size it was trained at.
    ``resize_to`` resamples (bilinear) right after the invalid pixels are filled and before
    any value scaling, so no sentinel is ever interpolated: this is how a multi-scale job
    feeds a downsampled context through the same contract.
    """
    check_image(contract, image, channel_order=channel_order)
    array = as_tensor(image)
    if device is not None:
        array = array.to(device, non_blocking=True)
    reader_valid = None if valid is None else as_tensor(valid).to(array.device, non_blocking=True)
    mask: torch.Tensor | None = None
    nothing_to_fill = False
    counts: Mapping[str, int] = {}
    padding: Padding | None = None
    for step in contract.preprocessing:
        if step.where != "host" and step.op != "pad_to_multiple":
            continue
        match step.op:
            case "guard_sentinels":
                guard = guard_pixels(array, policy=sentinel_policy(contract), nodata=nodata)
                mask, counts = guard.valid, guard.counts
                nothing_to_fill = guard.all_valid and reader_valid is None
                if reader_valid is not None and guard.all_valid:  # e.g. uint8: no sentinel fits
                    counts = LazyCounts.combine(counts, valid_reason, (~reader_valid).sum())
                    mask = reader_valid
                elif reader_valid is not None:
                    masked = guard.valid & ~reader_valid
                    counts = LazyCounts.combine(counts, valid_reason, masked.sum())
                    mask = guard.valid & reader_valid
            case "reorder_channels":
                array = reorder_channels(
                    array, source=channel_order, target=contract.input.channel_order
                )
            case "fill_invalid":
                assert mask is not None  # guard_sentinels is required and runs first
                policy = step.params.get("policy", "mean")
                if nothing_to_fill:  # known without looking: every pixel valid
                    array = array.to(torch.float32)
                else:
                    array = fill_invalid(
                        array,
                        mask,
                        policy=policy,
                        mean=fill_value_mean(contract, stats) if policy == "mean" else None,
                        value=step.params.get("value"),
                    )
                if resize_to is not None and tuple(array.shape[-2:]) != tuple(resize_to):
                    array = resize_bilinear(array, resize_to, align_corners=False)
            case "resize_image":
                spec = contract.resize
                assert spec is not None
                plan = resize_plan(contract, *array.shape[-2:])
                assert plan is not None
                array = resize_image(
                    array, plan, interpolation=spec.interpolation, antialias=spec.antialias
                )
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
                    array.to(torch.float32),
                    multiple=contract.alignment.multiple,
                    mode=contract.alignment.pad_mode,
                )
    assert mask is not None and padding is not None
    return Prepared(
        array=array.to(torch.float32).contiguous(),
        valid=mask,
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


def check_class_outputs(contract: Contract, probabilities: torch.Tensor) -> None:
    """A classifier's (N, K) outputs must match its label map, one name per output."""
    labels = contract.postprocessing.labels
    if probabilities.ndim != 2 or probabilities.shape[1] != len(labels):
        raise BundleError(
            f"the classifier's label map names {len(labels)} labels, the model gives outputs "
            f"of shape {tuple(probabilities.shape)} (expected (N, {len(labels)}))"
        )


@dataclass(frozen=True)
class Inference:
    """Probabilities for one image at its own extent, with the validity mask."""

    # float32 (K, H, W), values at invalid pixels meaningless; a classifier's are (K,)
    probabilities: np.ndarray
    valid: np.ndarray  # bool (H, W)
    sentinel_counts: Mapping[str, int]
    padding: Padding


def infer(
    contract: Contract,
    stats: NormalizationStats,
    model: Callable[[torch.Tensor], torch.Tensor],
    image: Array,
    *,
    channel_order: str,
    nodata: float | None = None,
    valid: Array | None = None,
    resize_to: tuple[int, int] | None = None,
    device: torch.device | str | None = None,
) -> Inference:
    """The whole contract on one image: host steps, model program, activation, crop.

    ``valid`` is the reader's validity mask (see :func:`prepare`); ``device`` is where the
    steps and the model run (default: where ``image`` is; the model must be there too). With
    ``resize_to`` the probabilities come back at the resized extent. Results come back as
    numpy arrays.
    """
    prepared = prepare(
        contract,
        stats,
        image,
        channel_order=channel_order,
        nodata=nodata,
        valid=valid,
        resize_to=resize_to,
        device=device,
    )
    probs = activate(contract, model(prepared.array[None]))
    if contract.task == "classification":
        check_class_outputs(contract, probs)
        cropped = probs[0]
    else:
        cropped = crop_padding(probs[0], prepared.padding)
    out = cropped.cpu().numpy().astype(np.float32, copy=False)
    return Inference(
        probabilities=out,
        valid=prepared.valid.cpu().numpy(),
        sentinel_counts=dict(prepared.sentinel_counts),
        padding=prepared.padding,
    )
