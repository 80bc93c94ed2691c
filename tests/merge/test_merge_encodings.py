"""The merge on quantised tiles against the same tiles in float32.

The tiles hold continuous probabilities with two planted cases: pixels a hair below the
threshold (stored at the threshold once quantised, so the binary mask flips there) and pixels
where two overlapping tiles differ by less than a quantisation step with different scales (a
tie once quantised, which the merge breaks towards the larger scale). Everything else must be
identical, and the planted cases must be the only differences.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from merge_support import GRID, TILE, SynthTile, lattice, oracle

from tilecast.apps.rts.sink import encode_tile_file
from tilecast.apps.rts.tile_codec import encode_tile, get_encoding
from tilecast.grid import Window, window_transform
from tilecast.io.raster import Georef
from tilecast.merge import TileRef, merge_region, plan_region, threshold_mask

SCALES = (1.0, 0.5)
THRESHOLD = 0.5


def make_tiles(
    seed: int = 3,
) -> tuple[list[SynthTile], list[tuple[int, int]], list[tuple[int, int]]]:
    """Tiles on a 3 x 4 lattice with probabilities k / 1000 below 0.45 (distinct values are a
    thousandth apart: no accidental tie once quantised, nothing near the threshold), and the
    planted pixels; returns the tiles, the near-threshold and the near-tie pixels (on GRID)."""
    rng = np.random.default_rng(seed)
    tiles = []
    for i, j, window in lattice(3, 4):
        prob = rng.integers(0, 450, (TILE, TILE)).astype(np.float32) / np.float32(1000)
        scale = np.take(np.float32(SCALES), rng.integers(0, 2, (TILE, TILE)))
        data = np.stack([prob, scale])
        if (i + j) % 2:
            data[:, 40:60, 5:25] = -1.0
        tiles.append(SynthTile(f"t{i}{j}", window, data))
    cover = coverage(tiles)
    near_threshold, near_tie = [], []
    for r, c in np.argwhere(cover == 1)[::97][:6]:
        (tile,) = [t for t in tiles if covers(t, r, c)]
        tile.data[:, r - tile.window.row, c - tile.window.col] = (THRESHOLD - 3e-6, 1.0)
        near_threshold.append((int(r), int(c)))
    for r, c in np.argwhere(cover == 2)[::89][:6]:
        first, second = [t for t in tiles if covers(t, r, c)]
        # the higher one (by 5e-6, under a uint16 step) won at the smaller scale
        first.data[:, r - first.window.row, c - first.window.col] = (0.7 + 5e-6, 0.5)
        second.data[:, r - second.window.row, c - second.window.col] = (0.7, 1.0)
        near_tie.append((int(r), int(c)))
    return tiles, near_threshold, near_tie


def covers(tile: SynthTile, r: int, c: int) -> bool:
    w = tile.window
    inside = w.row <= r < w.row_stop and w.col <= c < w.col_stop
    return inside and tile.data[0][r - w.row, c - w.col] != -1


def coverage(tiles: list[SynthTile]) -> np.ndarray:
    """How many tiles have a valid pixel at each pixel of GRID (up to the lattice's extent)."""
    shape = (max(t.window.row_stop for t in tiles), max(t.window.col_stop for t in tiles))
    count = np.zeros(shape, np.int32)
    for t in tiles:
        rows, cols = t.window.slices
        count[rows, cols] += t.data[0] != -1
    return count


def write(tiles_dir: Path, tiles: list[SynthTile], encoding: str) -> list[TileRef]:
    """Each tile through the sink's encoder and GDAL writer, as the job writes it."""
    fmt = get_encoding(encoding).format_for(SCALES)
    tiles_dir.mkdir(parents=True, exist_ok=True)
    refs = []
    for tile in tiles:
        prob, scale = tile.data
        valid = prob != -1
        index = (scale == np.float32(0.5)).astype(np.uint8)
        stored = encode_tile(np.where(valid, prob, 0).astype(np.float32), index, valid, fmt=fmt)
        georef = Georef(crs="EPSG:3413", transform=Affine(*window_transform(GRID, tile.window)))
        path = tiles_dir / f"{tile.tile_id}.tif"
        path.write_bytes(encode_tile_file(stored, fmt=fmt, georef=georef, tags={}))
        refs.append(TileRef(tile.tile_id, str(path), tile.window))
    return refs


def merge(refs: list[TileRef], out: Path, strategy: str = "memory") -> dict[str, np.ndarray]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: str(out / f"{k}.tif") for k in ("prob", "binary", "scale")}
    plan = plan_region(refs, grid=GRID, name="r")
    result = merge_region(
        plan,
        out_prob=paths["prob"],
        out_binary=paths["binary"],
        out_scale=paths["scale"],
        threshold=THRESHOLD,
        strategy=strategy,  # type: ignore[arg-type]
        block=64,
    )
    arrays = {}
    for k, path in paths.items():
        with rasterio.open(path) as src:
            arrays[k] = src.read(1)
        with rasterio.open(path, OVERVIEW_LEVEL=0) as src:  # the first overview level itself
            arrays[k + "_overview"] = src.read(1)
    arrays["sha"] = result.sha256  # type: ignore[assignment]
    arrays["origin"] = (plan.window.row, plan.window.col)  # type: ignore[assignment]
    return arrays


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    root = tmp_path_factory.mktemp("encodings")
    tiles, near_threshold, near_tie = make_tiles()
    runs = {
        e: merge(write(root / e, tiles, e), root / f"out_{e}")
        for e in ("float32", "uint16", "uint8")
    }
    return tiles, near_threshold, near_tie, runs, root


