"""Overlap merging of per-tile predictions into region mosaics (COGs).

- :mod:`tilecast.merge.maxmerge`: the pure pixel-wise maximum (order independent) and the
  binary mask;
- :mod:`tilecast.merge.overviews`: the pure overview-level reducers (average, mode);
- :mod:`tilecast.merge.bands`: the pure row-band arithmetic that lets tasks share a region;
- :mod:`tilecast.merge.region`: plan one region, merge it in memory or streaming, band by band
  (in one process or as separate tasks), write COGs;
- :mod:`tilecast.merge.job`: the job's merge step, from the run logs to ``merged/``.
"""

from tilecast.merge.bands import balanced_chunks, band_level_window, band_windows, shared_levels
from tilecast.merge.errors import MergeInputError, MissingTilesError
from tilecast.merge.job import (
    DEFAULT_REGION,
    RegionResult,
    RunLogs,
    group_done_tiles,
    merge_output,
    merged_paths,
    read_run_logs,
    region_plan,
    select_regions,
)
from tilecast.merge.maxmerge import (
    BINARY_NODATA,
    PROB_NODATA,
    check_tile_values,
    merge_max,
    new_accumulators,
    threshold_mask,
)
from tilecast.merge.overviews import REDUCERS, overview_shapes
from tilecast.merge.region import (
    GDAL_CACHE_BYTES,
    MOSAIC_LAYERS,
    STRATEGIES,
    MergeJob,
    MergeResult,
    RegionPlan,
    Strategy,
    TileRef,
    assemble_layer,
    band_steps,
    block_index,
    block_windows,
    choose_strategy,
    merge_band,
    merge_region,
    merge_result,
    plan_region,
    prepare_merge,
)

__all__ = [
    "BINARY_NODATA",
    "DEFAULT_REGION",
    "GDAL_CACHE_BYTES",
    "MOSAIC_LAYERS",
    "PROB_NODATA",
    "REDUCERS",
    "STRATEGIES",
    "MergeInputError",
    "MergeJob",
    "MergeResult",
    "MissingTilesError",
    "RegionPlan",
    "RegionResult",
    "RunLogs",
    "Strategy",
    "TileRef",
    "assemble_layer",
    "balanced_chunks",
    "band_level_window",
    "band_steps",
    "band_windows",
    "block_index",
    "block_windows",
    "check_tile_values",
    "choose_strategy",
    "group_done_tiles",
    "merge_band",
    "merge_max",
    "merge_output",
    "merge_region",
    "merge_result",
    "merged_paths",
    "new_accumulators",
    "overview_shapes",
    "plan_region",
    "prepare_merge",
    "read_run_logs",
    "region_plan",
    "select_regions",
    "shared_levels",
    "threshold_mask",
]
