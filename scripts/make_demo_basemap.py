"""Write the demo basemap: a synthetic scene cut into COG quads, its truth, and a tile list.

    python scripts/make_demo_basemap.py --out demo_out [--seed N] [--size 2048] [--quad 1024]

Writes ``basemap/quad_R_C.tif`` (3-band uint8 COGs, NoData 0, EPSG:3413, 3 m), ``truth.gpkg``
(the slump polygons) and ``tiles.csv`` (512 px tiles every 256 px over the whole extent,
region ``demo``). The default seed is held out from the demo model's training.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tilecast.apps.rts.tilelist import format_tile_list
from tilecast.demo.files import write_quads
from tilecast.demo.scene import generate_scene
from tilecast.grid import PixelGrid, make_tile_grid
from tilecast.io import storage
from tilecast.io.vector import write_polygons

DEMO_SEED = 20261122


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--quad", type=int, default=1024)
    args = parser.parse_args()
    start = time.perf_counter()
    scene = generate_scene(seed=args.seed, height=args.size, width=args.size)
    quads = write_quads(scene, args.out / "basemap", quad_size=args.quad)
    write_polygons(
        args.out / "truth.gpkg",
        scene.slumps,
        crs=scene.crs,
        attributes={"slump_id": list(range(1, len(scene.slumps) + 1))},
        layer="slumps",
    )
    grid = PixelGrid.from_affine(
        *tuple(scene.transform)[:6], width=scene.width, height=scene.height, crs=scene.crs
    )
    tiles = make_tile_grid(grid, tile_size=512, stride=256, region="demo")
    storage.write_text(args.out / "tiles.csv", format_tile_list(tiles))
    print(
        f"basemap    {args.out / 'basemap'} ({len(quads)} COG quads of {args.quad} px, "
        f"{args.size} x {args.size} px in all, seed {args.seed}, {time.perf_counter() - start:.1f} s)"
    )
    print(f"truth      {args.out / 'truth.gpkg'} ({len(scene.slumps)} slumps)")
    print(f"tile list  {args.out / 'tiles.csv'} ({len(tiles)} tiles of 512 px, stride 256)")


if __name__ == "__main__":
    main()
