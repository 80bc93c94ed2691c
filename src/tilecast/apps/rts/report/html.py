"""The QC report's page: the verdict, the stat cards, the regions table and the run-log tables,
put together with the figure sections into one HTML page (:func:`report_page`).

Plain text in, HTML out; nothing here reads a file or draws. The cards and the regions table
read :class:`~.totals.ReportInputs` and :class:`~.totals.RegionTotals`: a new card or column
(for example on input drift) is a new field there and a new entry here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from tilecast.apps.rts.report import template as tpl
from tilecast.apps.rts.report.checks import Check
from tilecast.apps.rts.report.text import fmt_counts, fmt_date, fmt_scales, fmt_value
from tilecast.apps.rts.report.totals import RegionTotals, ReportInputs, RunTotals
from tilecast.drift import DriftVerdict
from tilecast.io.report_files import MOSAIC_KINDS, RunLogFile

_HIDDEN_LOG_FIELDS = ("tiles", "runs")


@dataclass(frozen=True)
class Figures:
    """The figure sections' HTML: one overview per region, the chips, the histograms."""

    region_maps: tuple[str, ...]
    chips: str
    histograms: str


def report_page(
    inputs: ReportInputs,
    verdict: Sequence[Check],
    figures: Figures,
    *,
    output: str,
    generated: str,
) -> str:
    """The whole page: title, verdict, cards, regions, chips, distributions, maps, run log."""
    polygons = inputs.polygons
    n_poly = len(polygons)
    first = inputs.totals.first if inputs.totals else {}
    title = (
        f"RTS QC · {fmt_value(first.get('basemap_version'))} · "
        f"{fmt_value(first.get('model_version'))}"
    )
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">Output <code>{escape(output)}</code> · report generated {generated}</p>',
    ]
    if polygons.frame is not None and n_poly == 0:
        body.append('<p class="empty">No RTS polygons were detected in this run.</p>')
    body += [
        '<h2 id="verdict">Verdict</h2>',
        tpl.check_list((c.level, c.text) for c in verdict),
        cards(inputs),
        '<h2 id="regions">Regions</h2>',
        regions_table(inputs.regions),
        '<h2 id="chips">Detections</h2>',
        figures.chips
        or (
            '<p class="empty">No polygons: nothing to show.</p>'
            if n_poly == 0
            else '<p class="note">No chips requested.</p>'
        ),
        '<h2 id="distributions">Distributions</h2>',
        figures.histograms or '<p class="empty">No polygons: no distributions.</p>',
        '<h2 id="maps">Overview maps</h2>',
        "".join(figures.region_maps) or '<p class="note">No regions to map.</p>',
        '<h2 id="runlog">Run log</h2>',
        log_tables(inputs.logs, inputs.totals),
    ]
    return tpl.page(title, "\n".join(body))


def cards(inputs: ReportInputs) -> str:
    """The key numbers: polygons, area and missing mosaics, then the run logs' totals."""
    totals, polygons, regions = inputs.totals, inputs.polygons, inputs.regions
    n_poly = len(polygons)
    area_km2 = float(np.nansum(polygons.column("area_m2"))) / 1e6 if n_poly else 0.0
    n_missing = sum(len(r.missing) for r in regions)
    out = [
        (
            "RTS polygons",
            f"{n_poly:,}" if polygons.frame is not None else "no GeoPackage",
            f"in {sum(1 for r in regions if r.n_polygons)} of {len(regions)} region(s)",
            "error" if polygons.frame is None else "",
        ),
        (
            "Total RTS area",
            f"{area_km2:,.4f} km²",
            "from the polygons"
            + (
                f" (run log: {totals.total_rts_area_km2:.4f})"
                if totals and totals.total_rts_area_km2 is not None
                else ""
            ),
            "",
        ),
        ("Missing mosaics", f"{n_missing}", "", "error" if n_missing else ""),
    ]
    if totals is not None:
        out += _run_log_cards(totals)
    out.append(_drift_card(inputs.drift))
    return tpl.stat_cards(out)


def _drift_card(drift: DriftVerdict | None) -> tuple[str, str, str, str]:
    """Basemap pixels against the training statistics: like training, or the flags' reasons."""
    if drift is None:
        return ("Input drift", "not recorded", "run logs before input statistics", "")
    if not drift.judged:
        return ("Input drift", "not judged", drift.summary(), "")
    if not drift.flags:
        return ("Input drift", "like training", f"{drift.pixels:,} valid pixels sampled", "")
    return ("Input drift", f"{len(drift.flags)} flag(s)", drift.summary(), "warn")


