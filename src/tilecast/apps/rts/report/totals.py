"""What a run adds up to, from what was read: the run logs combined, each region's totals,
and :class:`ReportInputs`, everything the verdict and the page are built from.

Nothing here reads a file: the run logs arrive as :class:`~tilecast.io.report_files.RunLogFile`
and the polygons as :class:`~.polygons.Polygons`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from tilecast.drift import DriftVerdict, from_records
from tilecast.io.report_files import MOSAIC_KINDS, RunLogFile

if TYPE_CHECKING:
    from tilecast.apps.rts.report.polygons import Polygons

#: Run-log fields every shard of one run must agree on.
IDENTITY_FIELDS = (
    "model_version",
    "model_checkpoint",
    "bundle_digest",
    "normalization_stats_hash",
    "basemap",
    "basemap_version",
    "scales_used",
    "tta_config",
    "threshold",
    "tile_size",
    "precision",
)
#: The region of tiles recorded without one (the merge step's rule: ``region_all_*.tif``).
DEFAULT_REGION = "all"
_COUNT_FIELDS = ("skipped_reasons", "sentinel_counts", "qc_errors")


@dataclass(frozen=True)
class RunTotals:
    """The run logs combined: counts summed, identity fields compared."""

    used: tuple[str, ...]  # the log files the counts come from
    how: str  # how they were combined, in words
    first: Mapping[str, Any]  # the first used log (model, basemap, settings)
    disagreements: Mapping[str, tuple[str, ...]]  # identity field -> distinct values
    n_tiles_total: int | None
    n_tiles_processed: int
    n_tiles_skipped: int
    n_tiles_with_detection: int
    skipped_reasons: Mapping[str, int]
    sentinel_counts: Mapping[str, int]
    qc_errors: Mapping[str, int]
    processing_time_hours: float
    gpu_types: tuple[str, ...]
    total_rts_area_km2: float | None
    inference_date: str | None  # the earliest
    not_complete: tuple[str, ...]  # logs whose status is not "complete"
    n_missing: int  # listed tiles neither committed nor skipped (final_check)
    not_done: Mapping[str, int]  # reason -> tiles not done, a rerun retries them (final_check)
    n_duplicate_tiles: int  # tiles listed by more than one used log
    regions: tuple[str, ...] = ()  # regions of the done tiles (each must have mosaics)

    @property
    def threshold(self) -> float | None:
        """The first log's threshold, when it is a number."""
        value = self.first.get("threshold")
        return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class RegionTotals:
    """One region of the report: its mosaics (kind -> path), the missing kinds, its polygons.

    ``data_fraction`` (the share of the overview with predictions) is known once the overview
    has been read; a new per-region figure for the regions table is a new field here.
    """

    name: str
    mosaics: Mapping[str, str]
    missing: tuple[str, ...] = ()  # missing mosaic kinds
    n_polygons: int = 0
    area_m2: float = 0.0
    data_fraction: float | None = None
    drift: DriftVerdict | None = None  # its basemap pixels against training (run logs)

    def with_data_fraction(self, fraction: float | None) -> RegionTotals:
        return replace(self, data_fraction=fraction)


