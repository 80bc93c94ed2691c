"""A small image classifier: strided GroupNorm conv stages, global average pooling, K logits.

Each stage halves the resolution with a stride-2 3x3 convolution and refines with a second;
global average pooling makes the head independent of the input size, so the model needs no
alignment (:attr:`ChipClassifier.alignment` is 1) and the serving path's resize policy alone
decides what size it sees. GroupNorm keeps statistics per sample, so one image's logits do not
depend on the batch it is served in. ``forward`` has no Python branching on shapes or values,
so it exports with ``torch.export`` with a dynamic batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tilecast.errors import ContractError
from tilecast.models.registry import register
from tilecast.models.unet import _positive_int, group_count


def _conv(cin: int, cout: int, *, stride: int, min_group_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(group_count(cout, min_group_channels), cout),
        nn.ReLU(inplace=True),
    )


@register("chip_classifier")
class ChipClassifier(nn.Module):
    """Logits ``(N, classes)`` for input ``(N, in_channels, H, W)``, any H and W >= 1.

    ``widths`` are the stages' channel counts; each stage halves the resolution (a 64 px chip
    is 4 px across after four stages).
    """

    alignment = 1

    def __init__(
        self,
        *,
        in_channels: int = 3,
        classes: int = 4,
        widths: Sequence[int] = (16, 32, 64, 96),
        min_group_channels: int = 8,
    ) -> None:
        super().__init__()
        _positive_int("in_channels", in_channels)
        _positive_int("classes", classes)
        _positive_int("min_group_channels", min_group_channels)
        if isinstance(widths, str | bytes) or not isinstance(widths, Sequence) or not widths:
            raise ContractError(
                f"widths must be a non-empty sequence of integers, {widths!r} is given"
            )
        w = [_positive_int(f"widths[{i}]", v) for i, v in enumerate(widths)]
        # Everything needed to rebuild this model with build_model(name, config); JSON-safe.
        self.config: dict[str, Any] = {
            "in_channels": in_channels,
            "classes": classes,
            "widths": list(w),
            "min_group_channels": min_group_channels,
        }
        stages = []
        for i, width in enumerate(w):
            cin = in_channels if i == 0 else w[i - 1]
            stages.append(
                nn.Sequential(
                    _conv(cin, width, stride=2, min_group_channels=min_group_channels),
                    _conv(width, width, stride=1, min_group_channels=min_group_channels),
                )
            )
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(w[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(x)).flatten(1))
