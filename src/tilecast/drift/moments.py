"""Per-channel statistics of valid input values: sampled from pixels, merged, kept as JSON.

A :class:`ChannelMoments` holds, per channel, the count, sum and sum of squares (float64), the
minimum and maximum, and a histogram of ``BINS`` equal bins over the contract's input range
plus one bin below and one above it. Everything adds, so statistics of tiles, regions, workers
and restarts merge exactly, in any order, and quantiles come from the histogram (to a bin's
width: one grey level over 0..255).

:func:`sample_moments` samples every ``stride``-th row and column of an image (by default the
stride that leaves about ``TARGET_SAMPLES`` pixels: every 4th of a 512 px tile, every pixel of
a 128 px chip; about a millisecond per tile), keeps the valid ones, and
reorders the channels to the model's order. It runs where the pixels are (CPU or GPU) and
returns a :class:`PendingMoments` that copies the numbers back only when resolved, so a GPU
pipeline does not wait for them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tilecast.prep.arrays import Array, as_tensor
from tilecast.prep.channels import channel_permutation

BINS = 256
TARGET_SAMPLES = 16384  # per image: a 512 x 512 tile is sampled every 4th row and column


@dataclass(frozen=True, eq=False)
class ChannelMoments:
    """Statistics of valid values per channel (arrays of shape (C,); ``hist`` (C, BINS + 2))."""

    channels: tuple[str, ...]
    lo: float
    hi: float
    count: np.ndarray  # int64
    total: np.ndarray  # float64
    total_sq: np.ndarray  # float64
    minimum: np.ndarray  # float64, +inf where count is 0
    maximum: np.ndarray  # float64, -inf where count is 0
    hist: np.ndarray  # int64: [below lo, BINS bins, above hi]

    @classmethod
    def empty(cls, channels: Sequence[str], lo: float, hi: float) -> ChannelMoments:
        c = len(channels)
        return cls(
            channels=tuple(channels),
            lo=float(lo),
            hi=float(hi),
            count=np.zeros(c, np.int64),
            total=np.zeros(c, np.float64),
            total_sq=np.zeros(c, np.float64),
            minimum=np.full(c, np.inf),
            maximum=np.full(c, -np.inf),
            hist=np.zeros((c, BINS + 2), np.int64),
        )

    @property
    def pixels(self) -> int:
        return int(self.count.min()) if self.count.size else 0

    @property
    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.total / self.count

    @property
    def std(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.total / self.count
            return np.sqrt(np.maximum(self.total_sq / self.count - mean * mean, 0.0))

    def fraction_outside(self, low: Sequence[float], high: Sequence[float]) -> np.ndarray:
        """Per channel, the fraction of values below ``low[c]`` or above ``high[c]`` (to a bin)."""
        edges = self._edges()
        out = np.zeros(len(self.channels))
        for c in range(len(self.channels)):
            if not self.count[c]:
                continue
            bins = self.hist[c, 1:-1]
            below = self.hist[c, 0] + bins[edges[1:] <= low[c]].sum()
            above = self.hist[c, -1] + bins[edges[:-1] >= high[c]].sum()
            out[c] = (below + above) / self.count[c]
        return out

    def quantile(self, q: float) -> np.ndarray:
        """Per channel, the value below which a fraction ``q`` of the values lie (to a bin)."""
        edges = self._edges()
        out = np.full(len(self.channels), np.nan)
        for c in range(len(self.channels)):
            n = self.count[c]
            if not n:
                continue
            cumulative = np.cumsum(self.hist[c])
            k = int(np.searchsorted(cumulative, q * n, side="left"))
            if k == 0:
                out[c] = self.minimum[c]
            elif k >= BINS + 1:
                out[c] = self.maximum[c]
            else:
                before = cumulative[k - 1]
                inside = (q * n - before) / max(self.hist[c, k], 1)
                value = edges[k - 1] + inside * (edges[k] - edges[k - 1])
                out[c] = min(max(value, self.minimum[c]), self.maximum[c])
        return out

    def _edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, BINS + 1)

    def merged(self, other: ChannelMoments) -> ChannelMoments:
        if (other.channels, other.lo, other.hi) != (self.channels, self.lo, self.hi):
            raise ValueError(
                f"cannot merge statistics of {other.channels} over [{other.lo}, {other.hi}] "
                f"into {self.channels} over [{self.lo}, {self.hi}]"
            )
        return ChannelMoments(
            channels=self.channels,
            lo=self.lo,
            hi=self.hi,
            count=self.count + other.count,
            total=self.total + other.total,
            total_sq=self.total_sq + other.total_sq,
            minimum=np.minimum(self.minimum, other.minimum),
            maximum=np.maximum(self.maximum, other.maximum),
            hist=self.hist + other.hist,
        )

    def to_json(self) -> dict[str, Any]:
        def finite(values: np.ndarray) -> list[float | None]:
            return [float(v) if np.isfinite(v) else None for v in values]

        return {
            "channels": list(self.channels),
            "range": [self.lo, self.hi],
            "count": self.count.tolist(),
            "sum": self.total.tolist(),
            "sum_sq": self.total_sq.tolist(),
            "min": finite(self.minimum),
            "max": finite(self.maximum),
            "hist": self.hist.tolist(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChannelMoments:
        def floats(values: Sequence[float | None], missing: float) -> np.ndarray:
            return np.array([missing if v is None else v for v in values], np.float64)

        lo, hi = data["range"]
        hist = np.array(data["hist"], np.int64).reshape(len(data["channels"]), BINS + 2)
        return cls(
            channels=tuple(data["channels"]),
            lo=float(lo),
            hi=float(hi),
            count=np.array(data["count"], np.int64),
            total=np.array(data["sum"], np.float64),
            total_sq=np.array(data["sum_sq"], np.float64),
            minimum=floats(data["min"], np.inf),
            maximum=floats(data["max"], -np.inf),
            hist=hist,
        )


@dataclass(frozen=True, eq=False)
class PendingMoments:
    """Sampled statistics still as tensors (perhaps on a GPU); :meth:`resolve` reads them."""

    channels: tuple[str, ...]
    lo: float
    hi: float
    tensors: tuple[torch.Tensor, ...]  # count, sum, sum_sq, min, max, hist

    def resolve(self) -> ChannelMoments:
        count, total, total_sq, minimum, maximum, hist = (t.cpu().numpy() for t in self.tensors)
        return ChannelMoments(
            channels=self.channels,
            lo=self.lo,
            hi=self.hi,
            count=count.astype(np.int64),
            total=total.astype(np.float64),
            total_sq=total_sq.astype(np.float64),
            minimum=np.where(count > 0, minimum, np.inf).astype(np.float64),
            maximum=np.where(count > 0, maximum, -np.inf).astype(np.float64),
            hist=hist.astype(np.int64),
        )


def sample_moments(
    image: Array,
    valid: Array | None,
    *,
    source_order: str,
    target_order: str,
    channels: Sequence[str],
    value_range: tuple[float, float],
    stride: int | None = None,
) -> PendingMoments:
    """Statistics of a (C, H, W) image's valid pixels, every ``stride``-th row and column,
    channels reordered from ``source_order`` to ``target_order``; non-finite values are not
    counted (the contract's guard counts them)."""
    pixels = as_tensor(image)
    if pixels.ndim == 2:
        pixels = pixels[None]
    perm = channel_permutation(source_order, target_order)
    if stride is None:
        stride = auto_stride(pixels.shape[-2], pixels.shape[-1])
    sampled = pixels[list(perm), ::stride, ::stride]
    c = sampled.shape[0]
    values = sampled.reshape(c, -1).to(torch.float64)
    keep = torch.isfinite(values).all(dim=0)
    if valid is not None:
        keep &= as_tensor(valid).to(values.device)[::stride, ::stride].reshape(-1)
    values = values[:, keep]
    lo, hi = float(value_range[0]), float(value_range[1])
    n = values.shape[1]
    count = torch.full((c,), n, dtype=torch.int64, device=values.device)
    if n:
        minimum, maximum = values.min(dim=1).values, values.max(dim=1).values
    else:
        minimum = torch.zeros(c, dtype=torch.float64, device=values.device)
        maximum = minimum
    position = ((values - lo) * (BINS / (hi - lo))).floor()
    position = torch.where(values == hi, BINS - 1, position).clamp(-1, BINS) + 1
    offsets = torch.arange(c, device=values.device)[:, None] * (BINS + 2)
    hist = torch.bincount((position.long() + offsets).reshape(-1), minlength=c * (BINS + 2))
    return PendingMoments(
        channels=tuple(channels),
        lo=lo,
        hi=hi,
        tensors=(
            count,
            values.sum(dim=1),
            (values * values).sum(dim=1),
            minimum,
            maximum,
            hist.reshape(c, BINS + 2),
        ),
    )


def auto_stride(height: int, width: int) -> int:
    """The sampling stride that leaves about :data:`TARGET_SAMPLES` pixels (at least 1)."""
    return max(1, math.isqrt(height * width // TARGET_SAMPLES))
