"""Write synthetic well-log scans, their CSV manifest and their truth files.

    python scripts/make_welllog_scans.py --out demo_out/welllog --count 4 [--seed 50000]
        [--width W --height H]

Writes, under ``--out`` (a local directory or an object-store prefix):

    scans/<scan_id>.tif    single-band uint8 GeoTIFF (no georeferencing), NoData = 0: the
                           missing pixels; read it with ``tilecast.io.raster.read_raster``
    truth/<scan_id>.npz    ``tilecast.demo.welllog_scan.truth_from_bytes`` reads it back
    manifest.csv           one row per curve: scan_uri,uwi,scan_id,top_depth,bottom_depth,
                           depth_unit,curve,unit,left,right,scale

Scan ``i`` is ``generate_scan(seed + i)``: the same --seed gives the same files. The scoring
script's held-out scans start at seed 50000; training uses seeds 1000-1023 and 2001-2002.
"""

from __future__ import annotations

import argparse
import csv
import io
import os

from affine import Affine

from tilecast.apps.welllog.manifest import COLUMNS
from tilecast.demo.welllog_scan import MISSING_PIXEL, generate_scan, truth_to_bytes
from tilecast.io import storage
from tilecast.io.raster import Georef, write_raster


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output directory or object-store prefix")
    parser.add_argument("--count", type=int, default=4, help="number of scans (4)")
    parser.add_argument("--seed", type=int, default=50000, help="seed of the first scan (50000)")
    parser.add_argument("--width", type=int, default=None, help="fixed width (default: random)")
    parser.add_argument("--height", type=int, default=None, help="fixed height (default: random)")
    args = parser.parse_args()
    if args.count < 1:
        parser.error(f"--count must be positive, {args.count} is given")
    return args


def main() -> None:
    args = parse_args()
    out = os.path.abspath(args.out) if storage.is_local(args.out) else args.out.rstrip("/")
    rows = []
    for i in range(args.count):
        scan = generate_scan(args.seed + i, width=args.width, height=args.height)
        record = scan.record
        uri = storage.join(out, "scans", f"{record.scan_id}.tif")
        write_raster(
            uri,
            scan.image[None],
            georef=Georef(crs=None, transform=Affine.identity()),
            nodata=float(MISSING_PIXEL),
            channel_order="L",
            tags={"uwi": record.uwi, "scan_id": record.scan_id},
        )
        storage.write_bytes(
            storage.join(out, "truth", f"{record.scan_id}.npz"), truth_to_bytes(scan.truth)
        )
        for spec in record.curves:
            rows.append(
                {
                    "scan_uri": uri,
                    "uwi": record.uwi,
                    "scan_id": record.scan_id,
                    "top_depth": repr(record.top_depth),
                    "bottom_depth": repr(record.bottom_depth),
                    "depth_unit": record.depth_unit,
                    "curve": spec.name,
                    "unit": spec.unit,
                    "left": repr(spec.left),
                    "right": repr(spec.right),
                    "scale": spec.scale,
                }
            )
        missing = int((scan.image == MISSING_PIXEL).sum())
        print(
            f"{record.scan_id}: {scan.width} x {scan.height} px, "
            f"{', '.join(c.name for c in record.curves)}, {record.top_depth:g}-"
            f"{record.bottom_depth:g} {record.depth_unit}, {missing} missing pixels"
        )
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    storage.write_bytes(storage.join(out, "manifest.csv"), text.getvalue().encode())
    print(f"manifest: {storage.join(out, 'manifest.csv')} ({len(rows)} curve rows)")


if __name__ == "__main__":
    main()
