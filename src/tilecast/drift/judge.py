"""Is this input like the training data? Pure rules over statistics, with reasons in words.

Given the statistics of the valid input (:class:`ChannelMoments`, in input units and the
model's channel order) and what the bundle was trained on (:class:`TrainingReference`),
:func:`judge` flags, most telling first:

- **scaling**: every channel's mean is a factor of 10 or more away from training's, in the
  same direction, and its spread by about the same factor (0-1 floats where 0-255 was
  trained, 16-bit reflectance where 8-bit was);
- **swapped**: the channel means match training's far better in another order (RGB stored as
  BGR without a colour interpretation);
- **mean**: a channel's mean lies more than ``z_mean`` training standard deviations from the
  training mean (another sensor or radiometry, haze, snow, a basemap product with another
  stretch);
- **contrast**: a channel's spread is under ``low_contrast`` or over ``high_contrast`` times
  training's (haze flattens a scene; another stretch widens it);
- **range** (when the statistics file holds quantiles): more than ``outside_range`` of the
  values fall outside training's 1st-99th percentile.

The thresholds are deliberately loose (held-out demo scenes move the means by under 0.7
training standard deviations and the spread by 0.6x-1.45x): a flag means *look at this*, not
*this might be a little off*. Nothing here reads files or logs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tilecast.drift.moments import ChannelMoments
from tilecast.drift.reference import TrainingReference

FlagKind = Literal["scaling", "swapped", "mean", "contrast", "range"]

#: Factors a wrong scaling usually has, by name (input value = training value x factor).
KNOWN_FACTORS = {
    1 / 255: "0-1 values where the model was trained on 0-255",
    255.0: "0-255 values where the model was trained on 0-1",
    1 / 10000: "0-1 reflectance where the model was trained on 0-10000",
    10000.0: "0-10000 reflectance where the model was trained on 0-1",
    10000 / 255: "0-10000 reflectance where the model was trained on 0-255",
    255 / 10000: "0-255 values where the model was trained on 0-10000",
}


MOVE_COST = 0.05  # in mean |z|, per channel another order moves


@dataclass(frozen=True)
class DriftPolicy:
    z_mean: float = 2.0
    low_contrast: float = 0.45
    high_contrast: float = 2.5
    scaling_factor: float = 10.0
    swap_min_distance: float = 0.25  # mean |z| in the given order before a swap is considered
    swap_improvement: float = 4.0  # another order must fit this many times better
    outside_range: float = 0.25
    min_pixels: int = 2000


@dataclass(frozen=True)
class DriftFlag:
    kind: FlagKind
    channels: tuple[str, ...]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "channels": list(self.channels), "reason": self.reason}


@dataclass(frozen=True)
class ChannelRow:
    """One channel, input against training, for tables."""

    channel: str
    mean: float
    std: float
    p01: float
    p99: float
    train_mean: float
    train_std: float

    @property
    def z(self) -> float:
        return (self.mean - self.train_mean) / self.train_std

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "mean": _round(self.mean),
            "std": _round(self.std),
            "p01": _round(self.p01),
            "p99": _round(self.p99),
            "train_mean": _round(self.train_mean),
            "train_std": _round(self.train_std),
            "z": _round(self.z),
        }


@dataclass(frozen=True)
class DriftVerdict:
    pixels: int  # valid pixels sampled
    judged: bool  # False: too few pixels to say anything
    flags: tuple[DriftFlag, ...]
    rows: tuple[ChannelRow, ...]

    @property
    def drifted(self) -> bool:
        return bool(self.flags)

    def summary(self) -> str:
        if not self.judged:
            return f"not judged: {self.pixels} valid pixels sampled, too few"
        if not self.flags:
            return f"like training ({self.pixels} valid pixels sampled)"
        return "; ".join(flag.reason for flag in self.flags)

    def to_json(self) -> dict[str, Any]:
        return {
            "pixels": self.pixels,
            "judged": self.judged,
            "drifted": self.drifted,
            "flags": [f.to_json() for f in self.flags],
            "channels": [r.to_json() for r in self.rows],
        }


def _round(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) else None


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.0f}"


def judge(
    moments: ChannelMoments, reference: TrainingReference, policy: DriftPolicy | None = None
) -> DriftVerdict:
    """The verdict on ``moments`` against ``reference``; see the module notes."""
    policy = policy or DriftPolicy()
    names = reference.channels
    if moments.channels != names:
        raise ValueError(f"statistics of channels {moments.channels}, training has {names}")
    mean, std = moments.mean, moments.std
    p01, p99 = moments.quantile(0.01), moments.quantile(0.99)
    t_mean = np.asarray(reference.mean, np.float64)
    t_std = np.asarray(reference.std, np.float64)
    rows = tuple(
        ChannelRow(names[c], mean[c], std[c], p01[c], p99[c], t_mean[c], t_std[c])
        for c in range(len(names))
    )
    pixels = moments.pixels
    if pixels < policy.min_pixels:
        return DriftVerdict(pixels=pixels, judged=False, flags=(), rows=rows)
    scaling = _scaling_flag(moments, mean, std, t_mean, t_std, policy)
    if scaling is not None:  # the rest would only restate it channel by channel
        return DriftVerdict(pixels=pixels, judged=True, flags=(scaling,), rows=rows)
    flags: list[DriftFlag] = []
    swap, order = _swap_flag(names, mean, t_mean, t_std, policy)
    if swap is not None:  # the other rules judge the channels as they were meant to be read
        flags.append(swap)
        mean, std = mean[list(order)], std[list(order)]
    flags += _mean_flags(names, mean, t_mean, t_std, policy)
    flags += _contrast_flags(names, std, t_std, policy)
    if swap is None:
        flags += _range_flags(names, moments, reference, policy)
    return DriftVerdict(pixels=pixels, judged=True, flags=tuple(flags), rows=rows)


def _scaling_flag(
    moments: ChannelMoments,
    mean: np.ndarray,
    std: np.ndarray,
    t_mean: np.ndarray,
    t_std: np.ndarray,
    policy: DriftPolicy,
) -> DriftFlag | None:
    if np.any(t_mean <= 0) or np.any(mean <= 0) or not np.all(np.isfinite(mean)):
        return None
    ratio = mean / t_mean
    down, up = 1 / policy.scaling_factor, policy.scaling_factor
    if not (np.all(ratio <= down) or np.all(ratio >= up)):
        return None
    # a scaling moves the spread by the same factor; a dark or inverted image does not
    spread = std / t_std
    if np.any(spread <= 0) or np.any(np.abs(np.log(spread / ratio)) > math.log(3.0)):
        return None
    factor = float(np.exp(np.mean(np.log(ratio))))
    nearest = min(KNOWN_FACTORS, key=lambda f: abs(math.log(f / factor)))
    likely = (
        f": {KNOWN_FACTORS[nearest]}" if abs(math.log(nearest / factor)) < math.log(1.5) else ""
    )
    low, high = float(np.min(moments.minimum)), float(np.max(moments.maximum))
    return DriftFlag(
        kind="scaling",
        channels=moments.channels,
        reason=(
            f"another scaling: values span {_num(low)}..{_num(high)} with means "
            f"{', '.join(_num(m) for m in mean)}, training means "
            f"{', '.join(_num(m) for m in t_mean)}, about x{factor:.3g}{likely}"
        ),
    )


def _distance(mean: np.ndarray, t_mean: np.ndarray, t_std: np.ndarray) -> float:
    return float(np.mean(np.abs(mean - t_mean) / t_std))


def _swap_flag(
    names: tuple[str, ...],
    mean: np.ndarray,
    t_mean: np.ndarray,
    t_std: np.ndarray,
    policy: DriftPolicy,
) -> tuple[DriftFlag | None, tuple[int, ...]]:
    """The swap flag and the order that reads the channels right (identity: no swap)."""
    n = len(names)
    identity = tuple(range(n))
    if n < 2:
        return None, identity
    as_given = _distance(mean, t_mean, t_std)
    if as_given < policy.swap_min_distance:
        return None, identity
    orders = (
        itertools.permutations(range(n)) if n <= 4 else [tuple(range(n)), tuple(range(n))[::-1]]
    )

    # the simplest order that fits: a channel moved costs a little (R and G often sit close,
    # and exchanging them too must not turn a plain RGB/BGR swap into a three-way one)
    def cost(order: tuple[int, ...]) -> float:
        moved = sum(1 for i in range(n) if order[i] != i)
        return _distance(mean[list(order)], t_mean, t_std) + MOVE_COST * moved

    best_order = min(orders, key=cost)
    best = _distance(mean[list(best_order)], t_mean, t_std)
    if best_order == identity or best * policy.swap_improvement > as_given:
        return None, identity
    stored = "".join(names[i] for i in np.argsort(best_order))
    moved = tuple(names[i] for i in range(n) if best_order[i] != i)
    flag = DriftFlag(
        kind="swapped",
        channels=moved,
        reason=(
            f"bands look swapped: channel means {_pairs(names, mean)} match training "
            f"{_pairs(names, t_mean)} when read as {stored} (stored {stored} without a colour "
            f"interpretation? then name the channel order {stored})"
        ),
    )
    return flag, best_order


def _pairs(names: tuple[str, ...], values: np.ndarray) -> str:
    return "(" + ", ".join(f"{n} {_num(v)}" for n, v in zip(names, values, strict=True)) + ")"


def _mean_flags(
    names: tuple[str, ...],
    mean: np.ndarray,
    t_mean: np.ndarray,
    t_std: np.ndarray,
    policy: DriftPolicy,
) -> list[DriftFlag]:
    flags = []
    for c, name in enumerate(names):
        z = (mean[c] - t_mean[c]) / t_std[c]
        if abs(z) > policy.z_mean:
            side = "above" if z > 0 else "below"
            flags.append(
                DriftFlag(
                    kind="mean",
                    channels=(name,),
                    reason=(
                        f"band {name}: mean {_num(mean[c])}, training {_num(t_mean[c])} ± "
                        f"{_num(t_std[c])} ({abs(z):.1f} std {side})"
                    ),
                )
            )
    return flags


def _contrast_flags(
    names: tuple[str, ...], std: np.ndarray, t_std: np.ndarray, policy: DriftPolicy
) -> list[DriftFlag]:
    ratio = std / t_std
    low = [names[c] for c in range(len(names)) if ratio[c] < policy.low_contrast]
    high = [names[c] for c in range(len(names)) if ratio[c] > policy.high_contrast]
    flags = []
    for chosen, words in ((low, "low contrast (haze, snow, thin cloud?)"), (high, "high spread")):
        if chosen:
            detail = ", ".join(
                f"{n} {_num(std[names.index(n)])} vs {_num(t_std[names.index(n)])}" for n in chosen
            )
            flags.append(
                DriftFlag(
                    kind="contrast",
                    channels=tuple(chosen),
                    reason=f"{words}: spread (std) {detail} in training",
                )
            )
    return flags


def _range_flags(
    names: tuple[str, ...],
    moments: ChannelMoments,
    reference: TrainingReference,
    policy: DriftPolicy,
) -> list[DriftFlag]:
    low, high = reference.quantiles.get(0.01), reference.quantiles.get(0.99)
    if low is None or high is None:
        return []
    outside = moments.fraction_outside(low, high)
    flags = []
    for c, name in enumerate(names):
        if outside[c] > policy.outside_range:
            flags.append(
                DriftFlag(
                    kind="range",
                    channels=(name,),
                    reason=(
                        f"band {name}: {outside[c]:.0%} of values outside training's "
                        f"1st-99th percentile [{_num(low[c])}, {_num(high[c])}]"
                    ),
                )
            )
    return flags
