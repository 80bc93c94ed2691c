"""Size and host cost of each tile-file encoding on real demo-model tiles, stage by stage.

    python bench/tile_encoding.py --tiles DIR [--n 16] [--repeat 5] [--threshold 0.5]
    python bench/tile_encoding.py --basemap demo_out/basemap --tile-list demo_out/tiles.csv
                                  [--bundle models/rts-demo] [--n 16] [--repeat 5]

The source tiles are float32 tile files (the probabilities exactly as the model made them):
``--tiles`` names a ``tiles/`` directory of a run with ``output: {tile_encoding: float32}``;
with ``--basemap`` and ``--tile-list`` the bench runs the job itself (float32, the first ``n``
tiles of the list, products off) into a temporary directory first (a minute or two on a CPU).

Each source tile becomes the sink's input again (probability, winning-scale index, validity;
0 at NoData pixels, where the model's output is some probability the sink masks) and goes
through the sink's own functions for every encoding, timed per stage:

- ``qc+quantise``: :func:`tilecast.apps.rts.sink.tile_array` (QC clip, codes, NoData);
- ``gdal``: :func:`tilecast.apps.rts.sink.encode_tile_file`, GDAL encoding the GeoTIFF in
  memory, the bytes copied out. Split as ``fixed`` (the same call on a 16 x 16 tile: create,
  tags, close), ``pixels`` (the same tile without compression, less ``fixed``: GDAL's block
  handling and copies) and ``compress`` (the rest: predictor + compressor), and ``copy`` (a
  copy of that many bytes, as ``getbuffer`` makes);
- ``detected``: the threshold test on the stored probabilities;
- ``sha256`` of the file's bytes.

Times are this thread's CPU time (``time.thread_time``: the host CPU budget; wall time on a
loaded machine would count other processes), the median over ``--repeat`` passes of the mean
per tile. ``KB/tile`` is the mean file size (``max KB`` the largest). ``total`` is
qc+quantise + gdal + detected + sha256 (the commit less the file write). ``decode`` is
:func:`tilecast.io.tile_files.read_tile_window` of the whole tile from the written file (what
the merge does per tile). ``max err`` is the largest ``|decoded - float32|`` over valid pixels;
``near t`` counts valid pixels within the encoding's error bound of ``--threshold`` (the only
pixels whose binary value could differ from the float32 run's; the demo bundle's is 0.8).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from tilecast.apps.rts.sink import TILE_FILE_CODING, encode_tile_file, tile_array
from tilecast.apps.rts.tile_codec import (
    ENCODING_TAG,
    SCALE_CODES_TAG,
    TILE_ENCODINGS,
    TileFormat,
    get_encoding,
)
from tilecast.grid import PixelGrid
from tilecast.io.raster import Georef, GTiffCoding, encode_gtiff
from tilecast.io.tile_files import read_tile_window
from tilecast.predict.batched import TileOutput


@dataclass(frozen=True)
class Source:
    """A float32 tile turned back into the sink's input."""

    name: str
    output: TileOutput
    georef: Georef
    grid: PixelGrid
    scales: tuple[float, ...]
    tags: dict[str, str]


def load_sources(tiles_dir: Path, n: int) -> list[Source]:
    paths = sorted(p for p in tiles_dir.glob("*.tif") if not p.name.startswith("."))[:n]
    if not paths:
        sys.exit(f"{tiles_dir}: no tile files (*.tif)")
    sources = []
    for path in paths:
        with rasterio.open(path) as src:
            if src.dtypes != ("float32", "float32"):
                sys.exit(
                    f"{path}: {'/'.join(src.dtypes)} tiles; the bench needs float32 tiles "
                    "(output: {tile_encoding: float32}) to start from the model's probabilities"
                )
            data = src.read()
            tags = src.tags()
            crs = src.crs.to_string()
            georef = Georef(crs=crs, transform=src.transform)
            grid = PixelGrid.from_affine(
                *tuple(src.transform)[:6], width=src.width, height=src.height, crs=crs
            )
        scales = tuple(float(s) for s in tags.get("scales", "1.0,0.5").split(","))
        prob, scale = data
        valid = prob != -1
        prob[~valid] = 0.0  # the model's output there is some probability, never -1
        index = np.zeros(prob.shape, np.uint8)
        for i, s in enumerate(scales):
            index[scale == np.float32(s)] = i
        keep = {k: v for k, v in tags.items() if k not in (ENCODING_TAG, SCALE_CODES_TAG)}
        keep.pop("AREA_OR_POINT", None)
        out = TileOutput(key=path.stem, probability=prob, winning_scale=index, valid=valid)
        sources.append(Source(path.stem, out, georef, grid, scales, keep))
    return sources


