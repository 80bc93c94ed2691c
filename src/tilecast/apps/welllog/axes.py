"""Where a scan's pixels sit in depth and in curve value: the registration arithmetic.

Pure numpy, shared by the scan generator and the curve extractor so both use one convention:

- **Depth runs along the width.** Column 0 is at ``top_depth``, the last column at
  ``bottom_depth`` (pixel centres); depth is linear in the column. ``top_depth > bottom_depth``
  (a scan that runs upwards) gives a negative depth per column.
- **Every curve's track spans the full image height.** A paper log has depth going down and
  values increasing to the right; the scan is that paper turned 90 degrees counter-clockwise so
  depth runs left to right. The track's *left* edge (the value ``CurveSpec.left``) is therefore
  the centre of the **last row** (``H - 1``) and its *right* edge (``CurveSpec.right``) the
  centre of **row 0**. Between them the value is linear (``scale="linear"``) or linear in
  ``log10`` (``scale="log"``) in the row.
- **The track grid** has :data:`MAJOR_DIVISIONS` major divisions across the height, each split
  into :data:`MINOR_PER_MAJOR` minor ones; one *grid division* is one minor division, i.e. a
  track fraction of ``1 / GRID_DIVISIONS``.
"""

from __future__ import annotations

import math

import numpy as np

from tilecast.apps.welllog.records import CurveSpec, ScanRecord

MAJOR_DIVISIONS = 10
MINOR_PER_MAJOR = 5
GRID_DIVISIONS = MAJOR_DIVISIONS * MINOR_PER_MAJOR  # minor divisions across the track

NICE_STEPS = (1.0, 2.0, 2.5, 5.0)  # times a power of ten


def _ends(spec: CurveSpec) -> tuple[float, float]:
    if spec.scale == "log":
        return math.log10(spec.left), math.log10(spec.right)
    return spec.left, spec.right


def value_to_fraction(values: np.ndarray, spec: CurveSpec) -> np.ndarray:
    """Track fraction (0 at the left edge, 1 at the right) of curve values; NaN stays NaN.

    Non-positive values on a log track have no place on it and become NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    lo, hi = _ends(spec)
    if spec.scale == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), np.nan)
    return (v - lo) / (hi - lo)


def fraction_to_value(fraction: np.ndarray, spec: CurveSpec) -> np.ndarray:
    """Curve values at track fractions (the inverse of :func:`value_to_fraction`)."""
    f = np.asarray(fraction, dtype=np.float64)
    lo, hi = _ends(spec)
    v = lo + f * (hi - lo)
    return 10.0**v if spec.scale == "log" else v


def row_to_fraction(rows: np.ndarray, height: int) -> np.ndarray:
    """Track fraction at (fractional) pixel rows: row ``height - 1`` is 0 (left), row 0 is 1."""
    return 1.0 - np.asarray(rows, dtype=np.float64) / (height - 1)


def fraction_to_row(fraction: np.ndarray, height: int) -> np.ndarray:
    return (1.0 - np.asarray(fraction, dtype=np.float64)) * (height - 1)


def depth_per_column(record: ScanRecord, width: int) -> float:
    """Depth between neighbouring columns; negative when the scan runs upwards."""
    if width < 2:
        raise ValueError(f"a scan needs at least 2 columns to register depth, {width} is given")
    return (record.bottom_depth - record.top_depth) / (width - 1)


def column_depths(record: ScanRecord, width: int) -> np.ndarray:
    """Depth of every column's centre, float64 (width,)."""
    return record.top_depth + np.arange(width, dtype=np.float64) * depth_per_column(record, width)


def nice_step(per_column: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at least ``|per_column|``, with its
    sign: a regular depth step no finer than one pixel column."""
    size = abs(per_column)
    if not math.isfinite(size) or size <= 0:
        raise ValueError(f"depth per column must be a non-zero number, {per_column!r} is given")
    power = 10.0 ** math.floor(math.log10(size))
    for mantissa in (*NICE_STEPS, 10.0):
        step = round(mantissa * power, 12)
        if step >= size * (1 - 1e-9):
            return math.copysign(step, per_column)
    raise AssertionError("unreachable: 10 * power >= size")
