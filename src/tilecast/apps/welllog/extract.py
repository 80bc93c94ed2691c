"""Curves from the model's probabilities: centre line per column, then depth and value.

Pure numpy. For every curve (model class ``k + 1`` is ``record.curves[k]``):

1. **Centre line per column.** The curve's pixels in a column are the rows whose probability
   is at least ``threshold`` and whose pixel is valid. They form runs; the run with the largest
   probability mass is taken first; the running median of those centres over
   ``2 * TRACK_HALF_WINDOW + 1`` columns is the curve's track, and in each column the run
   nearest the track is the curve (a heavier stray mark such as a text stroke loses). The run's
   probability-weighted centroid row is the centre line. A column with no run is a gap. A
   column whose chosen run touches a masked (missing) pixel is also a gap: the curve may
   continue under the mask, so its centre is unknown.
2. **Row to value, column to depth** with :mod:`tilecast.apps.welllog.axes` (the track spans
   the full height, ``left`` at the last row, ``right`` at row 0; column 0 is ``top_depth``).
3. **Regular depth step.** Depths ``top_depth + i * step`` up to ``bottom_depth``; the centre
   row is interpolated linearly between the two nearest columns (in rows, so a log curve is
   interpolated in log value) and a sample next to a gap column is a gap: gaps are never
   bridged. The default step is :func:`~tilecast.apps.welllog.axes.nice_step` of the depth
   per column (no finer than one column).

Sizes outside the scan band (widths 3200-12800, heights 480-640) work but warn.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np

from tilecast.apps.welllog.axes import (
    column_depths,
    depth_per_column,
    fraction_to_value,
    nice_step,
    row_to_fraction,
)
from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.records import ScanRecord
from tilecast.errors import InputError, TilecastWarning

log = logging.getLogger(__name__)

WIDTH_BAND = (3200, 12800)
HEIGHT_BAND = (480, 640)
DEFAULT_THRESHOLD = 0.5
TRACK_HALF_WINDOW = 15  # columns each side for the running median that follows the curve


def check_scan_size(height: int, width: int, *, where: str = "scan") -> bool:
    """True when ``(height, width)`` lies in the scan band; otherwise warn and return False."""
    inside = WIDTH_BAND[0] <= width <= WIDTH_BAND[1] and HEIGHT_BAND[0] <= height <= HEIGHT_BAND[1]
    if not inside:
        message = (
            f"{where}: {width} x {height} px (width x height) is outside the scan band "
            f"{WIDTH_BAND[0]}-{WIDTH_BAND[1]} x {HEIGHT_BAND[0]}-{HEIGHT_BAND[1]}; "
            "digitising anyway"
        )
        log.warning(message)
        warnings.warn(message, TilecastWarning, stacklevel=3)
    return inside


def centre_rows(
    probability: np.ndarray, valid: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD
) -> np.ndarray:
    """Centre row of one curve in every column, float64 (W,), NaN where the column is a gap.

    ``probability`` is (H, W) for one class, ``valid`` the (H, W) pixel validity mask.
    """
    if probability.ndim != 2 or probability.shape != valid.shape:
        raise InputError(
            f"expected (H, W) probability and validity arrays of one shape, got "
            f"{probability.shape} and {valid.shape}"
        )
    height, width = probability.shape
    prob_t = np.ascontiguousarray(probability.T, dtype=np.float64)  # (W, H): a column per row
    valid_t = np.ascontiguousarray(valid.T)
    on = (prob_t >= threshold) & valid_t
    edges = np.diff(np.pad(on, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    cols, starts = np.nonzero(edges == 1)  # sorted by column, then row
    _, ends = np.nonzero(edges == -1)  # exclusive ends, paired with the starts
    rows = np.full(width, np.nan)
    if cols.size == 0:
        return rows
    zero = np.zeros((width, 1))
    mass_sum = np.concatenate([zero, np.cumsum(prob_t, axis=1)], axis=1)
    moment_sum = np.concatenate([zero, np.cumsum(prob_t * np.arange(height), axis=1)], axis=1)
    mass = mass_sum[cols, ends] - mass_sum[cols, starts]
    centre = (moment_sum[cols, ends] - moment_sum[cols, starts]) / mass
    # pass 1: the heaviest run of each column; its running median is the curve's track
    heaviest = np.full(width, np.nan)
    best = _first_per_column(cols, np.lexsort((-mass, cols)))
    heaviest[cols[best]] = centre[best]
    track = running_median(heaviest, half_window=TRACK_HALF_WINDOW)
    # pass 2: the run nearest the track (a heavier stray mark elsewhere loses), ties by mass
    distance = np.abs(centre - track[cols])
    distance = np.where(np.isnan(distance), 0.0, distance)
    best = _first_per_column(cols, np.lexsort((-mass, distance, cols)))
    c, s, e = cols[best], starts[best], ends[best]
    above_masked = (s > 0) & ~valid_t[c, np.maximum(s - 1, 0)]
    below_masked = (e < height) & ~valid_t[c, np.minimum(e, height - 1)]
    keep = ~(above_masked | below_masked)
    rows[c[keep]] = centre[best][keep]
    return rows


def _first_per_column(cols: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Indices of the first run of each column in ``order`` (which is sorted by column)."""
    first = np.ones(order.size, dtype=bool)
    first[1:] = cols[order][1:] != cols[order][:-1]
    return order[first]


