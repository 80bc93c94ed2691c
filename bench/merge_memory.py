"""Peak memory of the region merge: streaming versus in-memory, for a region and one 16x larger.

    python bench/merge_memory.py [--side 2048] [--factor 4] [--tile 512] [--step 256]
                                 [--block 1024] [--workdir DIR]

Writes synthetic per-tile predictions (``--tile`` px tiles every ``--step`` px, 2 float32
bands, NoData patches, smooth compressible probabilities) over a ``side`` x ``side`` region and
over one ``factor`` times larger per side (``factor**2`` times the area), then merges each
region with each strategy in a **fresh subprocess** and reads that process's peak resident set
size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``). The figure covers everything the process
holds: numpy buffers, GDAL's block cache (the merge caps it), rasterio, the interpreter.
``base`` is the high-water mark just before the merge (imports done, plan made); ``merge`` is
the peak during the merge minus ``base``. Prints one line per case and the large/small ratio of
each strategy's merge figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from affine import Affine

from tilecast.grid import PixelGrid, Window, window_transform
from tilecast.io.raster import Georef, write_raster
from tilecast.merge import TileRef, merge_region, plan_region

GRID = PixelGrid(
    x0=-2_400_000.0, y0=-300_000.0, res_x=3.0, res_y=3.0, width=10**6, height=10**6, crs="EPSG:3413"
)


def lattice(side: int, tile: int, step: int) -> list[tuple[str, Window]]:
    n = (side - tile) // step + 1
    return [
        (f"t{i:04d}_{j:04d}", Window(i * step, j * step, tile, tile))
        for i in range(n)
        for j in range(n)
    ]


def make_tiles(directory: Path, side: int, tile: int, step: int, seed: int = 0) -> None:
    """Synthetic tiles: blocky smooth probabilities, winning scales, a NoData patch in some."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    cell = tile // 8
    for tile_id, window in lattice(side, tile, step):
        coarse = (rng.random((8, 8)) ** 4).astype(np.float32)
        prob = np.round(np.kron(coarse, np.ones((cell, cell), np.float32)) * 64) / 64
        scale = np.where(prob > 0.5, np.float32(0.5), np.float32(1.0))
        data = np.stack([prob, scale]).astype(np.float32)
        if rng.random() < 0.2:
            data[:, : tile // 4, : tile // 3] = -1.0
        write_raster(
            directory / f"{tile_id}.tif",
            data,
            georef=Georef(crs=GRID.crs, transform=Affine(*window_transform(GRID, window))),
            nodata=-1.0,
        )


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def worker(args: argparse.Namespace) -> None:
    tiles_dir = Path(args.tiles)
    refs = [
        TileRef(tile_id, str(tiles_dir / f"{tile_id}.tif"), window)
        for tile_id, window in lattice(args.side, args.tile, args.step)
    ]
    plan = plan_region(refs, grid=GRID, name="bench")
    out = Path(args.out)
    base = maxrss_bytes()
    start = time.perf_counter()
    result = merge_region(
        plan,
        out_prob=str(out / "prob.tif"),
        out_binary=str(out / "binary.tif"),
        out_scale=str(out / "scale.tif"),
        threshold=0.5,
        strategy=args.strategy,
        memory_budget_bytes=args.budget,
        block=args.block,
    )
    elapsed = time.perf_counter() - start
    peak = maxrss_bytes()
    print(
        json.dumps(
            {
                "base": base,
                "peak": peak,
                "elapsed_s": elapsed,
                "estimate": result.peak_bytes_estimate,
                "shape": result.shape,
                "n_tiles": result.n_tiles,
                "sha256": result.sha256["prob"],
            }
        )
    )


def run_case(args: argparse.Namespace, tiles: Path, side: int, strategy: str, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        __file__,
        "--worker",
        f"--tiles={tiles}",
        f"--side={side}",
        f"--tile={args.tile}",
        f"--step={args.step}",
        f"--block={args.block}",
        f"--strategy={strategy}",
        f"--budget={args.budget}",
        f"--out={out}",
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--step", type=int, default=256)
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--budget", type=int, default=8 << 30)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tiles", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="streaming", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    mib = 1 << 20
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="merge-bench-") as tmp:
        root = Path(tmp)
        figures: dict[tuple[str, int], dict] = {}
        for side in (args.side, args.side * args.factor):
            start = time.perf_counter()
            tiles = root / f"tiles-{side}"
            make_tiles(tiles, side, args.tile, args.step)
            n = len(lattice(side, args.tile, args.step))
            print(
                f"region {side}x{side} px: {n} tiles of {args.tile} px every {args.step} px "
                f"written in {time.perf_counter() - start:.1f} s",
                flush=True,
            )
            for strategy in ("streaming", "memory"):
                fig = run_case(args, tiles, side, strategy, root / f"out-{side}-{strategy}")
                figures[(strategy, side)] = fig
                print(
                    f"  {strategy:9s} peak RSS {fig['peak'] / mib:7.1f} MiB "
                    f"(base {fig['base'] / mib:6.1f} MiB, merge +{(fig['peak'] - fig['base']) / mib:7.1f} MiB; "
                    f"estimate {fig['estimate'] / mib:7.1f} MiB) in {fig['elapsed_s']:6.1f} s",
                    flush=True,
                )
            same = figures[("streaming", side)]["sha256"] == figures[("memory", side)]["sha256"]
            print(f"  streaming and memory mosaics byte-identical: {same}", flush=True)
        small, large = args.side, args.side * args.factor
        print(f"area ratio {(large / small) ** 2:.0f}x (block {args.block} px)")
        for strategy in ("streaming", "memory"):
            a, b = figures[(strategy, small)], figures[(strategy, large)]
            grow_a, grow_b = a["peak"] - a["base"], b["peak"] - b["base"]
            print(
                f"  {strategy:9s} peak RSS ratio large/small {b['peak'] / a['peak']:.2f} "
                f"(merge increment {grow_b / mib:.1f} / {grow_a / mib:.1f} MiB = "
                f"{grow_b / max(grow_a, 1):.2f})"
            )


if __name__ == "__main__":
    main()
