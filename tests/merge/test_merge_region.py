"""Planning and merging one region: both strategies against an oracle and against each other."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from merge_support import GRID, TILE, make_tiles, oracle, write_tiles

from tilecast.errors import InputError, UnknownNameError
from tilecast.grid import Window
from tilecast.merge import (
    TileRef,
    block_index,
    block_windows,
    choose_strategy,
    merge_region,
    plan_region,
)

# a 5 x 6 lattice with the four tiles around cell (2, 3) left out: a 32 x 32 px hole no tile saw
OMIT = [(1, 2), (1, 3), (2, 2), (2, 3)]


def read(path: str) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def run(plan, out: Path, **kwargs):
    out.mkdir(parents=True, exist_ok=True)
    result = merge_region(
        plan,
        out_prob=str(out / "prob.tif"),
        out_binary=str(out / "binary.tif"),
        out_scale=str(out / "scale.tif"),
        threshold=kwargs.pop("threshold", 0.5),
        **kwargs,
    )
    return result, {name: read(str(out / f"{name}.tif")) for name in ("prob", "binary", "scale")}


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory):
    tiles_dir = tmp_path_factory.mktemp("tiles")
    tiles = make_tiles(5, 6, seed=7, omit=OMIT)
    refs = write_tiles(tiles_dir, tiles)
    return tiles, refs


def test_plan_is_the_bounding_window_on_the_common_grid(region) -> None:
    _tiles, refs = region
    plan = plan_region(refs, grid=GRID, name="north")
    assert plan.window == Window(10, 20, 4 * 32 + TILE, 5 * 32 + TILE)
    assert plan.grid.x0 == GRID.x0 + 20 * 3 and plan.grid.y0 == GRID.y0 - 10 * 3
    assert plan.shape == (192, 224) and plan.grid.crs == "EPSG:3413"
    assert plan.local_window(refs[0]) == Window(0, 0, TILE, TILE)


def test_plan_refuses_empty_and_duplicate_tiles(region) -> None:
    _, refs = region
    with pytest.raises(InputError, match="region r: no tiles to merge"):
        plan_region([], grid=GRID, name="r")
    with pytest.raises(InputError, match=f"tile {refs[0].tile_id} is listed twice"):
        plan_region([refs[0], refs[1], refs[0]], grid=GRID, name="r")


@settings(max_examples=60, deadline=None)
@given(
    windows=st.lists(
        st.builds(
            Window,
            st.integers(-50, 50),
            st.integers(-50, 50),
            st.integers(1, 70),
            st.integers(1, 70),
        ),
        min_size=1,
        max_size=8,
    ),
    block=st.sampled_from([16, 32, 48, 64]),
)
def test_block_index_lists_exactly_the_intersecting_tiles(windows, block) -> None:
    refs = [TileRef(f"t{k}", f"t{k}.tif", w) for k, w in enumerate(windows)]
    plan = plan_region(refs, grid=GRID)
    index = block_index(plan, block)
    blocks = block_windows(plan.shape, block)
    assert sum(b.area for b in blocks) == plan.shape[0] * plan.shape[1]
    for b in blocks:
        want = [k for k, r in enumerate(refs) if plan.local_window(r).intersects(b)]
        assert index.get((b.row // block, b.col // block), []) == want


@pytest.mark.parametrize("block", [48, 64, 1024])
def test_both_strategies_match_the_oracle_and_each_other(region, tmp_path, block) -> None:
    tiles, refs = region
    plan = plan_region(refs, grid=GRID)
    want_prob, want_scale = oracle(tiles, plan.window)
    mem, mem_out = run(plan, tmp_path / "memory", strategy="memory", block=block)
    stream, stream_out = run(plan, tmp_path / "streaming", strategy="streaming", block=block)
    assert (mem.strategy, stream.strategy) == ("memory", "streaming")
    for name in ("prob", "binary", "scale"):
        np.testing.assert_array_equal(mem_out[name], stream_out[name], err_msg=name)
    np.testing.assert_array_equal(mem_out["prob"], want_prob)
    np.testing.assert_array_equal(mem_out["scale"], want_scale)
    assert mem.sha256 == stream.sha256  # the same blocks into the same writer: same bytes
    # the hole between the omitted tiles (cell rows 64..96, cols 96..128 of the region) is NoData
    assert (mem_out["prob"][64:96, 96:128] == -1).all()
    assert (mem_out["binary"][64:96, 96:128] == 255).all()
    assert stream.n_blocks == len(block_windows(plan.shape, block))


def test_shuffled_tile_lists_give_identical_files(region, tmp_path) -> None:
    _tiles, refs = region
    shuffled = list(refs)
    random.Random(3).shuffle(shuffled)
    a, _ = run(plan_region(refs, grid=GRID), tmp_path / "a", strategy="streaming", block=48)
    b, _ = run(plan_region(shuffled, grid=GRID), tmp_path / "b", strategy="streaming", block=48)
    c, _ = run(plan_region(shuffled[::-1], grid=GRID), tmp_path / "c", strategy="memory")
    assert a.sha256 == b.sha256 == c.sha256


def test_memory_mapped_arrays_give_the_same_mosaic(region, tmp_path) -> None:
    _, refs = region
    plan = plan_region(refs, grid=GRID)
    ram, _ = run(plan, tmp_path / "ram", strategy="memory")
    mapped, _ = run(plan, tmp_path / "mapped", strategy="memory", memory_budget_bytes=1000)
    assert not ram.memmap and mapped.memmap
    assert ram.sha256 == mapped.sha256
    assert not any(p.name.startswith(".merge-scratch") for p in (tmp_path / "mapped").iterdir())


def test_auto_picks_memory_while_two_arrays_fit_half_the_budget(region) -> None:
    _, refs = region
    plan = plan_region(refs, grid=GRID)
    need = 2 * 4 * plan.shape[0] * plan.shape[1]
    assert choose_strategy(plan, "auto", 2 * need) == "memory"
    assert choose_strategy(plan, "auto", 2 * need - 2) == "streaming"
    assert choose_strategy(plan, "streaming", 1 << 40) == "streaming"
    with pytest.raises(
        UnknownNameError, match="unknown merge strategy 'fast'; known: auto, memory"
    ):
        choose_strategy(plan, "fast", 1)  # type: ignore[arg-type]


def test_streaming_estimate_does_not_grow_with_the_region() -> None:
    from tilecast.merge.region import _peak_estimate

    def lattice_plan(n: int):
        refs = [
            TileRef(f"t{i}_{j}", "unused.tif", Window(i * 256, j * 256, 512, 512))
            for i in range(n)
            for j in range(n)
        ]
        return plan_region(refs, grid=GRID)

    small, big = lattice_plan(7), lattice_plan(31)  # 2048 and 8192 px a side
    assert _peak_estimate(small, "streaming", 1024, 0) == _peak_estimate(big, "streaming", 1024, 0)
    assert _peak_estimate(big, "memory", 1024, 0) > 10 * _peak_estimate(small, "memory", 1024, 0)


def test_block_must_be_a_multiple_of_16(region, tmp_path) -> None:
    _, refs = region
    with pytest.raises(InputError, match="block must be a positive multiple of 16, 40 is given"):
        run(plan_region(refs, grid=GRID), tmp_path, block=40)


def test_a_tile_file_off_its_planned_window_is_refused(region, tmp_path) -> None:
    _, refs = region
    moved = [TileRef(refs[0].tile_id, refs[0].uri, refs[0].window.translate(1, 0)), *refs[1:]]
    with pytest.raises(
        InputError,
        match=rf"{refs[0].tile_id}.tif: tile file does not match the merge plan: transform",
    ):
        run(plan_region(moved, grid=GRID), tmp_path, strategy="streaming", block=48)
    assert not (tmp_path / "prob.tif").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporaries, no scratch left


def test_a_failed_merge_leaves_earlier_outputs_untouched(region, tmp_path) -> None:
    _tiles, refs = region
    plan = plan_region(refs, grid=GRID)
    _first, _ = run(plan, tmp_path, strategy="streaming", block=48)
    before = (tmp_path / "prob.tif").read_bytes()
    broken = [TileRef(refs[1].tile_id, refs[0].uri, refs[1].window), *refs[2:]]
    with pytest.raises(InputError):
        run(plan_region(broken, grid=GRID), tmp_path, strategy="memory")
    assert (tmp_path / "prob.tif").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binary.tif", "prob.tif", "scale.tif"]


def test_streaming_numpy_peak_does_not_grow_with_the_region(tmp_path) -> None:
    """tracemalloc sees numpy's allocations: the streaming merge's peak is the same for a
    region and one 4 times its area (GDAL's own memory is measured by bench/merge_memory.py)."""
    import tracemalloc

    from merge_support import SynthTile

    rng = np.random.default_rng(0)
    peaks = []
    for n in (9, 18):  # 1280 and 2432 px a side, 256 px tiles every 128 px
        tiles = []
        for i in range(n):
            for j in range(n):
                prob = np.kron(rng.choice([0.0, 0.25, 1.0], size=(8, 8)), np.ones((32, 32)))
                data = np.stack([prob, np.where(prob > 0.5, 0.5, 1.0)]).astype(np.float32)
                tiles.append(
                    SynthTile(f"b{i:02d}{j:02d}", Window(i * 128, j * 128, 256, 256), data)
                )
        plan = plan_region(write_tiles(tmp_path / f"tiles{n}", tiles), grid=GRID)
        out = tmp_path / f"out{n}"
        tracemalloc.start()
        try:
            merge_region(
                plan,
                out_prob=str(out / "prob.tif"),
                out_binary=str(out / "binary.tif"),
                out_scale=str(out / "scale.tif"),
                threshold=0.5,
                strategy="streaming",
                block=256,
            )
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    small, large = peaks
    assert large <= small * 1.1, peaks
    assert large < 24 << 20, peaks  # block buffers and one overview window, not the region
