"""The QC report's pure arithmetic: which polygons get chips, how big maps and chips are.

No I/O and no plotting here: the chip groups and their picks (:func:`select_chips`), the
pixel window of a chip around a polygon (:func:`chip_window`), the size an overview or a chip
is read at (:func:`overview_shape`) and a scale bar's length (:func:`nice_length`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from tilecast.grid.pixelgrid import PixelGrid
from tilecast.grid.windows import Window

#: The long side of an overview map, in pixels read from the mosaic and the basemap.
OVERVIEW_LONG_SIDE = 1500
#: Chips: at least this many basemap pixels a side, and at most this many pixels shown.
CHIP_MIN_PX = 96
CHIP_MAX_PX = 320
#: A chip spans this many times the polygon's longer side.
CHIP_MARGIN = 1.6


@dataclass(frozen=True)
class ChipPick:
    """A polygon chosen for a chip: its row, the group showing it, its rank in every group."""

    row: int
    group: str
    ranks: Mapping[str, int] = field(default_factory=dict)  # group -> 1-based rank


CHIP_GROUPS: tuple[tuple[str, str], ...] = (
    ("largest", "Largest detections (area_m2)"),
    ("most_confident", "Most confident (highest max_prob)"),
    ("least_confident", "Least confident (lowest mean_prob)"),
)
GROUP_SHORT = {
    "largest": "largest",
    "most_confident": "most confident",
    "least_confident": "least confident",
}


def _ordering(values: np.ndarray, *, descending: bool) -> np.ndarray:
    """Row order by ``values`` (NaN last, ties by row)."""
    v = np.asarray(values, dtype=float)
    key = np.where(np.isnan(v), np.inf, -v if descending else v)
    return np.lexsort((np.arange(len(v)), key))


def select_chips(
    area: np.ndarray, max_prob: np.ndarray, mean_prob: np.ndarray, n: int
) -> dict[str, list[ChipPick]]:
    """Up to ``n`` polygons per group (:data:`CHIP_GROUPS`), each polygon in one group only.

    Groups are filled in order (largest, most confident, least confident); a later group skips
    polygons an earlier one shows and takes the next in its own order. Each pick carries its
    rank in every group whose top ``n`` it is in (and its rank in its own group).
    """
    orders = {
        "largest": _ordering(area, descending=True),
        "most_confident": _ordering(max_prob, descending=True),
        "least_confident": _ordering(mean_prob, descending=False),
    }
    rank_of = {g: {int(row): i + 1 for i, row in enumerate(order)} for g, order in orders.items()}
    shown: set[int] = set()
    picks: dict[str, list[ChipPick]] = {}
    for group, _title in CHIP_GROUPS:
        chosen = []
        for row in orders[group]:
            if len(chosen) >= n:
                break
            row = int(row)
            if row in shown:
                continue
            shown.add(row)
            ranks = {
                g: rank_of[g][row] for g, _ in CHIP_GROUPS if g == group or rank_of[g][row] <= n
            }
            chosen.append(ChipPick(row=row, group=group, ranks=ranks))
        picks[group] = chosen
    return picks


def chip_window(grid: PixelGrid, bounds: tuple[float, float, float, float]) -> Window:
    """The basemap window of a chip: centred on ``bounds`` (a polygon's, in the grid's CRS),
    :data:`CHIP_MARGIN` times its longer side and at least :data:`CHIP_MIN_PX` a side."""
    gx0, gy0, gx1, gy1 = bounds
    side = max(gx1 - gx0, gy1 - gy0) * CHIP_MARGIN
    cols = max(CHIP_MIN_PX, math.ceil(side / grid.res_x))
    rows = max(CHIP_MIN_PX, math.ceil(side / grid.res_y))
    cx, cy = (gx0 + gx1) / 2, (gy0 + gy1) / 2
    col0 = math.floor((cx - grid.x0) / grid.res_x - cols / 2)
    row0 = math.floor((grid.y0 - cy) / grid.res_y - rows / 2)
    return Window(row0, col0, rows, cols)


def overview_shape(height: int, width: int, long_side: int = OVERVIEW_LONG_SIDE) -> tuple[int, int]:
    """The overview's ``(h, w)``: the raster shrunk so its long side is at most ``long_side``."""
    factor = max(height, width) / long_side
    if factor <= 1:
        return (height, width)
    return (max(1, round(height / factor)), max(1, round(width / factor)))


def nice_length(limit: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``limit`` (a scale bar's length)."""
    if limit <= 0 or not math.isfinite(limit):
        return 0.0
    exp = math.floor(math.log10(limit))
    for mult in (5, 2, 1):
        length = mult * 10.0**exp
        if length <= limit:
            return length
    return 10.0**exp