@dataclass(frozen=True)
class ReportInputs:
    """Everything the verdict, the cards and the tables are built from.

    A new card or table (for example on input drift) reads a new field here.
    """

    logs: tuple[RunLogFile, ...]
    totals: RunTotals | None
    polygons: Polygons
    regions: tuple[RegionTotals, ...]
    drift: DriftVerdict | None = None  # every region's basemap pixels against training


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def combine_run_logs(logs: Sequence[RunLogFile]) -> RunTotals | None:
    """Sum the counts of the run logs; None when none could be read.

    ``inference_log.json`` together with shard logs is taken as the combined log (the shard
    logs are not added again) when its tile record holds every shard's tiles; otherwise every
    log is taken as a separate run and summed.
    """
    readable = [f for f in logs if f.data is not None]
    if not readable:
        return None
    main = next((f for f in readable if f.name == "inference_log.json"), None)
    shards = [f for f in readable if f is not main]
    used = readable
    if main is not None and shards:
        main_tiles = set((main.data or {}).get("tiles") or {})
        shard_tiles = set().union(*(set((f.data or {}).get("tiles") or {}) for f in shards))
        if main_tiles and shard_tiles <= main_tiles:
            used = [main]
            how = (
                f"inference_log.json, which lists the tiles of all {len(shards)} shard log(s) "
                "(they are not added again)"
            )
        else:
            how = f"{len(used)} run logs summed (inference_log.json and shard logs)"
    elif len(used) == 1:
        how = f"one run log ({used[0].name})"
    else:
        how = f"{len(used)} shard logs summed"
    datas = [f.data or {} for f in used]

    disagreements = {}
    for name in IDENTITY_FIELDS:
        values = {_key((f.data or {}).get(name)) for f in readable if name in (f.data or {})}
        if len(values) > 1:
            disagreements[name] = tuple(sorted(values))

    sums: dict[str, Counter[str]] = {name: Counter() for name in _COUNT_FIELDS}
    for data in datas:
        for name in _COUNT_FIELDS:
            value = data.get(name) or {}
            if isinstance(value, Mapping):
                sums[name].update({str(k): _int(v) for k, v in value.items()})

    totals = [data.get("n_tiles_total") for data in datas if data.get("n_tiles_total") is not None]
    areas = [
        float(data["total_rts_area_km2"])
        for data in datas
        if isinstance(data.get("total_rts_area_km2"), int | float)
    ]
    dates = sorted(str(d["inference_date"]) for d in datas if d.get("inference_date"))
    tile_owners: Counter[str] = Counter()
    regions: set[str] = set()
    for data in datas:
        tiles = data.get("tiles") or {}
        if isinstance(tiles, Mapping):
            tile_owners.update(tiles.keys())
            regions.update(
                str(t.get("region") or DEFAULT_REGION)
                for t in tiles.values()
                if isinstance(t, Mapping) and t.get("status") == "done"
            )
    missing = 0
    not_done: Counter[str] = Counter()
    for data in datas:
        check = data.get("final_check")
        if isinstance(check, Mapping):
            missing += _int(check.get("n_missing"))
            reasons = check.get("not_done")
            if isinstance(reasons, Mapping):
                not_done.update({str(k): _int(v) for k, v in reasons.items()})
    return RunTotals(
        used=tuple(f.name for f in used),
        how=how,
        first=datas[0],
        disagreements=disagreements,
        n_tiles_total=sum(_int(t) for t in totals) if totals else None,
        n_tiles_processed=sum(_int(d.get("n_tiles_processed")) for d in datas),
        n_tiles_skipped=sum(_int(d.get("n_tiles_skipped")) for d in datas),
        n_tiles_with_detection=sum(_int(d.get("n_tiles_with_detection")) for d in datas),
        skipped_reasons=dict(sorted(sums["skipped_reasons"].items())),
        sentinel_counts=dict(sorted(sums["sentinel_counts"].items())),
        qc_errors=dict(sorted(sums["qc_errors"].items())),
        processing_time_hours=sum(float(d.get("processing_time_hours") or 0.0) for d in datas),
        gpu_types=tuple(sorted({str(d["gpu_type"]) for d in datas if d.get("gpu_type")})),
        total_rts_area_km2=sum(areas) if areas else None,
        inference_date=dates[0] if dates else None,
        not_complete=tuple(
            f.name for f, d in zip(used, datas, strict=True) if d.get("status") != "complete"
        ),
        n_missing=missing,
        not_done=dict(sorted(not_done.items())),
        n_duplicate_tiles=sum(1 for n in tile_owners.values() if n > 1),
        regions=tuple(sorted(regions)),
    )


def region_totals(
    mosaics: Mapping[str, Mapping[str, str]], polygons: Polygons, totals: RunTotals | None
) -> list[RegionTotals]:
    """Every region the report covers, by name: those with mosaics, those the polygons name and
    those of the run log's done tiles (which must have mosaics)."""
    names = set(mosaics)
    region_values = polygons.values("region")
    names.update(str(v) for v in region_values if v is not None and v == v)
    if totals is not None:
        names.update(totals.regions)
    regions = []
    for name in sorted(names):
        kinds = mosaics.get(name, {})
        mask = np.array([str(v) == name for v in region_values], dtype=bool)
        regions.append(
            RegionTotals(
                name,
                kinds,
                missing=tuple(k for k in MOSAIC_KINDS if k not in kinds),
                n_polygons=int(mask.sum()),
                area_m2=(float(np.nansum(polygons.column("area_m2")[mask])) if mask.any() else 0.0),
            )
        )
    return regions


def input_drift_of(
    logs: Sequence[RunLogFile], regions: Sequence[RegionTotals]
) -> tuple[DriftVerdict | None, list[RegionTotals]]:
    """The run's input-drift verdict (the run logs' statistics merged and judged again, so
    shards pool), and each region with its own verdict; (None, regions) when no run log
    recorded any."""
    monitor = from_records([f.data.get("input_drift") or {} for f in logs if f.data])
    if monitor is None:
        return None, list(regions)
    keys = set(monitor.keys())
    return monitor.verdict(), [
        replace(r, drift=monitor.verdict(r.name, pooled=False)) if r.name in keys else r
        for r in regions
    ]
