"""The pixel-wise maximum of overlapping tile predictions, and the binary mask from it.

Pure numpy. A tile's pixel is a pair ``(probability, winning_scale)``; NoData is ``-1`` in
both. The merged pixel is the **lexicographic maximum** of the valid pairs that cover it:
the highest probability, and among tiles tied on it the largest winning scale. A total order
on pairs makes the result independent of the order tiles arrive in (``max`` is associative
and commutative), which ``tests/merge`` proves with hypothesis over random permutations.
Probabilities are stored with ``+ 0.0`` so that ``-0.0`` and ``0.0``, equal under comparison,
also come out as the same bytes whatever the order. A pixel no valid tile pixel covers stays
NoData.
"""

from __future__ import annotations

import numpy as np

from tilecast.errors import InputError

__all__ = [
    "BINARY_NODATA",
    "PROB_NODATA",
    "check_tile_values",
    "merge_max",
    "new_accumulators",
    "threshold_mask",
]

PROB_NODATA = -1.0  # NoData of the probability and winning-scale bands (tiles and mosaics)
BINARY_NODATA = 255  # NoData of the uint8 binary mosaic


def new_accumulators(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A ``(prob, scale)`` pair of float32 arrays of ``shape``, all NoData."""
    return np.full(shape, PROB_NODATA, np.float32), np.full(shape, PROB_NODATA, np.float32)


def _check_pair(name: str, prob: np.ndarray, scale: np.ndarray, shape: tuple[int, ...]) -> None:
    for band, array in (("prob", prob), ("scale", scale)):
        if array.dtype != np.float32:
            raise InputError(f"merge_max: {name} {band} must be float32, {array.dtype} is given")
        if array.shape != shape:
            raise InputError(
                f"merge_max: {name} {band} has shape {array.shape}, expected {shape} "
                "(accumulator and tile views must be aligned)"
            )


def merge_max(
    prob_acc: np.ndarray, scale_acc: np.ndarray, prob_tile: np.ndarray, scale_tile: np.ndarray
) -> None:
    """Merge one tile into the accumulators, in place (all four are aligned 2-D views).

    Where the tile is valid (``prob_tile != -1``) and its ``(prob, scale)`` pair is greater than
    the accumulator's (higher prob; on equal prob, larger scale), the tile's pair is taken.
    NoData in the accumulator (-1) is below every valid probability.
    """
    shape = prob_acc.shape
    if len(shape) != 2:
        raise InputError(f"merge_max expects 2-D views, accumulator shape {shape} is given")
    _check_pair("accumulator", prob_acc, scale_acc, shape)
    _check_pair("tile", prob_tile, scale_tile, shape)
    take = prob_tile > prob_acc
    tie = prob_tile == prob_acc
    tie &= scale_tile > scale_acc
    take |= tie
    take &= prob_tile != PROB_NODATA
    np.copyto(prob_acc, prob_tile, where=take)
    np.copyto(scale_acc, scale_tile, where=take)
    np.add(prob_acc, np.float32(0.0), out=prob_acc, where=take)  # -0.0 -> 0.0


def check_tile_values(prob: np.ndarray, scale: np.ndarray, *, tile_id: str) -> None:
    """Refuse a tile whose values the merge cannot order: a valid probability outside [0, 1]
    or not finite, a winning scale that is not positive and finite, or NoData in one band
    only. The job clips predictions before it commits a tile, so any of these means a foreign
    or damaged file."""
    p_nodata = prob == PROB_NODATA
    s_nodata = scale == PROB_NODATA
    problems = []
    n_mixed = int(np.count_nonzero(p_nodata != s_nodata))
    if n_mixed:
        problems.append(f"{n_mixed} pixel(s) NoData in one band only")
    valid = ~p_nodata
    n_prob = int(np.count_nonzero(valid & ~((prob >= 0) & (prob <= 1))))
    if n_prob:
        problems.append(f"{n_prob} valid probabilities outside [0, 1] or not finite")
    n_scale = int(np.count_nonzero(~s_nodata & ~((scale > 0) & np.isfinite(scale))))
    if n_scale:
        problems.append(f"{n_scale} winning scales not positive and finite")
    if problems:
        raise InputError(f"tile {tile_id}: cannot merge: " + "; ".join(problems))


def threshold_mask(prob: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 ``prob >= threshold`` (compared in float32, the mosaic's type, as the job's
    ``detected`` flag is), with :data:`BINARY_NODATA` where ``prob`` is NoData."""
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"threshold must lie in [0, 1], {threshold!r} is given")
    out = (prob >= np.float32(threshold)).view(np.uint8)
    out[prob == PROB_NODATA] = BINARY_NODATA
    return out
