"""Train the demo chip classifier (slump / lake / river / tundra): the *training side*.

Written the way an independent training team would write it: its own preprocessing in torch
(not ``tilecast.prep``), and the team's plain layout

    best_model.pth            {"state_dict", "step", "architecture": {"name", "params"}}
    normalization_stats.json  per-channel mean/std (and 1st/50th/99th percentiles) of the
                              training chips
    config.yaml               task, model, input (with the resize policy), data,
                              postprocessing (label map, threshold and what calibrated it)
    golden/*.npz              input/probability pairs computed by this code
    metrics.json              held-out scores (not read by ``bundle create``)

which ``tilecast bundle create`` turns into a verified classification bundle (train/serve
parity checked on the golden pairs, one of them resized).

Model: ``chip_classifier`` (four stride-2 GroupNorm conv stages, global average pooling, four
logits), about 0.2 M parameters.

Preprocessing (what the contract declares): RGB uint8 read as float32 raw 0..255; resized to
64 x 64 by ``torch.nn.functional.interpolate`` (bilinear, align_corners False, no antialias)
when the image is another size (the training chips are 64 x 64 already); then
``(x - mean) / std`` per channel. Softmax over the four labels.

Data: chips from ``tilecast.demo.chips`` (labelled by what dominates their pixels), three
disjoint seed ranges: TRAIN chips train the weights (with flips and quarter turns); VALIDATION
chips fit the temperature and the threshold; TEST chips are held out, used only for the final
scores (and by ``make classify-demo``).

Calibration, on the validation chips only: a temperature T minimising the negative
log-likelihood (a grid over 0.25..4) is folded into the head (weights and bias divided by T),
so the bundle's softmax is the calibrated one. The threshold is then the lowest confidence, on
a 0.01 grid from 0.50, at which the validation chips answered (top confidence >= threshold) are
at least ANSWERED_ACCURACY correct; below it a chip is ``uncertain``.

Held-out scores on the TEST chips: accuracy, per-class accuracy, the confusion matrix, the
uncertain rate at the threshold, and calibration: the expected calibration error over 10
equal-width confidence bins, with the reliability table, before and after the temperature.

Deterministic: the same --seed and --steps give bitwise identical weights (torch.manual_seed,
a numpy Generator, torch.use_deterministic_algorithms, two threads).

    python scripts/train_classifier.py --out build/train/classify-demo [--steps N] [--seed 0]
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

from tilecast.demo.chips import CHIP_SIDE, LABELS, SPLIT_SEEDS, generate_chip, split_chips
from tilecast.demo.classify_metrics import format_scores, score
from tilecast.models import build_model
from training_layout import make_deterministic, save_checkpoint, write_atomic

MODEL_NAME = "classify-demo"
MODEL_VERSION = "0.1.0"
DATASET_VERSION = "synthetic-chips-v1"
ARCHITECTURE = "chip_classifier"
ARCH_PARAMS = {"in_channels": 3, "classes": len(LABELS), "widths": [16, 32, 64, 96]}
N_TRAIN, N_VALIDATION, N_TEST = 2400, 800, 1200
BATCH = 32
STEPS = 300
LR = 3e-3
WEIGHT_DECAY = 1e-4
ANSWERED_ACCURACY = 0.99
TOP_K = 2
RESIZE = {
    "policy": "fixed",
    "size": [CHIP_SIDE, CHIP_SIDE],
    "interpolation": "bilinear",
    "antialias": False,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"optimiser steps ({STEPS})")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and sampling seed")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be positive, {args.steps} is given")
    return args


def chip_arrays(split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, S, S) uint8 images and (N,) int64 label indices of a split's first chips."""
    chips = list(split_chips(split, count))  # type: ignore[arg-type]
    images = np.stack([c.image for c in chips])
    labels = np.array([LABELS.index(c.label) for c in chips], dtype=np.int64)
    return images, labels


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the training chips, float64 sums."""
    x = images.astype(np.float64)
    return x.mean(axis=(0, 2, 3)).tolist(), x.std(axis=(0, 2, 3)).tolist()


def channel_quantiles(images: np.ndarray) -> dict[str, list[float]]:
    """Per-channel 1st, 50th and 99th percentiles of the training chips (what a server compares
    the value range of its inputs with)."""
    levels = (0.01, 0.5, 0.99)
    values = np.quantile(images.transpose(1, 0, 2, 3).reshape(images.shape[1], -1), levels, axis=1)
    return {str(q): [float(v) for v in row] for q, row in zip(levels, values, strict=True)}


def preprocess(batch: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 resized to the chip size, standardised."""
    x = batch.to(torch.float32)
    if tuple(x.shape[-2:]) != (CHIP_SIDE, CHIP_SIDE):
        x = F.interpolate(
            x, size=(CHIP_SIDE, CHIP_SIDE), mode="bilinear", align_corners=False, antialias=False
        )
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random flip and quarter turn per chip (labels do not change under either)."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        if rng.random() < 0.5:
            image = image[:, :, ::-1]
        out[i] = np.rot90(image, k=int(rng.integers(4)), axes=(1, 2))
    return out


