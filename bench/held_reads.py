"""Reading a held local raster with AWS keys in the environment: outside any rasterio
environment (what readers did before) against inside the one it was opened with
(``io.vsi.env_for``, what the basemap block pool and the tile-file reader do now).

    python bench/held_reads.py [--reads 100]

Writes one 512 x 512 float32 GeoTIFF to a temporary folder, sets dummy AWS keys (as a run
with S3 credentials has them), and times open + 64 px window read + close both ways, side by
side in one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from affine import Affine

from tilecast.io.raster import Georef, write_cog
from tilecast.io.vsi import env_for, open_raster


def per_read_ms(path: str, reads: int, *, held_env: bool) -> float:
    start = time.perf_counter()
    for _ in range(reads):
        if held_env:
            with env_for(path), open_raster(path) as src:
                src.read(1, window=((0, 64), (0, 64)))
        else:
            with open_raster(path) as src:
                src.read(1, window=((0, 64), (0, 64)))
    return (time.perf_counter() - start) / reads * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "tile.tif")
        data = np.random.default_rng(0).random((1, 512, 512), dtype=np.float32)
        georef = Georef(crs="EPSG:3413", transform=Affine(3, 0, 0, 0, -3, 0))
        write_cog(path, data, georef=georef, nodata=None)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        outside = per_read_ms(path, args.reads, held_env=False)
        inside = per_read_ms(path, args.reads, held_env=True)
        print(f"reads                 {args.reads} x (open + 64 px window + close), AWS keys set")
        print(f"outside an env (old)  {outside:.2f} ms per read")
        print(f"inside env_for (now)  {inside:.2f} ms per read ({outside / inside:.1f}x faster)")


if __name__ == "__main__":
    main()
