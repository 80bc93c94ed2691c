"""Channel order: named by letters ("RGB", "BGR", "RGBN"), permuted by name, never by guess.

An order is a string of one-letter channel names, read case-insensitively. "GRAY" and "L"
are the one exception: each names a single grayscale channel as a whole (and they name the
same channel, so "L" reorders into "GRAY").
"""

from __future__ import annotations

import numpy as np
import torch

from tilecast.errors import InputError
from tilecast.prep.arrays import Array

__all__ = ["channel_names", "channel_permutation", "reorder_channels"]

_SINGLE_CHANNEL_NAMES = {"GRAY": "GRAY", "GREY": "GRAY", "L": "GRAY"}


def channel_names(order: str) -> tuple[str, ...]:
    """The channel names of an order string: ``"RGB"`` -> ``("R", "G", "B")``,
    ``"GRAY"`` -> ``("GRAY",)``."""
    if not isinstance(order, str) or not order.strip():
        raise InputError(
            f"a channel order must be a non-empty string such as 'RGB', {order!r} is given"
        )
    key = order.strip().upper()
    if key in _SINGLE_CHANNEL_NAMES:
        return (_SINGLE_CHANNEL_NAMES[key],)
    names = tuple(key)
    if len(set(names)) != len(names):
        raise InputError(f"channel order {order!r} names a channel twice")
    if not all(n.isalpha() for n in names):
        raise InputError(f"channel order {order!r} must be letters only, such as 'RGB'")
    return names


def channel_permutation(source: str, target: str) -> tuple[int, ...]:
    """Indices ``p`` such that ``image[p]`` in ``source`` order is the image in ``target``
    order: ``channel_permutation("RGB", "BGR") == (2, 1, 0)``."""
    src, dst = channel_names(source), channel_names(target)
    if set(src) != set(dst):
        raise InputError(
            f"cannot reorder {source} into {target}: the orders do not name the same channels"
        )
    return tuple(src.index(name) for name in dst)


def reorder_channels(image: Array, *, source: str, target: str) -> Array:
    """The (C, H, W) image (numpy array or torch tensor) with its channels reordered from
    ``source`` to ``target``.

    A 2-D (H, W) array counts as one channel. Returns ``image`` itself (no copy) when the
    orders are equal, else a new array.
    """
    if not isinstance(image, torch.Tensor):
        image = np.asarray(image)
    perm = channel_permutation(source, target)
    if image.ndim < 2:
        raise InputError(
            f"reorder_channels expects a (C, H, W) image, an array of shape "
            f"{tuple(image.shape)} is given"
        )
    n_channels = image.shape[0] if image.ndim >= 3 else 1
    if n_channels != len(perm):
        raise InputError(
            f"channel order {source} has {len(perm)} channels but the image has "
            f"{n_channels} (shape {tuple(image.shape)})"
        )
    if perm == tuple(range(len(perm))):
        return image
    return image[list(perm)]
