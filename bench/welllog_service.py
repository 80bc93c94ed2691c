"""Scans per second of the well-log HTTP service, measured over real HTTP on 127.0.0.1.

    python bench/welllog_service.py [--bundle models/welllog-demo] [--scans 8] [--clients 2]
                                    [--width 3200] [--height 480] [--out DIR]

Starts the service (uvicorn in a thread of this process, the bundle loaded and verified once),
generates synthetic scans (``tilecast.demo.welllog_scan``), sends one warm-up request, then
``--scans`` POST /scans requests from ``--clients`` concurrent clients, and prints scans/s and
the median request latency. Every written scan is then checked (all four objects present, each
matching the sha256 its ``_SUCCESS`` records). Also prints the bare digitiser (digitise_many,
one scan per call, no HTTP, no write) on the same scans for comparison. ``--out`` defaults to a
temporary folder; an s3:// or gs:// prefix works too.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import torch

from tilecast.apps.welllog.digitise import digitise_many
from tilecast.apps.welllog.service import BackgroundServer, create_app
from tilecast.apps.welllog.writeback import scan_prefix, verify_committed
from tilecast.bundle import load_bundle
from tilecast.demo.welllog_scan import generate_scan
from tilecast.io.raster import decode_raster

REPO = Path(__file__).resolve().parents[1]


def png_bytes(image) -> bytes:
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    h, w = image.shape
    with warnings.catch_warnings(), MemoryFile() as mem:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with mem.open(driver="PNG", width=w, height=h, count=1, dtype="uint8") as dst:
            dst.write(image[None])
        return mem.read()


def request_body(scan, i: int) -> dict[str, object]:
    registration = scan.record.model_dump(mode="json")
    registration["scan_id"] = f"{registration['scan_id']}-{i}"
    return {"registration": registration, "image": base64.b64encode(png_bytes(scan.image)).decode()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default=str(REPO / "models" / "welllog-demo"))
    parser.add_argument("--scans", type=int, default=8)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--width", type=int, default=3200)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    bundle = load_bundle(args.bundle)
    scans = [
        generate_scan(7000 + i, width=args.width, height=args.height) for i in range(args.scans + 1)
    ]
    bodies = [request_body(s, i) for i, s in enumerate(scans)]
    out = args.out or tempfile.mkdtemp(prefix="welllog-bench-")
    print(f"bundle     {args.bundle} ({bundle.contract.name} {bundle.contract.version})")
    print(f"scans      {args.scans} of {args.width} x {args.height} px, {args.clients} clients")
    print(f"machine    {torch.get_num_threads()} torch threads")

    with BackgroundServer(create_app(bundle, out)) as server:
        with httpx.Client(base_url=server.url, timeout=600) as client:
            warm = client.post("/scans", json=bodies[0])  # warm-up, not counted
            warm.raise_for_status()
        latencies: list[float] = []

        def run_client(part: list[dict[str, object]]) -> list[int]:
            codes = []
            with httpx.Client(base_url=server.url, timeout=600) as client:
                for body in part:
                    t0 = time.perf_counter()
                    codes.append(client.post("/scans", json=body).status_code)
                    latencies.append(time.perf_counter() - t0)
            return codes

        work = bodies[1:]
        parts = [work[i :: args.clients] for i in range(args.clients)]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            codes = [c for part in pool.map(run_client, parts) for c in part]
        elapsed = time.perf_counter() - start

    errors = [c for c in codes if c != 200]
    lost = []
    for scan, body in zip(scans[1:], work, strict=True):
        record = scan.record.model_copy(update={"scan_id": body["registration"]["scan_id"]})
        lost += verify_committed(scan_prefix(out, record))
    print(
        f"service    {len(work) / elapsed:.3f} scans/s over HTTP "
        f"({elapsed:.1f} s for {len(work)}, median latency {statistics.median(latencies):.2f} s)"
    )
    print(f"checks     {len(errors)} error replies, {len(lost)} missing or altered objects")

    images = [decode_raster(png_bytes(s.image), name="bench").array for s in scans[1:]]
    records = [s.record for s in scans[1:]]
    start = time.perf_counter()
    for image, record in zip(images, records, strict=True):
        digitise_many(bundle, [image], [record], batch_size=1)
    bare = time.perf_counter() - start
    print(f"digitiser  {len(work) / bare:.3f} scans/s (digitise_many, no HTTP, no write-back)")
    print(f"output     {out}")
    return 1 if errors or lost else 0


if __name__ == "__main__":
    sys.exit(main())