def learning_rate(step: int, steps: int) -> float:
    warmup = max(1, steps // 20)
    if step < warmup:
        return LR * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return LR * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def logits_of(model: torch.nn.Module, images: np.ndarray, mean, std) -> torch.Tensor:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 200):
            out.append(model(preprocess(torch.from_numpy(images[i : i + 200]), mean, std)))
    return torch.cat(out)


def fit_temperature(logits: torch.Tensor, labels: np.ndarray) -> float:
    """The temperature on a log grid over 0.25..4 with the lowest validation NLL."""
    target = torch.from_numpy(labels)
    grid = np.exp(np.linspace(math.log(0.25), math.log(4.0), 161))
    nll = [float(F.cross_entropy(logits / float(t), target)) for t in grid]
    return float(grid[int(np.argmin(nll))])


def fold_temperature(model: torch.nn.Module, temperature: float) -> None:
    """Divide the head's weights and bias by T: the model's logits become logits / T."""
    with torch.no_grad():
        model.head.weight /= temperature
        model.head.bias /= temperature


def calibrate_threshold(confidence: np.ndarray, correct: np.ndarray) -> float:
    """The lowest threshold (0.50..0.99, step 0.01) whose answered chips are at least
    ANSWERED_ACCURACY correct; 0.99 when none is."""
    for hundredths in range(50, 100):
        t = hundredths / 100
        answered = confidence >= t
        if answered.any() and correct[answered].mean() >= ANSWERED_ACCURACY:
            return t
    return 0.99


def scores_of(logits: torch.Tensor, labels: np.ndarray, threshold: float | None):
    prob = torch.softmax(logits, dim=1).numpy().astype(np.float64)
    return score(
        [LABELS[i] for i in labels],
        [LABELS[i] for i in prob.argmax(axis=1)],
        prob.max(axis=1),
        labels=LABELS,
        threshold=threshold,
    )


