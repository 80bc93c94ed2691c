"""Train the demo thaw-slump model on synthetic scenes: the *training side* of the contract.

Written the way an independent training team would write it: it does its own preprocessing
in torch (it does not use ``tilecast.prep``) and writes the team's plain layout

    best_model.pth            {"state_dict", "step", "architecture": {"name", "params"}}
    normalization_stats.json  per-channel mean/std over valid training pixels
    config.yaml               model, input, data, postprocessing and metrics

which ``tilecast bundle create`` turns into a verified bundle.

Preprocessing (what the serving contract must declare): RGB uint8 read as float32 raw 0..255;
NoData pixels (0 in every band) set to the channel mean; then ``(x - mean) / std``.

Data: scenes from ``tilecast.demo.generate_scene`` with fixed seeds. TRAIN_SEEDS train the
weights, VALIDATION_SEED calibrates the threshold, TEST_SEED is held out: it is used only for
the final metrics, never for training or calibration.

Threshold: the one maximising object-level F0.5 (objects matched at IoU >= 0.5) on the
validation scene, on a 0.05 grid, ties to the higher pixel F0.5: the product is polygons and the
run book prefers precision (fewer false alarms) to recall.

Deterministic: the same --seed and --steps give bitwise identical weights (torch.manual_seed,
a numpy Generator, torch.use_deterministic_algorithms, two threads).

    python scripts/train_demo_model.py --out build/train/rts-demo [--steps N] [--seed 0]
        [--preview test.png]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from tilecast.demo.metrics import label_components, object_scores, pixel_iou
from tilecast.demo.scene import SyntheticScene, generate_scene
from tilecast.models import build_model
from training_layout import make_deterministic, save_checkpoint, write_atomic

MODEL_NAME = "rts-demo"
MODEL_VERSION = "0.1.0"
DATASET_VERSION = "synthetic-rts-v1"
ARCHITECTURE = "unet"
ARCH_PARAMS = {
    "in_channels": 3,
    "classes": 1,
    "depth": 5,
    "widths": [8, 16, 32, 64, 96, 128],
    "norm": "group",
    "min_group_channels": 16,
}
TRAIN_SEEDS = [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008]
TRAIN_SIZE = 1024
TRAIN_SLUMPS = 14  # denser than the default, for more positives per crop
VALIDATION_SEED = 2001
TEST_SEED = 3001  # held out: final metrics only
EVAL_SIZE = 2048
TILE = 256  # training crop
SERVE_TILE, SERVE_STRIDE = 512, 256  # evaluation: the run book's tiles, 50% overlap, max merge
BATCH = 8
STEPS = 360
LR = 3e-3
POSITIVE_CROPS = 0.5


@dataclass(frozen=True)
class Stats:
    mean: np.ndarray  # (3,) float64
    std: np.ndarray  # (3,) float64


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"optimiser steps ({STEPS})")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and sampling seed")
    parser.add_argument(
        "--preview", type=Path, default=None, help="also write a PNG of the test prediction here"
    )
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be positive, {args.steps} is given")
    return args


def nodata_mask(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that are 0 in every band."""
    return np.all(image == 0, axis=0)


