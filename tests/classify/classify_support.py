"""Tiny classification bundles for the classify tests, made in a temp dir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tilecast.bundle import ContractDraft
from tilecast.bundle.contract import DEFAULT_STEPS, InputSpec, Postprocessing, Step

FIXED_32 = {"policy": "fixed", "size": [32, 32], "interpolation": "bilinear", "antialias": False}
COLOURS = ("red", "green", "blue")


class ChannelMeans(nn.Module):
    """Logits = gain x the mean of each normalised channel: the brightest channel wins.

    With ``outputs`` other than the channel count, a head with more outputs than labels.
    """

    def __init__(self, *, channels: int = 3, outputs: int = 3, gain: float = 4.0) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, outputs, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(gain * torch.eye(outputs, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(x).flatten(1))


BAKED = ("scale_values", "normalize")


def steps(resize: dict | None = FIXED_32, *, baked: tuple[str, ...] = BAKED) -> tuple[Step, ...]:
    ops = list(DEFAULT_STEPS)
    if resize is not None:
        ops.insert(ops.index("fill_invalid") + 1, "resize_image")
    return tuple(
        Step(
            op=op,
            where="model" if op in baked else "host",
            params=dict(resize) if op == "resize_image" else {},
        )
        for op in ops
    )


def classifier_draft(
    *,
    labels: tuple[str, ...] = COLOURS,
    channel_order: str = "RGB",
    resize: dict | None = FIXED_32,
    activation: str = "softmax",
    threshold: float = 0.6,
    top_k: int | None = 2,
    calibrated_on: str | None = "held-out chips v1",
    baked: tuple[str, ...] = BAKED,
) -> ContractDraft:
    return ContractDraft(
        name="tiny-classifier",
        version="0.0.1",
        task="classification",
        input=InputSpec(
            channels=3,
            channel_order=channel_order,
            dtype="uint8",
            value_scaling="unit",
            input_range=(0, 255),
        ),
        preprocessing=steps(resize, baked=baked),
        postprocessing=Postprocessing(
            activation=activation,  # type: ignore[arg-type]
            labels=labels,
            threshold=threshold,
            top_k=top_k,
            calibrated_on=calibrated_on,
        ),
        alignment_multiple=1,
    )


STATS = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "dataset_version": "chips-v1"}


def stats_bytes() -> bytes:
    return json.dumps(STATS).encode()


def write_png(path: Path, rgb: tuple[int, ...], *, height: int, width: int) -> Path:
    """A PNG written by PIL (which stores RGB); ``rgb`` of one value writes a grayscale PNG."""
    from PIL import Image

    pixels = np.zeros((height, width, len(rgb)), np.uint8)
    pixels[...] = rgb
    Image.fromarray(pixels[..., 0] if len(rgb) == 1 else pixels).save(path)
    return path
