"""``tilecast rts split``: chunks that cover the list exactly, balanced, each a compact block."""

from __future__ import annotations

import collections
import json
import math
import random

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tilecast.apps.rts.split import (
    SplitError,
    border_edges,
    lattice_positions,
    split_tiles,
    summarise_chunks,
)
from tilecast.apps.rts.tilelist import format_tile_list, parse_tile_list
from tilecast.cli.rts import rts
from tilecast.grid import Tile
from tilecast.grid.tiling import order_for_locality
from tilecast.grid.windows import Window

STEP = 768.0  # 256 px of 3 m
SIZE = 1536.0  # 512 px tiles: neighbours overlap by half a tile, as the job's lists do
X0, Y0 = -2_467_818.0, 21_537.0


def lattice_tiles(cells: set[tuple[int, int]], regions: dict[tuple[int, int], str]) -> list[Tile]:
    """A tile list: one 512 px tile every 256 px at each (row, col) of ``cells``."""
    out = []
    for row, col in sorted(cells):
        minx, maxy = X0 + col * STEP, Y0 - row * STEP
        out.append(
            Tile(f"t{row}x{col}", minx, maxy - SIZE, minx + SIZE, maxy, regions.get((row, col)))
        )
    return out


@st.composite
def scattered_lists(draw: st.DrawFn) -> list[Tile]:
    """1-4 rectangular regions (possibly overlapping) on a lattice, with random holes, shuffled."""
    side = draw(st.integers(3, 40))
    cells: set[tuple[int, int]] = set()
    regions: dict[tuple[int, int], str] = {}
    for k in range(draw(st.integers(1, 4))):
        r0, c0 = draw(st.integers(0, side - 1)), draw(st.integers(0, side - 1))
        h, w = draw(st.integers(1, side)), draw(st.integers(1, side))
        for r in range(r0, min(r0 + h, side)):
            for c in range(c0, min(c0 + w, side)):
                cells.add((r, c))
                regions.setdefault((r, c), f"region{k}")
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    holes = draw(st.floats(0.0, 0.5))
    kept = {cell for cell in sorted(cells) if rng.random() >= holes} or {min(cells)}
    tiles = lattice_tiles(kept, regions)
    rng.shuffle(tiles)
    return tiles


@st.composite
def lists_and_chunks(draw: st.DrawFn) -> tuple[list[Tile], int]:
    tiles = draw(scattered_lists())
    return tiles, draw(st.integers(1, len(tiles)))


def chunk_numbers(tiles: list[Tile], chunks: list[list[Tile]]) -> list[int]:
    where = {t.tile_id: i for i, chunk in enumerate(chunks) for t in chunk}
    return [where[t.tile_id] for t in tiles]


def foreign_tiles_inside(tiles: list[Tile], chunk_of: list[int]) -> list[tuple[int, int, bool]]:
    """(chunk, tile index, on the bbox border?) for every tile of another chunk that lies in a
    chunk's lattice bbox."""
    rows, cols = lattice_positions(tiles)
    chunk_of_a = np.asarray(chunk_of)
    found = []
    for k in sorted(set(chunk_of)):
        mine = chunk_of_a == k
        r0, r1, c0, c1 = rows[mine].min(), rows[mine].max(), cols[mine].min(), cols[mine].max()
        inside = ~mine & (rows >= r0) & (rows <= r1) & (cols >= c0) & (cols <= c1)
        for i in np.flatnonzero(inside):
            border = rows[i] in (r0, r1) or cols[i] in (c0, c1)
            found.append((k, int(i), bool(border)))
    return found


def is_compact(tiles: list[Tile], chunk_of: list[int]) -> bool:
    """Each chunk is the tiles of a lattice rectangle: another chunk's tiles may lie in its bbox
    only on the bbox's border (the row or column where a cut fell)."""
    return all(border for _, _, border in foreign_tiles_inside(tiles, chunk_of))


@settings(max_examples=150, deadline=None)
@given(lists_and_chunks())
def test_chunks_cover_the_list_exactly_balanced_and_compact(case):
    tiles, n = case
    chunks = split_tiles(tiles, n)
    assert len(chunks) == n
    flat = [t for chunk in chunks for t in chunk]
    assert sorted(flat) == sorted(tiles)  # the union is the input: nothing lost or repeated
    assert len({t.tile_id for t in flat}) == len(flat)
    sizes = [len(c) for c in chunks]
    mean = len(tiles) / n
    assert max(sizes) - min(sizes) <= 1
    assert all(abs(s - mean) <= max(1, 0.01 * mean) for s in sizes)
    position = {t.tile_id: i for i, t in enumerate(tiles)}
    for chunk in chunks:  # each chunk keeps the input's order
        assert [position[t.tile_id] for t in chunk] == sorted(position[t.tile_id] for t in chunk)
    assert is_compact(tiles, chunk_numbers(tiles, chunks))


