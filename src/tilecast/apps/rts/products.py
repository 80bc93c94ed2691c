"""After the tiles: region mosaics (COGs), the polygon GeoPackage, the run log's totals, the report."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tilecast.apps.rts.config import ProductsSection
from tilecast.io import storage
from tilecast.run.runlog import RunLog
from tilecast.run.runlogs import read_run_logs, run_log_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProductsResult:
    regions: tuple[str, ...]
    n_polygons: int | None
    total_area_km2: float | None
    vectors: str | None
    report: str | None
    report_lines: tuple[str, ...] = ()


def record_total_area(output: str, total_area_km2: float) -> list[str]:
    """Write ``total_rts_area_km2`` into every run log of the output (atomically)."""
    updated = []
    for name in run_log_names(output):
        uri = storage.join(output, "logs", name)
        runlog = RunLog.model_validate_json(storage.read_text(uri))
        runlog.total_rts_area_km2 = round(total_area_km2, 6)
        storage.write_text(uri, runlog.to_json())
        updated.append(uri)
    return updated


def _any_tile_done(output: str) -> bool:
    logs = read_run_logs(output)
    return any(t.get("status") == "done" for t in logs.tiles.values())


def make_products(
    output: str,
    settings: ProductsSection,
    *,
    threshold: float | None = None,
    basemap: str | None = None,
) -> ProductsResult:
    """Merge, vectorise and report as ``settings`` say; each step reads what the previous wrote."""
    from tilecast.merge import merge_output
    from tilecast.vector.job import vectorize_output

    regions: tuple[str, ...] = ()
    n_polygons = total = vectors = report = None
    lines: tuple[str, ...] = ()
    if (settings.merge or settings.vectorize) and not _any_tile_done(output):
        log.warning("%s: no tile is done: no mosaics and no polygons", output)
        settings = settings.model_copy(update={"merge": False, "vectorize": False})
        lines += (f"products   none: no tile of {output} is done",)
    if settings.merge:
        merged = merge_output(
            output,
            threshold=threshold,
            strategy=settings.merge_strategy,
            memory_budget_bytes=settings.memory_budget_mb << 20,
        )
        regions = tuple(r.region for r in merged)
    if settings.vectorize:
        result = vectorize_output(output, threshold=threshold, min_area_m2=settings.min_area_m2)
        n_polygons, total, vectors = result.n_polygons, result.total_area_km2, result.uri
        record_total_area(output, result.total_area_km2)
    if settings.report:
        from tilecast.apps.rts.report import make_report

        summary = make_report(output, basemap=basemap)
        report, lines = summary.path, lines + tuple(summary.lines())
    return ProductsResult(regions, n_polygons, total, vectors, report, lines)
