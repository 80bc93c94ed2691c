"""``logs/inference_log.json``: what ran, with what, and the record of every committed tile.

Written atomically at every checkpoint, so a reader (or a restart) sees a whole log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tilecast.run.record import CompletedTiles

log = logging.getLogger(__name__)

RUN_LOG_SCHEMA_VERSION = 1

#: ``final_check["not_done"]`` key of listed tiles the run never reached.
NOT_PROCESSED = "not processed"


class RunLog(BaseModel):
    model_config = ConfigDict(extra="allow")

    schema_version: int = RUN_LOG_SCHEMA_VERSION
    # running (or killed) | complete | incomplete (finished, but some tiles are not done:
    # final_check["not_done"] says why; rerunning retries them) | stopped (input_drift: fail
    # and the input is unlike training: input_drift says why)
    status: str = "running"
    model_version: str
    model_checkpoint: str
    bundle_digest: str
    normalization_stats_hash: str
    inference_date: str  # ISO timestamp of the first start
    basemap: str
    basemap_version: str
    scales_used: list[float]
    tta_config: str
    threshold: float
    tile_size: int
    precision: str
    plan_fingerprint: str
    n_tiles_total: int
    n_tiles_processed: int = 0
    n_tiles_skipped: int = 0
    n_tiles_with_detection: int = 0
    total_rts_area_km2: float | None = None  # filled by the vectoriser
    # the products settings of the run's config (merge, vectorize, report, merge_strategy,
    # memory_budget_mb, min_area_m2), which `rts products` follows; None in logs written
    # before they were recorded
    products: dict[str, Any] | None = None
    processing_time_hours: float = 0.0
    gpu_type: str = "cpu"
    runs: list[dict[str, Any]] = Field(default_factory=list)  # one entry per (re)start
    skipped_reasons: dict[str, int] = Field(default_factory=dict)
    sentinel_counts: dict[str, int] = Field(default_factory=dict)
    qc_errors: dict[str, int] = Field(default_factory=dict)
    # seconds per pipeline stage over every (re)start: {"read": {"wall_s", "cpu_s", "n"}, ...}
    # (wall: busy time summed over threads; cpu: those threads' CPU time; see run.stages)
    stage_seconds: dict[str, dict[str, int | float]] = Field(default_factory=dict)
    final_check: dict[str, Any] | None = None  # at the end: every listed tile done or skipped?
    # the valid basemap pixels against the training statistics: mode, pooled verdict (flags
    # with reasons, per-channel table), a verdict per region, and the moments a restart adds to
    input_drift: dict[str, Any] | None = None
    tiles: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def with_record(self, record: CompletedTiles) -> RunLog:
        tiles = record.to_json()
        done = [v for v in tiles.values() if v["status"] == "done"]
        skipped = [v for v in tiles.values() if v["status"] == "skipped"]
        reasons: dict[str, int] = {}
        for v in skipped:
            reasons[v.get("reason", "?")] = reasons.get(v.get("reason", "?"), 0) + 1
        return self.model_copy(
            update={
                "tiles": tiles,
                "n_tiles_processed": len(done),
                "n_tiles_skipped": len(skipped),
                "n_tiles_with_detection": sum(1 for v in done if v.get("detected")),
                "skipped_reasons": dict(sorted(reasons.items())),
            }
        )

    def record_products(self, settings: dict[str, Any], *, uri: str) -> None:
        """Record the products settings of this (re)start's config; say what a restart changed."""
        changed = {
            k: (self.products.get(k), v)
            for k, v in settings.items()
            if self.products is not None and self.products.get(k) != v
        }
        for key, (before, now) in changed.items():
            log.warning(
                "%s: products.%s was %r in the earlier run, this run's config says %r, which "
                "the run log records from now on",
                uri,
                key,
                before,
                now,
            )
        self.products = dict(settings)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1, sort_keys=False) + "\n"


def add_stage_seconds(
    before: dict[str, dict[str, float]], now: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Per-stage totals of earlier (re)starts plus this run's."""
    total = {name: dict(values) for name, values in before.items()}
    for name, values in now.items():
        into = total.setdefault(name, {})
        for key, value in values.items():
            into[key] = round(into.get(key, 0) + value, 3)
    return total
