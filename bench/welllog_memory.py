"""Peak memory and time of the well-log digitiser against the bare model, per scan size.

    .venv/bin/python bench/welllog_memory.py [--bundle models/welllog-demo] [--seed 50100]
        [--count 3] [--large 12800x640] [--batch-size 4] [--workdir DIR]

Scans: the ``make welllog-demo`` scans (``generate_scan(seed + i)`` for ``i < count``, the
pixels ``scripts/make_welllog_scans.py --count 3 --seed 50100`` writes) and one scan of the
band's largest size (``--large``, seed ``seed + count``). Each is saved once under
``--workdir`` (a temporary folder by default), then every case runs in a **fresh subprocess**
so peaks do not mix, and reads that process's peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``: everything it holds, torch and the bundle
included) and the wall and CPU time (user + system, all threads) of the measured call alone:

- ``bare``: the bundle's model on the padded, prepared scan, one forward, oneDNN on, under
  ``torch.inference_mode`` (what any caller of the model pays);
- ``digitise``: :func:`tilecast.apps.welllog.digitise.digitise` of the scan (batch size 1);
- ``batched``: :func:`~tilecast.apps.welllog.digitise.digitise_many` over the ``count`` demo
  scans with ``--batch-size`` (seconds per scan, one peak for the call).

The scans get ``nodata=0``, as the job reads it from the demo GeoTIFFs. Prints one table with
the ratios digitiser / bare (the batched row against the largest bare peak and the mean bare
time of its scans). On a busy machine wall times move a lot, CPU times less, peaks hardly:
compare the ratios. About four minutes on 2 idle cores, twice that on busy ones.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GB = 1e9


def maxrss_bytes() -> int:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    """User plus system time of this process so far, all threads: steadier than wall time when
    other work shares the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def save_scan(path: Path, seed: int, *, width: int | None, height: int | None) -> None:
    from tilecast.demo.welllog_scan import generate_scan

    scan = generate_scan(seed, width=width, height=height)
    np.savez(path, image=scan.image, record=np.array(scan.record.model_dump_json()))


def load_scan(path: str) -> tuple[np.ndarray, object]:
    from tilecast.apps.welllog.records import ScanRecord

    with np.load(path) as data:
        return data["image"], ScanRecord.model_validate_json(str(data["record"]))


def worker(args: argparse.Namespace) -> None:
    """One case in this (fresh) process; prints one JSON line."""
    import torch

    from tilecast.apps.welllog.digitise import as_scan, digitise, digitise_many
    from tilecast.bundle import load_bundle
    from tilecast.bundle.runtime import prepare

    bundle = load_bundle(args.bundle)
    scans = [load_scan(path) for path in args.scans]
    images = [image for image, _ in scans]
    records = [record for _, record in scans]
    nodata = 0.0
    if args.worker == "bare":
        (image,) = images
        contract = bundle.contract
        prepared = prepare(
            contract,
            bundle.stats,
            as_scan(image),
            channel_order=contract.input.channel_order,
            nodata=nodata,
        )
        batch = torch.as_tensor(prepared.array)[None]
        del prepared
        assert torch.backends.mkldnn.enabled
        base = maxrss_bytes()
        cpu, start = cpu_seconds(), time.perf_counter()
        with torch.inference_mode():
            out = bundle.model(batch)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        del out
    elif args.worker == "digitise":
        ((image, record),) = scans
        base = maxrss_bytes()
        cpu, start = cpu_seconds(), time.perf_counter()
        digitise(bundle, image, record, nodata=nodata)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    else:
        base = maxrss_bytes()
        cpu, start = cpu_seconds(), time.perf_counter()
        digitise_many(bundle, images, records, batch_size=args.batch_size, nodata=nodata)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    print(
        json.dumps(
            {
                "peak_bytes": maxrss_bytes(),
                "base_bytes": base,
                "seconds_per_scan": seconds / len(scans),
                "cpu_per_scan": cpu / len(scans),
            }
        )
    )


HEADER = (
    f"{'scan':<9} {'W x H':>11} | {'bare GB':>7} {'s':>5} {'cpu s':>5} | "
    f"{'dig. GB':>7} {'s':>5} {'cpu s':>5} | {'GB x':>5} {'s x':>5} {'cpu x':>5}"
)


def row(name: str, size: str, bare: dict[str, float], digitiser: dict[str, float]) -> str:
    """One line of the table: peak GB, wall and CPU seconds per scan, then the ratios."""
    keys = ("peak_bytes", "seconds_per_scan", "cpu_per_scan")
    cells = [
        f"{r['peak_bytes'] / GB:7.2f} {r['seconds_per_scan']:5.1f} {r['cpu_per_scan']:5.1f}"
        for r in (bare, digitiser)
    ]
    ratios = " ".join(f"{digitiser[k] / bare[k]:5.2f}" for k in keys)
    return f"{name:<9} {size:>11} | {cells[0]} | {cells[1]} | {ratios}"


def run_case(case: str, scans: list[Path], args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", case, "--bundle", args.bundle]
    command += ["--batch-size", str(args.batch_size), "--scans", *map(str, scans)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{case} {[s.name for s in scans]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="models/welllog-demo")
    parser.add_argument("--seed", type=int, default=50100, help="first demo scan's seed (50100)")
    parser.add_argument("--count", type=int, default=3, help="demo scans (3)")
    parser.add_argument("--large", default="12800x640", help="band's largest scan, W x H")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--worker", choices=("bare", "digitise", "batched"), help=argparse.SUPPRESS)
    parser.add_argument("--scans", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        width, height = parse_size(args.large)
        demo = [workdir / f"demo{i}.npz" for i in range(args.count)]
        large = workdir / "large.npz"
        for i, path in enumerate(demo):
            save_scan(path, args.seed + i, width=None, height=None)
        save_scan(large, args.seed + args.count, width=width, height=height)

        import torch

        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        print(HEADER)
        print("-" * len(HEADER))
        bare: list[dict[str, float]] = []
        for name, path in [*((f"demo{i}", p) for i, p in enumerate(demo)), ("large", large)]:
            with np.load(path) as data:
                h, w = data["image"].shape
            b = run_case("bare", [path], args)
            d = run_case("digitise", [path], args)
            if name != "large":
                bare.append(b)
            print(row(name, f"{w} x {h}", b, d), flush=True)
        batched = run_case("batched", demo, args)
        mean = {
            "peak_bytes": max(b["peak_bytes"] for b in bare),
            **{
                k: sum(b[k] for b in bare) / len(bare) for k in ("seconds_per_scan", "cpu_per_scan")
            },
        }
        print(row(f"batch {args.batch_size}", f"{len(demo)} demo", mean, batched))


if __name__ == "__main__":
    main()
