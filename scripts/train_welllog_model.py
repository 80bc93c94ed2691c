"""Train the demo well-log digitiser (VeerNet) on synthetic scans: the *training side*.

Written the way an independent training team would write it: its own preprocessing in torch
(not ``tilecast.prep``), and the team's plain layout

    best_model.pth            {"state_dict", "step", "architecture": {"name", "params"}}
    normalization_stats.json  mean/std of valid training pixels
    config.yaml               model, input (with the pixel sentinels), data, postprocessing
    golden/*.npz              input/output pairs computed by this code

which ``tilecast bundle create`` turns into a verified bundle (train/serve parity checked).

Model: ``veernet`` (GroupNorm U-Net, five stride-2 stages, so inputs are multiples of 32),
one grayscale input channel, three classes: background, curve slot 1, curve slot 2 (a scan
with one curve uses slot 1 only; the record lists curves in slot order). Every GroupNorm group
has at least 16 channels.

Preprocessing (what the contract declares): uint8 grayscale as float32 raw 0..255; pixels
equal to 0 are missing (the scans reserve 0 for torn or dropped-out pixels) and set to the
mean; then ``(x - mean) / std``. Softmax over the three classes; a pixel belongs to a curve
when its probability is at least 0.5.

Data: scans from ``tilecast.demo.welllog_scan.generate_scan`` with TRAIN_SEEDS (narrower than
the serving band to save time: the network is convolutional), trained on TILE_H x TILE_W crops.
GOLDEN_SEED is held out (golden pairs); the held-out scoring seeds of
``scripts/score_welllog.py`` (from 50000) are never used here.

Deterministic: the same --seed and --steps give bitwise identical weights (torch.manual_seed,
a numpy Generator, torch.use_deterministic_algorithms, two threads).

    python scripts/train_welllog_model.py --out build/train/welllog-demo [--steps N] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from tilecast.demo.welllog_scan import MASK_MISSING, MISSING_PIXEL, SyntheticScan, generate_scan
from tilecast.models import build_model
from training_layout import make_deterministic, save_checkpoint, write_atomic

MODEL_NAME = "welllog-demo"
MODEL_VERSION = "0.1.0"
DATASET_VERSION = "synthetic-welllog-v1"
ARCHITECTURE = "veernet"
ARCH_PARAMS = {
    "in_channels": 1,
    "classes": 3,
    "depth": 5,
    "widths": [16, 16, 32, 32, 48, 64],
    "norm": "group",
    "min_group_channels": 16,
}
LABELS = ["background", "curve_1", "curve_2"]
TRAIN_SEEDS = list(range(1000, 1024))
TRAIN_WIDTH = 1600
GOLDEN_SEED = 2001  # held out: golden pairs only
TILE_H, TILE_W = 192, 192  # training crop (multiples of 32)
BATCH = 4
STEPS = 600
LR = 4e-3
CLASS_WEIGHTS = (1.0, 4.0, 6.0)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"optimiser steps ({STEPS})")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and sampling seed")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be positive, {args.steps} is given")
    return args


def pixel_stats(scans: list[SyntheticScan]) -> tuple[float, float]:
    """Mean and std of the valid (non-missing) pixels of all training scans, float64 sums."""
    total = total_sq = 0.0
    count = 0
    for scan in scans:
        pixels = scan.image[scan.image != MISSING_PIXEL].astype(np.float64)
        total += float(pixels.sum())
        total_sq += float((pixels**2).sum())
        count += pixels.size
    mean = total / count
    return mean, math.sqrt(total_sq / count - mean**2)


def preprocess(batch: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, 1, H, W) -> float32, missing pixels (0) set to the mean, standardised."""
    x = batch.to(torch.float32)
    x = torch.where(batch == MISSING_PIXEL, torch.tensor(mean, dtype=torch.float32), x)
    return (x - torch.tensor(mean, dtype=torch.float32)) / torch.tensor(std, dtype=torch.float32)


class CropSampler:
    """Random TILE_H x TILE_W crops with a horizontal flip half the time."""

    def __init__(self, scans: list[SyntheticScan], rng: np.random.Generator) -> None:
        self.scans, self.rng = scans, rng

    def crop(self) -> tuple[np.ndarray, np.ndarray]:
        scan = self.scans[int(self.rng.integers(len(self.scans)))]
        row = int(self.rng.integers(0, scan.height - TILE_H + 1))
        col = int(self.rng.integers(0, scan.width - TILE_W + 1))
        image = scan.image[row : row + TILE_H, col : col + TILE_W]
        mask = scan.truth.mask[row : row + TILE_H, col : col + TILE_W]
        if self.rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        crops = [self.crop() for _ in range(size)]
        images = torch.from_numpy(np.stack([c[0] for c in crops])[:, None])
        masks = torch.from_numpy(np.stack([c[1] for c in crops]).astype(np.int64))
        return images, masks


