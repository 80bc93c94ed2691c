"""Merging one region's tiles into its mosaics: a plan, two strategies, three COGs.

:func:`plan_region` computes, before any pixel is read, the region's grid (the bounding window
of its tiles on the common pixel grid) and keeps the tiles with their windows.
:func:`merge_region` executes it with one of two strategies from :data:`STRATEGIES` that give
pixel-identical (and byte-identical) outputs:

``memory`` (the run book's Option B)
    One float32 probability and one float32 winning-scale array for the whole region (for the
    band, see below); every tile is read once and pasted with
    :func:`~tilecast.merge.maxmerge.merge_max`. The arrays
    live in RAM when both fit in half of ``memory_budget_bytes``; otherwise they are
    ``np.memmap`` files in a scratch directory beside the outputs (the OS pages them, so the
    merge still works, with resident memory up to what the page cache grants).
``streaming`` (Option A)
    For each ``block`` x ``block`` output block, in row-major order, only the tiles whose
    windows intersect it (a block -> tiles index computed from the plan) are read, and only
    their part inside the block; they are max-merged into a block buffer that is written to the
    intermediate. Pixel buffers are bounded by ``block`` (and the overview builder's 1024-px
    window, and GDAL's block cache, capped at :data:`GDAL_CACHE_BYTES`), whatever the region's
    size; what grows with the region is only the tile list and its index (tens of bytes per
    tile). ``bench/merge_memory.py`` (512-px tiles every 256 px, block 1024, peak RSS of a fresh
    process): 116 MiB for a 2048² region, 122 MiB for an 8192² one (16x the area); the memory
    strategy: 135 and 616 MiB.

``auto`` picks ``memory`` when the two float32 region arrays fit in half the budget, else
``streaming``.

Tiles are read through :func:`tilecast.io.tile_files.read_tile_window`, which decodes every
tile encoding (uint16, uint8, float32; :mod:`tilecast.apps.rts.tile_codec`) to float32
probabilities and scales with NoData -1, so the strategies and the max-merge never see codes.
Quantisation is monotone, so a mosaic of quantised tiles is the float32 mosaic quantised.

Bands: one region, many processes
    :func:`prepare_merge` cuts the region into row bands of whole ``block`` rows
    (:mod:`tilecast.merge.bands`) and returns a :class:`MergeJob`, which pickles. The work is
    then two kinds of task: :func:`merge_band` runs the strategy over one band and leaves the
    band's intermediates, and the overview levels it can build from its own rows (all of those
    a band start on a multiple of ``block`` allows, ten for 1024), in a scratch folder the
    tasks share (:class:`tilecast.io.merge_scratch.SharedScratch`); once every band is done,
    :func:`assemble_layer` writes one layer's COG from a VRT of the bands' files, building the
    few coarse levels the bands could not. Bands are independent because the max-merge and
    the threshold are per pixel and an overview pixel only sees the 2 x 2 pixels under it,
    and GDAL's COG driver only sees pixels, so the COGs are byte-identical whatever the number
    of bands. :func:`merge_region` is that same code run in one process (``bands=1`` by
    default); ``tilecast rts launch`` runs the tasks on Ray.

Both strategies write the same blocks into the same intermediate GeoTIFFs
(:class:`tilecast.io.mosaic_files.MosaicWriter`), from which GDAL streams the COGs, so the
outputs do not depend on the strategy. Outputs (layout in DESIGN.md):

- probability: float32 [0, 1], NoData -1, overviews by ``average`` (NoData ignored);
- binary: uint8 ``prob >= threshold`` (0/1), NoData 255 where prob is NoData, overviews by
  ``mode`` (the majority class, a 2-2 tie keeps the detection; no invented values);
- winning scale: float32, the scale of the tile that won the pixel, NoData -1, overviews by
  ``mode`` (a scale is a label, averaging would invent scales; ties to the larger scale).

All three are LZW, internally tiled 512 x 512, with overviews halving down to one block (at
least one level), built by :mod:`tilecast.merge.overviews`.

Each COG is written to a temporary sibling and renamed into place, so a reader never sees a
partial file (the three files are replaced one after the other, not as one transaction).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tilecast.errors import InputError, UnknownNameError
from tilecast.grid import PixelGrid, Window, window_grid
from tilecast.io import merge_scratch, mosaic_files, tile_files
from tilecast.io.merge_scratch import SharedScratch
from tilecast.io.mosaic_files import LayerSpec, MosaicWriter, Part
from tilecast.merge.bands import band_level_window, band_windows, shared_levels
from tilecast.merge.maxmerge import (
    BINARY_NODATA,
    PROB_NODATA,
    check_tile_values,
    merge_max,
    threshold_mask,
)
from tilecast.merge.overviews import get_reducer, overview_shapes
from tilecast.run import killpoints
from tilecast.run.progress import ProgressCallback, ProgressTracker, no_progress

__all__ = [
    "GDAL_CACHE_BYTES",
    "MOSAIC_LAYERS",
    "STRATEGIES",
    "MergeJob",
    "MergeResult",
    "RegionPlan",
    "Strategy",
    "TileRef",
    "assemble_layer",
    "band_steps",
    "block_index",
    "block_windows",
    "choose_strategy",
    "merge_band",
    "merge_region",
    "merge_result",
    "plan_region",
    "prepare_merge",
]

log = logging.getLogger(__name__)

Strategy = Literal["auto", "memory", "streaming"]

#: The output layers of a region mosaic (COG profile of each), by name.
MOSAIC_LAYERS: dict[str, LayerSpec] = {
    name: LayerSpec(dtype, nodata, description, overview, get_reducer(overview))
    for name, dtype, nodata, description, overview in (
        ("prob", "float32", PROB_NODATA, "probability", "average"),
        ("binary", "uint8", BINARY_NODATA, "rts_binary", "mode"),
        ("scale", "float32", PROB_NODATA, "winning_scale", "mode"),
    )
}

#: GDAL block-cache cap while merging. Each tile window is read once per block and each block
#: written once, so a larger cache buys nothing (bench/merge_memory.py: same time at 64 MiB),
#: while GDAL's default (5% of RAM) would let dirty blocks pile up with the region's size.
GDAL_CACHE_BYTES = 16 << 20


@dataclass(frozen=True)
class TileRef:
    """One tile file and its window on the common pixel grid."""

    tile_id: str
    uri: str
    window: Window


@dataclass(frozen=True)
class RegionPlan:
    """A region's mosaic before any pixel is read.

    ``window`` is the bounding window of the tiles on the common grid, ``grid`` the region's own
    grid (``window_grid(common, window)``); ``tiles`` keep the order they were given in (the
    merge does not depend on it).
    """

    name: str
    grid: PixelGrid
    window: Window
    tiles: tuple[TileRef, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape

    def local_window(self, tile: TileRef) -> Window:
        """The tile's window in the region's pixels."""
        return tile.window.relative_to(self.window)


def plan_region(tiles: Sequence[TileRef], *, grid: PixelGrid, name: str = "all") -> RegionPlan:
    """The plan of one region: its grid is the bounding window of ``tiles`` on ``grid``."""
    if not tiles:
        raise InputError(f"region {name}: no tiles to merge")
    seen: set[str] = set()
    for tile in tiles:
        if tile.window.is_empty:
            raise InputError(
                f"region {name}: tile {tile.tile_id} has an empty window {tile.window}"
            )
        if tile.tile_id in seen:
            raise InputError(f"region {name}: tile {tile.tile_id} is listed twice")
        seen.add(tile.tile_id)
    window = Window.bounding(t.window for t in tiles)
    return RegionPlan(name=name, grid=window_grid(grid, window), window=window, tiles=tuple(tiles))


def block_windows(shape: tuple[int, int], block: int) -> list[Window]:
    """The ``block`` x ``block`` lattice over a raster of ``shape`` (edge blocks clipped),
    row-major."""
    height, width = shape
    return [
        Window(row, col, min(block, height - row), min(block, width - col))
        for row in range(0, height, block)
        for col in range(0, width, block)
    ]


def block_index(plan: RegionPlan, block: int) -> dict[tuple[int, int], list[int]]:
    """``(block_row, block_col) -> [tile positions in plan.tiles]`` for every block a tile
    intersects (blocks no tile touches are absent)."""
    index: dict[tuple[int, int], list[int]] = {}
    for position, tile in enumerate(plan.tiles):
        w = plan.local_window(tile)
        for bi in range(w.row // block, (w.row_stop - 1) // block + 1):
            for bj in range(w.col // block, (w.col_stop - 1) // block + 1):
                index.setdefault((bi, bj), []).append(position)
    return index


def _region_bytes(plan: RegionPlan) -> int:
    """Bytes of the two float32 whole-region arrays of the memory strategy."""
    return _arrays_bytes(plan.shape)


def choose_strategy(plan: RegionPlan, strategy: Strategy, memory_budget_bytes: int) -> str:
    """``memory`` or ``streaming``: ``auto`` takes memory when the two float32 region arrays
    fit in half the budget."""
    if strategy == "auto":
        return "memory" if _region_bytes(plan) <= memory_budget_bytes // 2 else "streaming"
    if strategy not in STRATEGIES:
        raise UnknownNameError("merge strategy", strategy, [*STRATEGIES, "auto"])
    return strategy


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge_region` did.

    ``peak_bytes_estimate`` counts the pixel buffers one band task holds at once (the band
    arrays or the block buffers, one tile read, one block of each layer on its way to disk)
    plus the GDAL block-cache cap the merge sets; not the interpreter or the libraries.
    """

    region: str
    strategy: str
    memmap: bool  # memory strategy with arrays memory-mapped on disk
    shape: tuple[int, int]
    n_tiles: int
    n_blocks: int
    peak_bytes_estimate: int
    sha256: dict[str, str]  # layer name -> sha256 of its COG
    elapsed_s: float
    n_bands: int = 1


