"""The verdict of the QC report: what is wrong with a run, as a list of :class:`Check` lines.

:func:`assess` only looks at what was read (:class:`~.totals.ReportInputs`); the checks met
while reading (a missing GeoPackage, an unreadable mosaic or basemap) arrive with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from tilecast.apps.rts.report.text import fmt_counts
from tilecast.io.report_files import mosaic_name

if TYPE_CHECKING:
    from tilecast.apps.rts.report.polygons import Polygons
    from tilecast.apps.rts.report.totals import ReportInputs, RunTotals

Level = Literal["error", "warn", "info", "ok"]
_SEVERITY = {"error": 0, "warn": 1, "info": 2, "ok": 3}


@dataclass(frozen=True)
class Check:
    """One line of the verdict: ``level`` is error, warn, info or ok."""

    level: Level
    text: str


@dataclass(frozen=True)
class ReportSummary:
    """What :func:`~tilecast.apps.rts.report.make_report` produced, for a CLI to print.

    ``n_regions`` counts every region the report covers (with or without mosaics);
    ``missing_files`` are output files that should exist and do not (relative paths);
    ``checks`` are the verdict lines, most severe first.
    """

    path: str
    n_polygons: int
    n_regions: int
    total_area_km2: float
    n_images: int
    missing_files: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(c.text for c in self.checks if c.level == "error")

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(c.text for c in self.checks if c.level == "warn")

    def lines(self) -> list[str]:
        """A short plain-text summary: the path, the totals, then every error and warning."""
        out = [
            f"report     {self.path}",
            f"polygons   {self.n_polygons} in {self.n_regions} region(s), "
            f"{self.total_area_km2:.4f} km²",
        ]
        out += [f"ERROR      {text}" for text in self.errors]
        out += [f"warning    {text}" for text in self.warnings]
        return out


def assess(inputs: ReportInputs, checks: Sequence[Check]) -> list[Check]:
    """``checks`` (met while reading) and the run's own checks, most severe first."""
    out = list(checks)
    logs, totals, polygons = inputs.logs, inputs.totals, inputs.polygons
    for f in logs:
        if f.error:
            out.append(Check("error", f"logs/{f.name}: {f.error}"))
    if totals is None:
        if not any(f.error for f in logs):
            out.append(Check("error", "no run log: logs/inference_log*.json is missing"))
    else:
        out += _run_log_checks(totals, polygons)
    out += _polygon_checks(polygons, totals)
    if inputs.drift is not None and inputs.drift.drifted:
        out.append(Check("warn", f"basemap unlike the training data: {inputs.drift.summary()}"))
    missing = [mosaic_name(r.name, k) for r in inputs.regions for k in r.missing]
    if missing:
        out.append(Check("error", f"missing mosaic(s): {', '.join(missing)}"))
    elif inputs.regions:
        out.append(Check("ok", f"all mosaics present for {len(inputs.regions)} region(s)"))
    else:
        out.append(Check("warn", "no region mosaics in merged/"))
    return sorted(out, key=lambda c: _SEVERITY[c.level])


def _run_log_checks(totals: RunTotals, polygons: Polygons) -> list[Check]:
    """Tiles accounted for, QC errors, sentinels, shards that disagree, the log's area."""
    out = []
    accounted = totals.n_tiles_processed + totals.n_tiles_skipped
    n_not_done = sum(totals.not_done.values())
    if n_not_done:
        out.append(
            Check(
                "error",
                f"incomplete: {n_not_done:,} tile(s) not done "
                f"({fmt_counts(totals.not_done)}); no _SUCCESS. Rerunning the same "
                "command retries them; mosaics, polygons and this page leave them out",
            )
        )
    if totals.n_tiles_total is not None and not n_not_done:
        if accounted < totals.n_tiles_total:
            out.append(
                Check(
                    "error",
                    f"{totals.n_tiles_total - accounted:,} of {totals.n_tiles_total:,} "
                    "tiles are neither processed nor skipped",
                )
            )
        else:
            out.append(
                Check(
                    "ok",
                    f"all {totals.n_tiles_total:,} tiles accounted for "
                    f"({totals.n_tiles_processed:,} processed, {totals.n_tiles_skipped:,} skipped)",
                )
            )
    if len(totals.used) > 1:
        out.append(Check("info", f"totals from {totals.how}"))
    if totals.n_missing and not n_not_done:
        out.append(
            Check("error", f"the final check lists {totals.n_missing:,} tile(s) not committed")
        )
    if totals.not_complete and not n_not_done:
        out.append(Check("warn", f"run not marked complete in {', '.join(totals.not_complete)}"))
    if totals.n_tiles_skipped:
        out.append(
            Check(
                "info",
                f"{totals.n_tiles_skipped:,} tile(s) skipped: {fmt_counts(totals.skipped_reasons)}",
            )
        )
    n_qc = sum(totals.qc_errors.values())
    if n_qc:
        out.append(Check("error", f"QC errors: {fmt_counts(totals.qc_errors)}"))
    else:
        out.append(Check("ok", "no QC errors"))
    n_sent = sum(totals.sentinel_counts.values())
    if n_sent:
        out.append(
            Check(
                "warn",
                f"sentinel/NoData values in the input: {fmt_counts(totals.sentinel_counts)}",
            )
        )
    else:
        out.append(Check("ok", "no sentinel values counted"))
    for name, values in totals.disagreements.items():
        out.append(Check("warn", f"the run logs disagree on {name}: {' vs '.join(values)}"))
    if totals.n_duplicate_tiles:
        out.append(
            Check("warn", f"{totals.n_duplicate_tiles:,} tile(s) appear in more than one run log")
        )
    if polygons.frame is not None:
        n = len(polygons)
        if totals.n_tiles_with_detection and n == 0:
            out.append(
                Check(
                    "warn",
                    f"{totals.n_tiles_with_detection:,} tile(s) have detections but the "
                    "GeoPackage holds no polygon",
                )
            )
        if n and totals.n_tiles_processed and not totals.n_tiles_with_detection:
            out.append(Check("warn", f"{n:,} polygon(s) but no tile recorded a detection"))
        area_km2 = float(np.nansum(polygons.column("area_m2"))) / 1e6
        logged = totals.total_rts_area_km2
        if logged is not None and abs(logged - area_km2) > max(0.01 * area_km2, 1e-6):
            out.append(
                Check(
                    "warn",
                    f"the run log's total_rts_area_km2 ({logged:.4f}) differs from the "
                    f"polygons' ({area_km2:.4f})",
                )
            )
    return out


def _polygon_checks(polygons: Polygons, totals: RunTotals | None) -> list[Check]:
    """No polygons, polygons below the threshold, probabilities outside [0, 1]."""
    if polygons.frame is None:
        return []
    if len(polygons) == 0:
        return [Check("info", "no RTS polygons were detected (the GeoPackage is empty)")]
    out = []
    threshold = None if totals is None else totals.threshold
    if threshold is not None:
        low = int(np.sum(polygons.column("max_prob") < threshold))
        if low:
            out.append(
                Check("warn", f"{low:,} polygon(s) have max_prob below the threshold {threshold:g}")
            )
    for name in ("max_prob", "mean_prob"):
        v = polygons.column(name)
        bad = int(np.sum(np.isfinite(v) & ((v < 0) | (v > 1))))
        if bad:
            out.append(Check("error", f"{bad:,} polygon(s) have {name} outside [0, 1]"))
    return out
