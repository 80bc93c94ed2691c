"""Pad to a multiple of the network stride, remember the pad, crop it off again.

The pad is always added at the bottom and the right, so pixel (0, 0) stays where it is and
cropping is a plain slice ``[..., :height, :width]``. :class:`Padding` records the original
size and the pad; :func:`crop_padding` refuses an array whose size is not the padded size,
so an off-by-pad output cannot pass silently.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

import numpy as np
import torch
import torch.nn.functional as F

from tilecast.errors import InputError, UnknownNameError
from tilecast.prep.arrays import Array, as_tensor, like_input

__all__ = ["PadMode", "Padding", "crop_padding", "pad_to_multiple", "padding_for"]

PadMode = Literal["reflect", "replicate", "constant"]
PAD_MODES: tuple[str, ...] = get_args(PadMode)

ArrayT = TypeVar("ArrayT")


def _as_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise InputError(f"{name} must be an integer, {value!r} is given")
    try:
        number = operator.index(value)  # int or numpy integer; never a float
    except TypeError:
        raise InputError(f"{name} must be an integer, {value!r} is given") from None
    if number < minimum:
        raise InputError(f"{name} must be at least {minimum}, {number} is given")
    return number


@dataclass(frozen=True)
class Padding:
    """An original (height, width) and the rows and columns added at the bottom and right."""

    height: int
    width: int
    bottom: int
    right: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "height", _as_int("height", self.height, minimum=1))
        object.__setattr__(self, "width", _as_int("width", self.width, minimum=1))
        object.__setattr__(self, "bottom", _as_int("bottom", self.bottom, minimum=0))
        object.__setattr__(self, "right", _as_int("right", self.right, minimum=0))

    @property
    def shape(self) -> tuple[int, int]:
        """The original (height, width)."""
        return (self.height, self.width)

    @property
    def padded_shape(self) -> tuple[int, int]:
        """The padded (height, width)."""
        return (self.height + self.bottom, self.width + self.right)

    @property
    def is_noop(self) -> bool:
        return self.bottom == 0 and self.right == 0


def padding_for(height: int, width: int, *, multiple: int) -> Padding:
    """The smallest bottom/right pad that makes (height, width) multiples of ``multiple``."""
    height = _as_int("height", height, minimum=1)
    width = _as_int("width", width, minimum=1)
    multiple = _as_int("multiple", multiple, minimum=1)
    return Padding(height=height, width=width, bottom=-height % multiple, right=-width % multiple)


def pad_to_multiple(
    image: Array,
    *,
    multiple: int,
    mode: PadMode = "reflect",
    value: float = 0.0,
) -> tuple[Array, Padding]:
    """Pad the last two axes of a (..., H, W) array or tensor up to multiples of ``multiple``.

    Modes: ``"reflect"`` mirrors about the edge pixel without repeating it (numpy
    ``"reflect"``, the same as torch's ``"reflect"`` and OpenCV's ``BORDER_REFLECT_101``);
    a pad wider than the image keeps reflecting back and forth, so it never fails, and an
    axis of size 1 has nothing to mirror, so it repeats its one pixel (``"replicate"`` for
    that axis). ``"replicate"`` repeats the edge pixel; ``"constant"`` fills with ``value``.

    Runs on torch (numpy in gives numpy out, a tensor stays on its device). Returns the padded
    array and the :class:`Padding` that :func:`crop_padding` undoes. When no pad is needed
    the input itself is returned (not a copy).
    """
    if mode not in PAD_MODES:
        raise UnknownNameError("pad mode", str(mode), list(PAD_MODES))
    if not isinstance(image, np.ndarray | torch.Tensor):
        raise InputError(
            f"pad_to_multiple expects a numpy array or a torch tensor, "
            f"{type(image).__name__} is given"
        )
    if image.ndim < 2:
        raise InputError(
            f"pad_to_multiple expects a (..., H, W) array, an array of shape "
            f"{tuple(image.shape)} is given"
        )
    padding = padding_for(image.shape[-2], image.shape[-1], multiple=multiple)
    if padding.is_noop:
        return image, padding
    x = as_tensor(image)
    lead = tuple(x.shape[:-2])
    flat = x.reshape(1, -1, *x.shape[-2:])  # F.pad pads the last two axes of (N, C, H, W)
    if mode == "constant":
        padded = F.pad(flat, (0, padding.right, 0, padding.bottom), value=value)
    else:
        padded = _pad_edges(flat, bottom=padding.bottom, right=padding.right, mode=mode)
    return like_input(padded.reshape(*lead, *padded.shape[-2:]), image), padding


def _pad_edges(x: torch.Tensor, *, bottom: int, right: int, mode: str) -> torch.Tensor:
    """Reflect or replicate pad at the bottom and right, in steps torch accepts.

    torch's reflect pad must be narrower than the axis; a wider pad reflects the array padded
    so far again (numpy's rule), and an axis of one pixel is replicated.
    """
    for axis, amount in ((-1, right), (-2, bottom)):
        while amount > 0:
            size = x.shape[axis]
            step_mode = "replicate" if mode == "replicate" or size == 1 else "reflect"
            step = amount if step_mode == "replicate" else min(amount, size - 1)
            pads = (0, step, 0, 0) if axis == -1 else (0, 0, 0, step)
            x = _pad_any_dtype(x, pads, step_mode)
            amount -= step
    return x


def _pad_any_dtype(x: torch.Tensor, pads: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """F.pad, for dtypes whose reflect/replicate kernels torch lacks (bool, uint16 ...) via a
    lossless float64 round trip (integers up to 2**53 are exact)."""
    try:
        return F.pad(x, pads, mode=mode)
    except (RuntimeError, NotImplementedError):
        return F.pad(x.to(torch.float64), pads, mode=mode).to(x.dtype)


def crop_padding(array: ArrayT, padding: Padding) -> ArrayT:
    """The (..., H, W) original region of a (..., Hp, Wp) numpy array or torch tensor.

    Raises :class:`InputError` unless the array's last two axes are
    ``padding.padded_shape``. Returns a view (a slice), not a copy.
    """
    arr: Any = array
    shape = tuple(arr.shape)
    if len(shape) < 2 or shape[-2:] != padding.padded_shape:
        raise InputError(
            f"crop_padding expects an array of spatial shape {padding.padded_shape} "
            f"(padded from {padding.shape}), an array of shape {shape} is given"
        )
    return arr[..., : padding.height, : padding.width]