@dataclass(frozen=True)
class MergeJob:
    """A planned region merge cut into tasks: :func:`merge_band` for every band (in any
    order, in any process), then :func:`assemble_layer` for every layer of
    :data:`MOSAIC_LAYERS`. It holds everything the tasks need and pickles.

    ``bands`` are row bands of whole ``block`` rows (:func:`tilecast.merge.bands.band_windows`);
    ``scratch`` is where the band tasks leave their files for the assembly.
    """

    plan: RegionPlan
    outputs: tuple[tuple[str, str], ...]  # (layer, URI of its COG), in MOSAIC_LAYERS order
    threshold: float
    strategy: str  # "memory" or "streaming"
    memmap: bool  # memory strategy: the band arrays are memory-mapped in the scratch folder
    block: int
    bands: tuple[Window, ...]
    scratch: SharedScratch

    @property
    def level_shapes(self) -> list[tuple[int, int]]:
        """The COGs' overview levels, largest first."""
        return overview_shapes(self.plan.shape, blocksize=mosaic_files.COG_BLOCKSIZE)

    @property
    def band_levels(self) -> int:
        """How many overview levels the band tasks build (the rest are built at assembly)."""
        return shared_levels(self.bands, len(self.level_shapes))

    @property
    def tags(self) -> dict[str, str]:
        return {
            "region": self.plan.name,
            "threshold": repr(float(self.threshold)),
            "n_tiles": str(len(self.plan.tiles)),
        }

    def output(self, layer: str) -> str:
        return dict(self.outputs)[layer]

    def band_prefix(self, index: int) -> str:
        """The name prefix of band ``index``'s files in the scratch folder."""
        return f"band{index:05d}."

    def band_files(self, index: int, layer: str) -> list[tuple[Window, str]]:
        """``(rows in the level, file name)`` of band ``index``'s intermediate of ``layer``,
        then of each overview level it builds."""
        band = self.bands[index]
        stem = f"{self.band_prefix(index)}{layer}"
        files = [(band, f"{stem}.tif")]
        for k, shape in enumerate(self.level_shapes[: self.band_levels], start=1):
            files.append((band_level_window(band, k, shape), f"{stem}.ovr{k}.tif"))
        return files


