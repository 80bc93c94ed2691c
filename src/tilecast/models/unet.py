"""A plain U-Net: ``depth`` max-pool stages down, ``depth`` transposed-conv stages up.

The input height and width must be multiples of :attr:`UNet.alignment` (``2 ** depth``); the
model does not pad, because padding belongs to the serving path, which reads the alignment from
the model instead of hard-coding 32. ``forward`` has no Python branching on shapes or values,
so it exports with ``torch.export`` with a dynamic batch, height and width.

With ``norm="group"`` every GroupNorm group spans at least ``min_group_channels`` channels, and
statistics are per sample, so serving one image at a time equals batched serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from tilecast.errors import ContractError
from tilecast.models.registry import register

Norm = Literal["group", "batch"]


def group_count(channels: int, min_group_channels: int) -> int:
    """GroupNorm groups for ``channels``: ``channels // min_group_channels`` (at least 1),
    lowered to the nearest divisor of ``channels`` so every group has the same size."""
    groups = max(1, channels // min_group_channels)
    while channels % groups:
        groups -= 1
    return groups


def _norm(kind: Norm, channels: int, min_group_channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(group_count(channels, min_group_channels), channels)
    return nn.BatchNorm2d(channels)


class _ConvBlock(nn.Sequential):
    """(3x3 conv, norm, ReLU) twice."""

    def __init__(self, cin: int, cout: int, norm: Norm, min_group_channels: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            _norm(norm, cout, min_group_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            _norm(norm, cout, min_group_channels),
            nn.ReLU(inplace=True),
        )


def _positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ContractError(f"{name} must be an integer >= {minimum}, {value!r} is given")
    return value


def _resolve_widths(widths: Sequence[int] | None, depth: int, base_width: int) -> list[int]:
    if widths is None:
        return [base_width * 2**i for i in range(depth + 1)]
    if isinstance(widths, str | bytes) or not isinstance(widths, Sequence):
        raise ContractError(f"widths must be a sequence of depth + 1 integers, {widths!r} is given")
    if len(widths) != depth + 1:
        raise ContractError(
            f"widths must have depth + 1 = {depth + 1} entries, {len(widths)} are given "
            f"({list(widths)})"
        )
    return [_positive_int(f"widths[{i}]", w) for i, w in enumerate(widths)]


@register("unet")
class UNet(nn.Module):
    """U-Net returning logits ``(N, classes, H, W)`` for input ``(N, in_channels, H, W)``."""

    def __init__(
        self,
        *,
        in_channels: int = 3,
        classes: int = 1,
        depth: int = 5,
        widths: Sequence[int] | None = None,
        base_width: int = 16,
        norm: Norm = "group",
        min_group_channels: int = 16,
    ) -> None:
        super().__init__()
        _positive_int("in_channels", in_channels)
        _positive_int("classes", classes)
        _positive_int("depth", depth)
        _positive_int("base_width", base_width)
        _positive_int("min_group_channels", min_group_channels)
        if norm not in ("group", "batch"):
            raise ContractError(f"norm must be 'group' or 'batch', {norm!r} is given")
        resolved = _resolve_widths(widths, depth, base_width)
        self.depth = depth
        # Everything needed to rebuild this model with build_model(name, config); JSON-safe.
        self.config: dict[str, Any] = {
            "in_channels": in_channels,
            "classes": classes,
            "depth": depth,
            "widths": list(resolved),
            "norm": norm,
            "min_group_channels": min_group_channels,
        }
        w = resolved
        self.stem = _ConvBlock(in_channels, w[0], norm, min_group_channels)
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _ConvBlock(w[i - 1], w[i], norm, min_group_channels))
            for i in range(1, depth + 1)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(w[i], w[i - 1], kernel_size=2, stride=2) for i in range(depth, 0, -1)
        )
        self.decode = nn.ModuleList(
            _ConvBlock(2 * w[i - 1], w[i - 1], norm, min_group_channels)
            for i in range(depth, 0, -1)
        )
        self.head = nn.Conv2d(w[0], classes, kernel_size=1)

    @property
    def alignment(self) -> int:
        """Input height and width must be multiples of this (``2 ** depth``)."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = self.stem(x)
        for stage in self.down:
            skips.append(h)
            h = stage(h)
        for up, decode, skip in zip(self.up, self.decode, reversed(skips), strict=True):
            h = decode(torch.cat([up(h), skip], dim=1))
        return self.head(h)


@register("veernet")
def veernet(
    *,
    in_channels: int = 1,
    classes: int = 1,
    depth: int = 5,
    widths: Sequence[int] | None = None,
    base_width: int = 16,
    norm: Norm = "group",
    min_group_channels: int = 16,
) -> UNet:
    """The well-log digitiser: a :class:`UNet` with grayscale input and GroupNorm by default."""
    return UNet(
        in_channels=in_channels,
        classes=classes,
        depth=depth,
        widths=widths,
        base_width=base_width,
        norm=norm,
        min_group_channels=min_group_channels,
    )
