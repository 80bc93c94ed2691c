"""Score a well-log bundle on held-out synthetic scans: curve error per curve kind.

    python scripts/score_welllog.py --bundle models/welllog-demo [--count 4] [--seed 50000]
    python scripts/score_welllog.py --bundle models/welllog-demo --scans demo_out/welllog
    python scripts/score_welllog.py --scans demo_out/welllog --written demo_out/welllog/out

Without ``--scans`` the scans are ``generate_scan(seed + i)`` made in memory (seeds from 50000
are never used in training). With ``--scans`` it reads what ``scripts/make_welllog_scans.py``
wrote (manifest.csv, scans/*.tif, truth/*.npz). With ``--written`` it digitises nothing: it
reads the ``curves.las`` files ``tilecast welllog run`` wrote there back with lasio, the way the
downstream reader does, and scores those. Figures (``tilecast.demo.welllog_metrics``):
median absolute error in curve units (and decades for log curves), the share of depth samples
within one minor grid division (1/50 of the track), and gap agreement with the source's -999s.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
import warnings

import lasio
import numpy as np

from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.digitise import digitise
from tilecast.apps.welllog.records import CurveSpec, ScanRecord
from tilecast.bundle import load_bundle
from tilecast.demo.welllog_metrics import CurveComparison, compare, score_by_kind
from tilecast.demo.welllog_scan import ScanTruth, generate_scan, truth_from_bytes
from tilecast.errors import TilecastWarning
from tilecast.io import storage
from tilecast.io.raster import read_raster


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default=None, help="bundle directory or URI")
    parser.add_argument("--count", type=int, default=4, help="in-memory scans to score (4)")
    parser.add_argument("--seed", type=int, default=50000, help="first in-memory seed (50000)")
    parser.add_argument("--scans", default=None, help="a directory from make_welllog_scans.py")
    parser.add_argument(
        "--written", default=None, help="score the LAS files `tilecast welllog run` wrote here"
    )
    args = parser.parse_args()
    if args.written and not args.scans:
        parser.error("--written needs --scans (the truth lives there)")
    if not args.written and not args.bundle:
        parser.error("--bundle is required unless --written is given")
    return args


def scans_in_memory(seed: int, count: int):
    for i in range(count):
        scan = generate_scan(seed + i)
        yield scan.image, None, scan.record, scan.truth


def scans_on_disk(root: str):
    text = storage.read_bytes(storage.join(root, "manifest.csv")).decode()
    rows: dict[str, list[dict[str, str]]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        rows.setdefault(row["scan_id"], []).append(row)
    for scan_id, curves in rows.items():
        first = curves[0]
        record = ScanRecord(
            scan_uri=first["scan_uri"],
            uwi=first["uwi"],
            scan_id=scan_id,
            top_depth=first["top_depth"],
            bottom_depth=first["bottom_depth"],
            depth_unit=first["depth_unit"],
            curves=tuple(
                CurveSpec(
                    name=c["curve"],
                    unit=c["unit"],
                    left=c["left"],
                    right=c["right"],
                    scale=c["scale"],
                )
                for c in curves
            ),
        )
        raster = read_raster(first["scan_uri"])
        truth: ScanTruth = truth_from_bytes(
            storage.read_bytes(storage.join(root, "truth", f"{scan_id}.npz"))
        )
        yield raster.array, raster.nodata, record, truth


def curves_from_las(out: str, record: ScanRecord) -> DigitisedCurves:
    """What the downstream reader sees: the written curves.las, parsed by lasio."""
    uri = storage.join(out, f"well={record.uwi}", f"scan={record.scan_id}", "curves.las")
    las = lasio.read(io.StringIO(storage.read_text(uri)))
    depth = np.asarray(las.index, dtype=np.float64)
    return DigitisedCurves(
        depth=depth,
        step=float(las.well["STEP"].value),
        depth_unit=record.depth_unit,
        values={c.name: np.asarray(las[c.name], dtype=np.float64) for c in record.curves},
        units={c.name: c.unit for c in record.curves},
    )


def score_written(args: argparse.Namespace) -> list[CurveComparison]:
    comparisons: list[CurveComparison] = []
    for _, _, record, truth in scans_on_disk(args.scans):
        found = compare(curves_from_las(args.written, record), record, truth)
        comparisons += found
        print(f"{record.scan_id}: read back {', '.join(c.name for c in record.curves)} with lasio")
    return comparisons


def print_scores(comparisons: list[CurveComparison]) -> None:
    for kind, s in score_by_kind(comparisons).items():
        decades = (
            f" ({s.median_abs_error_decades:.4f} decades)"
            if s.median_abs_error_decades is not None
            else ""
        )
        print(
            f"{kind}: {s.samples} depth samples, median |error| {s.median_abs_error:.3f}{decades}, "
            f"within one grid division {100 * s.within_division:.1f} %, "
            f"gap agreement {100 * s.gap_agreement:.2f} % "
            f"(missed gaps {s.missed_gaps}, spurious gaps {s.spurious_gaps})"
        )


def main() -> None:
    args = parse_args()
    if args.written:
        comparisons = score_written(args)
        print()
        print(f"curves.las under {args.written}")
        print_scores(comparisons)
        return
    bundle = load_bundle(args.bundle)
    source = scans_on_disk(args.scans) if args.scans else scans_in_memory(args.seed, args.count)
    comparisons: list[CurveComparison] = []
    for image, nodata, record, truth in source:
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TilecastWarning)  # reported below per scan
            curves = digitise(bundle, image, record, nodata=nodata)
        seconds = time.perf_counter() - started
        found = compare(curves, record, truth)
        comparisons += found
        height, width = image.shape[-2:]
        print(
            f"{record.scan_id}: {width} x {height} px, {', '.join(c.name for c in record.curves)}, "
            f"{curves.counts['missing_pixels']} missing pixels, step {curves.step:g} "
            f"{curves.depth_unit}, {seconds:.1f} s"
        )
    print()
    print(f"bundle {bundle.uri} ({bundle.digest[:12]})")
    print_scores(comparisons)


if __name__ == "__main__":
    main()