def prepare_merge(
    plan: RegionPlan,
    *,
    out_prob: str,
    out_binary: str,
    out_scale: str,
    threshold: float,
    scratch: SharedScratch,
    strategy: Strategy = "auto",
    memory_budget_bytes: int = 2 << 30,
    block: int = 1024,
    bands: int = 1,
) -> MergeJob:
    """Check the settings and cut the region into ``bands`` bands of ``block`` rows (fewer
    when the region has fewer block rows); see :func:`merge_region` for the settings."""
    if block < 16 or block % 16:
        raise InputError(f"block must be a positive multiple of 16, {block} is given")
    if memory_budget_bytes <= 0:
        raise InputError(f"memory_budget_bytes must be positive, {memory_budget_bytes} is given")
    threshold_mask(np.zeros(1, np.float32), threshold)  # validates the threshold early
    chosen = choose_strategy(plan, strategy, memory_budget_bytes)
    windows = band_windows(plan.shape, block=block, bands=bands)
    largest = max(_arrays_bytes(band.shape) for band in windows)
    return MergeJob(
        plan=plan,
        outputs=(("prob", out_prob), ("binary", out_binary), ("scale", out_scale)),
        threshold=float(threshold),
        strategy=chosen,
        memmap=chosen == "memory" and largest > memory_budget_bytes // 2,
        block=block,
        bands=windows,
        scratch=scratch,
    )


