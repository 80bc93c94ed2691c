"""Committing fused tiles: QC, NoData masking, an atomic GeoTIFF per tile."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from affine import Affine

from tilecast.grid import PixelGrid, window_transform
from tilecast.io import storage
from tilecast.io.raster import Georef, write_raster
from tilecast.predict.batched import TileOutput
from tilecast.run import killpoints

log = logging.getLogger(__name__)

TILE_NODATA = -1.0
TILE_BANDS = ["probability", "winning_scale"]


@dataclass(frozen=True)
class CommittedTile:
    tile_id: str
    sha256: str
    detected: bool
    n_clipped: int
    n_non_finite: int
    region: str | None


def qc_probability(
    prob: np.ndarray, valid: np.ndarray, *, tile_id: str
) -> tuple[np.ndarray, int, int]:
    """Clip predictions to [0, 1] (non-finite -> 0) and count what had to be fixed."""
    finite = np.isfinite(prob)
    n_non_finite = int((~finite & valid).sum())
    outside = finite & ((prob < 0) | (prob > 1)) & valid
    n_clipped = int(outside.sum())
    if n_non_finite or n_clipped:
        log.error(
            "tile %s: %d predictions outside [0, 1] clipped, %d non-finite set to 0",
            tile_id,
            n_clipped,
            n_non_finite,
        )
    fixed = np.clip(np.where(finite, prob, 0.0), 0.0, 1.0).astype(np.float32)
    return fixed, n_clipped, n_non_finite


def tile_array(
    out: TileOutput, *, scales: Sequence[float], tile_id: str
) -> tuple[np.ndarray, int, int]:
    prob, n_clipped, n_non_finite = qc_probability(out.probability, out.valid, tile_id=tile_id)
    scale_values = np.asarray(scales, dtype=np.float32)[out.winning_scale]
    stacked = np.stack([prob, scale_values])
    stacked[:, ~out.valid] = TILE_NODATA
    return stacked, n_clipped, n_non_finite


class TileSink:
    """Writes ``tiles/{tile_id}.tif`` (2 bands float32, NoData -1) on the basemap grid."""

    def __init__(
        self,
        output: str,
        *,
        grid: PixelGrid,
        scales: Sequence[float],
        threshold: float,
        tags: dict[str, str],
    ) -> None:
        self.output = output
        self.grid = grid
        self.scales = tuple(scales)
        self.threshold = threshold
        self.tags = tags

    def path_for(self, tile_id: str) -> str:
        return storage.join(self.output, "tiles", f"{tile_id}.tif")

    def commit(self, out: TileOutput) -> CommittedTile:
        item = out.payload.item  # type: ignore[attr-defined]
        tile_id = item.tile.tile_id
        data, n_clipped, n_non_finite = tile_array(out, scales=self.scales, tile_id=tile_id)
        a, b, c, d, e, f = window_transform(self.grid, item.window)
        killpoints.reached("write.tile")
        sha = write_raster(
            self.path_for(tile_id),
            data,
            georef=Georef(crs=self.grid.crs, transform=Affine(a, b, c, d, e, f)),
            nodata=TILE_NODATA,
            band_descriptions=TILE_BANDS,
            tags={**self.tags, "tile_id": tile_id, "region": item.tile.region or ""},
        )
        killpoints.reached("write.done")
        detected = bool((data[0][out.valid] >= self.threshold).any())
        return CommittedTile(tile_id, sha, detected, n_clipped, n_non_finite, item.tile.region)
