"""Ahead of the peer: the thaw-slump job against MONAI's sliding window, side by side in one run.

    python bench/vs_monai.py [--demo-dir demo_out] [--bundle models/rts-demo]
                             [--near-free build/bench/near-free] [--models near-free rts-demo]
                             [--batch-size 8] [--workers 2] [--repeats 3] [--device auto]
                             [--micro-batch N]

Run from the repository root; needs the ``bench`` extra (``pip install 'tilecast[bench]'``).
The demo basemap (``scripts/make_demo_basemap.py``) and the near-free bundle (one 1x1
convolution behind the demo bundle's contract, ``bench/near_free.py``) are made when missing.
Two models: the near-free one (what remains is everything around the model) and the demo
U-Net ``models/rts-demo``.

Both sides run the same model on the same 512 px windows every 256 px (the demo tile list, 64
tiles) and the same input pixels, at scale 1.0 without TTA, with the same batch size (MONAI
passes all ``B`` windows to one model call; the job, on a CPU, one sample per call unless
``--micro-batch`` says otherwise, its own default):

- **MONAI**: ``monai.inferers.sliding_window_inference(x, roi_size=(512, 512),
  sw_batch_size=B, predictor=model + activation, overlap=0.5, mode="constant")`` in memory.
  ``x`` is the union of the tiles' windows read once and prepared by the bundle's own
  contract (``tilecast.bundle.runtime.prepare``: sentinels guarded, NoData filled, padded)
  before the clock starts; MONAI stitches the windows into one averaged mosaic.
- **tilecast**: ``RtsJob`` with ``scales: [1.0]``, ``tta: none`` through its public API: it
  opens and verifies the bundle (golden check included), reads the COG quads, runs the
  contract per tile, writes one GeoTIFF per tile and its run log. It does more than MONAI
  (reads, writes, QC), which is the honest comparison.

Before timing, the script checks that MONAI's window placement equals the tile list's and that
each tile, read and prepared alone by the contract (as the job prepares it), equals MONAI's
input under that window, and says so.

Printed: the machine (cores, torch threads, load average), then one table, a row per model:
``MONAI s`` / ``job s`` (the best of ``--repeats`` runs after one warm-up each, wall-clock
seconds for all tiles), ``tiles/s`` (tiles / those seconds), and ``job/MONAI``, the ratio of
the times (above 1: the job is that many times slower). Below the table, every run's seconds
(MONAI and job runs are interleaved, so a busy machine slows both alike) and the bundle load
time, which is part of the job's seconds and not of MONAI's.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from near_free import demo_basemap, near_free_bundle

from tilecast.apps.rts.config import RtsConfig
from tilecast.apps.rts.job import RtsJob, resolve_device
from tilecast.apps.rts.plan import make_plan
from tilecast.bundle import Bundle, load_bundle
from tilecast.bundle.runtime import activate, prepare
from tilecast.grid import Tile, Window
from tilecast.io.basemap import open_basemap

TILE = 512
STRIDE = 256
OVERLAP = 1 - STRIDE / TILE  # MONAI's overlap for windows every STRIDE px

SlidingWindow = Callable[..., torch.Tensor]


def import_monai() -> tuple[SlidingWindow, str]:
    """MONAI's ``sliding_window_inference`` and version, or exit with one line naming the extra."""
    try:
        import monai
        from monai.inferers import sliding_window_inference
    except ImportError:
        sys.exit(
            "bench/vs_monai.py measures against MONAI, which is not installed: "
            "pip install 'tilecast[bench]'"
        )
    return sliding_window_inference, monai.__version__


@dataclass(frozen=True)
class MonaiInput:
    """MONAI's side of the comparison: one prepared tensor and what was checked about it."""

    tensor: torch.Tensor  # float32 (1, C, H, W): the tiles' union after the contract's host steps
    union: Window  # where ``tensor`` lies in the basemap grid
    offsets: tuple[tuple[int, int], ...]  # each tile's (row, col) in ``tensor``
    same_pixels: int  # tiles that, prepared alone, equal ``tensor`` under their window


def union_of(windows: Sequence[Window]) -> Window:
    row = min(w.row for w in windows)
    col = min(w.col for w in windows)
    row_stop = max(w.row_stop for w in windows)
    col_stop = max(w.col_stop for w in windows)
    return Window(row, col, row_stop - row, col_stop - col)


