"""Golden samples: input/output pairs the loaded model must reproduce within a tolerance.

Pairs produced by the training side (``source: training``) prove train/serve parity; pairs
produced at ``bundle create`` (``source: bundle``) prove the bundle still behaves as created.
Each pair is ``golden/<name>.npz`` with ``input`` (C, H, W) in the contract's dtype,
``output`` (K, H, W) probabilities ((K,) for a classifier), and optionally ``channel_order``
and ``nodata``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tilecast.bundle.contract import Contract
from tilecast.bundle.runtime import infer
from tilecast.bundle.stats import NormalizationStats
from tilecast.errors import BundleError, GoldenMismatchError

GOLDEN_DIR = "golden"


@dataclass(frozen=True)
class GoldenPair:
    name: str
    input: np.ndarray
    output: np.ndarray
    channel_order: str
    nodata: float | None

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            input=self.input,
            output=self.output.astype(np.float32),
            channel_order=np.array(self.channel_order),
            nodata=np.array(np.nan if self.nodata is None else self.nodata, dtype=np.float64),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, name: str, data: bytes, *, default_order: str) -> GoldenPair:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:
            raise BundleError(f"{GOLDEN_DIR}/{name}: not a golden .npz file ({exc})") from exc
        for key in ("input", "output"):
            if key not in arrays:
                raise BundleError(f"{GOLDEN_DIR}/{name}: missing array {key!r}")
        nodata = float(arrays["nodata"]) if "nodata" in arrays else math.nan
        order = str(arrays["channel_order"]) if "channel_order" in arrays else default_order
        return cls(
            name=name,
            input=arrays["input"],
            output=arrays["output"],
            channel_order=order,
            nodata=None if math.isnan(nodata) else nodata,
        )


def compute_output(
    pair_input: np.ndarray,
    *,
    contract: Contract,
    stats: NormalizationStats,
    model: Callable[[torch.Tensor], torch.Tensor],
    channel_order: str,
    nodata: float | None,
) -> np.ndarray:
    result = infer(contract, stats, model, pair_input, channel_order=channel_order, nodata=nodata)
    out = result.probabilities.copy()
    if out.ndim == 3:  # a classifier's (K,) answer has no pixels to mark
        out[:, ~result.valid] = np.nan
    return out


def check_pair(
    pair: GoldenPair,
    *,
    contract: Contract,
    stats: NormalizationStats,
    model: Callable[[torch.Tensor], torch.Tensor],
    where: str,
) -> float:
    """Return the largest absolute difference; raise GoldenMismatchError beyond tolerance."""
    found = compute_output(
        pair.input,
        contract=contract,
        stats=stats,
        model=model,
        channel_order=pair.channel_order,
        nodata=pair.nodata,
    )
    expected = pair.output.astype(np.float32)
    if found.shape != expected.shape:
        raise GoldenMismatchError(
            f"{where}/{GOLDEN_DIR}/{pair.name}: output shape {found.shape}, expected {expected.shape}"
        )
    nan_found, nan_expected = np.isnan(found), np.isnan(expected)
    if not np.array_equal(nan_found, nan_expected):
        raise GoldenMismatchError(
            f"{where}/{GOLDEN_DIR}/{pair.name}: {int((nan_found != nan_expected).sum())} pixels "
            "differ in validity (NoData) from the golden output"
        )
    both = ~nan_found
    diff = np.abs(found[both] - expected[both])
    worst = float(diff.max()) if diff.size else 0.0
    tol = contract.golden.atol + contract.golden.rtol * np.abs(expected[both])
    bad = int((diff > tol).sum())
    if bad:
        raise GoldenMismatchError(
            f"{where}/{GOLDEN_DIR}/{pair.name}: {bad} of {diff.size} values differ from the golden "
            f"output by more than atol={contract.golden.atol} (max {worst:.3g}); the serving path "
            "does not reproduce what the model was checked against (preprocessing, statistics "
            "or weights changed)"
        )
    return worst


def synthetic_inputs(
    contract: Contract | Any, *, seed: int = 0
) -> list[tuple[str, np.ndarray, float | None]]:
    """Deterministic golden inputs for anything with a contract-like ``input`` spec.

    Deterministic golden inputs: smooth random images at off-stride sizes, with NoData pixels."""
    rng = np.random.default_rng(seed)
    spec = contract.input
    lo, hi = spec.input_range
    inputs = []
    for i, (h, w) in enumerate([(75, 103), (64, 96)]):
        coarse = rng.uniform(0.15, 0.85, size=(spec.channels, h // 8 + 2, w // 8 + 2))
        smooth = np.kron(coarse, np.ones((8, 8)))[:, :h, :w]
        noise = rng.normal(0, 0.05, size=smooth.shape)
        values = lo + np.clip(smooth + noise, 0.01, 0.99) * (hi - lo)
        image = values.astype(spec.dtype)
        nodata: float | None
        if np.issubdtype(image.dtype, np.integer):
            nodata = float(lo)
            image[:, : h // 6, : w // 5] = lo  # a NoData corner
        else:
            nodata = None
            image[:, 5, 7] = -999.0
            image[0, 9, 11] = np.nan
        inputs.append((f"synthetic_{i:03d}.npz", image, nodata))
    return inputs


def make_pairs(
    contract: Contract,
    *,
    stats: NormalizationStats,
    model: Callable[[torch.Tensor], torch.Tensor],
) -> list[GoldenPair]:
    """Golden pairs of :func:`synthetic_inputs` with the outputs the serving path gives now
    (``source: bundle``: they pin the bundle's behaviour from then on)."""
    order = contract.input.channel_order
    return [
        GoldenPair(
            name=name,
            input=image,
            output=compute_output(
                image,
                contract=contract,
                stats=stats,
                model=model,
                channel_order=order,
                nodata=nodata,
            ),
            channel_order=order,
            nodata=nodata,
        )
        for name, image, nodata in synthetic_inputs(contract)
    ]
