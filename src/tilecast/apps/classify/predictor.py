"""A batch of prepared images to class probabilities, TTA views averaged.

The predictor only stacks, runs the bundle's model program and applies the contract's
activation (:func:`tilecast.bundle.runtime.activate`); TTA wraps it as views, each a spatial
transform of the whole batch. Probabilities are averaged over the views in a fixed order
(the same sums whatever the batch), and the answer is taken from that average.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tilecast.bundle import Bundle
from tilecast.bundle.runtime import activate, check_class_outputs
from tilecast.errors import InputError
from tilecast.predict.views import View


class ClassPredictor:
    """``predictor(arrays)`` -> float32 (N, K) probabilities for prepared (C, H, W) arrays."""

    def __init__(self, bundle: Bundle, views: Sequence[View]) -> None:
        if not views:
            raise InputError("at least one TTA view is needed, none are given")
        self.contract = bundle.contract
        self.model = bundle.model
        self.views = tuple(views)

    def __call__(self, arrays: Sequence[torch.Tensor]) -> np.ndarray:
        shapes = {tuple(a.shape) for a in arrays}
        if len(shapes) != 1:
            raise InputError(
                f"prepared images must share one shape to be batched, got {sorted(shapes)}"
            )
        batch = torch.stack(list(arrays))
        total: torch.Tensor | None = None
        for view in self.views:
            probs = activate(self.contract, self.model(view.forward(batch)))
            check_class_outputs(self.contract, probs)
            total = probs if total is None else total + probs
        assert total is not None
        return (total / len(self.views)).cpu().numpy().astype(np.float32, copy=False)
