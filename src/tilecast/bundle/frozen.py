"""Inference-only models: eval mode and inference mode enforced, training mode impossible."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tilecast.errors import BundleError

# Ops that only appear in a program exported from a module in training mode.
_TRAINING_OPS = {
    "aten._native_batch_norm_legit_functional.default",
    "aten._native_batch_norm_legit.default",
    "aten.native_dropout.default",
}
_TRAIN_FLAG_ARG = {  # op -> index of its `training` / `train` argument
    "aten.batch_norm.default": 5,
    "aten.dropout.default": 2,
    "aten.feature_dropout.default": 2,
    "aten.alpha_dropout.default": 2,
}


def training_modules(module: nn.Module) -> list[str]:
    """Names of submodules in training mode (empty when the whole model is in eval mode)."""
    return [name or "<root>" for name, m in module.named_modules() if m.training]


def training_ops(graph: torch.fx.Graph) -> list[str]:
    """Nodes of an exported graph that behave differently in training (batch-norm, dropout)."""
    found = []
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        target = str(node.target)
        if target in _TRAINING_OPS:
            found.append(f"{node.name} ({target})")
        index = _TRAIN_FLAG_ARG.get(target)
        if index is not None and len(node.args) > index and node.args[index] is True:
            found.append(f"{node.name} ({target}, training=True)")
    return found


class InferenceModel:
    """A model that can only run inference.

    Eager modules are switched to eval mode with gradients off when wrapped, and checked again
    before every call, so a module flipped back to training somewhere is caught loudly. Calls
    run under ``torch.inference_mode``. Exported programs are checked for training-mode ops when
    loaded (their mode is fixed at export).
    """

    def __init__(self, module: nn.Module, *, exported: bool = False, source: str = "model") -> None:
        self.source = source
        self.exported = exported
        self.module = module
        if not exported:
            module.eval()
            for param in module.parameters():  # ScriptModules lack requires_grad_()
                param.requires_grad_(False)
        self.assert_frozen()

    def assert_frozen(self) -> None:
        if self.exported:
            return
        training = training_modules(self.module)
        if training:
            raise BundleError(
                f"{self.source}: modules in training mode at inference: {training[:5]}"
                f"{' ...' if len(training) > 5 else ''}; expected eval mode everywhere"
            )
        grads = [n for n, p in self.module.named_parameters() if p.requires_grad]
        if grads:
            raise BundleError(
                f"{self.source}: parameters require gradients at inference: {grads[:5]}"
            )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.assert_frozen()
        with torch.inference_mode():
            return self.module(x)

    def to(self, device: torch.device | str) -> InferenceModel:
        self.module.to(device)
        return self

    def train(self, mode: bool = True) -> Any:
        raise BundleError("a bundle model is inference-only: train() is not available")
