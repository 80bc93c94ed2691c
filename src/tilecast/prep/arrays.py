"""What the pure ops need to run on numpy arrays and torch tensors (on any device) alike.

The preprocessing ops are written once, with operators and these few helpers, so the host and
the device run the same arithmetic: a torch tensor stays on its device and a numpy array stays
numpy. Counts computed on a device stay there (:class:`LazyCounts`) until someone reads them,
so a GPU pipeline does not wait for a number nobody needs yet.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import torch

Array: TypeAlias = np.ndarray | torch.Tensor

_TORCH_TO_NUMPY = {
    torch.bool: np.dtype(np.bool_),
    torch.uint8: np.dtype(np.uint8),
    torch.int8: np.dtype(np.int8),
    torch.int16: np.dtype(np.int16),
    torch.int32: np.dtype(np.int32),
    torch.int64: np.dtype(np.int64),
    torch.uint16: np.dtype(np.uint16),
    torch.uint32: np.dtype(np.uint32),
    torch.uint64: np.dtype(np.uint64),
    torch.float16: np.dtype(np.float16),
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
}


def numpy_dtype(array: Array) -> np.dtype:
    """The numpy dtype of an array, or the numpy dtype matching a tensor's (bfloat16: float32)."""
    if isinstance(array, torch.Tensor):
        if array.dtype == torch.bfloat16:
            return np.dtype(np.float32)
        return _TORCH_TO_NUMPY[array.dtype]
    return array.dtype


def dtype_kind(array: Array) -> str:
    """numpy's one-letter kind (``b``, ``i``, ``u``, ``f``, ``O`` ...) of an array or tensor."""
    if isinstance(array, torch.Tensor):
        return "f" if array.dtype.is_floating_point else numpy_dtype(array).kind
    return array.dtype.kind


def ones_mask(planes: Array) -> Array:
    """An all-True (H, W) bool mask for (C, H, W) ``planes``, of the same kind and device."""
    shape = tuple(planes.shape[-2:])
    if isinstance(planes, torch.Tensor):
        return torch.ones(shape, dtype=torch.bool, device=planes.device)
    return np.ones(shape, dtype=bool)


def as_tensor(array: Array) -> torch.Tensor:
    """A tensor sharing memory with ``array`` where it can (numpy: ``torch.from_numpy``)."""
    if isinstance(array, torch.Tensor):
        return array
    return torch.from_numpy(np.ascontiguousarray(array))


def like_input(result: torch.Tensor, original: Array) -> Array:
    """``result`` as numpy when ``original`` was numpy (a tensor otherwise)."""
    if isinstance(original, torch.Tensor):
        return result
    return result.cpu().numpy()


class LazyCounts(Mapping[str, int]):
    """Counts per reason that may still live on a device; read (and synchronised) once, when
    first used. Reasons with a zero count are left out."""

    def __init__(self, reasons: Sequence[str], counts: Sequence[Any]) -> None:
        self._reasons = tuple(reasons)
        self._counts = list(counts)
        self._values: dict[str, int] | None = None

    def _materialise(self) -> dict[str, int]:
        if self._values is None:
            if self._counts and isinstance(self._counts[0], torch.Tensor):
                numbers = torch.stack(self._counts).cpu().tolist()
            else:
                numbers = [int(n) for n in self._counts]
            values: dict[str, int] = {}
            for reason, n in zip(self._reasons, numbers, strict=True):
                if n > 0:
                    values[reason] = values.get(reason, 0) + int(n)
            self._values = values
            self._counts = []
        return self._values

    @classmethod
    def combine(cls, counts: Mapping[str, int], reason: str, count: Any) -> LazyCounts:
        """``counts`` plus one more reason, still unread where it can be."""
        if isinstance(counts, LazyCounts) and counts._values is None:
            return cls((*counts._reasons, reason), [*counts._counts, count])
        return cls((*counts.keys(), reason), [*(int(v) for v in counts.values()), int(count)])

    def __getitem__(self, key: str) -> int:
        return self._materialise()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._materialise())

    def __len__(self) -> int:
        return len(self._materialise())

    def __repr__(self) -> str:
        return f"LazyCounts({self._materialise()!r})"
