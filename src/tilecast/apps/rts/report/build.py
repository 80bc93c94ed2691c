"""Build the QC report of a run: read, assess, draw, write (:func:`make_report`)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import numpy as np

from tilecast.apps.rts.report.checks import Check, ReportSummary, assess
from tilecast.apps.rts.report.figures import require_matplotlib
from tilecast.apps.rts.report.html import Figures, report_page
from tilecast.apps.rts.report.polygons import load_polygons
from tilecast.apps.rts.report.sections import (
    SectionContext,
    chips_section,
    histograms_section,
    region_overview,
)
from tilecast.apps.rts.report.totals import (
    ReportInputs,
    combine_run_logs,
    input_drift_of,
    region_totals,
)
from tilecast.errors import InputError, TilecastError
from tilecast.io import report_files as files
from tilecast.io import storage

log = logging.getLogger(__name__)


def _open_basemap(uri: str | None) -> tuple[Any, str]:
    if not uri:
        return None, "no basemap: the run log names none and none was given"
    from tilecast.io.basemap import open_basemap

    try:
        return open_basemap(uri, block_cache_bytes=64 << 20), ""
    except (TilecastError, OSError) as exc:
        return None, f"the basemap {uri} cannot be opened ({exc})"


def make_report(
    output: str, *, basemap: str | None = None, out: str | None = None, n_chips: int = 6
) -> ReportSummary:
    """Write the QC report of the run in ``output``; return what it found.

    ``basemap`` overrides the run log's ``basemap`` field; ``out`` the report's path
    (default ``{output}/report/index.html``); ``n_chips`` is the number of chips per group.
    A missing basemap, mosaic or GeoPackage is reported in the page, not raised.
    """
    if isinstance(n_chips, bool) or not isinstance(n_chips, int) or n_chips < 0:
        raise InputError(f"n_chips must be an integer >= 0, {n_chips!r} is given")
    require_matplotlib()
    output = str(output).rstrip("/")
    target = out or storage.join(output, "report", "index.html")
    checks: list[Check] = []  # what goes wrong while reading, in the order it is met

    logs = files.read_run_logs(output)
    totals = combine_run_logs(logs)
    polygons = load_polygons(output, checks)
    regions = region_totals(files.find_mosaics(output), polygons, totals)

    threshold = totals.threshold if totals is not None else None
    basemap_uri = basemap or (totals.first.get("basemap") if totals else None)
    bm, basemap_note = _open_basemap(basemap_uri)
    if bm is None:
        checks.append(Check("warn", basemap_note))
    ctx = SectionContext(polygons, threshold, bm, basemap_note, checks)
    try:
        overviews = []
        for region in regions:
            log.info("report: region %s", region.name)
            overviews.append(region_overview(ctx, region))
        chips_html, n_chip_images = chips_section(ctx, n_chips)
    finally:
        if bm is not None:
            bm.close()
    hist_html, n_hist_images = histograms_section(polygons, threshold)
    drift, regions = input_drift_of(logs, regions)
    inputs = ReportInputs(
        logs=tuple(logs),
        totals=totals,
        polygons=polygons,
        regions=tuple(
            region.with_data_fraction(overview.data_fraction)
            for region, overview in zip(regions, overviews, strict=True)
        ),
        drift=drift,
    )
    verdict = assess(inputs, checks)

    figures = Figures(tuple(o.html for o in overviews), chips_html, hist_html)
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    html = report_page(inputs, verdict, figures, output=output, generated=generated)
    files.write_report(target, html)
    missing = tuple(files.mosaic_name(r.name, k) for r in regions for k in r.missing)
    if polygons.frame is None:
        missing += (files.PREDICTIONS_PATH,)
    n_poly = len(polygons)
    return ReportSummary(
        path=target,
        n_polygons=n_poly,
        n_regions=len(regions),
        total_area_km2=float(np.nansum(polygons.column("area_m2"))) / 1e6 if n_poly else 0.0,
        n_images=sum(o.n_images for o in overviews) + n_chip_images + n_hist_images,
        missing_files=missing,
        checks=tuple(verdict),
    )


def build_report(
    output: str, *, basemap: str | None = None, out: str | None = None, n_chips: int = 6
) -> str:
    """Write the QC report (see :func:`make_report`) and return its path."""
    return make_report(output, basemap=basemap, out=out, n_chips=n_chips).path
