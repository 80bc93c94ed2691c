"""``normalization_stats.json``: the per-channel statistics training normalised with."""

from __future__ import annotations

import hashlib
import json
import math

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tilecast.errors import BundleError, BundleIntegrityError


class NormalizationStats(BaseModel):
    """Per-channel mean and std in the units the ``normalize`` step sees."""

    model_config = ConfigDict(extra="allow", frozen=True)

    mean: tuple[float, ...] = Field(min_length=1)
    std: tuple[float, ...] = Field(min_length=1)
    dataset_version: str = Field(min_length=1)


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def parse_stats(
    data: bytes,
    *,
    file: str,
    expected_md5: str | None,
    expected_dataset_version: str | None,
    channels: int | None,
) -> NormalizationStats:
    """Parse and verify a statistics file; every failure names the file, expected and found."""
    found_md5 = md5_hex(data)
    if expected_md5 is not None and found_md5 != expected_md5:
        raise BundleIntegrityError(
            f"{file}: md5 is {found_md5}, the contract expects {expected_md5} "
            "(a different statistics file than the model was trained with)"
        )
    try:
        stats = NormalizationStats.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise BundleError(f"{file}: not a valid statistics file: {exc}") from exc
    if expected_dataset_version is not None and stats.dataset_version != expected_dataset_version:
        raise BundleIntegrityError(
            f"{file}: dataset_version is {stats.dataset_version!r}, the contract expects "
            f"{expected_dataset_version!r}"
        )
    if len(stats.mean) != len(stats.std):
        raise BundleError(f"{file}: {len(stats.mean)} means but {len(stats.std)} stds")
    if channels is not None and len(stats.mean) != channels:
        raise BundleError(
            f"{file}: statistics for {len(stats.mean)} channels, the model takes {channels}"
        )
    bad_mean = [m for m in stats.mean if not math.isfinite(m)]
    if bad_mean:
        raise BundleError(f"{file}: mean must be finite, found {list(stats.mean)}")
    bad_std = [s for s in stats.std if not (math.isfinite(s) and s > 0)]
    if bad_std:
        raise BundleError(f"{file}: std must be finite and > 0, found {list(stats.std)}")
    check_quantiles(getattr(stats, "quantiles", None), channels=len(stats.mean), file=file)
    return stats


def check_quantiles(raw: object, *, channels: int, file: str) -> None:
    """Optional per-channel quantiles (``{"0.01": [...], "0.99": [...]}``, what input drift
    compares value ranges with): levels in (0, 1), one finite value per channel, values not
    decreasing with the level."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise BundleError(
            f'{file}: quantiles must map a level to per-channel values ({{"0.01": [...]}}), '
            f"found {type(raw).__name__}"
        )
    previous: list[float] | None = None
    for level, values in sorted(raw.items(), key=lambda kv: _level(kv[0], file)):
        if not (isinstance(values, list) and len(values) == channels):
            raise BundleError(
                f"{file}: quantile {level} must hold {channels} values (one per channel), "
                f"found {values!r}"
            )
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise BundleError(f"{file}: quantile {level} must be finite numbers, found {values}")
        if previous is not None and any(v < p for v, p in zip(values, previous, strict=True)):
            raise BundleError(f"{file}: quantile {level} is below a lower level's: {values}")
        previous = list(values)


def _level(key: object, file: str) -> float:
    try:
        level = float(key)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        level = math.nan
    if not 0.0 < level < 1.0:
        raise BundleError(f"{file}: a quantile level must be a number in (0, 1), found {key!r}")
    return level
