"""Reading one planned tile's scale contexts, and preparing them through the bundle's contract.

Two steps, so each runs where it belongs: :func:`read_tile` is host work (decode source pixels
into their own dtype, uint8 for a basemap, with GDAL's validity mask), :func:`prepare_tile` is
tensor work on the model's device (the contract's guard, fill, resize, scaling, normalisation,
padding: :func:`tilecast.bundle.runtime.prepare`, the one executor of a contract).

A tile is skipped (recorded with its reason, counted in the run log, logged) rather than
predicted when it lies wholly outside the basemap (:data:`OUTSIDE`), when every pixel of its
footprint is invalid (:data:`ALL_NODATA`: the reader's mask says so, or, for float basemaps, the
contract's sentinel guard), or when its basemap pixels cannot be read (:data:`UNREADABLE`: a
truncated or corrupt quad whose header opened, or a remote read that failed after its retries;
the error naming the file, the window and GDAL's message is logged).

The first two are final: the tile has nothing to predict. An unreadable tile is not done
(:data:`RETRYABLE`): the run ends *incomplete*, without ``_SUCCESS``, and the next run with the
same arguments tries it again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from tilecast.apps.rts.plan import WorkItem
from tilecast.bundle import Bundle
from tilecast.bundle.runtime import prepare
from tilecast.drift import DriftMonitor, PendingMoments
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
    sentinel_counts: Mapping[str, int]  # of the scale-1 context; may be read lazily
    drift: PendingMoments | None = None  # sampled statistics of its valid raw pixels


@dataclass(frozen=True, eq=False)
class RawTile:
    """A tile's scale contexts as the basemap holds them: source dtype, reader validity."""

    item: WorkItem
    pixels: tuple[torch.Tensor, ...]  # per scale: (C, ctx, ctx) in the basemap dtype
    valid: tuple[torch.Tensor | None, ...]  # per scale: (ctx, ctx) GDAL's mask; None: all valid

    @property
    def nbytes(self) -> int:
        masks = sum(v.nbytes for v in self.valid if v is not None)
        return sum(p.nbytes for p in self.pixels) + masks


def read_tile(item: WorkItem, *, basemap: Basemap, pin: bool = False) -> RawTile | SkippedTile:
    """Every scale's context of one tile, decoded on the host, or why the tile is skipped.

    ``pin`` puts the pixels in page-locked memory, so the copy to a GPU can run asynchronously
    beside the model.
    """
    if not item.window.intersects(basemap.grid.window):
        return SkippedTile(item=item, reason=OUTSIDE)
    pixels, masks = [], []
    for view in item.views:
        try:
            data, valid = basemap.read(view.context)
        except StorageError as exc:
            log.error("tile %s: %s", item.tile.tile_id, exc)
            return SkippedTile(item=item, reason=UNREADABLE)
        if not masks and not valid[view.crop_back.slices].any():
            return SkippedTile(item=item, reason=ALL_NODATA)
        pixels.append(_tensor(data, pin))
        # an all-valid context (most of them) carries no mask: nothing to count or fill
        masks.append(None if valid.all() else _tensor(valid, pin))
    killpoints.reached("read.tile")
    return RawTile(item=item, pixels=tuple(pixels), valid=tuple(masks))


def _tensor(array: np.ndarray, pin: bool) -> torch.Tensor:
    tensor = torch.from_numpy(array)
    return tensor.pin_memory() if pin else tensor


def prepare_tile(
    raw: RawTile,
    *,
    bundle: Bundle,
    channel_order: str,
    nodata: float | None,
    mask_rule: str,
    device: torch.device,
    drift: DriftMonitor | None = None,
) -> TileInputs:
    """Every scale's context through the contract, at the model size, on ``device``.

    Each context is filled (NoData and sentinels replaced by the declared fill) before it is
    resampled, so no invalid value is ever interpolated into a valid pixel. The footprint's
    validity is the first scale's, cropped to the tile. Where the reader applied GDAL's NoData
    rule itself (``mask_rule == "nodata"``: every pixel it rejects is NoData or uncovered, and
    reads as NoData), its mask is the NoData count and the guard does not compare again.
    ``drift`` samples the statistics of the scale-1 context's valid raw pixels (the whole
    context: overlapping tiles count shared pixels again, which moves no statistic).
    """
    reader_nodata = mask_rule == "nodata"
    item = raw.item
    arrays = []
    footprint: torch.Tensor | None = None
    counts: Mapping[str, int] = {}
    moments: PendingMoments | None = None
    for view, pixels, valid in zip(item.views, raw.pixels, raw.valid, strict=True):
        prepared = prepare(
            bundle.contract,
            bundle.stats,
            pixels,
            channel_order=channel_order,
            nodata=None if reader_nodata else nodata,
            valid=valid,
            valid_reason="nodata" if reader_nodata else "masked",
            resize_to=(view.model_size, view.model_size),
            device=device,
        )
        if footprint is None:
            rows, cols = view.crop_back.slices
            footprint = prepared.valid[rows, cols]
        if view.is_identity:
            counts = prepared.sentinel_counts
            if drift is not None:
                moments = drift.sample(pixels, prepared.valid, channel_order=channel_order)
        arrays.append(prepared.array)
    assert footprint is not None
    return TileInputs(
        key=item.tile.tile_id,
        arrays=torch.stack(arrays),
        context_sizes=tuple(v.context_size for v in item.views),
        tile_size=item.window.height,
        valid=footprint,
        payload=TilePayload(item=item, sentinel_counts=counts, drift=moments),
    )
