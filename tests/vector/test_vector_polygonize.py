"""Block-by-block polygonizing equals polygonizing the whole raster at once."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from shapely.geometry import MultiPolygon
from vector_support import RES, X0, Y0, ArrayRaster, components8, write_tif

from tilecast.errors import InputError
from tilecast.io.mosaic_reader import open_mosaic
from tilecast.vector.polygonize import block_windows, polygonize_blocks

SIZE = 256  # block 64 cuts at rows/cols 64, 128, 192


def scene() -> np.ndarray:
    """Objects cut by the 64 px block lines in every way that matters (see the comments)."""
    a = np.zeros((SIZE, SIZE), dtype=np.uint8)
    rr, cc = np.mgrid[:SIZE, :SIZE]
    # A: a disk with a hole spanning 3 x 3 blocks
    d = np.hypot(rr - 96, cc - 96)
    a[(d <= 50) & (d > 12)] = 1
    # B: a ring (annulus) centred near the block corner (64, 192)
    d = np.hypot(rr - 64, cc - 200)
    a[(d <= 14) & (d > 6)] = 1
    # C: two squares touching only at the 4-block corner point (192, 64)
    a[189:192, 61:64] = 1
    a[192:195, 64:67] = 1
    # D: two pieces touching only at a corner on the vertical block line col 128
    a[10:13, 124:128] = 1
    a[13:16, 128:132] = 1
    # E: diagonal contact inside one block
    a[20, 20] = a[21, 21] = a[22, 20] = 1
    # F: a one-pixel ring closed by a diagonal contact (hole touches the outside at a point),
    #    cut by the block line row 192
    a[188:195, 150:157] = 1
    a[189:194, 151:156] = 0
    a[188, 150] = 0
    # G: touches an internal block edge (col 192) but continues nowhere
    a[220:231, 180:192] = 1
    # H: touches only the raster's border
    a[250:256, 0:6] = 1
    # J: two arms, separate inside their block, joined by a bar in the block below
    a[150:192, 230:234] = 1
    a[150:192, 240:244] = 1
    a[192:196, 230:244] = 1
    # NoData is background
    a[0:5, 250:256] = 255
    a[100:103, 200:203] = 255
    return a


N_OBJECTS = 9


def polygons(array: np.ndarray, block: int) -> list[MultiPolygon]:
    return list(polygonize_blocks(ArrayRaster(array), block=block))


def wkb_set(geoms: list[MultiPolygon]) -> set[bytes]:
    return {shapely.to_wkb(shapely.normalize(g)) for g in geoms}


def test_scene_has_the_objects_it_claims() -> None:
    assert len(components8(scene() == 1)) == N_OBJECTS


@pytest.mark.parametrize("block", [64, 37, 100])
def test_blocks_give_the_same_geometries_as_the_whole_raster(block: int) -> None:
    array = scene()
    whole = polygons(array, 10_000)
    cut = polygons(array, block)
    assert len(whole) == len(cut) == N_OBJECTS
    for g in cut:  # topological equality, one partner each
        assert sum(g.normalize().equals(w.normalize()) for w in whole) == 1
    assert wkb_set(cut) == wkb_set(whole)  # and the same canonical vertices


def test_objects_match_an_independent_8_connected_labelling() -> None:
    array = scene()
    found = polygons(array, 64)
    assert all(isinstance(g, MultiPolygon) and g.is_valid for g in found)
    assert sorted(round(g.area / RES**2) for g in found) == components8(array == 1)


def test_cut_objects_keep_their_holes_and_diagonal_parts() -> None:
    found = polygons(scene(), 64)
    by_bounds = {tuple(round(v) for v in g.bounds): g for g in found}

    def at(row0: int, col0: int, row1: int, col1: int) -> MultiPolygon:
        key = (X0 + col0 * RES, Y0 - row1 * RES, X0 + col1 * RES, Y0 - row0 * RES)
        return by_bounds[tuple(round(v) for v in key)]

    disk = at(46, 46, 147, 147)
    assert len(disk.geoms) == 1 and len(disk.geoms[0].interiors) == 1
    ring = at(50, 186, 79, 215)
    assert len(ring.geoms) == 1 and len(ring.geoms[0].interiors) == 1
    corner = at(189, 61, 195, 67)  # across the 4-block corner
    assert len(corner.geoms) == 2 and corner.geoms[0].touches(corner.geoms[1])
    edge = at(10, 124, 16, 132)  # across a vertical block line
    assert len(edge.geoms) == 2
    assert at(20, 20, 23, 22).area == 3 * RES**2
    pinched = at(188, 150, 195, 157)  # its hole meets the outside at one point
    assert pinched.area == (7 * 7 - 5 * 5 - 1) * RES**2
    arms = at(150, 230, 196, 244)
    assert len(arms.geoms) == 1 and arms.area == (2 * 42 * 4 + 4 * 14) * RES**2


def test_vertices_lie_on_the_pixel_grid() -> None:
    for g in polygons(scene(), 64):
        xy = shapely.get_coordinates(g)
        assert np.array_equal((xy[:, 0] - X0) / RES, np.round((xy[:, 0] - X0) / RES))
        assert np.array_equal((Y0 - xy[:, 1]) / RES, np.round((Y0 - xy[:, 1]) / RES))


def test_whole_objects_come_out_before_the_next_block_is_read() -> None:
    reader = ArrayRaster(scene())
    reads_at_yield = []
    for g in polygonize_blocks(reader, block=64):
        reads_at_yield.append((len(reader.reads), g.area))
    # E (3 px) lies inside block (0, 0) and touches no block edge: out after the first read
    assert reads_at_yield[0] == (1, 3 * RES**2)
    assert len(reader.reads) == 16


def test_all_background_and_all_foreground() -> None:
    assert polygons(np.zeros((30, 40), np.uint8), 8) == []
    full = polygons(np.ones((30, 40), np.uint8), 8)
    assert len(full) == 1 and full[0].area == 30 * 40 * RES**2
    assert len(shapely.get_coordinates(full[0])) == 5  # no vertex left on the block lines


def test_reads_a_real_file_the_same_way(tmp_path) -> None:
    array = scene()
    path = write_tif(tmp_path / "region_a_binary.tif", array, nodata=255)
    with open_mosaic(path) as reader:
        from_file = list(polygonize_blocks(reader, block=64))
    assert wkb_set(from_file) == wkb_set(polygons(array, 10_000))


def test_block_must_be_a_positive_integer() -> None:
    with pytest.raises(InputError, match="block must be a positive integer, 0 is given"):
        list(polygonize_blocks(ArrayRaster(scene()), block=0))
    assert [len(r) for r in block_windows(10, 25, 8)] == [4, 4]


@settings(max_examples=60, deadline=None)
@given(
    array=arrays(np.uint8, st.tuples(st.integers(1, 14), st.integers(1, 14)),
                 elements=st.sampled_from([0, 0, 1, 1, 1, 255])),
    block=st.integers(1, 9),
)  # fmt: skip
def test_any_block_size_matches_the_whole(array: np.ndarray, block: int) -> None:
    whole = polygons(array, 10_000)
    cut = polygons(array, block)
    assert wkb_set(cut) == wkb_set(whole)
    assert len(cut) == len(components8(array == 1))