def monai_input(bundle: Bundle, *, basemap: Path, tiles: Sequence[Tile]) -> MonaiInput:
    """Read the tiles' union once and prepare it by the contract; compare tile by tile."""
    with open_basemap(str(basemap)) as bm:
        plan = make_plan(tiles, grid=bm.grid, scales=[1.0], tile_size=TILE)
        union = union_of([item.window for item in plan.items])
        order = bm.channel_order or bundle.contract.input.channel_order

        def prepared(window: Window) -> torch.Tensor:
            pixels, covered = bm.read(window)
            out = prepare(
                bundle.contract,
                bundle.stats,
                pixels,
                channel_order=order,
                nodata=bm.nodata,
                valid=covered,
            )
            # a numpy array or a tensor (tilecast is moving to tensors): take either; the
            # alignment padding is at the bottom and right
            return torch.as_tensor(out.array)[:, : window.height, : window.width]

        array = prepared(union)
        offsets = []
        same = 0
        for item in plan.items:  # each tile alone, as the job prepares it
            r, c = item.window.row - union.row, item.window.col - union.col
            offsets.append((r, c))
            mine = array[:, r : r + TILE, c : c + TILE]
            same += int(torch.equal(prepared(item.window).to(mine.device), mine))
    return MonaiInput(
        tensor=array.contiguous()[None],
        union=union,
        offsets=tuple(sorted(offsets)),
        same_pixels=same,
    )


def monai_windows(sliding_window: SlidingWindow, shape: tuple[int, int]) -> list[tuple[int, int]]:
    """The (row, col) of every window MONAI places on an image of ``shape`` (a dry run)."""
    seen: list[tuple[int, int]] = []

    def record(x: torch.Tensor, coords: Sequence[Sequence[slice]]) -> torch.Tensor:
        seen.extend((int(s[2].start), int(s[3].start)) for s in coords)
        return torch.zeros(x.shape[0], 1, *x.shape[2:])

    sliding_window(
        torch.zeros(1, 1, *shape),
        roi_size=(TILE, TILE),
        sw_batch_size=16,
        predictor=record,
        overlap=OVERLAP,
        mode="constant",
        with_coord=True,
    )
    return sorted(seen)


def placement_note(sliding_window: SlidingWindow, inp: MonaiInput, raster: tuple[int, int]) -> str:
    """Whether MONAI's windows are the tile list's; how they differ on the raster alone."""
    on_union = monai_windows(sliding_window, inp.union.shape)
    if on_union != list(inp.offsets):
        extra = sorted(set(on_union) - set(inp.offsets))
        missing = sorted(set(inp.offsets) - set(on_union))
        return (
            f"MONAI's windows DIFFER from the tile list on the {inp.union.height} x "
            f"{inp.union.width} union: {len(on_union)} vs {len(inp.offsets)}, only MONAI "
            f"{extra[:4]}, only tiles {missing[:4]}"
        )
    note = (
        f"MONAI's windows = the tile list's ({len(on_union)}, every {STRIDE} px) on the tiles' "
        f"union, {inp.union.height} x {inp.union.width} px at basemap (row, col) "
        f"{inp.union.yx}"
    )
    if inp.union.yx == (0, 0) and inp.union.shape == raster:
        return note
    on_raster = monai_windows(sliding_window, raster)
    last = on_raster[-1] if on_raster else None
    return (
        f"{note}; on the raster's own {raster[0]} x {raster[1]} px MONAI would place "
        f"{len(on_raster)} (last at {last}), so the tiles past the raster's edge (read as "
        "NoData, filled by the contract) are in MONAI's input too"
    )


def run_monai(
    sliding_window: SlidingWindow,
    bundle: Bundle,
    x: torch.Tensor,
    *,
    batch: int,
    device: torch.device,
) -> float:
    """Seconds for one in-memory sliding-window pass over ``x`` (already on ``device``)."""

    def predictor(patch: torch.Tensor) -> torch.Tensor:
        return activate(bundle.contract, bundle.model(patch))

    t = time.perf_counter()
    with torch.inference_mode():
        sliding_window(
            x,
            roi_size=(TILE, TILE),
            sw_batch_size=batch,
            predictor=predictor,
            overlap=OVERLAP,
            mode="constant",
        )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t


def job_config(args: argparse.Namespace, bundle: Path, basemap: Path, out: Path) -> RtsConfig:
    return RtsConfig.model_validate(
        {
            "model": {"bundle": str(bundle), "device": args.device, "precision": "fp32"},
            "input": {"basemap": str(basemap), "basemap_version": "bench"},
            "output": {"path": str(out)},
            "inference": {
                "tile_size": TILE,
                "scales": [1.0],
                "tta": "none",
                "batch_size": args.batch_size,
                "workers": args.workers,
                "micro_batch": args.micro_batch,
                "checkpoint_every": 1000,
            },
        }
    )


def run_job(
    args: argparse.Namespace, bundle: Path, basemap: Path, tiles: Sequence[Tile]
) -> tuple[float, int]:
    """Seconds for one whole job run into a fresh output, and the tiles it committed."""
    out = Path(tempfile.mkdtemp(prefix="tilecast-vs-monai-"))
    try:
        t = time.perf_counter()
        result = RtsJob(job_config(args, bundle, basemap, out / "run"), tiles).run()
        return time.perf_counter() - t, result.n_committed
    finally:
        shutil.rmtree(out, ignore_errors=True)