@settings(max_examples=60, deadline=None)
@given(lists_and_chunks(), st.randoms(use_true_random=False))
def test_the_split_depends_on_the_set_of_tiles_not_their_order(case, rnd):
    tiles, n = case
    shuffled = list(tiles)
    rnd.shuffle(shuffled)
    first = [sorted(t.tile_id for t in c) for c in split_tiles(tiles, n)]
    again = [sorted(t.tile_id for t in c) for c in split_tiles(shuffled, n)]
    assert again == first
    assert [sorted(t.tile_id for t in c) for c in split_tiles(tiles, n)] == first


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 48), st.integers(1, 48), st.data())
def test_border_on_a_dense_rectangle_is_short(height, width, data):
    """On a full H x W lattice the pairs split between chunks stay under 1.5 sqrt(N) (H + W):
    what square-ish blocks give (measured worst 1.07 sqrt(N) (H + W)). Stripes (N - 1 full cut
    lines) and round robin (every pair) exceed it; see the next test."""
    tiles = lattice_tiles({(r, c) for r in range(height) for c in range(width)}, {})
    n = data.draw(st.integers(1, min(len(tiles), 80)))
    cut, total = border_edges(tiles, chunk_numbers(tiles, split_tiles(tiles, n)))
    assert total == height * (width - 1) + width * (height - 1)
    assert cut <= 1.5 * math.sqrt(n) * (height + width)


def test_the_compactness_checks_fail_for_bad_splits():
    """The properties above have teeth: round robin, stripes and a cut Z-order curve fail."""
    side = 16
    tiles = lattice_tiles({(r, c) for r in range(side) for c in range(side)}, {})
    round_robin = [i % 7 for i in range(len(tiles))]  # (i % 16 would be columns)
    stripes = [i * 16 // len(tiles) for i in range(len(tiles))]  # tiles are in row-major order
    assert not is_compact(tiles, round_robin)
    for bad, n in ((round_robin, 7), (stripes, 16)):
        cut, _ = border_edges(tiles, bad)
        assert cut > 1.5 * math.sqrt(n) * (2 * side)
    # runs of the Z curve (the job's locality order) in 3 chunks are not rectangles
    rows, cols = lattice_positions(tiles)
    order = order_for_locality(
        [Window(int(r), int(c), 1, 1) for r, c in zip(rows, cols, strict=True)]
    )
    z_runs = [0] * len(tiles)
    for rank, i in enumerate(order):
        z_runs[i] = rank * 3 // len(tiles)
    assert not is_compact(tiles, z_runs)
    good = chunk_numbers(tiles, split_tiles(tiles, 3))
    assert is_compact(tiles, good)
    assert border_edges(tiles, good)[0] < border_edges(tiles, z_runs)[0]


def test_lattice_positions_follow_the_bboxes_not_the_ids():
    tiles = lattice_tiles({(0, 0), (0, 3), (2, 1), (5, 5)}, {})
    rows, cols = lattice_positions(tiles)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (0, 3), (2, 1), (5, 5)]
    # a list that never has two neighbours still finds the common step (3 and 5 steps: 1)
    sparse = lattice_tiles({(0, 0), (3, 3), (8, 5)}, {})
    rows, cols = lattice_positions(sparse)
    assert rows.tolist() == [0, 3, 8] and cols.tolist() == [0, 3, 5]


@pytest.mark.parametrize(
    ("n", "message"),
    [
        (0, "chunks must be at least 1, 0 is given"),
        (-2, "chunks must be at least 1, -2 is given"),
        (5, r"chunks must be at most the number of tiles \(4\) so that no chunk is empty, 5"),
    ],
)
def test_bad_chunk_counts_say_what_was_expected(n, message):
    tiles = lattice_tiles({(0, 0), (0, 1), (1, 0), (1, 1)}, {})
    with pytest.raises(SplitError, match=message):
        split_tiles(tiles, n)


