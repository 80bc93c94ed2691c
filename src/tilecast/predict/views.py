"""Test-time augmentation views in a registry: each view is a transform and its exact inverse.

Views act on the two trailing (spatial) axes of a torch tensor. Every view here is a flip or a
rotation by 180 degrees, so each inverse is exact (no interpolation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from tilecast.errors import UnknownNameError

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class View:
    name: str
    forward: Transform
    inverse: Transform


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _hflip(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, dims=(-1,))


def _vflip(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, dims=(-2,))


def _rot180(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, dims=(-2, -1))


TTA_VIEWS: dict[str, View] = {
    "identity": View("identity", _identity, _identity),
    "hflip": View("hflip", _hflip, _hflip),
    "vflip": View("vflip", _vflip, _vflip),
    "rot180": View("rot180", _rot180, _rot180),
}

# The run book's TTA settings: passes per location = n_scales x len(views).
TTA_SETS: dict[str, tuple[str, ...]] = {
    "none": ("identity",),
    "minimal": ("identity", "hflip"),
    "standard": ("identity", "hflip", "vflip", "rot180"),
}


def tta_views(setting: str) -> tuple[View, ...]:
    names = TTA_SETS.get(setting)
    if names is None:
        raise UnknownNameError("TTA setting", setting, list(TTA_SETS))
    return tuple(TTA_VIEWS[n] for n in names)