@dataclass(frozen=True)
class _Context:
    plan: RegionPlan
    band: Window  # region pixels
    writer: MosaicWriter  # fills the band, in the band's pixels
    threshold: float
    block: int
    advance: Callable[[], None]
    memmap_dir: Path | None  # memory strategy: map the band arrays here instead of RAM


def _read_tile(plan: RegionPlan, tile: TileRef, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """``window`` (region pixels, inside the tile) of a tile's (prob, scale), checked."""
    local = plan.local_window(tile)
    data = tile_files.read_tile_window(
        tile.uri, window.relative_to(local), grid=window_grid(plan.grid, local)
    )
    check_tile_values(data[0], data[1], tile_id=tile.tile_id)
    killpoints.reached("merge.tile")
    return data[0], data[1]


def _write_block(ctx: _Context, window: Window, prob: np.ndarray, scale: np.ndarray) -> None:
    killpoints.reached("merge.block")
    ctx.writer.write(
        window.relative_to(ctx.band),
        {"prob": prob, "scale": scale, "binary": threshold_mask(prob, ctx.threshold)},
    )


def _band_blocks(band: Window, block: int) -> list[Window]:
    """The band's blocks of the region's ``block`` lattice, in region pixels, row-major."""
    return [w.translate(band.row, band.col) for w in block_windows(band.shape, block)]


def _band_tiles(plan: RegionPlan, band: Window) -> list[tuple[TileRef, Window]]:
    """The tiles that reach into the band, with their part inside it (region pixels)."""
    found = []
    for tile in plan.tiles:
        part = plan.local_window(tile).intersection(band)
        if part is not None:
            found.append((tile, part))
    return found


def _merge_streaming(ctx: _Context) -> None:
    plan, block = ctx.plan, ctx.block
    index = block_index(plan, block)
    prob_buf = np.empty((block, block), np.float32)
    scale_buf = np.empty((block, block), np.float32)
    for bw in _band_blocks(ctx.band, block):
        prob = prob_buf[: bw.height, : bw.width]
        scale = scale_buf[: bw.height, : bw.width]
        prob.fill(PROB_NODATA)
        scale.fill(PROB_NODATA)
        for position in index.get((bw.row // block, bw.col // block), ()):
            tile = plan.tiles[position]
            part = plan.local_window(tile).intersection(bw)
            assert part is not None  # the index lists only intersecting tiles
            tile_prob, tile_scale = _read_tile(plan, tile, part)
            rows, cols = part.relative_to(bw).slices
            merge_max(prob[rows, cols], scale[rows, cols], tile_prob, tile_scale)
        _write_block(ctx, bw, prob, scale)
        ctx.advance()


def _merge_in_memory(ctx: _Context) -> None:
    plan, band = ctx.plan, ctx.band
    with merge_scratch.scratch_arrays(band.shape, fill=PROB_NODATA, scratch=ctx.memmap_dir) as (
        prob,
        scale,
    ):
        for tile, part in _band_tiles(plan, band):
            tile_prob, tile_scale = _read_tile(plan, tile, part)
            rows, cols = part.relative_to(band).slices
            merge_max(prob[rows, cols], scale[rows, cols], tile_prob, tile_scale)
            ctx.advance()
        for bw in _band_blocks(band, ctx.block):
            rows, cols = bw.relative_to(band).slices
            _write_block(
                ctx,
                bw,
                np.ascontiguousarray(prob[rows, cols]),
                np.ascontiguousarray(scale[rows, cols]),
            )
            ctx.advance()


#: The merge strategies by name, one signature (``auto`` chooses, see :func:`choose_strategy`).
STRATEGIES: dict[str, Callable[[_Context], None]] = {
    "memory": _merge_in_memory,  # Option B: one array pair per band, every tile read once
    "streaming": _merge_streaming,  # Option A: bounded blocks, only intersecting tiles read
}


def band_steps(job: MergeJob, index: int) -> int:
    """How often :func:`merge_band` advances the progress: per block written, and for the
    memory strategy also per tile pasted."""
    band = job.bands[index]
    blocks = len(block_windows(band.shape, job.block))
    if job.strategy == "memory":
        return blocks + len(_band_tiles(job.plan, band))
    return blocks


def merge_band(job: MergeJob, index: int, *, advance: Callable[[], None] = lambda: None) -> Window:
    """Merge band ``index`` of ``job`` into its intermediates and overview levels
    (:meth:`MergeJob.band_files`) in the scratch folder; returns the band's window.

    Bands are independent (the max-merge is per pixel): any process may run any band, in any
    order; a band run again rewrites the same files.
    """
    band = job.bands[index]
    plan = job.plan
    with (
        job.scratch.workdir() as workdir,
        mosaic_files.gdal_block_cache(GDAL_CACHE_BYTES),
    ):
        writer = MosaicWriter(
            grid=window_grid(plan.grid, band),
            layers=MOSAIC_LAYERS,
            block=job.block,
            scratch=workdir,
            prefix=job.band_prefix(index),
        )
        with writer:
            STRATEGIES[job.strategy](
                _Context(
                    plan=plan,
                    band=band,
                    writer=writer,
                    threshold=job.threshold,
                    block=job.block,
                    advance=advance,
                    memmap_dir=workdir if job.memmap else None,
                )
            )
        shapes = [w.shape for w, _ in job.band_files(index, "prob")[1:]]
        files = writer.finish(shapes)
        job.scratch.publish([path for paths in files.values() for path in paths])
    return band


def assemble_layer(job: MergeJob, layer: str) -> str:
    """Write ``layer``'s COG from the bands' files (every band must be merged); returns its
    sha256. Levels the bands did not build are built here, from the level above. The bytes
    do not depend on the number of bands."""
    if layer not in MOSAIC_LAYERS:
        raise UnknownNameError("mosaic layer", layer, list(MOSAIC_LAYERS))
    per_band = [job.band_files(index, layer) for index in range(len(job.bands))]
    with (
        job.scratch.workdir() as workdir,
        mosaic_files.gdal_block_cache(GDAL_CACHE_BYTES),
    ):
        paths = job.scratch.fetch([name for files in per_band for _, name in files], workdir)
        where = dict(zip([name for files in per_band for _, name in files], paths, strict=True))
        levels = [
            [Part(files[k][0], where[files[k][1]]) for files in per_band]
            for k in range(job.band_levels + 1)
        ]
        return mosaic_files.write_cog(
            job.output(layer),
            name=layer,
            grid=job.plan.grid,
            spec=MOSAIC_LAYERS[layer],
            levels=levels,
            level_shapes=job.level_shapes,
            tags=job.tags,
            workdir=workdir,
        )


def _arrays_bytes(shape: tuple[int, int]) -> int:
    """Bytes of the memory strategy's two float32 arrays of ``shape``."""
    return 2 * 4 * shape[0] * shape[1]


def _peak_estimate(
    plan: RegionPlan,
    strategy: str,
    block: int,
    gdal_cache: int,
    *,
    band_shape: tuple[int, int] | None = None,
) -> int:
    height, width = plan.shape
    largest_tile = max(t.window.area for t in plan.tiles)
    out_block = min(block, height) * min(block, width)
    writes = out_block * (4 + 4 + 1)  # one block of prob, scale and binary on its way out
    if strategy == "memory":
        arrays = _arrays_bytes(band_shape or plan.shape)
        return arrays + 2 * 4 * largest_tile + writes + gdal_cache
    # block buffers (prob + scale) + one tile part (inside one block) + writes
    return 2 * 4 * block * block + 2 * 4 * min(largest_tile, block * block) + writes + gdal_cache


def merge_result(job: MergeJob, sha256: dict[str, str], elapsed_s: float) -> MergeResult:
    """The :class:`MergeResult` of a job whose layers are written."""
    plan = job.plan
    tallest = max(job.bands, key=lambda band: band.height)
    return MergeResult(
        region=plan.name,
        strategy=job.strategy,
        memmap=job.memmap,
        shape=plan.shape,
        n_tiles=len(plan.tiles),
        n_blocks=len(block_windows(plan.shape, job.block)),
        peak_bytes_estimate=_peak_estimate(
            plan, job.strategy, job.block, GDAL_CACHE_BYTES, band_shape=tallest.shape
        ),
        sha256=sha256,
        elapsed_s=elapsed_s,
        n_bands=len(job.bands),
    )


def merge_region(
    plan: RegionPlan,
    *,
    out_prob: str,
    out_binary: str,
    out_scale: str,
    threshold: float,
    strategy: Strategy = "auto",
    memory_budget_bytes: int = 2 << 30,
    block: int = 1024,
    bands: int = 1,
    progress: ProgressCallback = no_progress,
) -> MergeResult:
    """Merge a planned region into its probability, binary and winning-scale COGs, in this
    process: every band of :func:`prepare_merge`, then every layer (the tasks a cluster runs
    in parallel, run one after the other; the bytes do not depend on ``bands``).

    ``block`` (a positive multiple of 16) is the streaming strategy's output block and the
    internal tile of the intermediate mosaics. ``progress`` is called with the count of tiles
    pasted and blocks written.
    """
    start = time.monotonic()
    with merge_scratch.scratch_directory(out_prob) as scratch:
        job = prepare_merge(
            plan,
            out_prob=out_prob,
            out_binary=out_binary,
            out_scale=out_scale,
            threshold=threshold,
            scratch=SharedScratch(str(scratch)),
            strategy=strategy,
            memory_budget_bytes=memory_budget_bytes,
            block=block,
            bands=bands,
        )
        height, width = plan.shape
        log.info(
            "region %s: merging %d tiles into %dx%d px with the %s strategy%s, %d band(s)",
            plan.name,
            len(plan.tiles),
            height,
            width,
            job.strategy,
            " (memory-mapped)" if job.memmap else "",
            len(job.bands),
        )
        tracker = ProgressTracker(sum(band_steps(job, i) for i in range(len(job.bands))), progress)
        for index in range(len(job.bands)):
            merge_band(job, index, advance=tracker.advance)
        digests = {layer: assemble_layer(job, layer) for layer in MOSAIC_LAYERS}
    elapsed = time.monotonic() - start
    log.info("region %s: mosaics written in %.1f s (%s)", plan.name, elapsed, out_prob)
    return merge_result(job, digests, elapsed)
