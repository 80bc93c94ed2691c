"""Score a ``tilecast classify`` results CSV against the chips' truth CSV.

    python scripts/score_classify.py --results demo_out/classify/results.csv \
        --truth demo_out/classify/truth.csv [--min-accuracy 0.9]

Matches rows by file name (``scripts/make_classify_chips.py`` writes the truth) and prints the
accuracy of the top label, the accuracy per true label, the uncertain rate (rows the bundle
marked ``uncertain``: top confidence below its calibrated threshold) with the accuracy of the
rest, and calibration: the expected calibration error over 10 confidence bins with its
reliability table (``tilecast.demo.classify_metrics``). Exits 1 when the accuracy is below
``--min-accuracy``, or when a chip has no classified row.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import PurePosixPath

import numpy as np

from tilecast.demo.chips import LABELS
from tilecast.demo.classify_metrics import format_scores, score


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True, help="the CSV `tilecast classify` wrote")
    parser.add_argument("--truth", required=True, help="truth.csv from make_classify_chips.py")
    parser.add_argument(
        "--min-accuracy", type=float, default=0.9, help="exit 1 below this accuracy (0.9)"
    )
    return parser.parse_args()


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def main() -> int:
    args = parse_args()
    truth = {row["file"]: row["label"] for row in read_csv(args.truth)}
    results = {PurePosixPath(row["input"]).name: row for row in read_csv(args.results)}
    missing = sorted(name for name in truth if results.get(name, {}).get("status") != "classified")
    if missing:
        print(f"FAIL: {len(missing)} chip(s) not classified, first {missing[:5]}")
        return 1
    names = sorted(truth)
    rows = [results[n] for n in names]
    scores = score(
        [truth[n] for n in names],
        [r["label"] for r in rows],
        [float(r["confidence"]) for r in rows],
        labels=LABELS,
    )
    for line in format_scores(scores):
        print(line)
    uncertain = np.array([r["uncertain"] == "True" for r in rows])
    correct = np.array([truth[n] == r["label"] for n, r in zip(names, rows, strict=True)])
    answered = f"{correct[~uncertain].mean():.4f}" if (~uncertain).any() else "-"
    print(f"uncertain     {uncertain.mean():.4f} ({int(uncertain.sum())} of {len(rows)})")
    print(f"accuracy of the answered (not uncertain) chips  {answered}")
    if scores.accuracy < args.min_accuracy:
        print(f"FAIL: accuracy {scores.accuracy:.4f} is below the floor {args.min_accuracy}")
        return 1
    print(f"OK: accuracy {scores.accuracy:.4f} >= {args.min_accuracy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
