"""Scores of a classifier on labelled chips: accuracy, per-class accuracy, calibration.

Pure numpy, no I/O: the training script and ``scripts/score_classify.py`` both score with these.
Calibration is the expected calibration error over equal-width confidence bins (the weighted
mean gap between the confidence of the top label and how often it is right) and the
reliability table it sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tilecast.errors import InputError

ECE_BINS = 10


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    mean_confidence: float | None
    accuracy: float | None


@dataclass(frozen=True)
class ClassifierScores:
    count: int
    accuracy: float
    per_class: dict[str, float | None]  # accuracy on the chips of each true label (recall)
    confusion: list[list[int]]  # rows: truth, columns: predicted, in label order
    ece: float
    reliability: tuple[ReliabilityBin, ...]
    threshold: float | None = None
    uncertain_rate: float | None = None  # top confidence below the threshold
    answered_accuracy: float | None = None  # accuracy of the chips not uncertain

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def reliability(
    confidence: np.ndarray, correct: np.ndarray, *, bins: int = ECE_BINS
) -> tuple[float, tuple[ReliabilityBin, ...]]:
    """ECE over ``bins`` equal-width bins of (0, 1] (a confidence of exactly ``k / bins``
    falls in the bin it closes), and the bins."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape or conf.ndim != 1 or conf.size == 0:
        raise InputError(
            f"confidence and correct must be equal non-empty 1-D arrays, shapes {conf.shape} "
            f"and {ok.shape} are given"
        )
    index = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    table, ece = [], 0.0
    for k in range(bins):
        member = index == k
        n = int(member.sum())
        mean_conf = float(conf[member].mean()) if n else None
        acc = float(ok[member].mean()) if n else None
        if n:
            ece += n / conf.size * abs(acc - mean_conf)
        table.append(ReliabilityBin(k / bins, (k + 1) / bins, n, mean_conf, acc))
    return ece, tuple(table)


def score(
    truth: Sequence[str],
    predicted: Sequence[str],
    confidence: Sequence[float],
    *,
    labels: Sequence[str],
    threshold: float | None = None,
) -> ClassifierScores:
    """Score top-label predictions against the truth; ``threshold`` adds the uncertain rate."""
    if not len(truth) == len(predicted) == len(confidence) or not truth:
        raise InputError(
            f"truth, predicted and confidence must be equal and non-empty, {len(truth)}, "
            f"{len(predicted)} and {len(confidence)} are given"
        )
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({*truth, *predicted} - set(index))
    if unknown:
        raise InputError(f"labels {unknown} are not in the label map {list(labels)}")
    t = np.array([index[x] for x in truth])
    p = np.array([index[x] for x in predicted])
    conf = np.asarray(confidence, dtype=np.float64)
    correct = t == p
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, (t, p), 1)
    per_class = {
        name: float(correct[t == i].mean()) if np.any(t == i) else None
        for i, name in enumerate(labels)
    }
    ece, table = reliability(conf, correct)
    extra: dict[str, float | None] = {}
    if threshold is not None:
        answered = conf >= threshold
        extra = {
            "threshold": float(threshold),
            "uncertain_rate": float(1.0 - answered.mean()),
            "answered_accuracy": float(correct[answered].mean()) if answered.any() else None,
        }
    return ClassifierScores(
        count=int(t.size),
        accuracy=float(correct.mean()),
        per_class=per_class,
        confusion=confusion.tolist(),
        ece=float(ece),
        reliability=table,
        **extra,
    )


def format_scores(scores: ClassifierScores) -> list[str]:
    """The scores as lines of text: accuracy, per class, calibration, reliability table."""
    lines = [f"accuracy      {scores.accuracy:.4f} on {scores.count} chips"]
    lines += [
        f"  {name:<10}  {'-' if acc is None else f'{acc:.4f}'}"
        for name, acc in scores.per_class.items()
    ]
    if scores.threshold is not None:
        answered = "-" if scores.answered_accuracy is None else f"{scores.answered_accuracy:.4f}"
        lines.append(
            f"threshold     {scores.threshold:.2f}: uncertain {scores.uncertain_rate:.4f}, "
            f"accuracy of the answered {answered}"
        )
    lines.append(f"ECE ({len(scores.reliability)} bins)  {scores.ece:.4f}")
    lines.append("  confidence    chips  mean conf  accuracy")
    for b in scores.reliability:
        if b.count:
            lines.append(
                f"  {b.low:.1f}-{b.high:.1f}  {b.count:>9}  {b.mean_confidence:>9.4f}  "
                f"{b.accuracy:>8.4f}"
            )
    return lines
