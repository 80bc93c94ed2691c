"""Window reads of a region mosaic: boundless, band-checked, georeferencing refused loudly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from vector_support import CRS, RES, X0, Y0, grid_for, write_tif

from tilecast.errors import InputError, StorageError
from tilecast.grid import Window
from tilecast.io.mosaic_reader import open_mosaic, read_grid


def coded(height: int, width: int) -> np.ndarray:
    """Each pixel holds its own row * 1000 + col, so a wrong window shows as a wrong value."""
    rows, cols = np.mgrid[:height, :width]
    return (rows * 1000 + cols).astype(np.float32)


def test_reads_windows_boundless_with_nodata(tmp_path: Path) -> None:
    path = write_tif(tmp_path / "m.tif", coded(30, 20), nodata=-1, row=5, col=7)
    with open_mosaic(path) as reader:
        assert reader.grid == grid_for(30, 20, row=5, col=7)
        assert (reader.nodata, reader.dtype, reader.count) == (-1, np.float32, 1)
        inner = reader.read(Window(3, 4, 2, 3))
        assert np.array_equal(inner, coded(30, 20)[3:5, 4:7])
        edge = reader.read(Window(-1, 18, 3, 4))
        expected = np.full((3, 4), -1, np.float32)
        expected[1:, :2] = coded(30, 20)[0:2, 18:20]
        assert np.array_equal(edge, expected)
        assert (reader.read(Window(100, 100, 2, 2)) == -1).all()
        blocks = list(reader.blocks(16))
        assert blocks == [Window(0, 0, 16, 16), Window(0, 16, 16, 4),
                          Window(16, 0, 14, 16), Window(16, 16, 14, 4)]  # fmt: skip
        with pytest.raises(InputError, match=r"band must be in 1\.\.1, 2 is given"):
            reader.read(Window(0, 0, 1, 1), band=2)
    with pytest.raises(StorageError, match="closed"):
        reader.read(Window(0, 0, 1, 1))
    assert read_grid(path) == reader.grid


def test_bad_georeferencing_is_refused(tmp_path: Path) -> None:
    profile = {"driver": "GTiff", "count": 1, "height": 4, "width": 4, "dtype": "uint8"}
    south_up = tmp_path / "south_up.tif"
    with rasterio.open(
        south_up, "w", crs=CRS, transform=Affine(RES, 0, X0, 0, RES, Y0), **profile
    ) as dst:
        dst.write(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(InputError, match=r"south_up\.tif: invalid georeferencing: not north-up"):
        open_mosaic(south_up)
    no_crs = tmp_path / "no_crs.tif"
    with rasterio.open(no_crs, "w", transform=Affine(RES, 0, X0, 0, -RES, Y0), **profile) as dst:
        dst.write(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(
        InputError, match=r"no_crs\.tif: invalid georeferencing: the raster has no CRS"
    ):
        read_grid(no_crs)
    with pytest.raises(StorageError, match="cannot open as a raster"):
        open_mosaic(tmp_path / "missing.tif")
