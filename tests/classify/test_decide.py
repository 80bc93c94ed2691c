"""Top-k, the threshold and ``uncertain``: pure arithmetic on probability vectors."""

from __future__ import annotations

import numpy as np
import pytest

from tilecast.apps.classify import decide, rank
from tilecast.errors import InputError

LABELS = ("slump", "lake", "river", "tundra")


def test_softmax_answer_below_the_threshold_is_uncertain() -> None:
    sure = decide(
        np.array([0.1, 0.7, 0.15, 0.05]), LABELS, activation="softmax", threshold=0.6, k=2
    )
    assert (sure.label, sure.uncertain, sure.positives) == ("lake", False, ("lake",))
    assert [(r.name, r.index) for r in sure.top_k] == [("lake", 1), ("river", 2)]
    unsure = decide(
        np.array([0.3, 0.35, 0.3, 0.05]), LABELS, activation="softmax", threshold=0.6, k=2
    )
    assert (unsure.label, unsure.uncertain, unsure.positives) == ("lake", True, ())
    assert unsure.confidence == pytest.approx(0.35)


def test_sigmoid_is_multi_label() -> None:
    answer = decide(
        np.array([0.9, 0.1, 0.8, 0.2]), LABELS, activation="sigmoid", threshold=0.5, k=3
    )
    assert answer.positives == ("slump", "river")
    assert not answer.uncertain and answer.label == "slump"
    none = decide(np.array([0.4, 0.1, 0.3, 0.2]), LABELS, activation="sigmoid", threshold=0.5, k=1)
    assert none.uncertain and none.positives == ()


def test_ties_rank_the_lower_index_first() -> None:
    ranked = rank(np.array([0.25, 0.25, 0.25, 0.25]), LABELS, k=4)
    assert [r.name for r in ranked] == list(LABELS)


def test_wrong_vector_length_or_k_is_refused() -> None:
    with pytest.raises(InputError, match="expected 4 class probabilities"):
        rank(np.array([0.5, 0.5]), LABELS, k=1)
    with pytest.raises(InputError, match="k must be between 1 and 4, 5 is given"):
        rank(np.full(4, 0.25), LABELS, k=5)
