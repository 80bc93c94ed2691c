"""Committing fused tiles: QC, NoData masking, an atomic GeoTIFF per tile.

The tile's bands are encoded by :mod:`tilecast.apps.rts.tile_codec` (uint16 by default, see
there) and written by GDAL in memory with the file layout of :data:`TILE_FILE_CODING`, then put
in place whole through :func:`tilecast.io.storage.write_bytes`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from affine import Affine

from tilecast.apps.rts.tile_codec import (
    TILE_BANDS,
    TILE_NODATA,
    TileEncodingName,
    TileFormat,
    encode_tile,
    get_encoding,
)
from tilecast.grid import PixelGrid, window_transform
from tilecast.io import storage
from tilecast.io.raster import Georef, GTiffCoding, encode_gtiff
from tilecast.predict.batched import TileOutput
from tilecast.run import killpoints
from tilecast.run.stages import StageClock

log = logging.getLogger(__name__)

__all__ = [
    "TILE_BANDS",
    "TILE_FILE_CODING",
    "TILE_NODATA",
    "CommittedTile",
    "TileSink",
    "encode_tile_file",
    "qc_probability",
    "tile_array",
]

#: How GDAL stores each encoding. The integer encodings: ZSTD after horizontal differencing,
#: one 512 px block per band (fewest compressor calls; band interleave keeps the nearly constant
#: winning-scale band apart). uint16 at ZSTD level 2: 5% smaller than level 1 on the demo's
#: tiles (the busiest 242 KB instead of 260) for about 0.3 ms more per tile; uint8 gains nothing
#: from it. float32 keeps the layout of the files before the encodings (LZW, 256 px blocks).
#: ``bench/tile_encoding.py`` measures them.
TILE_FILE_CODING: dict[str, GTiffCoding] = {
    "uint16": GTiffCoding(compress="zstd", predictor=2, level=2, blocksize=512, interleave="band"),
    "uint8": GTiffCoding(compress="zstd", predictor=2, level=1, blocksize=512, interleave="band"),
    "float32": GTiffCoding(compress="lzw", blocksize=256),
}


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
    """Clip predictions to [0, 1] (non-finite -> 0) and count what had to be fixed.

    Every pixel is fixed; only valid pixels are counted. The usual tile, already inside
    [0, 1], is returned as float32 without a copy.
    """
    prob = np.asarray(prob, dtype=np.float32)
    if prob.size == 0 or (prob.min() >= 0 and prob.max() <= 1):  # NaN fails the test
        return prob, 0, 0
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


def tile_array(out: TileOutput, *, fmt: TileFormat, tile_id: str) -> tuple[np.ndarray, int, int]:
    """The ``(2, T, T)`` array the tile's file holds (QC'd, NoData where the input had none),
    and the QC counts (clipped, non-finite)."""
    valid = np.asarray(out.valid, dtype=bool)
    prob, n_clipped, n_non_finite = qc_probability(out.probability, valid, tile_id=tile_id)
    return encode_tile(prob, np.asarray(out.winning_scale), valid, fmt=fmt), n_clipped, n_non_finite


def encode_tile_file(
    stored: np.ndarray, *, fmt: TileFormat, georef: Georef, tags: dict[str, str]
) -> bytes:
    """The GeoTIFF bytes of a tile's ``(2, T, T)`` stored bands (see :func:`tile_array`)."""
    return encode_gtiff(
        stored,
        georef=georef,
        nodata=fmt.encoding.nodata,
        coding=TILE_FILE_CODING[fmt.encoding.name],
        tags={**tags, **fmt.tags()},
        band_descriptions=TILE_BANDS,
        band_scaling=list(zip(fmt.band_scales, fmt.band_offsets, strict=True))
        if fmt.encoding.quantised
        else None,
    )


class TileSink:
    """Writes ``tiles/{tile_id}.tif`` (2 bands: probability, winning scale) on the basemap grid,
    in ``encoding`` (see :mod:`tilecast.apps.rts.tile_codec`)."""

    def __init__(
        self,
        output: str,
        *,
        grid: PixelGrid,
        scales: Sequence[float],
        threshold: float,
        tags: dict[str, str],
        encoding: TileEncodingName = "uint16",
    ) -> None:
        self.output = output
        self.grid = grid
        self.scales = tuple(scales)
        self.threshold = threshold
        self.tags = tags
        self.format = get_encoding(encoding).format_for(self.scales)

    def path_for(self, tile_id: str) -> str:
        return storage.join(self.output, "tiles", f"{tile_id}.tif")

    def commit(self, out: TileOutput, *, clock: StageClock | None = None) -> CommittedTile:
        """QC and quantise (stage ``post``), encode (``encode``), hash and write (``write``)."""
        clock = clock or StageClock()
        item = out.payload.item  # type: ignore[attr-defined]
        tile_id = item.tile.tile_id
        with clock.stage("post"):
            stored, n_clipped, n_non_finite = tile_array(out, fmt=self.format, tile_id=tile_id)
            # detection as every reader sees it: on the stored (decoded) probabilities
            detected = self.format.reaches(stored[0], self.threshold)
        with clock.stage("encode"):
            a, b, c, d, e, f = window_transform(self.grid, item.window)
            data = encode_tile_file(
                stored,
                fmt=self.format,
                georef=Georef(crs=self.grid.crs, transform=Affine(a, b, c, d, e, f)),
                tags={**self.tags, "tile_id": tile_id, "region": item.tile.region or ""},
            )
        with clock.stage("write"):
            killpoints.reached("write.tile")
            # one whole-object write: a full disk raises (GDAL would only log a failed flush)
            storage.write_bytes(self.path_for(tile_id), data)
            killpoints.reached("write.done")
            sha = hashlib.sha256(data).hexdigest()
        return CommittedTile(tile_id, sha, detected, n_clipped, n_non_finite, item.tile.region)
