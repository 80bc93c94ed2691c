"""What the bundle was trained on, in the units the input arrives in.

The statistics file holds the training data's per-channel mean and std in the units the
``normalize`` step sees, and, when the training layout provided them, per-channel quantiles
(``"quantiles": {"0.01": [...], "0.5": [...], "0.99": [...]}``). The drift checks compare raw
input values, so this converts them back through the contract's value scaling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tilecast.bundle.baked import scale_factors
from tilecast.bundle.contract import Contract
from tilecast.bundle.stats import NormalizationStats
from tilecast.prep.channels import channel_names


@dataclass(frozen=True)
class TrainingReference:
    """Per-channel training statistics in input units, in the model's channel order."""

    channel_order: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_range: tuple[float, float]
    dataset_version: str
    quantiles: Mapping[float, tuple[float, ...]] = field(default_factory=dict)

    @property
    def channels(self) -> tuple[str, ...]:
        return channel_names(self.channel_order)

    @classmethod
    def from_contract(cls, contract: Contract, stats: NormalizationStats) -> TrainingReference:
        offset, factor = scale_factors(contract)
        quantiles = {
            float(q): tuple(v / factor + offset for v in values)
            for q, values in parse_quantiles(getattr(stats, "quantiles", None)).items()
        }
        return cls(
            channel_order=contract.input.channel_order,
            mean=tuple(m / factor + offset for m in stats.mean),
            std=tuple(s / factor for s in stats.std),
            input_range=(
                float(contract.input.input_range[0]),
                float(contract.input.input_range[1]),
            ),
            dataset_version=stats.dataset_version,
            quantiles=quantiles,
        )

    @classmethod
    def from_bundle(cls, bundle: Any) -> TrainingReference:
        return cls.from_contract(bundle.contract, bundle.stats)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset_version": self.dataset_version,
            "channel_order": self.channel_order,
            "channels": list(self.channels),
            "mean": list(self.mean),
            "std": list(self.std),
            "input_range": list(self.input_range),
            "quantiles": {str(q): list(v) for q, v in sorted(self.quantiles.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainingReference:
        lo, hi = data["input_range"]
        return cls(
            channel_order=data["channel_order"],
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            input_range=(float(lo), float(hi)),
            dataset_version=str(data.get("dataset_version", "")),
            quantiles=parse_quantiles(data.get("quantiles")),
        )


def parse_quantiles(raw: object) -> dict[float, tuple[float, ...]]:
    """``{"0.01": [...], ...}`` from a statistics file as {0.01: (...), ...}; {} when absent."""
    if not isinstance(raw, Mapping):
        return {}
    return {float(q): tuple(float(v) for v in values) for q, values in raw.items()}
