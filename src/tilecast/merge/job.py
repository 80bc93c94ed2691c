"""The merge step of the thaw-slump job: run logs in, per-region mosaics out.

:func:`merge_output` reads every run log under ``{output}/logs/`` (``inference_log.json`` and
the shards' ``inference_log.<shard>.json``), refuses logs that disagree on what produced the
tiles (:data:`CONSISTENT_KEYS`: threshold, bundle digest, ...), groups the tiles recorded as
done by region (a tile without a region goes to region ``all``), checks that every such tile
has its file, and merges each region into
``{output}/merged/region_{region}_{prob,binary,scale}.tif`` (:func:`merged_paths`).

The tiles' windows come from their files' georeferencing, snapped to the pixel grid of the
region's first tile (sorted by id) with :func:`tilecast.grid.snap_bbox`: a tile off that grid,
in another CRS or at another pixel size is refused, never resampled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from tilecast.errors import StorageError
from tilecast.grid import NAME_PATTERN, PixelGrid, snap_bbox
from tilecast.io import merge_scratch, storage, tile_files
from tilecast.merge.errors import MergeInputError, MissingTilesError
from tilecast.merge.region import (
    MergeResult,
    RegionPlan,
    Strategy,
    TileRef,
    merge_region,
    plan_region,
)
from tilecast.run.progress import ProgressCallback, no_progress
from tilecast.run.runlogs import CONSISTENT_KEYS, RunLogs, read_run_logs

__all__ = [
    "CONSISTENT_KEYS",
    "DEFAULT_REGION",
    "RegionResult",
    "RunLogs",
    "group_done_tiles",
    "merge_output",
    "merged_paths",
    "read_run_logs",
    "region_plan",
    "select_regions",
]

log = logging.getLogger(__name__)

#: Region of the tiles whose tile-list row named none.
DEFAULT_REGION = "all"


#: Run-log fields every shard must agree on (when any log has them) before tiles are merged.
@dataclass(frozen=True)
class RegionResult:
    """One region's mosaics: where they are and how they were made."""

    region: str
    prob: str
    binary: str
    scale: str
    threshold: float
    merge: MergeResult


def merged_paths(output: str, region: str) -> dict[str, str]:
    """``{"prob", "binary", "scale"} -> URI`` of a region's mosaics under ``output``."""
    base = storage.join(output, "merged")
    return {
        layer: storage.join(base, f"region_{region}_{layer}.tif")
        for layer in ("prob", "binary", "scale")
    }


def group_done_tiles(logs: RunLogs) -> dict[str, list[str]]:
    """``region -> sorted tile ids`` of the tiles recorded as done (no region: ``all``)."""
    groups: dict[str, list[str]] = {}
    for tile_id, record in logs.tiles.items():
        if record.get("status") != "done":
            continue
        region = record.get("region") or DEFAULT_REGION
        if not NAME_PATTERN.fullmatch(str(region)):
            raise MergeInputError(f"tile {tile_id}: region {region!r} cannot name a mosaic file")
        groups.setdefault(str(region), []).append(tile_id)
    return {region: sorted(ids) for region, ids in sorted(groups.items())}


def _check_files(output: str, tile_ids: Sequence[str]) -> None:
    tiles_dir = storage.join(output, "tiles")
    try:
        present = set(storage.list_files(tiles_dir))
    except StorageError:
        present = set()
    missing = [t for t in tile_ids if f"{t}.tif" not in present]
    if missing:
        raise MissingTilesError(missing, tiles_dir=tiles_dir)


def _tile_refs(output: str, tile_ids: Sequence[str]) -> tuple[list[TileRef], PixelGrid]:
    """Each tile's window on the grid of the first tile's file (all must share it)."""
    refs: list[TileRef] = []
    common: PixelGrid | None = None
    for tile_id in tile_ids:
        uri = storage.join(output, "tiles", f"{tile_id}.tif")
        grid = tile_files.read_header(uri).grid
        if common is None:
            common = grid
        elif grid.crs != common.crs or grid.res != common.res:
            raise MergeInputError(
                f"{uri}: CRS {grid.crs} and pixel size {grid.res}, but the region's tiles are "
                f"in {common.crs} at {common.res}"
            )
        window = snap_bbox(common, *grid.bounds, tile_id=tile_id)
        refs.append(TileRef(tile_id=tile_id, uri=uri, window=window))
    assert common is not None
    return refs, common


