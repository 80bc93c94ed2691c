"""Throughput and read amplification of the thaw-slump job, measured in one run.

    python bench/throughput.py [--basemap demo_out/basemap] [--bundle models/rts-demo]
                               [--batch-size 8] [--precision fp32] [--device auto]

Prints:
- bare-model tiles/s on random tensors (same batch size, micro-batch and precision);
- pipeline tiles/s (the real job at scale 1.0, no TTA) and its ratio to the bare model;
- a naive per-tile loop's tiles/s (open, read, normalise, forward, write one tile at a time)
  and the pipeline's speed-up over it;
- source read amplification (pixels decoded / pixels in the union of all windows the run
  needs) for scales [1.0] and [1.0, 0.5, 0.25], for the pipeline and for reading each tile's
  contexts separately.
The demo basemap is made first when missing (scripts/make_demo_basemap.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tilecast.apps.rts.config import RtsConfig
from tilecast.apps.rts.job import RtsJob, resolve_device
from tilecast.apps.rts.plan import make_plan
from tilecast.bundle import load_bundle
from tilecast.bundle.runtime import activate, infer
from tilecast.grid import make_tile_grid, window_transform
from tilecast.io.basemap import open_basemap
from tilecast.io.raster import Georef, write_raster
from tilecast.predict.batched import default_micro_batch

REPO = Path(__file__).resolve().parents[1]


def bare_model(bundle, *, n: int, batch: int, micro: int, precision: str, device) -> float:
    x = torch.randn(batch, bundle.contract.input.channels, 512, 512, device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step() -> None:
        for start in range(0, batch, micro):
            with (
                torch.inference_mode(),
                torch.autocast(
                    device.type, dtype=dtype or torch.float32, enabled=dtype is not None
                ),
            ):
                activate(bundle.contract, bundle.model(x[start : start + micro]))
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
    best = 0.0
    for _ in range(3):  # best of three: the bare model's ceiling, not its noise
        t = time.perf_counter()
        done = 0
        while done < n:
            step()
            done += batch
        best = max(best, done / (time.perf_counter() - t))
    return best


def config_for(args, out: Path, scales: list[float], tta: str) -> RtsConfig:
    return RtsConfig.model_validate(
        {
            "model": {"bundle": args.bundle, "device": args.device, "precision": args.precision},
            "input": {"basemap": args.basemap, "basemap_version": "bench"},
            "output": {"path": str(out)},
            "inference": {
                "tile_size": 512,
                "scales": scales,
                "tta": tta,
                "batch_size": args.batch_size,
                "workers": args.workers,
                "checkpoint_every": 1000,
            },
        }
    )


def naive_loop(args, tiles, bundle) -> float:
    """One tile at a time: open the basemap, read, run the contract, write, close."""
    out = Path(tempfile.mkdtemp(prefix="tilecast-naive-"))
    t = time.perf_counter()
    for tile in tiles:
        with open_basemap(args.basemap, block_cache_bytes=0) as bm:
            plan = make_plan([tile], grid=bm.grid, scales=[1.0], tile_size=512)
            window = plan.items[0].window
            pixels, covered = bm.read_region_direct(window)
            order = bm.channel_order or "RGB"
            result = infer(
                bundle.contract,
                bundle.stats,
                bundle.model,
                pixels,
                channel_order=order,
                nodata=bm.nodata,
            )
            prob = result.probabilities[:1].copy()
            prob[:, ~(result.valid & covered)] = -1
            a, b, c, d, e, f = window_transform(bm.grid, window)
            from affine import Affine

            write_raster(
                out / f"{tile.tile_id}.tif",
                prob,
                georef=Georef(bm.grid.crs, Affine(a, b, c, d, e, f)),
                nodata=-1.0,
            )
    return len(tiles) / (time.perf_counter() - t)


def union_pixels(grid, plan) -> int:
    need = np.zeros(grid.shape, bool)
    for item in plan.items:
        for view in item.views:
            w = view.context.clip_to(grid.height, grid.width)
            if w is not None:
                need[w.slices] = True
    return int(need.sum())


def separate_reads(args, plan) -> int:
    with open_basemap(args.basemap, block_cache_bytes=0) as bm:
        for item in plan.items:
            for view in item.views:
                bm.read_region_direct(view.context)
        return bm.stats.pixels_decoded


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--basemap", default="demo_out/basemap")
    parser.add_argument("--bundle", default="models/rts-demo")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--naive-tiles", type=int, default=16)
    args = parser.parse_args()
    if not Path(args.basemap).exists():
        subprocess.run(
            [
                sys.executable,
                str(REPO / "scripts" / "make_demo_basemap.py"),
                "--out",
                str(Path(args.basemap).parent),
            ],
            check=True,
        )
    device = resolve_device(args.device)
    bundle = load_bundle(args.bundle)
    bundle.model.to(device)
    with open_basemap(args.basemap) as bm:
        tiles = make_tile_grid(bm.grid, tile_size=512, stride=256)
        grid = bm.grid
    micro = default_micro_batch(device)
    print(
        f"device {device} ({torch.get_num_threads()} threads), batch {args.batch_size}, micro-batch {min(micro, args.batch_size)}, {args.precision}, {len(tiles)} tiles of 512 px"
    )

    bare = bare_model(
        bundle,
        n=max(32, len(tiles)),
        batch=args.batch_size,
        micro=min(micro, args.batch_size),
        precision=args.precision,
        device=device,
    )
    print(f"bare model            {bare:8.2f} tiles/s (random tensors, model + activation)")

    with tempfile.TemporaryDirectory() as tmp:
        result = RtsJob(config_for(args, Path(tmp) / "s1", [1.0], "none"), tiles).run()
    pipe = result.n_committed / result.elapsed_s
    print(
        f"pipeline [1.0], none  {pipe:8.2f} tiles/s ({result.elapsed_s:.1f} s incl. bundle load and setup)  ratio to bare {pipe / bare:.2f}"
    )

    naive = naive_loop(args, tiles[: args.naive_tiles], bundle)
    print(
        f"naive per-tile loop   {naive:8.2f} tiles/s ({args.naive_tiles} tiles)  pipeline speed-up {pipe / naive:.2f}x"
    )

    for scales in ([1.0], [1.0, 0.5, 0.25]):
        plan = make_plan(tiles, grid=grid, scales=scales, tile_size=512)
        union = union_pixels(grid, plan)
        with tempfile.TemporaryDirectory() as tmp:
            run = RtsJob(config_for(args, Path(tmp) / "amp", scales, "none"), tiles).run()
        decoded = run.read_stats.pixels_decoded
        separate = separate_reads(args, plan)
        print(
            f"read amplification {scales!s:17} pipeline {decoded / union:5.2f}  "
            f"separate reads per tile {separate / union:6.2f}  (union {union} px, {run.n_committed / run.elapsed_s:.2f} tiles/s)"
        )


if __name__ == "__main__":
    main()
