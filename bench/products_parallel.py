"""Products of one region on Ray: 1 worker versus 2, and both against one process, byte for byte.

    python bench/products_parallel.py [--side 4096] [--tile 512] [--step 256] [--repeats 2]
                                      [--workers 1,2] [--workdir DIR]

Writes synthetic per-tile predictions over one ``side`` x ``side`` region (crops of one blocky
probability field with many small objects, winning scales, NoData patches), makes its
products once in this process (``merge_region`` then ``vectorize_region``, one band: the
reference), then on a local Ray cluster of N CPUs for each N of ``--workers``, cut into N bands,
through the task functions ``tilecast rts launch`` runs (``merge_band`` per band,
``assemble_layer`` per layer, ``polygonize_band`` per band once the binary COG is written,
one ``join_region``, ``measure_polygons`` per chunk once the other COGs are). The cluster sizes are interleaved and each is timed
``--repeats`` times (best kept); Ray's start is not timed. Prints seconds, Mpx/s per worker, the
speed-up of each size over the first, and whether every COG's sha256 and every polygon
(geometry WKB and attributes) equal the reference.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import tempfile
import time
from pathlib import Path

import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from affine import Affine
from merge_memory import GRID, lattice

from tilecast.apps.rts.launch import MEASURE_CHUNKS_PER_BAND
from tilecast.grid import window_transform
from tilecast.io import merge_scratch
from tilecast.io.mosaic_reader import read_grid
from tilecast.io.raster import Georef, write_raster
from tilecast.merge import (
    MOSAIC_LAYERS,
    TileRef,
    assemble_layer,
    merge_band,
    merge_region,
    plan_region,
    prepare_merge,
)
from tilecast.vector.job import (
    TileIndexEntry,
    join_region,
    measure_polygons,
    number_records,
    plan_region_vectors,
    polygonize_band,
    vectorize_region,
)

THRESHOLD = 0.5
MERGE_BLOCK = 1024
VECTOR_BLOCK = 2048


def make_tiles(directory: Path, side: int, tile: int, step: int, seed: int = 0) -> None:
    """Tiles cut from one probability field over the region (overlapping tiles agree, as a
    model's do on one scene): 64 px cells, about 4 % of them above 0.5, so the objects are
    many and small as slumps are (the field of ``merge_memory.py`` is drawn per tile, and its
    maximum over 4 overlapping tiles joins half the region into one polygon); winning scales;
    a NoData patch in some tiles."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    cells = -(-side // 64)
    coarse = (rng.random((cells, cells)) ** 16).astype(np.float32)
    field = np.round(np.kron(coarse, np.ones((64, 64), np.float32)) * 64) / 64
    for tile_id, window in lattice(side, tile, step):
        prob = field[window.row : window.row_stop, window.col : window.col_stop]
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


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def features(records) -> list[tuple]:
    return [
        (shapely.to_wkb(r.geometry), *(v for k, v in vars(r).items() if k != "geometry"))
        for r in records
    ]


def outputs(out: Path) -> dict[str, str]:
    return {layer: str(out / f"region_bench_{layer}.tif") for layer in MOSAIC_LAYERS}


def single_process(refs, entries, out: Path) -> tuple[float, dict[str, str], list[tuple]]:
    out.mkdir(parents=True, exist_ok=True)
    paths = outputs(out)
    start = time.perf_counter()
    merge_region(
        plan_region(refs, grid=GRID, name="bench"),
        out_prob=paths["prob"],
        out_binary=paths["binary"],
        out_scale=paths["scale"],
        threshold=THRESHOLD,
        strategy="streaming",
        block=MERGE_BLOCK,
    )
    records = vectorize_region(
        paths["binary"], paths["prob"], paths["scale"], tiles=entries, threshold=THRESHOLD,
        block=VECTOR_BLOCK, region="bench",
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    return elapsed, {k: sha256(Path(v)) for k, v in paths.items()}, features(records)


def on_ray(
    ray, refs, entries, out: Path, bands: int, phases: dict[str, float]
) -> tuple[float, dict[str, str], list]:
    """The products as Ray tasks; ``phases`` gets the time since the start at which each
    phase ended."""
    out.mkdir(parents=True, exist_ok=True)
    paths = outputs(out)
    band_task = ray.remote(merge_band)
    assemble = ray.remote(lambda job, layer, *done: assemble_layer(job, layer))
    polygonize = ray.remote(polygonize_band)

    def join_chunks(plan, chunks, *pieces):
        joined = join_region(plan, pieces, chunks=chunks)
        return joined[0] if chunks == 1 else tuple(joined)  # one Ray object per chunk

    n_chunks = MEASURE_CHUNKS_PER_BAND * bands
    join = ray.remote(join_chunks).options(num_returns=n_chunks)
    measure = ray.remote(lambda plan, chunk, *mosaics_done: measure_polygons(plan, chunk))
    start = time.perf_counter()
    with merge_scratch.shared_scratch(paths["prob"]) as scratch:
        job = prepare_merge(
            plan_region(refs, grid=GRID, name="bench"),
            out_prob=paths["prob"],
            out_binary=paths["binary"],
            out_scale=paths["scale"],
            threshold=THRESHOLD,
            scratch=scratch,
            strategy="streaming",
            block=MERGE_BLOCK,
            bands=bands,
        )
        job_ref = ray.put(job)
        done = [band_task.remote(job_ref, i) for i in range(len(job.bands))]
        # as `rts launch` does: the binary COG first, polygons from it while the others are
        # written, measuring once they are
        layers = {
            layer: assemble.remote(job_ref, layer, *done)
            for layer in sorted(MOSAIC_LAYERS, key=lambda layer: layer != "binary")
        }
        ray.wait(done, num_returns=len(done))
        phases["merge bands"] = time.perf_counter() - start
        ray.get(layers["binary"])
        phases["binary COG"] = time.perf_counter() - start
        plan = plan_region_vectors(
            paths["binary"], paths["prob"], paths["scale"], tiles=entries, threshold=THRESHOLD,
            block=VECTOR_BLOCK, bands=bands, region="bench",
        )  # fmt: skip
        plan_ref = ray.put(plan)
        pieces = [polygonize.remote(plan_ref, i) for i in range(len(plan.bands))]
        chunks = join.remote(plan_ref, n_chunks, *pieces)
        chunks = [chunks] if n_chunks == 1 else chunks
        others = [ref for layer, ref in layers.items() if layer != "binary"]
        measured = [measure.remote(plan_ref, c, *others) for c in chunks]
        ray.wait(chunks, num_returns=len(chunks))
        phases["polygons joined"] = time.perf_counter() - start
        ray.get(others)
        phases["COGs"] = time.perf_counter() - start
        records = [r for part in ray.get(measured) for r in part]
        phases["measure"] = time.perf_counter() - start
    elapsed = time.perf_counter() - start
    return (
        elapsed,
        {k: sha256(Path(v)) for k, v in paths.items()},
        features(number_records(records)),
    )


def _import_products() -> None:
    import tilecast.merge
    import tilecast.vector.job  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--step", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    import ray

    warm = ray.remote(_import_products)
    sizes = [int(n) for n in args.workers.split(",")]
    px = args.side * args.side
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="products-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        make_tiles(root / "tiles", args.side, args.tile, args.step)
        refs = [
            TileRef(tile_id, str(root / "tiles" / f"{tile_id}.tif"), window)
            for tile_id, window in lattice(args.side, args.tile, args.step)
        ]
        entries = [TileIndexEntry(r.tile_id, read_grid(r.uri).bounds, r.uri, "bench") for r in refs]
        print(
            f"region {args.side} x {args.side} px ({px / 1e6:.1f} Mpx), {len(refs)} tiles, "
            f"written in {time.perf_counter() - start:.1f} s",
            flush=True,
        )
        seconds, want_sha, want_features = single_process(refs, entries, root / "single")
        print(
            f"one process (1 band): {seconds:6.1f} s, {px / 1e6 / seconds:5.2f} Mpx/s, "
            f"{len(want_features)} polygons",
            flush=True,
        )
        best: dict[int, float] = {}
        identical: dict[int, bool] = {}
        for repeat in range(args.repeats):
            for n in sizes:
                ray.init(num_cpus=n, include_dashboard=False, logging_level=logging.WARNING)
                try:
                    ray.get([warm.remote() for _ in range(2 * n)])  # workers started, imports done
                    phases: dict[str, float] = {}
                    seconds, sha, got = on_ray(
                        ray, refs, entries, root / f"ray{n}-{repeat}", n, phases
                    )
                finally:
                    ray.shutdown()
                best[n] = min(best.get(n, seconds), seconds)
                identical[n] = identical.get(n, True) and sha == want_sha and got == want_features
                print(
                    f"  Ray {n} worker(s), {n} band(s), run {repeat + 1}: {seconds:6.1f} s "
                    f"(phases end at: {', '.join(f'{k} {v:.1f}' for k, v in phases.items())})",
                    flush=True,
                )
        first = sizes[0]
        for n in sizes:
            print(
                f"Ray {n} worker(s): best {best[n]:6.1f} s, {px / 1e6 / best[n] / n:5.2f} Mpx/s "
                f"per worker, {best[first] / best[n]:4.2f}x {first} worker(s); COGs and "
                f"polygons identical to one process: {identical[n]}"
            )


if __name__ == "__main__":
    main()