def running_median(values: np.ndarray, *, half_window: int) -> np.ndarray:
    """Median of the non-NaN values within ``half_window`` columns; NaN where there are none."""
    padded = np.pad(values, half_window, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_window + 1)
    # only windows holding a value go to nanmedian: an all-NaN one would warn, and
    # catch_warnings is not thread-safe (the service digitises on several threads)
    out = np.full(values.shape, np.nan)
    some = ~np.all(np.isnan(windows), axis=1)
    if some.any():
        out[some] = np.nanmedian(windows[some], axis=1)
    return out


def regular_depths(record: ScanRecord, width: int, step: float | None) -> tuple[np.ndarray, float]:
    """The output depth index (top to bottom by ``step``) and the step used."""
    per_column = depth_per_column(record, width)
    if step is None:
        step = nice_step(per_column)
    elif not math.isfinite(step) or step == 0:
        raise InputError(f"step must be a non-zero number, {step!r} is given")
    elif math.copysign(1.0, step) != math.copysign(1.0, per_column):
        raise InputError(
            f"step {step} runs against the scan: depth goes from {record.top_depth} to "
            f"{record.bottom_depth}, so the step must be "
            f"{'positive' if per_column > 0 else 'negative'}"
        )
    count = math.floor((record.bottom_depth - record.top_depth) / step + 1e-9) + 1
    depth = record.top_depth + np.arange(count, dtype=np.float64) * step
    return np.round(depth, 9), float(step)


def resample_rows(rows: np.ndarray, record: ScanRecord, depth: np.ndarray) -> np.ndarray:
    """Centre rows at ``depth``: linear between the two nearest columns, NaN next to a gap."""
    width = rows.size
    x = (depth - record.top_depth) / depth_per_column(record, width)
    x = np.clip(x, 0.0, width - 1.0)
    left = np.minimum(np.floor(x).astype(np.int64), width - 2)
    t = x - left
    a, b = rows[left], rows[left + 1]
    blended = a * (1.0 - t) + b * t  # NaN on either side gives NaN: no bridging
    on_left = t < 1e-9
    on_right = t > 1.0 - 1e-9
    return np.where(on_left, a, np.where(on_right, b, blended))


def extract_curves(
    probabilities: np.ndarray,
    valid: np.ndarray,
    record: ScanRecord,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    step: float | None = None,
) -> DigitisedCurves:
    """Digitised curves of one scan from class probabilities (K, H, W) and validity (H, W)."""
    if probabilities.ndim != 3:
        raise InputError(f"expected probabilities (K, H, W), got shape {probabilities.shape}")
    classes, height, width = probabilities.shape
    if valid.shape != (height, width):
        raise InputError(
            f"the validity mask is {valid.shape}, the probabilities are {(height, width)}"
        )
    if classes < len(record.curves) + 1:
        raise InputError(
            f"scan {record.scan_id} declares {len(record.curves)} curve(s), the model has "
            f"{classes - 1} curve class(es) (background + one per curve)"
        )
    if height < 2 or width < 2:
        raise InputError(f"a scan needs at least 2 rows and 2 columns, got {(height, width)}")
    check_scan_size(height, width, where=f"scan {record.scan_id}")
    depth, step = regular_depths(record, width, step)
    values: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for k, spec in enumerate(record.curves):
        rows = centre_rows(probabilities[k + 1], valid, threshold=threshold)
        sampled = resample_rows(rows, record, depth)
        values[spec.name] = fraction_to_value(row_to_fraction(sampled, height), spec)
        counts[f"gap_columns[{spec.name}]"] = int(np.isnan(rows).sum())
        counts[f"gap_samples[{spec.name}]"] = int(np.isnan(sampled).sum())
    registration = {
        "image_shape": [height, width],
        "columns_to_depth": {
            "column_0": record.top_depth,
            f"column_{width - 1}": record.bottom_depth,
            "depth_per_column": depth_per_column(record, width),
            "depth_unit": record.depth_unit,
        },
        "rows_to_value": {
            spec.name: {
                "class": k + 1,
                f"row_{height - 1}": spec.left,
                "row_0": spec.right,
                "scale": spec.scale,
            }
            for k, spec in enumerate(record.curves)
        },
        "threshold": threshold,
        "step": step,
    }
    return DigitisedCurves(
        depth=depth,
        step=step,
        depth_unit=record.depth_unit,
        values=values,
        units={spec.name: spec.unit for spec in record.curves},
        counts=counts,
        registration=registration,
    )


__all__ = [
    "HEIGHT_BAND",
    "WIDTH_BAND",
    "centre_rows",
    "check_scan_size",
    "column_depths",
    "extract_curves",
    "regular_depths",
    "resample_rows",
]