def write_golden(out: Path, model: torch.nn.Module, mean, std) -> list[str]:
    """Two held-out chips: one at the trained size, one 96 x 96 that the resize step shrinks."""
    from tilecast.bundle.golden import GoldenPair

    first = SPLIT_SEEDS["test"] + N_TEST  # after the test chips: used by nothing else
    chips = {
        "slump_64.npz": generate_chip(seed=first, label="slump"),
        "river_96_resized.npz": generate_chip(seed=first + 1, label="river", side=96),
    }
    model.eval()
    for name, chip in chips.items():
        with torch.no_grad():
            prob = torch.softmax(
                model(preprocess(torch.from_numpy(chip.image[None]), mean, std)), 1
            )
        pair = GoldenPair(
            name=name, input=chip.image, output=prob[0].numpy(), channel_order="RGB", nodata=None
        )
        write_atomic(out / "golden" / name, pair.to_bytes())
    return list(chips)


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    make_deterministic(args.seed)
    rng = np.random.default_rng(args.seed)
    out: Path = args.out

    train_x, train_y = chip_arrays("train", N_TRAIN)
    val_x, val_y = chip_arrays("validation", N_VALIDATION)
    test_x, test_y = chip_arrays("test", N_TEST)
    mean, std = channel_stats(train_x)
    print(
        f"chips: {N_TRAIN} train, {N_VALIDATION} validation, {N_TEST} test "
        f"({time.perf_counter() - started:.1f} s)"
    )

    # channels-last runs the CPU convolutions (and their backward) faster here
    model = build_model(ARCHITECTURE, ARCH_PARAMS).to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    running = 0.0
    train_started = time.perf_counter()
    for step in range(args.steps):
        model.train()
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, args.steps)
        pick = rng.integers(0, N_TRAIN, BATCH)
        images = torch.from_numpy(augment(train_x[pick], rng))
        x = preprocess(images, mean, std).contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), torch.from_numpy(train_y[pick]))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        running += loss.item()
        if (step + 1) % 50 == 0 or step + 1 == args.steps:
            print(
                f"step {step + 1}/{args.steps} loss {running / 50:.4f} "
                f"lr {learning_rate(step, args.steps):.2e} ({time.perf_counter() - started:.0f} s)"
            )
            running = 0.0
    train_seconds = time.perf_counter() - train_started
    model = model.to(memory_format=torch.contiguous_format).eval()

    raw_test = scores_of(logits_of(model, test_x, mean, std), test_y, None)
    temperature = fit_temperature(logits_of(model, val_x, mean, std), val_y)
    fold_temperature(model, temperature)
    val_prob = torch.softmax(logits_of(model, val_x, mean, std), dim=1).numpy()
    threshold = calibrate_threshold(val_prob.max(axis=1), val_prob.argmax(axis=1) == val_y)
    test = scores_of(logits_of(model, test_x, mean, std), test_y, threshold)
    validation = scores_of(logits_of(model, val_x, mean, std), val_y, threshold)

    val_seeds = f"{SPLIT_SEEDS['validation']}-{SPLIT_SEEDS['validation'] + N_VALIDATION - 1}"
    test_seeds = f"{SPLIT_SEEDS['test']}-{SPLIT_SEEDS['test'] + N_TEST - 1}"
    calibrated_on = (
        f"{DATASET_VERSION} validation chips, seeds {val_seeds} ({N_VALIDATION} chips): "
        f"temperature {temperature:.3f} by NLL, then the lowest confidence at which the "
        f"answered chips are >= {ANSWERED_ACCURACY:.0%} correct"
    )

    weights = save_checkpoint(
        out / "best_model.pth", model, steps=args.steps, architecture=ARCHITECTURE
    )
    norm = {
        "mean": mean,
        "std": std,
        "quantiles": channel_quantiles(train_x),
        "dataset_version": DATASET_VERSION,
        "bands": ["R", "G", "B"],
        "value_scaling": "raw",
    }
    write_atomic(out / "normalization_stats.json", (json.dumps(norm, indent=2) + "\n").encode())
    config = {
        "task": "classification",
        "model_name": MODEL_NAME,
        "model_version": MODEL_VERSION,
        "architecture": {"name": ARCHITECTURE, "params": model.config},
        "input": {
            "channel_order": "RGB",
            "dtype": "uint8",
            "value_scaling": "raw",
            "nodata_fill": "mean",
            "input_range": [0, 255],
            "resize": RESIZE,
        },
        "data": {
            "dataset_version": DATASET_VERSION,
            "chip": [CHIP_SIDE, CHIP_SIDE],
            "train_seeds": [SPLIT_SEEDS["train"], SPLIT_SEEDS["train"] + N_TRAIN - 1],
            "validation_seeds": [
                SPLIT_SEEDS["validation"],
                SPLIT_SEEDS["validation"] + N_VALIDATION - 1,
            ],
            "test_seeds": [SPLIT_SEEDS["test"], SPLIT_SEEDS["test"] + N_TEST - 1],
        },
        "postprocessing": {
            "activation": "softmax",
            "labels": list(LABELS),
            "threshold": threshold,
            "top_k": TOP_K,
            "calibrated_on": calibrated_on,
        },
        "metrics": {
            "test_accuracy": round(test.accuracy, 4),
            "test_ece": round(test.ece, 4),
            "test_uncertain_rate": round(test.uncertain_rate or 0.0, 4),
        },
    }
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
    write_atomic(out / "config.yaml", text.encode())
    write_golden(out, model, mean, std)
    metrics = {
        "test_seeds": test_seeds,
        "temperature": temperature,
        "threshold": threshold,
        "calibrated_on": calibrated_on,
        "test": test.to_json(),
        "test_before_temperature": raw_test.to_json(),
        "validation": validation.to_json(),
        "train_seconds": round(train_seconds, 1),
        "steps": args.steps,
        "seed": args.seed,
        "best_model_sha256": hashlib.sha256(weights).hexdigest(),
    }
    write_atomic(out / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())

    print(f"temperature {temperature:.3f}; threshold {threshold:.2f} ({calibrated_on})")
    print(f"held-out test chips, seeds {test_seeds}:")
    for line in format_scores(test):
        print("  " + line)
    print(f"  before the temperature: ECE {raw_test.ece:.4f}, accuracy {raw_test.accuracy:.4f}")
    print(f"best_model.pth: {len(weights)} bytes, sha256 {hashlib.sha256(weights).hexdigest()}")
    print(f"training time: {train_seconds:.1f} s; wall time: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
