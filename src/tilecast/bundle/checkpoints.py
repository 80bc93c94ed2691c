"""Training checkpoints in the shapes training code saves them, turned into one state_dict.

A ``best_model.pth`` may be a bare state_dict or a training checkpoint dict holding one under
``state_dict`` (plain PyTorch, PyTorch Lightning), ``model_state_dict`` or ``model``, nested or
not; its keys may carry the prefix of a wrapper: ``module.`` (``DataParallel``,
``DistributedDataParallel``), ``model.`` (the attribute a Lightning module usually keeps the
network in) or ``_orig_mod.`` (a ``torch.compile``-d module). :func:`state_dict_from` unwraps
and strips without knowing the network; :func:`load_weights` knows it, so it picks the reading
whose keys are the network's, also when a Lightning module kept other weights beside the
network (a loss's buffers, say), and otherwise names the keys that do not fit.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain containers only,
never pickled code (a bundle carries data, not code).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from tilecast.errors import BundleError

log = logging.getLogger(__name__)

CONTAINER_KEYS = ("state_dict", "model_state_dict", "model")
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")
SHOWN = 5  # keys named per kind of mismatch; the counts are always complete
_MAX_NESTING = 4


def read_checkpoint(data: bytes, *, where: str) -> Any:
    """``torch.load`` of checkpoint bytes, tensors and plain containers only, on the CPU."""
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types (UnpicklingError, RuntimeError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise BundleError(
                f"{where}: holds pickled Python objects, not only tensors and plain containers "
                f"({first}); tilecast reads weights only: save model.state_dict(), or "
                "torch.save(checkpoint['state_dict'], path) for a full checkpoint"
            ) from exc
        raise BundleError(f"{where}: not a readable torch checkpoint ({first})") from exc


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def _unwrap(checkpoint: Any, *, where: str) -> dict[str, torch.Tensor]:
    """The state_dict inside a checkpoint dict (or the checkpoint itself)."""
    value = checkpoint
    for _ in range(_MAX_NESTING):
        if _is_state_dict(value):
            return dict(value)
        if not isinstance(value, Mapping):
            break
        inner = next((value[k] for k in CONTAINER_KEYS if isinstance(value.get(k), Mapping)), None)
        if inner is None:
            break
        value = inner
    if isinstance(value, Mapping):
        others = [k for k, v in value.items() if not isinstance(v, torch.Tensor)]
        if value and len(others) < len(value):
            found = f"a dict whose entries {_few(map(str, others))} are not tensors"
        else:
            found = f"a dict with keys {_few(map(str, value))}" if value else "an empty dict"
    else:
        found = type(value).__name__
    raise BundleError(
        f"{where}: expected a state_dict (parameter name -> tensor) or a checkpoint dict holding "
        f"one under {' or '.join(map(repr, CONTAINER_KEYS))}; found {found}"
    )


def _strip_shared(state: dict[str, torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
    """``state``, then with each wrapper prefix that every key carries stripped, one by one."""
    yield state
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k.removeprefix(prefix): v for k, v in state.items()}
                stripped = True
                yield state


def state_dict_from(checkpoint: Any, *, where: str) -> dict[str, torch.Tensor]:
    """The state_dict of a checkpoint in any of the module doc's shapes, wrapper prefixes that
    every key carries stripped (``module.model.x`` -> ``x``)."""
    *_, state = _strip_shared(_unwrap(checkpoint, where=where))
    return state


def _readings(checkpoint: Any, *, where: str) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
    """Every way to read the checkpoint: as is, with shared prefixes stripped, and the keys
    under one wrapper prefix only (a Lightning module with other weights beside the network)."""
    state = _unwrap(checkpoint, where=where)
    for candidate in _strip_shared(state):
        yield "", candidate
        for prefix in WRAPPER_PREFIXES:
            inner = {
                k.removeprefix(prefix): v for k, v in candidate.items() if k.startswith(prefix)
            }
            if inner and len(inner) < len(candidate):
                yield prefix, inner


def _few(items: Any, shown: int = SHOWN) -> str:
    items = list(items)
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return f"[{', '.join(items[:shown])}]{more}"


def describe_mismatch(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> str | None:
    """What keeps ``state`` from loading strictly into a module whose state_dict is
    ``expected``: counts and the first few keys of each kind; ``None`` when it fits."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    parts = []
    if missing:
        parts.append(
            f"{len(missing)} missing (in the architecture, not the checkpoint) {_few(missing)}"
        )
    if unexpected:
        parts.append(
            f"{len(unexpected)} unexpected (in the checkpoint, not the architecture) "
            f"{_few(unexpected)}"
        )
    if shapes:
        parts.append(f"{len(shapes)} of another shape (checkpoint != architecture) {_few(shapes)}")
    return "; ".join(parts) or None


def load_weights(net: nn.Module, checkpoint: Any, *, where: str, architecture: str = "") -> None:
    """Load a checkpoint (any shape of the module doc) into ``net`` strictly, or raise
    :class:`BundleError` naming the missing, unexpected and differently shaped keys."""
    expected = net.state_dict()

    def score(state: Mapping[str, torch.Tensor]) -> tuple[int, int]:
        return len(state.keys() & expected.keys()), -len(state.keys() - expected.keys())

    total = len(_unwrap(checkpoint, where=where))
    closest = state_dict_from(checkpoint, where=where)  # what the message shows, unless ...
    for prefix, state in _readings(checkpoint, where=where):
        if describe_mismatch(state, expected) is None:
            if prefix:
                log.info(
                    "%s: loaded the %d weights under %r; %d other entries ignored",
                    where,
                    len(state),
                    prefix,
                    total - len(state),
                )
            net.load_state_dict(state, strict=True)
            return
        if score(state) > score(closest):  # ... another reading is nearer the architecture
            closest = state
    what = architecture or type(net).__name__
    raise BundleError(
        f"{where}: weights do not fit the architecture {what} "
        f"({len(closest)} tensors in the checkpoint, {len(expected)} in the architecture): "
        f"{describe_mismatch(closest, expected)}"
    )