def run_job(basemap: str, tile_list: str, bundle: str, n: int, out: Path) -> Path:
    """The job over the first ``n`` tiles, float32 tiles, no products; returns ``tiles/``."""
    from tilecast.apps.rts.config import RtsConfig
    from tilecast.apps.rts.job import RtsJob
    from tilecast.apps.rts.tilelist import parse_tile_list

    tiles = parse_tile_list(Path(tile_list).read_text(), source=tile_list)[:n]
    config = RtsConfig.model_validate(
        {
            "model": {"bundle": bundle, "device": "auto"},
            "input": {"basemap": basemap, "basemap_version": "bench"},
            "output": {"path": str(out), "tile_encoding": "float32"},
            "inference": {"tile_size": 512, "scales": [1.0, 0.5], "tta": "minimal"},
            "products": {"merge": False, "vectorize": False, "report": False},
        }
    )
    print(f"running the job on {len(tiles)} tiles into {out} ...", flush=True)
    RtsJob(config, tiles).run()
    return out / "tiles"


def cpu_ms(fn: Callable[..., object], *args: object, **kwargs: object) -> tuple[float, object]:
    """``fn(*args, **kwargs)`` and the CPU milliseconds this thread spent in it."""
    t0 = time.thread_time()
    result = fn(*args, **kwargs)
    return (time.thread_time() - t0) * 1e3, result


STAGES = ("qc+quantise", "fixed", "pixels", "compress", "copy", "detected", "sha256")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def one_pass(sources: list[Source], name: str, threshold: float) -> dict[str, float]:
    """Mean CPU ms per tile of each stage, over ``sources``."""
    sums = dict.fromkeys((*STAGES, "gdal"), 0.0)
    plain = TILE_FILE_CODING[name]
    uncompressed = GTiffCoding(
        compress="none", blocksize=plain.blocksize, interleave=plain.interleave
    )
    for s in sources:
        fmt = get_encoding(name).format_for(s.scales)
        ms, result = cpu_ms(tile_array, s.output, fmt=fmt, tile_id=s.name)
        stored = result[0]  # type: ignore[index]
        sums["qc+quantise"] += ms
        gdal, data = cpu_ms(encode_tile_file, stored, fmt=fmt, georef=s.georef, tags=s.tags)
        corner = np.ascontiguousarray(stored[:, :16, :16])
        fixed, _ = cpu_ms(encode_tile_file, corner, fmt=fmt, georef=s.georef, tags=s.tags)
        pixels, _ = cpu_ms(
            encode_gtiff,
            stored,
            georef=s.georef,
            nodata=fmt.encoding.nodata,
            coding=uncompressed,
            tags={**s.tags, **fmt.tags()},
        )
        copy, _ = cpu_ms(bytes, memoryview(data))  # type: ignore[arg-type]
        sums["gdal"] += gdal
        sums["fixed"] += fixed
        sums["pixels"] += max(0.0, pixels - fixed)
        sums["compress"] += max(0.0, gdal - pixels)
        sums["copy"] += copy
        sums["detected"] += cpu_ms(fmt.reaches, stored[0], threshold)[0]
        sums["sha256"] += cpu_ms(sha256_hex, data)[0]
    return {k: v / len(sources) for k, v in sums.items()}