def loss_fn(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Weighted cross-entropy (missing pixels ignored) + soft Dice of the two curve classes."""
    weights = torch.tensor(CLASS_WEIGHTS, dtype=torch.float32)
    ce = F.cross_entropy(logits, mask, weight=weights, ignore_index=MASK_MISSING)
    valid = (mask != MASK_MISSING).to(torch.float32).unsqueeze(1)
    prob = torch.softmax(logits, dim=1)[:, 1:] * valid
    target = torch.stack([(mask == k) for k in (1, 2)], dim=1).to(torch.float32)
    inter = (prob * target).sum(dim=(0, 2, 3))
    dice = 1.0 - (2.0 * inter + 1.0) / (prob.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3)) + 1.0)
    return ce + dice.mean()


def learning_rate(step: int, steps: int) -> float:
    warmup = max(1, steps // 20)
    if step < warmup:
        return LR * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return LR * (0.03 + 0.97 * 0.5 * (1.0 + math.cos(math.pi * progress)))


GOLDEN_SHAPE = (224, 256)  # multiples of 32: no padding convention needed


def write_golden(out: Path, model: torch.nn.Module, mean: float, std: float) -> list[str]:
    """Two crops of a held-out scan, across both curves and across its missing pixels."""
    from tilecast.bundle.golden import GoldenPair

    scan = generate_scan(GOLDEN_SEED, width=3200, height=560, n_curves=2, missing=True)
    h, w = GOLDEN_SHAPE
    missing_cols = np.nonzero((scan.image == MISSING_PIXEL).any(axis=0))[0]
    first = int(missing_cols[0]) if missing_cols.size else scan.width // 2
    windows = {
        "curves.npz": (160, 600),
        "missing_pixels.npz": (0, int(np.clip(first - w // 2, 0, scan.width - w))),
    }
    model.eval()
    names = []
    for name, (r0, c0) in windows.items():
        crop = np.ascontiguousarray(scan.image[None, r0 : r0 + h, c0 : c0 + w])
        with torch.no_grad():
            x = preprocess(torch.from_numpy(crop[None]), mean, std)
            prob = torch.softmax(model(x), dim=1)[0].numpy()
        prob[:, crop[0] == MISSING_PIXEL] = np.nan  # no prediction where a pixel is missing
        pair = GoldenPair(name=name, input=crop, output=prob, channel_order="L", nodata=None)
        write_atomic(out / "golden" / name, pair.to_bytes())
        names.append(name)
    return names


def curve_iou(model: torch.nn.Module, scan: SyntheticScan, mean: float, std: float) -> list[float]:
    """Pixel IoU of each curve class on one scan (cropped to multiples of 32)."""
    h, w = scan.height // 32 * 32, scan.width // 32 * 32
    image = torch.from_numpy(np.ascontiguousarray(scan.image[None, None, :h, :w]))
    with torch.no_grad():
        pred = model(preprocess(image, mean, std))[0].argmax(dim=0).numpy()
    truth = scan.truth.mask[:h, :w]
    valid = truth != MASK_MISSING
    out = []
    for k in (1, 2):
        a, b = (pred == k) & valid, (truth == k) & valid
        union = int((a | b).sum())
        out.append(float((a & b).sum() / union) if union else float("nan"))
    return out


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    make_deterministic(args.seed)
    rng = np.random.default_rng(args.seed)
    out: Path = args.out

    train = [generate_scan(s, width=TRAIN_WIDTH) for s in TRAIN_SEEDS]
    mean, std = pixel_stats(train)
    sampler = CropSampler(train, rng)
    print(
        f"{len(train)} training scans, mean {mean:.2f} std {std:.2f} "
        f"({time.perf_counter() - started:.1f} s)"
    )

    # channels-last runs the CPU convolutions (and their backward) about 2.7x faster here
    model = build_model(ARCHITECTURE, ARCH_PARAMS).to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    running = 0.0
    for step in range(args.steps):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, args.steps)
        images, masks = sampler.batch(BATCH)
        x = preprocess(images, mean, std).contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(x), masks)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        running += loss.item()
        if (step + 1) % 20 == 0 or step + 1 == args.steps:
            print(
                f"step {step + 1}/{args.steps} loss {running / 20:.4f} "
                f"lr {learning_rate(step, args.steps):.2e} ({time.perf_counter() - started:.0f} s)"
            )
            running = 0.0
    train_seconds = time.perf_counter() - started

    model = model.to(memory_format=torch.contiguous_format).eval()
    validation = generate_scan(GOLDEN_SEED + 1, width=3200, n_curves=2)
    iou = curve_iou(model, validation, mean, std)

    weights = save_checkpoint(
        out / "best_model.pth", model, steps=args.steps, architecture=ARCHITECTURE
    )
    norm = {
        "mean": [mean],
        "std": [std],
        "dataset_version": DATASET_VERSION,
        "bands": ["L"],
        "value_scaling": "raw",
    }
    write_atomic(out / "normalization_stats.json", (json.dumps(norm, indent=2) + "\n").encode())
    config = {
        "model_name": MODEL_NAME,
        "model_version": MODEL_VERSION,
        "architecture": {"name": ARCHITECTURE, "params": model.config},
        "input": {
            "channel_order": "L",
            "dtype": "uint8",
            "value_scaling": "raw",
            "nodata_fill": "mean",
            "input_range": [0, 255],
            # 0 is the scans' missing-pixel value; the rest guard float inputs and records.
            "sentinels": {"values": [float(MISSING_PIXEL), -999.0, -999.25, -9999.0]},
        },
        "data": {
            "dataset_version": DATASET_VERSION,
            "tile": [TILE_H, TILE_W],
            "train_seeds": [TRAIN_SEEDS[0], TRAIN_SEEDS[-1]],
            "train_width": TRAIN_WIDTH,
            "golden_seed": GOLDEN_SEED,
        },
        "postprocessing": {"activation": "softmax", "labels": LABELS, "threshold": 0.5},
        "metrics": {
            "validation_curve_1_iou": round(iou[0], 4),
            "validation_curve_2_iou": round(iou[1], 4),
        },
    }
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
    write_atomic(out / "config.yaml", text.encode())
    write_golden(out, model, mean, std)

    print(f"validation pixel IoU (seed {GOLDEN_SEED + 1}): curve 1 {iou[0]:.4f}, 2 {iou[1]:.4f}")
    print(f"best_model.pth: {len(weights)} bytes, sha256 {hashlib.sha256(weights).hexdigest()}")
    print(f"training time: {train_seconds:.1f} s; wall time: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
