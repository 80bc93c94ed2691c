"""Synthetic per-tile predictions on a shared grid, run logs, and an independent oracle merge."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from tilecast.grid import PixelGrid, Window, window_transform
from tilecast.io.raster import Georef, write_raster
from tilecast.merge import TileRef

ORIGIN = (-2_400_000.0, -300_000.0)  # upper-left corner of the common grid, EPSG:3413 metres
RES = 3.0
TILE = 64
STEP = 32
GRID = PixelGrid(
    x0=ORIGIN[0], y0=ORIGIN[1], res_x=RES, res_y=RES, width=100_000, height=100_000, crs="EPSG:3413"
)
PROB_LEVELS = np.arange(0, 9, dtype=np.float32) / 8  # few levels: many ties between tiles
SCALES = np.array([1.0, 0.5], np.float32)


@dataclass(frozen=True)
class SynthTile:
    tile_id: str
    window: Window  # on GRID
    data: np.ndarray  # (2, TILE, TILE) float32: probability, winning scale; NoData -1


def lattice(
    rows: int,
    cols: int,
    *,
    offset: tuple[int, int] = (10, 20),
    omit: Iterable[tuple[int, int]] = (),
) -> list[tuple[int, int, Window]]:
    """``(i, j, window)`` of a rows x cols lattice of TILE px tiles every STEP px."""
    skip = set(omit)
    return [
        (i, j, Window(offset[0] + i * STEP, offset[1] + j * STEP, TILE, TILE))
        for i in range(rows)
        for j in range(cols)
        if (i, j) not in skip
    ]


def make_tiles(
    rows: int,
    cols: int,
    *,
    seed: int = 0,
    offset: tuple[int, int] = (10, 20),
    omit: Iterable[tuple[int, int]] = (),
    prefix: str = "t",
) -> list[SynthTile]:
    """Random quantised probabilities and scales, with a NoData rectangle in most tiles."""
    rng = np.random.default_rng(seed)
    tiles = []
    for i, j, window in lattice(rows, cols, offset=offset, omit=omit):
        prob = rng.choice(PROB_LEVELS, size=(TILE, TILE))
        scale = rng.choice(SCALES, size=(TILE, TILE))
        data = np.stack([prob, scale]).astype(np.float32)
        if rng.random() < 0.7:
            r0, c0 = rng.integers(0, TILE - 8, size=2)
            h, w = rng.integers(4, 40, size=2)
            data[:, r0 : r0 + h, c0 : c0 + w] = -1.0
        tiles.append(SynthTile(f"{prefix}{i:02d}{j:02d}", window, data))
    return tiles


def write_tiles(tiles_dir: Path, tiles: Sequence[SynthTile]) -> list[TileRef]:
    """Each tile as ``{tiles_dir}/{tile_id}.tif`` the way the job's sink writes it."""
    refs = []
    for tile in tiles:
        uri = str(tiles_dir / f"{tile.tile_id}.tif")
        write_raster(
            uri,
            tile.data,
            georef=Georef(crs="EPSG:3413", transform=Affine(*window_transform(GRID, tile.window))),
            nodata=-1.0,
            band_descriptions=["probability", "winning_scale"],
        )
        refs.append(TileRef(tile.tile_id, uri, tile.window))
    return refs


def oracle(tiles: Sequence[SynthTile], region: Window) -> tuple[np.ndarray, np.ndarray]:
    """The expected (prob, scale) mosaic over ``region``, computed from a full stack of tiles:
    the highest valid probability, and the largest scale among the tiles that reach it."""
    n = len(tiles)
    probs = np.full((n, *region.shape), -np.inf, np.float64)
    scales = np.full((n, *region.shape), -np.inf, np.float64)
    for k, tile in enumerate(tiles):
        rows, cols = tile.window.relative_to(region).slices
        valid = tile.data[0] != -1
        probs[k, rows, cols] = np.where(valid, tile.data[0], -np.inf)
        scales[k, rows, cols] = np.where(valid, tile.data[1], -np.inf)
    best = probs.max(axis=0)
    best_scale = np.where(probs == best, scales, -np.inf).max(axis=0)
    seen = np.isfinite(best)
    return (
        np.where(seen, best, -1).astype(np.float32),
        np.where(seen, best_scale, -1).astype(np.float32),
    )


def write_run_log(
    output: Path,
    tiles: dict[str, dict[str, Any]],
    *,
    shard: str | None = None,
    threshold: float = 0.5,
    bundle_digest: str = "sha256:abc",
    **extra: Any,
) -> Path:
    """A run log with the fields the merge reads (and a few it ignores)."""
    name = f"inference_log.{shard}.json" if shard else "inference_log.json"
    path = output / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "schema_version": 1,
        "status": "complete",
        "model_version": "demo",
        "bundle_digest": bundle_digest,
        "threshold": threshold,
        "scales_used": [1.0, 0.5],
        "tiles": tiles,
        **extra,
    }
    path.write_text(json.dumps(data, indent=1))
    return path


def done(region: str | None = None, *, sha256: str = "0" * 64) -> dict[str, Any]:
    record: dict[str, Any] = {"status": "done", "sha256": sha256, "detected": True}
    if region:
        record["region"] = region
    return record