def channel_stats(scenes: list[SyntheticScene]) -> Stats:
    """Per-channel mean and std over valid pixels of all training scenes (float64 sums)."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for scene in scenes:
        valid = ~nodata_mask(scene.image)
        pixels = scene.image[:, valid].astype(np.float64)
        total += pixels.sum(axis=1)
        total_sq += (pixels**2).sum(axis=1)
        count += pixels.shape[1]
    mean = total / count
    std = np.sqrt(total_sq / count - mean**2)
    return Stats(mean=mean, std=std)


def preprocess(batch: torch.Tensor, stats: Stats) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32, NoData filled with the channel mean, then standardised."""
    x = batch.to(torch.float32)
    mean = torch.tensor(stats.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(stats.std, dtype=torch.float32).view(1, 3, 1, 1)
    nodata = (batch == 0).all(dim=1, keepdim=True)
    x = torch.where(nodata, mean, x)
    return (x - mean) / std


class CropSampler:
    """Random TILE x TILE crops, most of them centred near a random slump, with flips/rot90."""

    def __init__(self, scenes: list[SyntheticScene], rng: np.random.Generator) -> None:
        self.scenes = scenes
        self.rng = rng
        self.objects = []  # (scene index, rows, cols) of every slump's pixels
        for index, scene in enumerate(scenes):
            labels, count = label_components(scene.truth == 1)
            order = np.argsort(labels.ravel(), kind="stable")
            sorted_labels = labels.ravel()[order]
            bounds = np.searchsorted(sorted_labels, np.arange(1, count + 2))
            for k in range(count):
                flat = order[bounds[k] : bounds[k + 1]]
                self.objects.append((index, flat // scene.width, flat % scene.width))

    def crop(self) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        if self.objects and rng.random() < POSITIVE_CROPS:
            index, rows, cols = self.objects[int(rng.integers(len(self.objects)))]
            pick = int(rng.integers(rows.size))
            row = int(rows[pick]) - int(rng.integers(TILE))
            col = int(cols[pick]) - int(rng.integers(TILE))
        else:
            index = int(rng.integers(len(self.scenes)))
            row = int(rng.integers(self.scenes[index].height))
            col = int(rng.integers(self.scenes[index].width))
        scene = self.scenes[index]
        row = int(np.clip(row, 0, scene.height - TILE))
        col = int(np.clip(col, 0, scene.width - TILE))
        image = scene.image[:, row : row + TILE, col : col + TILE]
        truth = scene.truth[row : row + TILE, col : col + TILE]
        k = int(rng.integers(4))
        image, truth = np.rot90(image, k, axes=(1, 2)), np.rot90(truth, k)
        if rng.random() < 0.5:
            image, truth = image[:, :, ::-1], truth[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(truth)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        crops = [self.crop() for _ in range(size)]
        images = torch.from_numpy(np.stack([c[0] for c in crops]))
        truths = torch.from_numpy(np.stack([c[1] for c in crops]))
        return images, truths


def loss_fn(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice over valid pixels (truth 255 is NoData and ignored)."""
    valid = (truth != 255).to(torch.float32).unsqueeze(1)
    target = (truth == 1).to(torch.float32).unsqueeze(1)
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=valid, reduction="sum")
    bce = bce / valid.sum().clamp_min(1.0)
    prob = torch.sigmoid(logits) * valid
    dice = 1.0 - (2.0 * (prob * target).sum() + 1.0) / (prob.sum() + target.sum() + 1.0)
    return bce + dice


def learning_rate(step: int, steps: int) -> float:
    warmup = max(1, steps // 20)
    if step < warmup:
        return LR * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return LR * (0.03 + 0.97 * 0.5 * (1.0 + math.cos(math.pi * progress)))


@torch.inference_mode()
def predict_scene(model: torch.nn.Module, image: np.ndarray, stats: Stats) -> np.ndarray:
    """Probabilities (H, W) for a whole scene: SERVE_TILE tiles at SERVE_STRIDE, max-merged.

    The scene is padded (with NoData) to the tile grid; tile sizes are multiples of the model's
    alignment, so no tile needs padding of its own.
    """
    model.eval()
    align = model.alignment
    if SERVE_TILE % align or SERVE_STRIDE % align:
        raise ValueError(
            f"tile {SERVE_TILE} and stride {SERVE_STRIDE} must be multiples of {align}"
        )
    _, height, width = image.shape
    rows = max(1, math.ceil((height - SERVE_TILE) / SERVE_STRIDE) + 1)
    cols = max(1, math.ceil((width - SERVE_TILE) / SERVE_STRIDE) + 1)
    padded_h = (rows - 1) * SERVE_STRIDE + SERVE_TILE
    padded_w = (cols - 1) * SERVE_STRIDE + SERVE_TILE
    padded = np.zeros((3, padded_h, padded_w), dtype=np.uint8)
    padded[:, :height, :width] = image
    prob = np.zeros((padded_h, padded_w), dtype=np.float32)
    for i in range(rows):
        for j in range(cols):
            r, c = i * SERVE_STRIDE, j * SERVE_STRIDE
            tile = torch.from_numpy(padded[None, :, r : r + SERVE_TILE, c : c + SERVE_TILE].copy())
            p = torch.sigmoid(model(preprocess(tile, stats)))[0, 0].numpy()
            window = prob[r : r + SERVE_TILE, c : c + SERVE_TILE]
            np.maximum(window, p, out=window)
    prob = prob[:height, :width]
    prob[nodata_mask(image)] = 0.0
    return prob


GOLDEN_SHAPE = (224, 288)  # multiples of the model's alignment: no padding convention needed


def golden_windows(scene: SyntheticScene) -> list[tuple[str, slice, slice]]:
    """Two crops of the held-out scene: one on a slump, one across the NoData edge."""
    h, w = GOLDEN_SHAPE
    rows, cols = np.nonzero(scene.truth == 1)
    r0 = int(np.clip(rows[len(rows) // 2] - h // 2, 0, scene.height - h))
    c0 = int(np.clip(cols[len(cols) // 2] - w // 2, 0, scene.width - w))
    windows = [("test_slump.npz", slice(r0, r0 + h), slice(c0, c0 + w))]
    nodata = nodata_mask(scene.image)
    for r in range(0, scene.height - h, h // 2):
        for c in range(0, scene.width - w, w // 2):
            fraction = nodata[r : r + h, c : c + w].mean()
            if 0.1 <= fraction <= 0.6:
                windows.append(("test_nodata_edge.npz", slice(r, r + h), slice(c, c + w)))
                return windows
    return windows


def write_golden(out: Path, model: torch.nn.Module, scene: SyntheticScene, stats: Stats) -> None:
    """Input/output pairs computed by this training code, for the bundle to reproduce."""
    from tilecast.bundle.golden import GoldenPair

    model.eval()
    for name, rows, cols in golden_windows(scene):
        crop = np.ascontiguousarray(scene.image[:, rows, cols])
        with torch.no_grad():
            prob = torch.sigmoid(model(preprocess(torch.from_numpy(crop[None]), stats)))[0].numpy()
        prob[:, nodata_mask(crop)] = np.nan  # no prediction where the input had no data
        pair = GoldenPair(name=name, input=crop, output=prob, channel_order="RGB", nodata=0.0)
        write_atomic(out / "golden" / name, pair.to_bytes())


def f_beta(precision: float, recall: float, beta: float) -> float:
    denom = beta**2 * precision + recall
    return (1 + beta**2) * precision * recall / denom if denom else 0.0


def calibrate_threshold(prob: np.ndarray, truth: np.ndarray, *, beta: float = 0.5) -> float:
    """The threshold (0.05 grid) maximising object-level F-beta at IoU >= 0.5 on valid pixels;
    ties go to the higher pixel-level F-beta, then to the lower threshold."""
    ignore = truth == 255
    target = truth == 1
    valid_target = target[~ignore]
    valid_prob = prob[~ignore]
    best, best_key = 0.5, (-1.0, -1.0)
    for threshold in np.round(np.arange(0.10, 0.951, 0.05), 2):
        objects = object_scores(prob >= threshold, target, iou_threshold=0.5, ignore=ignore)
        pred = valid_prob >= threshold
        tp = np.count_nonzero(pred & valid_target)
        pixel_precision = tp / max(1, np.count_nonzero(pred))
        pixel_recall = tp / max(1, np.count_nonzero(valid_target))
        key = (
            f_beta(objects.precision, objects.recall, beta),
            f_beta(pixel_precision, pixel_recall, beta),
        )
        if key > best_key:
            best, best_key = float(threshold), key
    return best


def save_preview(path: Path, scene: SyntheticScene, prob: np.ndarray, threshold: float) -> None:
    """RGB with truth outlines in magenta and predicted outlines in cyan (side by side)."""
    from PIL import Image

    def outline(mask: np.ndarray) -> np.ndarray:
        inner = mask.copy()
        inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
        return mask & ~inner

    rgb = scene.image.transpose(1, 2, 0).copy()
    left = rgb.copy()
    left[outline(scene.truth == 1)] = (255, 0, 255)
    right = rgb.copy()
    right[outline(prob >= threshold)] = (0, 255, 255)
    Image.fromarray(np.concatenate([left, right], axis=1)).save(path)


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    make_deterministic(args.seed)
    rng = np.random.default_rng(args.seed)
    out: Path = args.out

    train = [
        generate_scene(seed=s, height=TRAIN_SIZE, width=TRAIN_SIZE, n_slumps=TRAIN_SLUMPS)
        for s in TRAIN_SEEDS
    ]
    stats = channel_stats(train)
    sampler = CropSampler(train, rng)
    print(
        f"{len(train)} training scenes, {len(sampler.objects)} slumps, "
        f"mean {np.round(stats.mean, 2).tolist()} std {np.round(stats.std, 2).tolist()} "
        f"({time.perf_counter() - started:.1f} s)"
    )

    model = build_model(ARCHITECTURE, ARCH_PARAMS)
    optimiser = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    running = 0.0
    for step in range(args.steps):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, args.steps)
        images, truths = sampler.batch(BATCH)
        loss = loss_fn(model(preprocess(images, stats)), truths)
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

    validation = generate_scene(seed=VALIDATION_SEED, height=EVAL_SIZE, width=EVAL_SIZE)
    val_prob = predict_scene(model, validation.image, stats)
    threshold = calibrate_threshold(val_prob, validation.truth)
    ignore = validation.truth == 255
    val_iou = pixel_iou(val_prob >= threshold, validation.truth == 1, ignore=ignore)

    test = generate_scene(seed=TEST_SEED, height=EVAL_SIZE, width=EVAL_SIZE)  # held out
    test_prob = predict_scene(model, test.image, stats)
    ignore = test.truth == 255
    test_pred = test_prob >= threshold
    test_iou = pixel_iou(test_pred, test.truth == 1, ignore=ignore)
    objects = object_scores(test_pred, test.truth == 1, iou_threshold=0.5, ignore=ignore)

    weights = save_checkpoint(
        out / "best_model.pth", model, steps=args.steps, architecture=ARCHITECTURE
    )
    norm = {
        "mean": [float(v) for v in stats.mean],
        "std": [float(v) for v in stats.std],
        "dataset_version": DATASET_VERSION,
        "bands": ["R", "G", "B"],
        "value_scaling": "raw",
    }
    write_atomic(out / "normalization_stats.json", (json.dumps(norm, indent=2) + "\n").encode())
    config = {
        "model_name": MODEL_NAME,
        "model_version": MODEL_VERSION,
        "architecture": {"name": ARCHITECTURE, "params": model.config},
        "input": {
            "channel_order": "RGB",
            "dtype": "uint8",
            "value_scaling": "raw",
            "nodata_fill": "mean",
            "input_range": [0, 255],
        },
        "data": {
            "dataset_version": DATASET_VERSION,
            "tile_size": TILE,
            "train_seeds": TRAIN_SEEDS,
            "validation_seed": VALIDATION_SEED,
            "test_seed": TEST_SEED,
        },
        "postprocessing": {
            "activation": "sigmoid",
            "labels": ["background", "rts"],
            "threshold": round(threshold, 2),
        },
        "metrics": {
            "validation_pixel_iou": round(val_iou, 4),
            "test_pixel_iou": round(test_iou, 4),
            "test_object_precision": round(objects.precision, 4),
            "test_object_recall": round(objects.recall, 4),
        },
    }
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
    write_atomic(out / "config.yaml", text.encode())
    write_golden(out, model, test, stats)
    if args.preview is not None:
        save_preview(args.preview, test, test_prob, threshold)

    print(f"threshold (max object F0.5 on validation seed {VALIDATION_SEED}): {threshold:.2f}")
    print(f"validation pixel IoU: {val_iou:.4f}")
    print(f"test pixel IoU (held-out seed {TEST_SEED}): {test_iou:.4f}")
    print(
        f"test objects at IoU >= 0.5: precision {objects.precision:.4f} recall "
        f"{objects.recall:.4f} ({objects.n_matched} matched, {objects.n_pred} predicted, "
        f"{objects.n_truth} true)"
    )
    print(f"best_model.pth: {len(weights)} bytes, sha256 {hashlib.sha256(weights).hexdigest()}")
    print(f"wall time: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