def _run_log_cards(t: RunTotals) -> list[tuple[str, str, str, str]]:
    processed = t.n_tiles_processed
    share = f"{processed / t.n_tiles_total:.1%} of {t.n_tiles_total:,}" if t.n_tiles_total else ""
    n_qc, n_sent = sum(t.qc_errors.values()), sum(t.sentinel_counts.values())
    return [
        ("Tiles processed", f"{processed:,}", share, ""),
        (
            "Tiles skipped",
            f"{t.n_tiles_skipped:,}",
            fmt_counts(t.skipped_reasons) if t.n_tiles_skipped else "",
            "",
        ),
        (
            "Tiles with detection",
            f"{t.n_tiles_with_detection:,}",
            f"{t.n_tiles_with_detection / processed:.1%} of processed" if processed else "",
            "",
        ),
        (
            "QC errors",
            f"{n_qc:,}",
            fmt_counts(t.qc_errors) if n_qc else "",
            "error" if n_qc else "",
        ),
        (
            "Sentinel values",
            f"{n_sent:,}",
            fmt_counts(t.sentinel_counts) if n_sent else "",
            "warn" if n_sent else "",
        ),
        (
            "Processing time",
            f"{t.processing_time_hours:.2f} h",
            f"summed over {len(t.used)} logs" if len(t.used) > 1 else "",
            "",
        ),
        ("GPU", ", ".join(t.gpu_types) or "—", "", ""),
        ("Threshold", fmt_value(t.first.get("threshold")), "", ""),
        ("Scales", fmt_scales(t.first.get("scales_used")), "", ""),
        ("TTA", fmt_value(t.first.get("tta_config")), "", ""),
        (
            "Model version",
            fmt_value(t.first.get("model_version")),
            fmt_value(t.first.get("model_checkpoint")),
            "",
        ),
        (
            "Basemap version",
            fmt_value(t.first.get("basemap_version")),
            fmt_value(t.first.get("basemap")),
            "",
        ),
        ("Inference date", fmt_date(t.inference_date), "", ""),
    ]


def regions_table(regions: Sequence[RegionTotals]) -> str:
    """One row per region: which mosaics are present, its polygons, its extent with data."""
    if not regions:
        return '<p class="note">No regions.</p>'
    rows, classes = [], []
    for r in regions:
        status = ["present" if k in r.mosaics else "MISSING" for k in MOSAIC_KINDS]
        rows.append(
            [
                r.name,
                *status,
                f"{r.n_polygons:,}",
                f"{r.area_m2 / 1e6:,.4f}",
                "—" if r.data_fraction is None else f"{r.data_fraction:.1%}",
                "—" if r.drift is None else r.drift.summary(),
            ]
        )
        drifted = r.drift is not None and r.drift.drifted
        classes.append("error" if r.missing else "warn" if drifted else "")
    return tpl.table(
        [
            "region",
            "prob",
            "binary",
            "scale",
            "polygons",
            "area km²",
            "extent with predictions (approx.)",
            "input against training",
        ],
        rows,
        numeric=[False, False, False, False, True, True, True, False],
        row_classes=classes,
    )


def log_tables(logs: Sequence[RunLogFile], totals: RunTotals | None) -> str:
    """The run logs side by side (disagreeing fields highlighted), then their runs."""
    readable = [f for f in logs if f.data is not None]
    if not readable:
        return '<p class="note">No readable run log.</p>'
    shown = readable[:8]
    names: list[str] = []
    for f in shown:
        for name in f.data or {}:
            if name not in names and name not in _HIDDEN_LOG_FIELDS:
                names.append(name)
    disagree = totals.disagreements if totals else {}
    rows = [[name, *(fmt_value((f.data or {}).get(name)) for f in shown)] for name in names]
    classes = ["warn" if name in disagree else "" for name in names]
    parts = []
    if totals is not None:
        parts.append(f'<p class="note">Totals above: {escape(totals.how)}.</p>')
    if len(readable) > len(shown):
        parts.append(
            f'<p class="note">The first {len(shown)} of {len(readable)} run logs are shown.</p>'
        )
    parts.append(tpl.table(["field", *(f.name for f in shown)], rows, row_classes=classes))
    run_rows = []
    for f in readable:
        for i, run in enumerate((f.data or {}).get("runs") or []):
            if isinstance(run, Mapping):
                run_rows.append(
                    [
                        f.name,
                        i + 1,
                        fmt_value(run.get("started")),
                        fmt_value(run.get("finished")),
                        fmt_value(run.get("tiles_already_recorded")),
                        fmt_value(run.get("device")),
                    ]
                )
    if run_rows:
        parts.append("<h3>Runs and restarts</h3>")
        parts.append(
            tpl.table(
                ["log", "run", "started", "finished", "tiles already recorded", "device"],
                run_rows[:200],
                numeric=[False, True, False, False, True, False],
            )
        )
    return "".join(parts)