def test_an_empty_list_and_repeated_ids_are_refused():
    with pytest.raises(SplitError, match="no tiles; expected at least one"):
        split_tiles([], 1)
    tile = lattice_tiles({(0, 0)}, {})[0]
    with pytest.raises(SplitError, match="tile id 't0x0' appears twice"):
        split_tiles([tile, tile], 1)


def test_one_chunk_is_the_whole_list_in_its_order():
    tiles = lattice_tiles({(r, c) for r in range(3) for c in range(4)}, {})[::-1]
    assert split_tiles(tiles, 1) == [tiles]


def test_summary_counts_tiles_regions_and_bounds():
    cells = {(r, c) for r in range(4) for c in range(4)}
    regions = {cell: ("west" if cell[1] < 2 else "east") for cell in cells}
    tiles = lattice_tiles(cells, regions)
    summary = summarise_chunks(split_tiles(tiles, 2))
    assert [c.n_tiles for c in summary.chunks] == [8, 8]
    assert [c.regions for c in summary.chunks] == [(("west", 8),), (("east", 8),)]
    west = summary.chunks[0]
    assert west.bounds == (X0, Y0 - 3 * STEP - SIZE, X0 + STEP + SIZE, Y0)
    assert (summary.border_pairs, summary.neighbour_pairs) == (4, 24)
    assert summary.to_json()["chunks"][1]["file"] == "chunk_0001.csv"


# -- the command ---------------------------------------------------------------------------


@pytest.fixture
def tile_list(tmp_path):
    cells = {(r, c) for r in range(10) for c in range(12)} - {(4, 4), (4, 5), (5, 4)}
    cells |= {(r, c) for r in range(20, 25) for c in range(30, 33)}  # a second, distant region
    regions = {cell: ("south" if cell[0] >= 20 else "north") for cell in cells}
    path = tmp_path / "tiles.csv"
    path.write_text(format_tile_list(lattice_tiles(cells, regions)))
    return path


def test_split_command_writes_chunks_and_summary(tile_list, tmp_path):
    out = tmp_path / "chunks"
    result = CliRunner().invoke(
        rts, ["split", "--tile-list", str(tile_list), "--chunks", "7", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    tiles = parse_tile_list(tile_list.read_text())
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"chunk_{i:04d}.csv" for i in range(7)] + ["summary.json"]
    chunks = [parse_tile_list((out / f"chunk_{i:04d}.csv").read_text()) for i in range(7)]
    assert sorted(t for c in chunks for t in c) == sorted(tiles)  # regions and floats survive
    assert [len(c) for c in chunks] == [19, 19, 19, 19, 19, 19, 18]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_tiles"] == len(tiles) == 132 and summary["n_chunks"] == 7
    assert [c["n_tiles"] for c in summary["chunks"]] == [len(c) for c in chunks]
    for entry, chunk in zip(summary["chunks"], chunks, strict=True):
        assert entry["regions"] == dict(collections.Counter(t.region for t in chunk))
        assert entry["bounds"] == [
            min(t.minx for t in chunk),
            min(t.miny for t in chunk),
            max(t.maxx for t in chunk),
            max(t.maxy for t in chunk),
        ]
    lines = result.output.splitlines()
    assert lines[0].split()[:2] == ["chunk", "tiles"]
    assert lines[1].startswith("chunk_0000.csv") and " 19 " in lines[1]
    assert "132 tiles in 7 chunks of 18-19" in result.output
    # the same command again rewrites the same files
    again = CliRunner().invoke(
        rts, ["split", "--tile-list", str(tile_list), "--chunks", "7", "--out", str(out)]
    )
    assert again.exit_code == 0, again.output
    assert [parse_tile_list((out / f"chunk_{i:04d}.csv").read_text()) for i in range(7)] == chunks


def test_split_command_refuses_stale_chunks_and_bad_counts(tile_list, tmp_path):
    out = tmp_path / "chunks"
    args = ["split", "--tile-list", str(tile_list), "--out", str(out)]
    assert CliRunner().invoke(rts, [*args, "--chunks", "4"]).exit_code == 0
    fewer = CliRunner().invoke(rts, [*args, "--chunks", "3"])
    assert fewer.exit_code == 1
    assert "holds chunk files of another split (chunk_0003.csv)" in fewer.output
    too_many = CliRunner().invoke(rts, [*args, "--chunks", "133"])
    assert too_many.exit_code == 1
    assert "chunks must be at most the number of tiles (132)" in too_many.output
