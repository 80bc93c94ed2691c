"""Reading one planned tile's scale contexts and preparing them through the bundle's contract.

A tile is skipped (recorded with its reason, counted in the run log, logged) rather than
predicted when it lies wholly outside the basemap (:data:`OUTSIDE`), when every pixel of its
footprint is invalid (:data:`ALL_NODATA`), or when its basemap pixels cannot be read
(:data:`UNREADABLE`: a truncated or corrupt quad whose header opened, or a remote read that
failed after its retries; the error naming the file, the window and GDAL's message is logged).

The first two are final: the tile has nothing to predict. An unreadable tile is not done
(:data:`RETRYABLE`): the run ends *incomplete*, without ``_SUCCESS``, and the next run with the
same arguments tries it again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tilecast.apps.rts.plan import WorkItem
from tilecast.bundle import Bundle
from tilecast.bundle.runtime import prepare
from tilecast.errors import StorageError
from tilecast.io.basemap import Basemap
from tilecast.predict.batched import TileInputs
from tilecast.run import killpoints

log = logging.getLogger(__name__)

#: Skip reasons, as the run log counts them.
OUTSIDE = "outside the basemap"
ALL_NODATA = "all NoData"
UNREADABLE = "basemap pixels unreadable"

#: Skip reasons a rerun can fix: such a tile is not done, and its run is incomplete.
RETRYABLE = frozenset({UNREADABLE})


@dataclass(frozen=True)
class SkippedTile:
    item: WorkItem
    reason: str


@dataclass(frozen=True)
class TilePayload:
    item: WorkItem
    sentinel_counts: Mapping[str, int]


def read_tile(
    item: WorkItem, *, basemap: Basemap, bundle: Bundle, channel_order: str
) -> TileInputs | SkippedTile:
    """Every scale's context of one tile, prepared at the model size, or why it is skipped.

    Each context is filled (NoData and sentinels replaced by the declared fill) before it is
    resampled, so no invalid value is ever interpolated into a valid pixel.
    """
    if not item.window.intersects(basemap.grid.window):
        return SkippedTile(item=item, reason=OUTSIDE)
    tile_size = item.window.height
    arrays = []
    footprint: np.ndarray | None = None
    counts: Mapping[str, int] = {}
    for view in item.views:
        try:
            pixels, covered = basemap.read(view.context)
        except StorageError as exc:
            log.error("tile %s: %s", item.tile.tile_id, exc)
            return SkippedTile(item=item, reason=UNREADABLE)
        prepared = prepare(
            bundle.contract,
            bundle.stats,
            pixels,
            channel_order=channel_order,
            nodata=basemap.nodata,
            valid=covered,
            resize_to=(view.model_size, view.model_size),
        )
        if footprint is None:
            inner = view.crop_back
            footprint = prepared.valid[inner.slices]
            counts = prepared.sentinel_counts if view.is_identity else {}
            if not footprint.any():
                return SkippedTile(item=item, reason=ALL_NODATA)
        arrays.append(prepared.array)
    assert footprint is not None
    killpoints.reached("read.tile")
    return TileInputs(
        key=item.tile.tile_id,
        arrays=np.stack(arrays),
        context_sizes=tuple(v.context_size for v in item.views),
        tile_size=tile_size,
        valid=footprint,
        payload=TilePayload(item=item, sentinel_counts=counts),
    )
