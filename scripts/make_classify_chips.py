"""Write held-out synthetic chips as PNG files, with a truth CSV, for ``make classify-demo``.

    python scripts/make_classify_chips.py --out demo_out/classify [--count 200] [--side 64]

Writes ``chips/chip_NNNN.png`` (RGB, PIL) and ``truth.csv`` (``file,label,seed`` and the
fraction of the chip each feature covers) under ``--out``, a local directory. Chip ``i`` is
chip ``i`` of the *test* split of :mod:`tilecast.demo.chips` (seeds from 300000, labels in
turn): held out, never used for training or calibration. The file names do not give the label
away. ``--side`` other than 64 writes chips the bundle's resize step brings to 64 x 64.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from PIL import Image

from tilecast.demo.chips import CHIP_SIDE, FEATURES, split_chips


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--count", type=int, default=200, help="number of chips (200)")
    parser.add_argument("--side", type=int, default=CHIP_SIDE, help=f"chip side ({CHIP_SIDE})")
    args = parser.parse_args()
    if args.count < 1:
        parser.error(f"--count must be positive, {args.count} is given")
    return args


def main() -> None:
    args = parse_args()
    folder = args.out / "chips"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("chip_*.png"):  # a smaller --count must not leave stale chips
        old.unlink()
    rows = []
    for i, chip in enumerate(split_chips("test", args.count, side=args.side)):
        name = f"chip_{i:04d}.png"
        Image.fromarray(chip.image.transpose(1, 2, 0)).save(folder / name)
        fractions = {f"{k}_fraction": f"{v:.4f}" for k, v in chip.fractions.items()}
        rows.append({"file": name, "label": chip.label, "seed": chip.seed, **fractions})
    with open(args.out / "truth.csv", "w", newline="") as fh:
        columns = ["file", "label", "seed", *(f"{k}_fraction" for k in FEATURES)]
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} chips in {folder}, truth in {args.out / 'truth.csv'}")


if __name__ == "__main__":
    main()
