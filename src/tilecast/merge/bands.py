"""Row bands of a region: the arithmetic that lets separate tasks share one region's products.

Pure integer arithmetic, no I/O. A *band* is a run of whole block rows of a raster, full width,
its first row a multiple of ``block``. Cutting a region into bands is exact for every product:

- the max-merge and the threshold are per pixel, so a band's merged blocks are the region's;
- an overview pixel reduces the 2 x 2 pixels under it, so overview level ``k`` of a band is the
  band's rows of the region's level ``k`` as long as the band starts on a row divisible by
  ``2**k`` (:func:`shared_levels`, :func:`band_level_window`); a band starts on a multiple of
  ``block``, so with a block of 1024 px the first ten levels are per band;
- the polygoniser works on the same ``block`` lattice in every band, so it finds the same pieces.

:func:`balanced_chunks` splits measured work (polygons, by their window's pixels) into runs
of about equal cost for parallel tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

from tilecast.errors import InputError
from tilecast.grid import Window
from tilecast.grid.windows import as_positive_int

__all__ = ["balanced_chunks", "band_level_window", "band_windows", "shared_levels"]


def band_windows(shape: tuple[int, int], *, block: int, bands: int) -> tuple[Window, ...]:
    """The raster's ``ceil(height / block)`` block rows in ``min(bands, block rows)``
    contiguous bands of full width, top to bottom, as even as possible (the first bands get
    one block row more than the last when they do not divide evenly)."""
    block = as_positive_int("block", block)
    bands = as_positive_int("bands", bands)
    height, width = shape
    if height < 1 or width < 1:
        raise InputError(f"a banded raster needs at least one pixel, {width} x {height} is given")
    block_rows = -(-height // block)
    count = min(bands, block_rows)
    per_band, extra = divmod(block_rows, count)
    windows = []
    first = 0
    for index in range(count):
        rows = per_band + (index < extra)
        top, bottom = first * block, min((first + rows) * block, height)
        windows.append(Window(top, 0, bottom - top, width))
        first += rows
    return tuple(windows)


def shared_levels(bands: Sequence[Window], n_levels: int) -> int:
    """How many of the ``n_levels`` overview levels every band can build from its own pixels:
    the largest ``k <= n_levels`` such that each band's first row is divisible by ``2**k``
    (then every level up to ``k`` starts on an even row of the level above)."""
    if not bands:
        raise InputError("shared_levels needs at least one band")
    if n_levels < 0:
        raise InputError(f"n_levels must be >= 0, {n_levels} is given")
    k = 0
    while k < n_levels and all(band.row % (2 << k) == 0 for band in bands):
        k += 1
    return k


def band_level_window(band: Window, level: int, level_shape: tuple[int, int]) -> Window:
    """A band's rows in overview ``level`` (1: half resolution) of shape ``level_shape``:
    ``band.row / 2**level`` to ``ceil(band.row_stop / 2**level)``, full width.

    Iterated halving rounds up (``ceil(ceil(h / 2) / 2) == ceil(h / 4)``), so the last band
    ends exactly on the level's last row.
    """
    level = as_positive_int("level", level)
    scale = 1 << level
    if band.row % scale:
        raise InputError(
            f"band {band} starts on row {band.row}, which overview level {level} cannot halve "
            f"exactly (expected a multiple of {scale})"
        )
    top = band.row // scale
    bottom = -(-band.row_stop // scale)
    height, width = level_shape
    if bottom > height:
        raise InputError(
            f"band {band} reaches row {bottom} of overview level {level}, which has {height}"
        )
    return Window(top, 0, bottom - top, width)


def balanced_chunks(costs: Sequence[int], n: int) -> list[list[int]]:
    """``n`` runs of consecutive positions into ``costs`` whose summed costs are about equal:
    an item goes to the chunk its cost's midpoint falls in when the total is cut in ``n``
    equal parts, so each chunk's total is within the dearest item of ``total / n``. Runs keep
    neighbours together (objects in reading order measured by one task share tiles). Every
    position is in exactly one chunk, ascending; chunks may be empty."""
    n = as_positive_int("n", n)
    for position, cost in enumerate(costs):
        if cost < 0:
            raise InputError(f"costs must be >= 0, {cost} is given at {position}")
    total = sum(costs)
    chunks: list[list[int]] = [[] for _ in range(n)]
    before = 0
    for position, cost in enumerate(costs):
        # the part the cost's midpoint is in (by count when every cost is 0)
        target = (2 * before + cost) * n // (2 * total) if total else position * n // len(costs)
        chunks[min(n - 1, target)].append(position)
        before += cost
    return chunks
