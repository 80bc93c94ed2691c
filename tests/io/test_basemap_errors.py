"""Basemaps that must be refused at open, with the offending quad named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from basemap_scenes import RES, X0, Y0, quad_pixels, quad_transform, write_quad

from tilecast.errors import InputError, StorageError
from tilecast.grid.windows import Window
from tilecast.io.basemap import open_basemap

GOOD = [Window(0, 0, 64, 64), Window(0, 64, 64, 64)]


def write_good(root: Path) -> None:
    for i, fp in enumerate(GOOD):
        write_quad(root / f"q{i}.tif", quad_pixels(i, fp), transform=quad_transform(fp), tile=None)


def add_bad(root: Path, **changes: object) -> None:
    fp = Window(64, 0, 64, 64)
    data = changes.pop("data", quad_pixels(2, fp))
    kwargs: dict = {"transform": quad_transform(fp), "tile": None, **changes}
    write_quad(root / "q_bad.tif", data, **kwargs)  # type: ignore[arg-type]


def test_good_quads_open(tmp_path: Path) -> None:
    write_good(tmp_path)
    with open_basemap(str(tmp_path)) as bm:
        assert bm.grid.shape == (64, 128) and len(bm.quads) == 2


def test_quads_on_a_whole_pixel_offset_open(tmp_path: Path) -> None:
    write_good(tmp_path)
    t = quad_transform(Window(64, 0, 64, 64))
    add_bad(tmp_path, transform=Affine(RES, 0, t.c + 1e-9, 0, -RES, t.f))  # float noise only
    with open_basemap(str(tmp_path)) as bm:
        assert bm.quads[2].footprint == Window(64, 0, 64, 64)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"transform": Affine(RES, 0, X0 + 0.5 * RES, 0, -RES, Y0 - 64 * RES)}, "not aligned"),
        ({"transform": Affine(RES, 0, X0, 0, -RES, Y0 - 64.25 * RES)}, "not aligned"),
        ({"crs": "EPSG:3031"}, "CRS EPSG:3031"),
        ({"transform": Affine(2 * RES, 0, X0, 0, -2 * RES, Y0 - 64 * RES)}, "pixel size"),
        ({"data": quad_pixels(2, Window(64, 0, 64, 64))[:2]}, "2 bands"),
        ({"data": quad_pixels(2, Window(64, 0, 64, 64)).astype(np.int32)}, "dtype int32"),
        ({"nodata": 0}, "NoData 0.0"),
        ({"transform": Affine(RES, 0.5, X0, 0.2, -RES, Y0)}, "invalid georeferencing: rotated"),
        ({"transform": Affine(RES, 0, X0, 0, RES, Y0)}, "invalid georeferencing: not north-up"),
        ({"crs": None}, "invalid georeferencing: the raster has no CRS"),
    ],
    ids=[
        "half-pixel-x",
        "quarter-pixel-y",
        "crs",
        "resolution",
        "bands",
        "dtype",
        "nodata",
        "rotated",
        "south-up",
        "no-crs",
    ],
)
def test_mismatched_quad_is_refused_by_name(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    write_good(tmp_path)
    add_bad(tmp_path, **changes)
    with pytest.raises(InputError, match=message) as info:
        open_basemap(str(tmp_path))
    assert "q_bad.tif" in str(info.value)


def test_single_file_with_invalid_georeferencing(tmp_path: Path) -> None:
    fp = Window(0, 0, 16, 16)
    write_quad(
        tmp_path / "rot.tif", quad_pixels(0, fp), transform=Affine(RES, 1.0, X0, 0, -RES, Y0)
    )
    with pytest.raises(InputError, match=r"rot\.tif: invalid georeferencing"):
        open_basemap(str(tmp_path / "rot.tif"))


def test_nodata_outside_the_dtype_is_refused(tmp_path: Path) -> None:
    fp = Window(0, 0, 16, 16)
    write_quad(tmp_path / "b.tif", quad_pixels(0, fp), transform=quad_transform(fp), nodata=0.5)
    with pytest.raises(InputError, match=r"NoData 0\.5 is not a uint16 value"):
        open_basemap(str(tmp_path / "b.tif"))


def test_missing_empty_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such file"):
        open_basemap(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"\*\.tif quads, none found"):
        open_basemap(str(tmp_path / "empty"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.tif").write_bytes(b"not a tiff")
    with pytest.raises(StorageError, match=r"x\.tif: cannot open as a raster"):
        open_basemap(str(tmp_path / "junk"))
