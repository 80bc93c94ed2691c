"""Scoring digitised curves against a synthetic scan's source log.

Pure numpy. The reference at each output depth is the *source* log (the data the scan was
drawn from) interpolated there, NaN where the source holds -999; depths whose curve the scan's
missing pixels hide are left out of every figure (nothing can be read there).

Per curve:

- **median absolute error** in curve units over depths where both have a value (for a log
  curve also in decades, ``|log10(found) - log10(true)|``);
- **within one grid division**: the share of depths with a true value whose digitised value is
  within one minor grid division of it, a track fraction of ``1 / GRID_DIVISIONS`` (one minor
  division, 3 gAPI on a 0-150 linear track, 0.08 decade on a 0.2-2000 log track); a digitised
  gap at such a depth counts as a miss;
- **gap agreement**: the share of depths where the digitiser has a gap exactly when the source
  has one, with the counts of missed gaps (source gap, value found) and spurious gaps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from tilecast.apps.welllog.axes import GRID_DIVISIONS, depth_per_column, value_to_fraction
from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.records import CurveSpec, ScanRecord
from tilecast.demo.welllog_scan import ScanTruth, values_at_columns


@dataclass(frozen=True)
class CurveComparison:
    """Digitised and true values of one curve on the output depths (hidden depths removed)."""

    spec: CurveSpec
    found: np.ndarray  # float64, NaN = digitised gap
    true: np.ndarray  # float64, NaN = source gap

    @property
    def kind(self) -> str:
        return f"{self.spec.name} ({self.spec.unit}, {self.spec.scale})"


@dataclass(frozen=True)
class CurveScore:
    kind: str
    samples: int  # depths compared (hidden ones excluded)
    both: int  # depths where both have a value
    median_abs_error: float  # curve units
    median_abs_error_decades: float | None  # log curves only
    within_division: float  # share of true-valued depths within one minor grid division
    gap_agreement: float  # share of depths where gap == source gap
    missed_gaps: int  # source gap, digitiser found a value
    spurious_gaps: int  # source value, digitiser found a gap


def compare(
    digitised: DigitisedCurves, record: ScanRecord, truth: ScanTruth
) -> list[CurveComparison]:
    """Line the digitised curves up with the source log on the digitised depth index."""
    width = truth.depth.size
    columns = (digitised.depth - record.top_depth) / depth_per_column(record, width)
    left = np.clip(np.floor(columns).astype(np.int64), 0, width - 1)
    right = np.clip(left + 1, 0, width - 1)
    out = []
    for spec in record.curves:
        hidden = truth.hidden[spec.name][left] | truth.hidden[spec.name][right]
        true = values_at_columns(
            truth.source_depth, truth.source_values[spec.name], digitised.depth
        )
        found = np.asarray(digitised.values[spec.name], dtype=np.float64)
        out.append(CurveComparison(spec=spec, found=found[~hidden], true=true[~hidden]))
    return out


def score(comparisons: Iterable[CurveComparison]) -> CurveScore:
    """Pool comparisons of one curve kind (same name, unit and scale) into one score."""
    items = list(comparisons)
    if not items:
        raise ValueError("no comparisons to score")
    kinds = {c.kind for c in items}
    if len(kinds) != 1:
        raise ValueError(f"score pools one curve kind at a time, got {sorted(kinds)}")
    spec = items[0].spec
    found = np.concatenate([c.found for c in items])
    true = np.concatenate([c.true for c in items])
    has_found, has_true = ~np.isnan(found), ~np.isnan(true)
    both = has_found & has_true
    error = np.abs(found[both] - true[both])
    decades = None
    if spec.scale == "log":
        decades = float(np.median(np.abs(np.log10(found[both]) - np.log10(true[both]))))
    fraction_error = np.abs(value_to_fraction(found, spec) - value_to_fraction(true, spec))
    within = np.where(both, fraction_error <= 1.0 / GRID_DIVISIONS, False)
    return CurveScore(
        kind=items[0].kind,
        samples=int(found.size),
        both=int(both.sum()),
        median_abs_error=float(np.median(error)) if error.size else float("nan"),
        median_abs_error_decades=decades if error.size else None,
        within_division=float(within[has_true].mean()) if has_true.any() else float("nan"),
        gap_agreement=float((has_found == has_true).mean()) if found.size else float("nan"),
        missed_gaps=int((has_found & ~has_true).sum()),
        spurious_gaps=int((~has_found & has_true).sum()),
    )


def score_by_kind(comparisons: Iterable[CurveComparison]) -> dict[str, CurveScore]:
    groups: dict[str, list[CurveComparison]] = {}
    for c in comparisons:
        groups.setdefault(c.kind, []).append(c)
    return {kind: score(items) for kind, items in sorted(groups.items())}
