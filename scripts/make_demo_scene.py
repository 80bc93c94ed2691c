"""Write the demo's synthetic basemap scene and its ground truth.

    python scripts/make_demo_scene.py --out demo_out [--seed N] [--size 2048]

The default seed is held out from the demo model's training and calibration scenes
(see scripts/train_demo_model.py).
"""

from __future__ import annotations

import argparse
import time

from tilecast.demo.files import write_scene
from tilecast.demo.scene import generate_scene

DEMO_SEED = 20261122


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--size", type=int, default=2048, help="scene height and width in pixels")
    args = parser.parse_args()
    start = time.perf_counter()
    scene = generate_scene(seed=args.seed, height=args.size, width=args.size)
    paths = write_scene(scene, args.out)
    print(
        f"scene      {paths.image} ({args.size} x {args.size} px, 3 m, EPSG:3413, seed {args.seed}, "
        f"{time.perf_counter() - start:.1f} s)"
    )
    print(f"truth      {paths.truth} ({len(scene.slumps)} slump polygons)")


if __name__ == "__main__":
    main()