def select_regions(
    output: str, *, threshold: float | None = None, regions: Sequence[str] | None = None
) -> tuple[float, dict[str, list[str]]]:
    """The threshold to merge with and ``region -> sorted done tile ids`` (all regions, or
    those named), checked before anything is written: raises :class:`MergeInputError` when
    the logs disagree or a requested region has no done tile, :class:`MissingTilesError`
    naming every done tile whose file is missing. ``threshold`` defaults to the run logs'."""
    output = output.rstrip("/")
    logs = read_run_logs(output)
    used = logs.threshold if threshold is None else float(threshold)
    groups = group_done_tiles(logs)
    if regions is not None:
        unknown = sorted(set(regions) - set(groups))
        if unknown:
            raise MergeInputError(
                f"no done tiles in region(s) {', '.join(unknown)}; regions with done tiles: "
                f"{', '.join(groups) or '(none)'}"
            )
        groups = {r: groups[r] for r in sorted(set(regions))}
    if not groups:
        raise MergeInputError(f"the run logs of {output} record no done tile to merge")
    _check_files(output, [t for ids in groups.values() for t in ids])
    return used, groups


def region_plan(output: str, region: str, tile_ids: Sequence[str]) -> RegionPlan:
    """The merge plan of one region of a run output (the tiles' windows from their files)."""
    refs, grid = _tile_refs(output.rstrip("/"), tile_ids)
    return plan_region(refs, grid=grid, name=region)


def merge_output(
    output: str,
    *,
    threshold: float | None = None,
    strategy: Strategy = "auto",
    memory_budget_bytes: int = 2 << 30,
    regions: Sequence[str] | None = None,
    block: int = 1024,
    bands: int = 1,
    progress: ProgressCallback = no_progress,
    clean_leftovers: bool = True,
) -> list[RegionResult]:
    """Merge every region (or those named in ``regions``) of a job's output into its mosaics,
    in this process (``bands``: see :func:`~tilecast.merge.region.merge_region`; the bytes do
    not depend on it).

    ``threshold`` defaults to the run logs' threshold (the bundle's calibrated value unless the
    job's config overrode it). Raises :class:`MergeInputError` when the logs disagree or a
    requested region has no done tile, :class:`MissingTilesError` naming every done tile whose
    file is missing, before any mosaic is written. ``clean_leftovers`` removes what an
    interrupted merge left in ``merged/`` first; a caller that merges regions in parallel cleans
    once itself and passes False, so no task removes another's temporaries.
    """
    output = output.rstrip("/")
    used, groups = select_regions(output, threshold=threshold, regions=regions)
    if clean_leftovers and (
        removed := merge_scratch.remove_leftovers(storage.join(output, "merged"))
    ):
        log.info("removed %d temporary file(s) left by an interrupted merge", removed)
    log.info(
        "merging %d region(s) of %s with threshold %s: %s",
        len(groups),
        output,
        used,
        ", ".join(f"{r} ({len(ids)} tiles)" for r, ids in groups.items()),
    )
    results = []
    for number, (region, tile_ids) in enumerate(groups.items(), start=1):
        log.info("region %s (%d of %d): %d tiles", region, number, len(groups), len(tile_ids))
        plan = region_plan(output, region, tile_ids)
        paths = merged_paths(output, region)
        result = merge_region(
            plan,
            out_prob=paths["prob"],
            out_binary=paths["binary"],
            out_scale=paths["scale"],
            threshold=used,
            strategy=strategy,
            memory_budget_bytes=memory_budget_bytes,
            block=block,
            bands=bands,
            progress=progress,
        )
        results.append(
            RegionResult(
                region=region,
                prob=paths["prob"],
                binary=paths["binary"],
                scale=paths["scale"],
                threshold=used,
                merge=result,
            )
        )
    return results