def load_seconds(bundle: Path, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        load_bundle(bundle)
        best = min(best, time.perf_counter() - t)
    return best


@dataclass(frozen=True)
class Row:
    model: str
    tiles: int
    monai: list[float]
    job: list[float]
    committed: int
    load_s: float


def measure(
    args: argparse.Namespace,
    sliding_window: SlidingWindow,
    *,
    name: str,
    bundle_dir: Path,
    basemap: Path,
    tiles: Sequence[Tile],
    device: torch.device,
) -> Row:
    bundle = load_bundle(bundle_dir)
    bundle.model.to(device)
    inp = monai_input(bundle, basemap=basemap, tiles=tiles)
    with open_basemap(str(basemap)) as bm:
        raster = bm.grid.shape
    print(f"[{name}] {placement_note(sliding_window, inp, raster)}")
    print(
        f"[{name}] same input pixels: {inp.same_pixels} of {len(inp.offsets)} tiles, each read "
        "and prepared alone by the contract as the job does, equal MONAI's input under them"
    )
    x = inp.tensor.to(device)
    run_monai(sliding_window, bundle, x, batch=args.batch_size, device=device)  # warm-up
    run_job(args, bundle_dir, basemap, tiles)  # warm-up
    monai_s: list[float] = []
    job_s: list[float] = []
    committed = 0
    for _ in range(args.repeats):  # interleaved: load on a shared machine hits both sides
        monai_s.append(run_monai(sliding_window, bundle, x, batch=args.batch_size, device=device))
        seconds, committed = run_job(args, bundle_dir, basemap, tiles)
        job_s.append(seconds)
    return Row(
        model=name,
        tiles=len(inp.offsets),
        monai=monai_s,
        job=job_s,
        committed=committed,
        load_s=load_seconds(bundle_dir, args.repeats),
    )


def machine_line(device: torch.device, monai_version: str) -> str:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return (
        f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores "
        f"({usable} usable), torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"device {where}, monai {monai_version}, load average {load}"
    )


def print_table(rows: Sequence[Row]) -> None:
    print()
    print(
        f"{'model':<12} {'tiles':>5}  {'MONAI s':>8} {'tiles/s':>8}  "
        f"{'job s':>8} {'tiles/s':>8}  {'job/MONAI':>9}"
    )
    for r in rows:
        m, j = min(r.monai), min(r.job)
        verdict = "slower" if j > m else "faster"
        print(
            f"{r.model:<12} {r.tiles:>5}  {m:8.3f} {r.tiles / m:8.1f}  "
            f"{j:8.3f} {r.committed / j:8.1f}  {j / m:8.2f}x ({verdict})"
        )
    print()
    for r in rows:
        runs_m = " ".join(f"{s:.3f}" for s in r.monai)
        runs_j = " ".join(f"{s:.3f}" for s in r.job)
        print(
            f"{r.model}: MONAI runs {runs_m} s; job runs {runs_j} s "
            f"({r.committed} tiles committed); bundle load (verified, golden check) "
            f"{r.load_s:.3f} s of the job's time"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--demo-dir", type=Path, default=Path("demo_out"))
    parser.add_argument("--bundle", type=Path, default=Path("models/rts-demo"))
    parser.add_argument("--near-free", type=Path, default=Path("build/bench/near-free"))
    parser.add_argument(
        "--models", nargs="+", choices=["near-free", "rts-demo"], default=["near-free", "rts-demo"]
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--micro-batch", type=int, default=None, help="the job's; default: its own (1 on CPU)"
    )
    args = parser.parse_args()
    if args.batch_size < 1 or args.repeats < 1:
        parser.error(f"--batch-size and --repeats must be >= 1, {args.batch_size}, {args.repeats}")
    sliding_window, monai_version = import_monai()
    demo = demo_basemap(args.demo_dir)
    device = resolve_device(args.device)
    micro = args.micro_batch or (1 if device.type == "cpu" else args.batch_size)
    print(machine_line(device, monai_version))
    print(
        f"scale 1.0, no TTA, batch {args.batch_size} (job: {min(micro, args.batch_size)} "
        f"sample(s) per model call, {args.workers} read workers; MONAI: sw_batch_size "
        f"{args.batch_size} windows per call), best of {args.repeats} after a warm-up"
    )
    rows = [
        measure(
            args,
            sliding_window,
            name=name,
            bundle_dir=(
                near_free_bundle(args.near_free, like=args.bundle)
                if name == "near-free"
                else args.bundle
            ),
            basemap=demo.basemap,
            tiles=demo.tiles,
            device=device,
        )
        for name in args.models
    ]
    print_table(rows)


if __name__ == "__main__":
    main()
