"""The GPU check: is the model's device kept busy by the real job? One table, under 8 minutes.

    bench/gpu_check.sh              # on an H100/H200 machine (it sets up the Python path)
    python bench/gpu_check.py [--job-seconds 130] [--skip-compile]
    python bench/gpu_check.py --cpu-smoke   # the same steps, tiny, on the CPU (about a minute)

1. The bare model: passes/s of a ResNet34-encoder U-Net (``smp_unet``, random weights, the
   thaw-slump team's architecture class) at 512 px, batches of 64 and 128, in fp32, bf16, and
   bf16 + channels_last + ``torch.compile``; timed with CUDA events after a warm-up.
2. The real job (``RtsJob``, what ``scripts/inference.py`` runs): scales [1.0, 0.5] + minimal
   TTA (4 passes per tile), bf16, batch 64, ``workers`` = the machine's cores, on a synthetic
   basemap of COG quads, with a tile list long enough for ``--job-seconds`` of work (the basemap's
   tiles repeated under new ids; the block cache is kept small so every pass decodes its
   blocks again, as a basemap too big to cache would). GPU utilisation is sampled every 200 ms
   through NVML while it runs.
3. The table: bare passes/s per setting, the job's tiles/s and passes/s, mean and median GPU
   utilisation over the job, the job/bare ratio (job passes/s over the bare model's at bf16
   batch 64), and the job's CPU ms per tile per stage.

``--cpu-smoke`` runs every step on the CPU at toy size (fp32 batch 1 for the bare model, a
512 px basemap, the batched pipeline of a GPU run with batch 4 and 2 workers, no utilisation
samples), so that the script is known to run before a GPU's scarce minutes are spent on it
(``tests/rts/test_gpu_check_smoke.py``). Its figures mean nothing. The GPU run itself is never
part of the tests: the test suite runs without a GPU.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def bare_passes_per_s(
    model: torch.nn.Module, *, batch: int, dtype, channels_last: bool, device: str = "cuda"
) -> float:
    x = torch.randint(0, 256, (batch, 3, 512, 512), device=device).float()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device, dtype=dtype, enabled=dtype is not None)
    warm_up, n = (3, 10) if device == "cuda" else (1, 1)
    with torch.inference_mode(), autocast:
        for _ in range(warm_up):
            model(x)
        if device != "cuda":
            t0 = time.perf_counter()
            for _ in range(n):
                model(x)
            return n * batch / (time.perf_counter() - t0)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            model(x)
        end.record()
        torch.cuda.synchronize()
    return n * batch / (start.elapsed_time(end) / 1000)


class UtilisationSampler:
    """GPU utilisation (%) every ``interval_s`` through NVML, in a thread."""

    def __init__(self, interval_s: float = 0.2) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        self.interval_s = interval_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
            time.sleep(self.interval_s)

    def __enter__(self) -> UtilisationSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class NoSampler:
    """What ``--cpu-smoke`` samples instead: nothing (there is no GPU)."""

    def __init__(self) -> None:
        self.samples: list[int] = []

    def __enter__(self) -> NoSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def make_basemap(root: Path, size: int) -> tuple[Path, list]:
    from tilecast.apps.rts.tilelist import parse_tile_list

    if not (root / "basemap").exists():
        subprocess.run(
            [sys.executable, str(REPO / "scripts/make_demo_basemap.py"), "--out", str(root),
             "--size", str(size), "--quad", str(min(size, 1024))],
            check=True,
        )  # fmt: skip
    tiles = parse_tile_list((root / "tiles.csv").read_text(), source=str(root / "tiles.csv"))
    return root / "basemap", tiles


def repeated(tiles: list, times: int) -> list:
    from tilecast.grid import Tile

    return [
        Tile(f"k{k}_{t.tile_id}", t.minx, t.miny, t.maxx, t.maxy, t.region)
        for k in range(times)
        for t in tiles
    ]


@dataclass(frozen=True)
class Profile:
    """Everything a GPU run and a ``--cpu-smoke`` run do differently."""

    device: str
    bare: tuple[tuple[str, torch.dtype | None, bool, bool], ...]  # label, dtype, cl, compile
    batches: tuple[int, ...]
    reference: tuple[str, int]  # the bare (label, batch) the job is compared with
    precision: str  # the job's
    batch_size: int
    workers: int
    max_tiles: int | None  # of the basemap's tile list (None: all)


GPU = Profile(
    device="cuda",
    bare=(
        ("fp32", None, False, False),
        ("bf16", torch.bfloat16, False, False),
        ("bf16+cl+compile", torch.bfloat16, True, True),
    ),
    batches=(64, 128),
    reference=("bf16", 64),
    precision="bf16",
    batch_size=64,
    workers=os.cpu_count() or 4,
    max_tiles=None,
)
# bf16 is emulated on most CPUs and compiling takes minutes: fp32 only; one tile of 4 passes
# is a second or more on a CPU
CPU_SMOKE = Profile(
    device="cpu",
    bare=(("fp32", None, False, False),),
    batches=(1,),
    reference=("fp32", 1),
    precision="fp32",
    batch_size=4,
    workers=2,
    max_tiles=1,
)


def run_job(bundle: Path, basemap: Path, tiles: list, out: Path, profile: Profile):
    from tilecast.apps.rts.config import RtsConfig
    from tilecast.apps.rts.job import RtsJob

    config = RtsConfig.model_validate(
        {
            "model": {"bundle": str(bundle), "device": profile.device,
                      "precision": profile.precision, "channels_last": True},
            "input": {"basemap": str(basemap), "basemap_version": "gpu-check",
                      "block_cache_mb": 64},
            "output": {"path": str(out), "tile_encoding": "uint8"},
            "inference": {"tile_size": 512, "scales": [1.0, 0.5], "tta": "minimal",
                          "batch_size": profile.batch_size, "workers": profile.workers,
                          "pipeline": "batched", "checkpoint_every": 2000},
            "products": {"merge": False, "vectorize": False, "report": False},
        }
    )  # fmt: skip
    return RtsJob(config, tiles).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job-seconds", type=float, default=130.0)
    parser.add_argument("--basemap-size", type=int, default=4096)
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--cpu-smoke", action="store_true", help="every step, tiny, on the CPU")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "gpu-check")
    args = parser.parse_args()
    t0 = time.perf_counter()
    smoke = args.cpu_smoke
    profile = CPU_SMOKE if smoke else GPU
    if smoke:
        args.job_seconds, args.basemap_size = 1.0, 512
    elif not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device; this check is for a GPU machine (or --cpu-smoke)")
    from tilecast.models import build_model

    name = "the CPU (smoke run)" if smoke else f"gpu {torch.cuda.get_device_name()}"
    print(f"{name}, torch {torch.__version__}, {os.cpu_count()} cores", flush=True)
    params = {"encoder_name": "resnet34", "in_channels": 3, "classes": 1}
    net = build_model("smp_unet", params).to(profile.device).eval()
    rows: list[tuple[str, int, float]] = []
    for label, dtype, cl, compile_ in profile.bare:
        if compile_ and args.skip_compile:
            continue
        model = net.to(memory_format=torch.channels_last) if cl else net
        if compile_:
            model = torch.compile(model)
        for batch in profile.batches:
            rate = bare_passes_per_s(
                model, batch=batch, dtype=dtype, channels_last=cl, device=profile.device
            )
            rows.append((label, batch, rate))
            print(f"bare {label:16} batch {batch:3}: {rate:8.1f} passes/s", flush=True)
    del model, net
    if not smoke:
        torch.cuda.empty_cache()

    args.work.mkdir(parents=True, exist_ok=True)
    bundle = args.work / "resnet34-unet-random"
    if not bundle.exists():
        subprocess.run(
            [sys.executable, str(REPO / "scripts/make_resnet_unet_bundle.py"), "--out",
             str(bundle), "--format", "state_dict"],
            check=True,
        )  # fmt: skip
    basemap, tiles = make_basemap(args.work / "basemap", args.basemap_size)
    tiles = tiles[: profile.max_tiles]
    print(f"basemap {basemap}: {len(tiles)} tiles; {time.perf_counter() - t0:.0f} s so far")
    calibration = run_job(bundle, basemap, tiles, args.work / "out-calibration", profile)
    rate = calibration.n_committed / calibration.pipeline_s
    times = max(1, math.ceil(args.job_seconds * rate / len(tiles)))
    job_tiles = repeated(tiles, times)
    print(f"calibration: {rate:.1f} tiles/s; the job gets {len(job_tiles)} tiles", flush=True)
    with NoSampler() if smoke else UtilisationSampler() as sampler:
        result = run_job(bundle, basemap, job_tiles, args.work / "out", profile)
    util = sampler.samples[5:] or sampler.samples  # the first second is start-up
    tiles_s = result.n_committed / result.pipeline_s
    passes_s = result.model_passes / result.pipeline_s
    bare = next(r for label, b, r in rows if (label, b) == profile.reference)

    print()
    print("| measure | value |")
    print("|---|---|")
    for label, batch, r in rows:
        print(f"| bare ResNet34 U-Net 512 px, {label}, batch {batch} | {r:,.1f} passes/s |")
    print(
        f"| job: scales [1.0, 0.5] + minimal TTA, {profile.precision}, batch "
        f"{profile.batch_size}, {profile.workers} workers | {tiles_s:,.1f} tiles/s = "
        f"{passes_s:,.1f} passes/s ({result.n_committed} tiles, {result.pipeline_s:.0f} s) |"
    )
    if util:
        print(
            f"| GPU utilisation during the job (every 200 ms) | mean {statistics.mean(util):.0f}"
            f" %, median {statistics.median(util):.0f} % ({len(util)} samples) |"
        )
    else:
        print("| GPU utilisation during the job (every 200 ms) | no samples (no GPU) |")
    label, batch = profile.reference
    print(f"| job / bare (passes/s, {label} batch {batch}) | {passes_s / bare:.2f} |")
    n = result.n_committed or 1
    stages = ", ".join(
        f"{name} {1000 * t.cpu_s / n:.1f}" for name, t in result.stage_seconds.items()
    )
    print(f"| job CPU ms per tile by stage | {stages} |")
    print(f"| process CPU ms per tile | {1000 * result.pipeline_cpu_s / n:.1f} |")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
