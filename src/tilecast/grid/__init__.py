"""Pure tile and window arithmetic: pixel windows, the pixel grid and its snapping step,
scale contexts, the tile lattice and tile ids.

Nothing here does I/O or imports rasterio, fsspec or torch: integers for pixels, one named
float tolerance (:data:`SNAP_TOLERANCE_PX`) where map coordinates are snapped to pixels, and
frozen, hashable value objects whose methods return new ones.
"""

from tilecast.grid.pixelgrid import (
    SNAP_TOLERANCE_PX,
    OffGridError,
    PixelGrid,
    snap_bbox,
    window_bounds,
    window_grid,
    window_transform,
)
from tilecast.grid.scales import (
    ScaleView,
    context_size,
    context_window,
    crop_back_window,
    scale_views,
)
from tilecast.grid.tiling import (
    NAME_PATTERN,
    Tile,
    TileListError,
    iter_tile_grid,
    make_tile_grid,
    order_for_locality,
    tile_id_for,
    tile_window,
)
from tilecast.grid.windows import Window

__all__ = [
    "NAME_PATTERN",
    "SNAP_TOLERANCE_PX",
    "OffGridError",
    "PixelGrid",
    "ScaleView",
    "Tile",
    "TileListError",
    "Window",
    "context_size",
    "context_window",
    "crop_back_window",
    "iter_tile_grid",
    "make_tile_grid",
    "order_for_locality",
    "scale_views",
    "snap_bbox",
    "tile_id_for",
    "tile_window",
    "window_bounds",
    "window_grid",
    "window_transform",
]
