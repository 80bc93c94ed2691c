"""Which rasterio handle strategy decodes faster from several threads (not a test).

    .venv/bin/python tests/io/bench_handles.py [--size 4096] [--rounds 3]

Writes a PlanetScope-like basemap (uint8 RGB, 512-px tiles, DEFLATE, smooth noise) as one COG
and as four COG quads, then reads 512-px blocks once each through ``Basemap.read`` (no block
cache) from 1, 2 and 4 threads with ``handles="pool"`` (a handle per concurrent reader) and
``handles="shared"`` (one handle per file behind a lock). Prints blocks/s (best of rounds) and
the CPU seconds used per wall second. On a shared machine the figures follow the neighbours'
load: compare the two modes within one line only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from tilecast.grid.windows import Window
from tilecast.io.basemap import open_basemap


def scene(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (3, size // 32 + 1, size // 32 + 1)).astype(np.float32)
    up = np.repeat(np.repeat(coarse, 32, axis=1), 32, axis=2)[:, :size, :size]
    return (up + rng.normal(0, 12, up.shape)).clip(0, 255).astype(np.uint8)


def write_cog(path: Path, data: np.ndarray, row: int, col: int) -> None:
    _, h, w = data.shape
    t = Affine(3.0, 0, -1_000_000 + col * 3.0, 0, -3.0, 500_000 - row * 3.0)
    with rasterio.open(
        path, "w", driver="COG", width=w, height=h, count=3, dtype="uint8", crs="EPSG:3413",
        transform=t, blocksize=512, compress="deflate", nodata=0,
    ) as dst:  # fmt: skip
        dst.write(data)


def run(uri: str, size: int, mode: str, threads: int) -> tuple[float, float]:
    """(blocks/s, CPU seconds per wall second) decoding the odd block rows.

    The even block rows are read first, untimed, so that every file's handles are open (the
    steady state of a long run) and the timed blocks are not in any cache.
    """
    blocks = [Window(r, c, 512, 512) for r in range(0, size, 512) for c in range(0, size, 512)]
    warm = [w for w in blocks if (w.row // 512) % 2 == 0]
    timed = [w for w in blocks if (w.row // 512) % 2 == 1]
    with open_basemap(uri, block_cache_bytes=0, handles=mode) as bm:  # type: ignore[arg-type]
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(bm.read, warm))
            t0, c0 = time.perf_counter(), time.process_time()
            list(pool.map(bm.read, timed))
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert bm.stats.blocks_decoded == len(blocks)
    return len(timed) / elapsed, cpu / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    size = args.size
    data = scene(size)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cog(root / "one.tif", data, 0, 0)
        (root / "quads").mkdir()
        half = size // 2
        for r in (0, half):
            for c in (0, half):
                write_cog(
                    root / "quads" / f"q_{r}_{c}.tif", data[:, r : r + half, c : c + half], r, c
                )
        print(
            f"cpus={os.cpu_count()} size={size} blocks={(size // 512) ** 2} (blocks/s, best of {args.rounds}; cpu = CPU s per wall s)"
        )
        for label, uri in (("4 quads", str(root / "quads")), ("one file", str(root / "one.tif"))):
            for threads in (1, 2, 4):
                best = {"pool": (0.0, 0.0), "shared": (0.0, 0.0)}
                for _ in range(args.rounds):  # interleaved, so a change of load hits both
                    for mode in best:
                        best[mode] = max(best[mode], run(uri, size, mode, threads))
                cells = "  ".join(f"{m}={v:7.1f} (cpu {u:.2f})" for m, (v, u) in best.items())
                print(f"{label:9s} threads={threads}  {cells}")


if __name__ == "__main__":
    main()
