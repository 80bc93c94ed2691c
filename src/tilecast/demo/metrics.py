"""Scoring a binary prediction against a binary truth: pixel IoU and per-object matching.

Pure numpy. Objects are 8-connected components, labelled by a run-length union-find (rows are
cut into runs of set pixels; runs in neighbouring rows that touch, diagonals included, are
joined), which is exact and fast enough for whole scenes.

Conventions, where a ratio has no denominator: IoU of two empty masks is 1.0; precision with
no predicted objects is 1.0 (no false alarm was raised); recall with no true objects is 1.0;
F1 is 0.0 when precision and recall are both 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from tilecast.errors import InputError


@dataclass(frozen=True)
class ObjectScores:
    """Object-level scores at one IoU threshold."""

    precision: float
    recall: float
    f1: float
    n_pred: int
    n_truth: int
    n_matched: int


def _masks(
    pred: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.ndim != 2 or pred.shape != truth.shape:
        raise InputError(
            f"pred and truth must be 2-D masks of one shape; got {pred.shape} and {truth.shape}"
        )
    pred, truth = pred.astype(bool), truth.astype(bool)
    if ignore is not None:
        ignore = np.asarray(ignore)
        if ignore.shape != pred.shape:
            raise InputError(f"ignore must have shape {pred.shape}, got {ignore.shape}")
        keep = ~ignore.astype(bool)
        pred, truth = pred & keep, truth & keep
    return pred, truth


def pixel_iou(pred: np.ndarray, truth: np.ndarray, *, ignore: np.ndarray | None = None) -> float:
    """|pred and truth| / |pred or truth| over pixels not in ``ignore`` (1.0 if both empty)."""
    pred, truth = _masks(pred, truth, ignore)
    union = int(np.count_nonzero(pred | truth))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(pred & truth)) / union


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the 8-connected components of a 2-D boolean mask.

    Returns ``(labels, count)``: ``labels`` is int32, 0 for background and 1..count for the
    components, numbered in raster order of their first pixel.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise InputError(f"mask must be 2-D, got shape {mask.shape}")
    height, width = mask.shape
    labels = np.zeros((height, width), dtype=np.int32)
    if not mask.any():
        return labels, 0

    # runs of set pixels per row: [start, end) in columns, in raster order
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    start_rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    n_runs = starts.size

    # run pairs in adjacent rows that touch (8-connectivity: start_a <= end_b and
    # start_b <= end_a with exclusive ends). Runs in a row are sorted and disjoint, so the runs
    # of row r touching run b of row r + 1 form a contiguous range found by binary search on
    # (row, column) keys.
    stride = width + 2
    key_start = start_rows.astype(np.int64) * stride + starts
    key_end = start_rows.astype(np.int64) * stride + ends
    above = start_rows.astype(np.int64) - 1
    lo = np.searchsorted(key_end, above * stride + starts, side="left")
    hi = np.searchsorted(key_start, above * stride + ends, side="right")
    counts = np.maximum(hi - lo, 0)
    b = np.repeat(np.arange(n_runs), counts)
    a = np.repeat(lo, counts) + (np.arange(b.size) - np.repeat(np.cumsum(counts) - counts, counts))

    # union-find on runs: hook roots to the smaller root, then jump pointers to the roots
    parent = np.arange(n_runs)
    while True:
        ra, rb = parent[a], parent[b]
        low = np.minimum(ra, rb)
        hooked = parent.copy()
        np.minimum.at(hooked, ra, low)
        np.minimum.at(hooked, rb, low)
        while True:
            jumped = hooked[hooked]
            if np.array_equal(jumped, hooked):
                break
            hooked = jumped
        if np.array_equal(hooked, parent):
            break
        parent = hooked

    roots, run_label = np.unique(parent, return_inverse=True)
    run_label = (run_label + 1).astype(np.int32)
    # paint runs: +label at the start column, -label at the end column, cumulative sum per row
    paint = np.zeros((height, width + 1), dtype=np.int32)
    np.add.at(paint, (start_rows, starts), run_label)
    np.add.at(paint, (start_rows, ends), -run_label)
    labels[:] = np.cumsum(paint, axis=1)[:, :width]
    return labels, int(roots.size)


def object_scores(
    pred: np.ndarray,
    truth: np.ndarray,
    *,
    iou_threshold: float = 0.5,
    ignore: np.ndarray | None = None,
) -> ObjectScores:
    """Match predicted to true objects one-to-one by IoU and score the matching.

    Objects are the 8-connected components of each mask after ``ignore`` pixels are removed
    from both. Every pair with IoU >= ``iou_threshold`` is a candidate; candidates are taken
    greedily by decreasing IoU (ties: lower predicted, then lower true label first), each
    object matched at most once.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise InputError(f"iou_threshold must be in (0, 1], {iou_threshold!r} is given")
    pred, truth = _masks(pred, truth, ignore)
    pred_labels, n_pred = label_components(pred)
    truth_labels, n_truth = label_components(truth)

    matched = 0
    if n_pred and n_truth:
        pred_area = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
        truth_area = np.bincount(truth_labels.ravel(), minlength=n_truth + 1)
        both = (pred_labels > 0) & (truth_labels > 0)
        pairs = pred_labels[both].astype(np.int64) * (n_truth + 1) + truth_labels[both]
        keys, inter = np.unique(pairs, return_counts=True)
        p, t = keys // (n_truth + 1), keys % (n_truth + 1)
        iou = inter / (pred_area[p] + truth_area[t] - inter)
        good = iou >= iou_threshold
        matched = greedy_matches(p[good], t[good], iou[good])
    return _scores(matched, n_pred, n_truth)


def greedy_matches(p: np.ndarray, t: np.ndarray, iou: np.ndarray) -> int:
    """One-to-one matches taken by decreasing IoU (ties: lower predicted, then true index)."""
    order = np.lexsort((t, p, -iou))
    used_p: set[int] = set()
    used_t: set[int] = set()
    for i in order:
        if p[i] not in used_p and t[i] not in used_t:
            used_p.add(int(p[i]))
            used_t.add(int(t[i]))
    return len(used_p)


def polygon_scores(
    pred: Sequence[BaseGeometry], truth: Sequence[BaseGeometry], *, iou_threshold: float = 0.5
) -> ObjectScores:
    """Object scores for vector outputs: polygons matched one-to-one by area IoU."""
    if not 0.0 < iou_threshold <= 1.0:
        raise InputError(f"iou_threshold must be in (0, 1], {iou_threshold!r} is given")
    matched = 0
    if len(pred) and len(truth):
        tree = shapely.STRtree(list(truth))
        p_idx, t_idx = tree.query(list(pred), predicate="intersects")
        inter = shapely.area(
            shapely.intersection(np.asarray(pred)[p_idx], np.asarray(truth)[t_idx])
        )
        union = (
            shapely.area(np.asarray(pred)[p_idx]) + shapely.area(np.asarray(truth)[t_idx]) - inter
        )
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        good = iou >= iou_threshold
        matched = greedy_matches(p_idx[good], t_idx[good], iou[good])
    return _scores(matched, len(pred), len(truth))


def _scores(matched: int, n_pred: int, n_truth: int) -> ObjectScores:
    precision = matched / n_pred if n_pred else 1.0
    recall = matched / n_truth if n_truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ObjectScores(
        precision=precision,
        recall=recall,
        f1=f1,
        n_pred=n_pred,
        n_truth=n_truth,
        n_matched=matched,
    )
