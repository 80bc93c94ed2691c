"""The plan: every tile's pixel window and scale contexts, computed before any pixel is read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from tilecast.errors import InputError
from tilecast.grid import PixelGrid, ScaleView, Tile, Window, order_for_locality, scale_views
from tilecast.grid.tiling import tile_window


@dataclass(frozen=True)
class WorkItem:
    tile: Tile
    window: Window  # the tile footprint in the basemap grid
    views: tuple[ScaleView, ...]  # one context per scale, in the run's scale order


@dataclass(frozen=True)
class Plan:
    items: tuple[WorkItem, ...]  # in processing order (spatially local)
    scales: tuple[float, ...]
    tile_size: int

    def fingerprint(self, **settings: object) -> str:
        """Hash of the tiles, their windows and the settings that shape outputs."""
        h = hashlib.sha256()
        h.update(json.dumps(settings, sort_keys=True, default=str).encode())
        for item in sorted(self.items, key=lambda i: i.tile.tile_id):
            w = item.window
            h.update(f"{item.tile.tile_id},{w.row},{w.col},{w.height},{w.width}\n".encode())
        return h.hexdigest()


def make_plan(
    tiles: Sequence[Tile], *, grid: PixelGrid, scales: Sequence[float], tile_size: int
) -> Plan:
    """Snap every tile to the basemap grid; refuse off-grid or wrongly sized tiles, naming them."""
    items = []
    problems = []
    for tile in tiles:
        try:
            window = tile_window(grid, tile)
        except InputError as exc:
            problems.append(str(exc))
            continue
        if window.shape != (tile_size, tile_size):
            problems.append(
                f"tile {tile.tile_id}: {window.width} x {window.height} px (width x height) on "
                f"the basemap grid, expected {tile_size} x {tile_size} (inference.tile_size)"
            )
            continue
        items.append(WorkItem(tile=tile, window=window, views=scale_views(window, scales)))
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InputError(
            f"{len(problems)} tile(s) do not fit the basemap grid: "
            + "; ".join(problems[:5])
            + more
        )
    order = order_for_locality([item.window for item in items])
    return Plan(items=tuple(items[i] for i in order), scales=tuple(scales), tile_size=tile_size)
