"""Preprocessing steps that run inside the model program (``where: model``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tilecast.bundle.contract import Contract
from tilecast.bundle.stats import NormalizationStats
from tilecast.prep.normalize import normalize_tensor
from tilecast.prep.scaling import scale_tensor


def scale_factors(contract: Contract) -> tuple[float, float]:
    """(offset, factor) with scaled = (x - offset) * factor, for the contract's value scaling."""
    lo, hi = contract.input.input_range
    match contract.input.value_scaling:
        case "raw":
            return 0.0, 1.0
        case "unit":
            return lo, 1.0 / (hi - lo)
        case "symmetric":
            return lo + (hi - lo) / 2.0, 2.0 / (hi - lo)


class BakedSteps(nn.Module):
    """Applies the contract's model-side steps, in order, to a float32 (N, C, H, W) batch."""

    def __init__(self, steps: Sequence[str], *, contract: Contract, stats: NormalizationStats):
        super().__init__()
        self.steps = tuple(steps)
        c = contract.input.channels
        lo, hi = contract.input.input_range
        self.lo, self.span = float(lo), float(hi) - float(lo)
        self.scaling = contract.input.value_scaling
        self.register_buffer("mean", torch.tensor(stats.mean, dtype=torch.float32).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(stats.std, dtype=torch.float32).view(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the same functions the host path runs (tilecast.prep): one implementation
        for step in self.steps:
            if step == "scale_values" and self.scaling != "raw":
                x = scale_tensor(
                    x, lo=self.lo, span=self.span, symmetric=self.scaling == "symmetric"
                )
            elif step == "normalize":
                x = normalize_tensor(x, self.mean, self.std)
        return x


class WithBakedSteps(nn.Module):
    """``net(baked(x))``: the program a bundle exports or assembles at load."""

    def __init__(self, baked: BakedSteps, net: nn.Module):
        super().__init__()
        self.baked = baked
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.baked(x))