def decoded_tiles(tiles: list[SynthTile], encoding: str) -> list[SynthTile]:
    """The tiles as a reader of ``encoding`` files gets them (the codec's round trip)."""
    fmt = get_encoding(encoding).format_for(SCALES)
    out = []
    for tile in tiles:
        prob, scale = tile.data
        valid = prob != -1
        index = (scale == np.float32(0.5)).astype(np.uint8)
        stored = encode_tile(np.where(valid, prob, 0).astype(np.float32), index, valid, fmt=fmt)
        out.append(replace(tile, data=fmt.decode(stored)))
    return out


@pytest.mark.parametrize("encoding", ["uint16", "uint8"])
def test_the_quantised_merge_is_the_merge_of_the_decoded_tiles(merged, encoding):
    tiles, _, _, runs, _ = merged
    got = runs[encoding]
    region = runs["float32"]["prob"].shape
    r0, c0 = got["origin"]
    prob, scale = oracle(decoded_tiles(tiles, encoding), Window(r0, c0, *region))
    np.testing.assert_array_equal(got["prob"], prob)
    np.testing.assert_array_equal(got["scale"], scale)
    np.testing.assert_array_equal(got["binary"], threshold_mask(prob, THRESHOLD))


@pytest.mark.parametrize("encoding", ["uint16", "uint8"])
def test_the_probability_mosaic_is_within_the_bound_of_the_float32_one(merged, encoding):
    _, _, _, runs, _ = merged
    f32, got = runs["float32"], runs[encoding]
    bound = get_encoding(encoding).max_error
    valid = f32["prob"] != -1
    np.testing.assert_array_equal(got["prob"] == -1, ~valid)
    assert np.abs(got["prob"][valid] - f32["prob"][valid]).max() <= bound
    # overviews average the level above: still within the bound
    ov = f32["prob_overview"] != -1
    assert f32["prob_overview"].shape == tuple((n + 1) // 2 for n in f32["prob"].shape)
    assert np.abs(got["prob_overview"][ov] - f32["prob_overview"][ov]).max() <= bound


def test_binary_differs_only_at_the_planted_near_threshold_pixels(merged):
    _, near_threshold, _, runs, _ = merged
    f32, u16 = runs["float32"], runs["uint16"]
    r0, c0 = u16["origin"]
    diff = {(int(r) + r0, int(c) + c0) for r, c in np.argwhere(u16["binary"] != f32["binary"])}
    assert diff == set(near_threshold) and len(diff) == 6
    for r, c in diff:
        assert (f32["binary"][r - r0, c - c0], u16["binary"][r - r0, c - c0]) == (0, 1)


def test_winning_scale_differs_only_at_the_planted_ties(merged):
    _, _, near_tie, runs, _ = merged
    f32, u16 = runs["float32"], runs["uint16"]
    r0, c0 = u16["origin"]
    diff = {(int(r) + r0, int(c) + c0) for r, c in np.argwhere(u16["scale"] != f32["scale"])}
    assert diff == set(near_tie) and len(diff) == 6
    for r, c in diff:  # float32: the strict maximum (scale 0.5); uint16: the tie to 1.0
        assert (f32["scale"][r - r0, c - c0], u16["scale"][r - r0, c - c0]) == (0.5, 1.0)


def test_both_strategies_give_the_same_files_from_quantised_tiles(merged):
    tiles, _, _, runs, root = merged
    streamed = merge(write(root / "uint16", tiles, "uint16"), root / "stream", "streaming")
    assert streamed["sha"] == runs["uint16"]["sha"]
