"""Synthetic mosaics for the vectoriser tests: EPSG:3413, 3 m, near 67.5 N, in ``tmp_path``."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from tilecast.grid import PixelGrid, Window

CRS = "EPSG:3413"
X0 = -2_467_818.0
Y0 = 21_537.0
RES = 3.0


def grid_for(height: int, width: int, *, row: int = 0, col: int = 0) -> PixelGrid:
    """The grid of a ``height`` x ``width`` raster whose corner is pixel ``(row, col)``."""
    return PixelGrid(
        x0=X0 + col * RES, y0=Y0 - row * RES, res_x=RES, res_y=RES,
        width=width, height=height, crs=CRS,
    )  # fmt: skip


class ArrayRaster:
    """An in-memory stand-in for a mosaic reader: ``.grid`` and boundless ``read(window)``."""

    def __init__(self, array: np.ndarray, *, fill: int = 0) -> None:
        self.array = array
        self.grid = grid_for(*array.shape)
        self.fill = fill
        self.reads: list[Window] = []

    def read(self, window: Window) -> np.ndarray:
        self.reads.append(window)
        out = np.full(window.shape, self.fill, dtype=self.array.dtype)
        inside = window.clip_to(*self.array.shape)
        if inside is not None:
            out[inside.relative_to(window).slices] = self.array[inside.slices]
        return out


def write_tif(path: Path, bands: np.ndarray, *, nodata: float, row: int = 0, col: int = 0) -> Path:
    """A GeoTIFF of ``(C, H, W)`` (or ``(H, W)``) whose upper-left pixel is ``(row, col)``."""
    if bands.ndim == 2:
        bands = bands[None]
    count, height, width = bands.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff", "count": count, "height": height, "width": width,
        "dtype": bands.dtype.name, "crs": CRS, "nodata": nodata, "compress": "lzw",
        "transform": Affine(RES, 0.0, X0 + col * RES, 0.0, -RES, Y0 - row * RES),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
    return path


def write_region(
    merged: Path, region: str, binary: np.ndarray, prob: np.ndarray, scale: np.ndarray
) -> dict[str, str]:
    """``merged/region_{region}_{binary,prob,scale}.tif``; returns their paths by kind."""
    return {
        "binary": str(write_tif(merged / f"region_{region}_binary.tif", binary, nodata=255)),
        "prob": str(write_tif(merged / f"region_{region}_prob.tif", prob, nodata=-1)),
        "scale": str(write_tif(merged / f"region_{region}_scale.tif", scale, nodata=-1)),
    }


def write_tile(
    tiles: Path, tile_id: str, prob: np.ndarray, scale: np.ndarray, *, row: int, col: int
) -> str:
    """``tiles/{tile_id}.tif``: 2 bands float32 (probability, winning scale), NoData -1."""
    stacked = np.stack([prob, scale]).astype(np.float32)
    return str(write_tif(tiles / f"{tile_id}.tif", stacked, nodata=-1, row=row, col=col))


def write_run_log(
    logs: Path, tiles: dict[str, dict], *, threshold: float = 0.5, name: str = "inference_log.json"
) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    (logs / name).write_text(json.dumps({"threshold": threshold, "tiles": tiles}))


def components8(mask: np.ndarray) -> list[int]:
    """Pixel counts of the 8-connected components of ``mask`` (an independent BFS), sorted."""
    seen = np.zeros(mask.shape, dtype=bool)
    sizes = []
    height, width = mask.shape
    for r0, c0 in zip(*np.nonzero(mask), strict=True):
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        queue, size = deque([(r0, c0)]), 0
        while queue:
            r, c = queue.popleft()
            size += 1
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < height and 0 <= cc < width and mask[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        queue.append((rr, cc))
        sizes.append(size)
    return sorted(sizes)