def accuracy(
    sources: list[Source], name: str, threshold: float, workdir: Path
) -> tuple[list[int], float, float, int]:
    """(file sizes, decode ms per tile, max |decoded - float32|, pixels near the threshold)."""
    sizes, decode_ms, worst, near = [], [], 0.0, 0
    for s in sources:
        fmt: TileFormat = get_encoding(name).format_for(s.scales)
        stored, _, _ = tile_array(s.output, fmt=fmt, tile_id=s.name)
        data = encode_tile_file(stored, fmt=fmt, georef=s.georef, tags=s.tags)
        sizes.append(len(data))
        path = workdir / f"{name}_{s.name}.tif"
        path.write_bytes(data)
        ms, decoded = cpu_ms(read_tile_window, str(path), s.grid.window, grid=s.grid)
        decode_ms.append(ms)
        valid = s.output.valid
        truth = s.output.probability[valid]
        got = decoded[0][valid]  # type: ignore[index]
        err = float(np.abs(got.astype(np.float64) - truth).max()) if truth.size else 0.0
        worst = max(worst, err)
        bound = get_encoding(name).max_error
        near += int((np.abs(truth.astype(np.float64) - threshold) <= bound).sum())
        want_scale = np.asarray(s.scales, np.float32)[s.output.winning_scale][valid]
        if not np.array_equal(decoded[1][valid], want_scale):  # type: ignore[index]
            sys.exit(f"{name} {s.name}: winning scale does not read back exactly")
    return sizes, statistics.mean(decode_ms), worst, near


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tiles", type=Path, help="a tiles/ directory of float32 tile files")
    parser.add_argument("--basemap", help="run the job on this basemap first")
    parser.add_argument("--tile-list", help="with --basemap: the tile list (first --n tiles)")
    parser.add_argument("--bundle", default="models/rts-demo")
    parser.add_argument("--n", type=int, default=16, help="tiles (default 16)")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes (default 5)")
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tile-encoding-") as tmp:
        workdir = Path(tmp)
        if args.tiles is not None:
            tiles_dir = args.tiles
        elif args.basemap and args.tile_list:
            tiles_dir = run_job(args.basemap, args.tile_list, args.bundle, args.n, workdir / "run")
        else:
            parser.error("give --tiles DIR, or --basemap and --tile-list")
        sources = load_sources(tiles_dir, args.n)
        shape = sources[0].output.probability.shape
        print(
            f"{len(sources)} tiles of {shape[0]} x {shape[1]} px from {tiles_dir}; "
            f"CPU ms per tile (this thread), median of {args.repeat} passes"
        )
        header = (
            f"{'encoding':9s} {'KB/tile':>8s} {'max KB':>7s} {'total':>6s} | {'qc+quant':>8s} {'gdal':>6s}"
            f" ({'fixed':>5s} {'pixels':>6s} {'compr':>6s} {'copy':>5s}) {'detect':>6s}"
            f" {'sha256':>6s} | {'decode':>6s} {'max err':>8s} {'near t':>6s}"
        )
        print(header)
        for name in TILE_ENCODINGS:
            one_pass(sources[:2], name, args.threshold)  # warm up: imports, CRS cache, tables
            passes = [one_pass(sources, name, args.threshold) for _ in range(args.repeat)]
            med = {k: statistics.median(p[k] for p in passes) for k in passes[0]}
            total = med["qc+quantise"] + med["gdal"] + med["detected"] + med["sha256"]
            sizes, decode, worst, near = accuracy(sources, name, args.threshold, workdir)
            kb, kb_max = statistics.mean(sizes) / 1024, max(sizes) / 1024
            print(
                f"{name:9s} {kb:8.1f} {kb_max:7.1f} {total:6.2f} | {med['qc+quantise']:8.2f} {med['gdal']:6.2f}"
                f" ({med['fixed']:5.2f} {med['pixels']:6.2f} {med['compress']:6.2f}"
                f" {med['copy']:5.2f}) {med['detected']:6.2f} {med['sha256']:6.2f} |"
                f" {decode:6.2f} {worst:8.2e} {near:6d}"
            )


if __name__ == "__main__":
    main()
