"""From class probabilities to an answer: top-k, the calibrated threshold, ``uncertain``.

Pure arithmetic on one probability vector; no I/O, no torch. Ties rank the lower index first
(a stable sort), so the same probabilities always give the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tilecast.errors import InputError

Activation = Literal["softmax", "sigmoid"]


@dataclass(frozen=True)
class Ranked:
    name: str
    index: int
    probability: float


@dataclass(frozen=True)
class Answer:
    """One image's answer. ``label`` is the most probable label; ``positives`` are the labels
    at or above the threshold (sigmoid: any number; softmax: the label, or none)."""

    label: str
    confidence: float
    uncertain: bool
    top_k: tuple[Ranked, ...]
    positives: tuple[str, ...]


def rank(probabilities: np.ndarray, labels: Sequence[str], *, k: int) -> tuple[Ranked, ...]:
    """The ``k`` most probable labels, most probable first, ties by lower index."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 1 or p.shape[0] != len(labels):
        raise InputError(
            f"expected {len(labels)} class probabilities (one per label), got shape {p.shape}"
        )
    if not 1 <= k <= len(labels):
        raise InputError(f"k must be between 1 and {len(labels)}, {k} is given")
    order = np.argsort(-p, kind="stable")[:k]
    return tuple(Ranked(labels[i], int(i), float(p[i])) for i in order)


def decide(
    probabilities: np.ndarray,
    labels: Sequence[str],
    *,
    activation: Activation,
    threshold: float,
    k: int,
) -> Answer:
    """Softmax: the argmax, ``uncertain`` when its probability is below ``threshold``.
    Sigmoid (multi-label): every label at or above ``threshold``; ``uncertain`` when none is."""
    ranked = rank(probabilities, labels, k=k)
    best = ranked[0]
    if activation == "softmax":
        uncertain = best.probability < threshold
        positives = () if uncertain else (best.name,)
    else:
        p = np.asarray(probabilities, dtype=np.float64)
        positives = tuple(labels[i] for i in np.flatnonzero(p >= threshold))
        uncertain = not positives
    return Answer(
        label=best.name,
        confidence=best.probability,
        uncertain=uncertain,
        top_k=ranked,
        positives=positives,
    )
