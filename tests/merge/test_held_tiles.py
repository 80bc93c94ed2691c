"""Tile files held open for many window reads (``io.tile_files.HeldTiles``): the same pixels
and refusals as a read that opens the file each time, never more files open than asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from merge_support import GRID, TILE, make_tiles, write_tiles

from tilecast.errors import InputError, StorageError
from tilecast.grid import Window, window_grid
from tilecast.io.tile_files import HeldTiles, read_tile_window


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory):
    return write_tiles(tmp_path_factory.mktemp("held") / "tiles", make_tiles(2, 3, seed=11))


WINDOWS = [Window(0, 0, TILE, TILE), Window(5, 7, 20, 30), Window(40, 0, 24, 64)]


def test_reads_equal_one_open_per_read_and_at_most_max_open_files_stay_open(refs) -> None:
    with HeldTiles(max_open=2) as held:
        for _ in range(2):  # the second pass reopens what was closed
            for ref in refs:
                grid = window_grid(GRID, ref.window)
                for window in WINDOWS:
                    got = held.read(ref.uri, window, grid=grid)
                    want = read_tile_window(ref.uri, window, grid=grid)
                    assert got.dtype == np.float32 and np.array_equal(got, want)
                    assert len(held._open) <= 2
        last = [held._open[uri].src for uri in held._open]
    assert all(src.closed for src in last)  # leaving the block closes them
    with pytest.raises(InputError, match="max_open must be >= 1, 0 is given"):
        HeldTiles(max_open=0)


def test_a_held_file_read_against_another_grid_is_refused_and_closed(refs) -> None:
    ref = refs[0]
    grid = window_grid(GRID, ref.window)
    moved = window_grid(GRID, Window(ref.window.row + 3, ref.window.col, TILE, TILE))
    with HeldTiles() as held:
        held.read(ref.uri, WINDOWS[1], grid=grid)
        src = held._open[ref.uri].src
        with pytest.raises(InputError, match="tile file does not match the merge plan: transform"):
            held.read(ref.uri, WINDOWS[1], grid=moved)
        assert src.closed and ref.uri not in held._open
        with pytest.raises(InputError, match="is not inside the tile"):
            held.read(ref.uri, Window(60, 0, 8, 8), grid=grid)
        assert np.array_equal(  # and it opens again for the right grid
            held.read(ref.uri, WINDOWS[1], grid=grid),
            read_tile_window(ref.uri, WINDOWS[1], grid=grid),
        )


def test_a_missing_file_is_a_storage_error_naming_it(refs, tmp_path: Path) -> None:
    with HeldTiles() as held, pytest.raises(StorageError, match=r"nowhere\.tif: cannot open"):
        held.read(str(tmp_path / "nowhere.tif"), WINDOWS[0], grid=window_grid(GRID, refs[0].window))
