"""One region cut into row bands: every band count gives the single-process products, byte for
byte (COGs) and feature for feature (polygons).

The bands are run here one after the other, through the same task functions a cluster runs in
parallel (``merge_band``, ``assemble_layer``, ``polygonize_band``, ``join_region``,
``measure_polygons``); ``tests/rts/test_launch.py`` runs them on Ray.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from merge_support import GRID, SynthTile, make_tiles, write_tiles

from tilecast.errors import InputError
from tilecast.grid import Window
from tilecast.io import merge_scratch, mosaic_files, storage
from tilecast.io.mosaic_reader import read_grid
from tilecast.merge import (
    MOSAIC_LAYERS,
    TileRef,
    assemble_layer,
    balanced_chunks,
    band_level_window,
    band_windows,
    merge_band,
    merge_region,
    overview_shapes,
    plan_region,
    prepare_merge,
    shared_levels,
)
from tilecast.vector.job import (
    TileIndexEntry,
    join_region,
    measure_polygons,
    number_records,
    plan_region_vectors,
    polygonize_band,
    vectorize_region,
)

LAYERS = ("prob", "binary", "scale")

# -- the arithmetic -------------------------------------------------------------------------


def test_bands_split_block_rows_evenly_and_never_outnumber_them() -> None:
    assert band_windows((100, 30), block=16, bands=3) == (
        Window(0, 0, 48, 30),  # 7 block rows: 3 + 2 + 2, the last one clipped to the raster
        Window(48, 0, 32, 30),
        Window(80, 0, 20, 30),
    )
    assert band_windows((100, 30), block=16, bands=50) == tuple(
        Window(r, 0, min(16, 100 - r), 30) for r in range(0, 100, 16)
    )
    assert band_windows((10, 30), block=16, bands=4) == (Window(0, 0, 10, 30),)  # one block
    with pytest.raises(InputError, match="bands must be at least 1, 0 is given"):
        band_windows((10, 30), block=16, bands=0)


@settings(max_examples=80, deadline=None)
@given(
    height=st.integers(1, 3000),
    width=st.integers(1, 40),
    block=st.sampled_from([16, 32, 48, 80, 1024]),
    bands=st.integers(1, 12),
)
def test_band_levels_tile_every_shared_overview_level_exactly(height, width, block, bands):
    windows = band_windows((height, width), block=block, bands=bands)
    assert windows[0].row == 0 and windows[-1].row_stop == height
    assert all(a.row_stop == b.row for a, b in itertools.pairwise(windows))
    assert all(w.row % block == 0 and w.width == width for w in windows)
    shapes = overview_shapes((height, width), blocksize=4)  # many levels from small rasters
    k = shared_levels(windows, len(shapes))
    for level in range(1, k + 1):
        parts = [band_level_window(w, level, shapes[level - 1]) for w in windows]
        assert parts[0].row == 0 and parts[-1].row_stop == shapes[level - 1][0]
        assert all(a.row_stop == b.row for a, b in itertools.pairwise(parts))
        # each part is the halving of the same band's part one level up
        above = (
            windows
            if level == 1
            else [band_level_window(w, level - 1, shapes[level - 2]) for w in windows]
        )
        assert [p.height for p in parts] == [-(-a.height // 2) for a in above]
    if k < len(shapes):  # the next level would cut a 2 x 2 group between two bands
        assert any(w.row % (2 << k) for w in windows)


def test_a_band_off_the_level_lattice_is_refused() -> None:
    with pytest.raises(InputError, match="starts on row 48, which overview level 5 cannot"):
        band_level_window(Window(48, 0, 16, 8), 5, (4, 1))


def test_balanced_chunks_are_runs_of_about_equal_cost() -> None:
    costs = [5, 1, 9, 3, 3, 7]
    chunks = balanced_chunks(costs, 3)
    assert chunks == [[0, 1], [2, 3], [4, 5]]  # 6 | 12 | 10: each within 9 of 28 / 3
    assert balanced_chunks([4], 3) == [[], [0], []]
    assert balanced_chunks([], 2) == [[], []]
    assert balanced_chunks([0, 0, 0, 0], 2) == [[0, 1], [2, 3]]
    with pytest.raises(InputError, match="costs must be >= 0, -1 is given at 1"):
        balanced_chunks([1, -1], 2)


@settings(max_examples=200, deadline=None)
@given(
    costs=st.lists(st.integers(min_value=0, max_value=10**6), max_size=60),
    n=st.integers(min_value=1, max_value=9),
)
def test_balanced_chunks_keep_order_and_balance(costs: list[int], n: int) -> None:
    chunks = balanced_chunks(costs, n)
    assert len(chunks) == n
    assert [i for chunk in chunks for i in chunk] == list(range(len(costs)))  # runs, in order
    dearest = max(costs, default=0)
    for chunk in chunks:
        assert abs(sum(costs[i] for i in chunk) - sum(costs) / n) <= dearest


# -- the merge ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[TileRef], Path]:
    """A 224 x 256 px region of 42 overlapping tiles (block 48: 5 block rows)."""
    root = tmp_path_factory.mktemp("bands")
    refs = write_tiles(root / "tiles", make_tiles(6, 7, seed=5))
    return refs, root


def merge(refs, out: Path, **options):
    out.mkdir(parents=True, exist_ok=True)
    result = merge_region(
        plan_region(refs, grid=GRID, name="r"),
        out_prob=str(out / "region_r_prob.tif"),
        out_binary=str(out / "region_r_binary.tif"),
        out_scale=str(out / "region_r_scale.tif"),
        threshold=0.5,
        **options,
    )
    return result, {name: (out / f"region_r_{name}.tif").read_bytes() for name in LAYERS}


@pytest.fixture(scope="module")
def single(region, tmp_path_factory) -> dict[str, bytes]:
    refs, _ = region
    result, files = merge(refs, tmp_path_factory.mktemp("single"), strategy="streaming", block=48)
    assert result.n_bands == 1
    return files


@pytest.mark.parametrize(
    ("strategy", "bands", "made"),
    [
        ("streaming", 2, 2),
        ("streaming", 3, 3),
        ("memory", 4, 4),
        ("streaming", 9, 5),  # more bands than the 5 block rows: one band per block row
        ("memory", 9, 5),
    ],
)
def test_any_band_count_writes_the_single_process_bytes(
    region, single, tmp_path, strategy, bands, made
) -> None:
    refs, _ = region
    result, files = merge(refs, tmp_path, strategy=strategy, block=48, bands=bands)
    assert result.n_bands == made
    assert files == single
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"region_r_{n}.tif" for n in LAYERS)


def test_a_region_of_one_block_is_one_band(region, tmp_path) -> None:
    refs, _ = region
    one, one_files = merge(refs, tmp_path / "one", strategy="streaming", block=512)
    many, many_files = merge(refs, tmp_path / "many", strategy="streaming", block=512, bands=6)
    assert one.n_blocks == many.n_blocks == 1 and many.n_bands == 1
    assert one_files == many_files


def test_bands_as_separate_tasks_in_any_order(region, single, tmp_path) -> None:
    """The cluster's shape: band tasks in any order (one run twice, as a retry would), then
    one task per layer, each with nothing but the pickled job."""
    import pickle

    refs, _ = region
    out = tmp_path / "out"
    with merge_scratch.shared_scratch(out / "region_r_prob.tif") as scratch:
        job = prepare_merge(
            plan_region(refs, grid=GRID, name="r"),
            out_prob=str(out / "region_r_prob.tif"),
            out_binary=str(out / "region_r_binary.tif"),
            out_scale=str(out / "region_r_scale.tif"),
            threshold=0.5,
            scratch=scratch,
            strategy="streaming",
            block=48,
            bands=3,
        )
        job = pickle.loads(pickle.dumps(job))
        for index in (2, 0, 1, 0):
            assert merge_band(job, index) == job.bands[index]
        digests = {layer: assemble_layer(job, layer) for layer in reversed(MOSAIC_LAYERS)}
    for name in LAYERS:
        assert (out / f"region_r_{name}.tif").read_bytes() == single[name]
        assert digests[name] == mosaic_files.sha256_file(out / f"region_r_{name}.tif")
    assert sorted(p.name for p in out.iterdir()) == sorted(f"region_r_{n}.tif" for n in LAYERS)


def test_assembly_before_every_band_is_merged_names_the_missing_files(region, tmp_path) -> None:
    refs, _ = region
    out = tmp_path / "out"
    with merge_scratch.shared_scratch(out / "prob.tif") as scratch:
        job = prepare_merge(
            plan_region(refs, grid=GRID, name="r"),
            out_prob=str(out / "prob.tif"),
            out_binary=str(out / "binary.tif"),
            out_scale=str(out / "scale.tif"),
            threshold=0.5,
            scratch=scratch,
            block=48,
            bands=2,
        )
        merge_band(job, 0)
        with pytest.raises(OSError, match=r"expected band files are missing: \['band00001"):
            assemble_layer(job, "prob")
    assert sorted(p.name for p in out.iterdir()) == []  # scratch gone, no COG, no temporary


def test_a_failing_band_leaves_no_scratch_and_no_output(region, tmp_path) -> None:
    refs, _ = region
    # the last tile's file stands in for the first: the band that reads it refuses it
    broken = [TileRef(refs[-1].tile_id, refs[0].uri, refs[-1].window), *refs[:-1]]
    with pytest.raises(InputError, match="tile file does not match the merge plan"):
        merge(broken, tmp_path, strategy="streaming", block=48, bands=3)
    assert [p.name for p in tmp_path.iterdir()] == []


def test_levels_the_bands_cannot_build_are_built_at_assembly(region, single, tmp_path) -> None:
    """write_cog from full-resolution parts alone (every level built there) gives the bytes
    of the bands' own levels."""
    refs, _ = region
    plan = plan_region(refs, grid=GRID, name="r")
    out = tmp_path / "out"
    with merge_scratch.shared_scratch(out / "x.tif") as scratch:
        job = prepare_merge(
            plan,
            out_prob=str(out / "unused_prob.tif"),
            out_binary=str(out / "unused_binary.tif"),
            out_scale=str(out / "unused_scale.tif"),
            threshold=0.5,
            scratch=scratch,
            block=48,
            bands=3,
        )
        for index in range(len(job.bands)):
            merge_band(job, index)
        workdir = Path(scratch.uri)
        for name in LAYERS:
            parts = [
                mosaic_files.Part(window, workdir / files[0][1])
                for window, files in (
                    (job.bands[i], job.band_files(i, name)) for i in range(len(job.bands))
                )
            ]
            mosaic_files.write_cog(
                str(out / f"{name}.tif"),
                name=name,
                grid=plan.grid,
                spec=MOSAIC_LAYERS[name],
                levels=[parts],
                level_shapes=job.level_shapes,
                tags=job.tags,
                workdir=workdir,
            )
            assert (out / f"{name}.tif").read_bytes() == single[name], name


def test_banded_merge_to_an_object_store(region, single, s3_bucket) -> None:
    """On a remote output the bands' files go through a hidden prefix beside the outputs (a
    cluster's tasks share no local disk); it is gone afterwards."""
    refs, _ = region
    out = f"{s3_bucket}/bands-merged"
    paths = {name: f"{out}/region_r_{name}.tif" for name in LAYERS}
    with merge_scratch.shared_scratch(paths["prob"]) as scratch:
        assert scratch.uri.startswith(f"{out}/.merge-scratch-")
        job = prepare_merge(
            plan_region(refs, grid=GRID, name="r"),
            out_prob=paths["prob"],
            out_binary=paths["binary"],
            out_scale=paths["scale"],
            threshold=0.5,
            scratch=scratch,
            strategy="memory",
            block=48,
            bands=2,
        )
        for index in range(len(job.bands)):
            merge_band(job, index)
        assert any(n.startswith("band00001.prob") for n in storage.list_files(scratch.uri))
        for layer in LAYERS:
            assemble_layer(job, layer)
    for name in LAYERS:
        assert storage.read_bytes(paths[name]) == single[name]
    assert storage.list_files(out) == sorted(f"region_r_{n}.tif" for n in LAYERS)
    # a killed driver's prefix is what remove_leftovers takes away
    storage.write_bytes(f"{out}/.merge-scratch-killed/band00000.prob.tif", b"x")
    assert merge_scratch.remove_leftovers(out) == 1
    assert storage.list_files(out) == sorted(f"region_r_{n}.tif" for n in LAYERS)


# -- the polygons ---------------------------------------------------------------------------


def features(records) -> list[tuple]:
    return [
        (shapely.to_wkb(r.geometry), *(v for k, v in vars(r).items() if k != "geometry"))
        for r in records
    ]


@pytest.fixture(scope="module")
def mosaics(tmp_path_factory) -> tuple[dict[str, str], list[TileIndexEntry]]:
    """Mosaics of tiles with 8 px cells of a few probability levels: tens of objects of
    every shape, many cut by 32 px block lines (pixel speckle would cost minutes to measure)."""
    root = tmp_path_factory.mktemp("mosaics")
    rng = np.random.default_rng(8)
    tiles = []
    for tile in make_tiles(6, 7, seed=9):
        cells = rng.choice([0.0, 0.25, 0.5, 0.75], size=(8, 8), p=[0.75, 0.1, 0.08, 0.07])
        prob = np.kron(cells, np.ones((8, 8))).astype(np.float32)
        prob = np.where(tile.data[0] == -1, np.float32(-1), prob)  # keep the NoData holes
        data = np.stack([prob, tile.data[1]])
        tiles.append(SynthTile(tile.tile_id, tile.window, data))
    refs = write_tiles(root / "tiles", tiles)
    merge(refs, root, strategy="streaming", block=48)
    uris = {name: str(root / f"region_r_{name}.tif") for name in LAYERS}
    entries = [TileIndexEntry(r.tile_id, read_grid(r.uri).bounds, r.uri, "r") for r in refs]
    return uris, entries


def vectorize(mosaics, **options):
    uris, tiles = mosaics
    return vectorize_region(
        uris["binary"],
        uris["prob"],
        uris["scale"],
        tiles=tiles,
        threshold=0.5,
        region="r",
        **options,
    )


@pytest.fixture(scope="module")
def single_features(mosaics) -> dict[int, list[tuple]]:
    """The single-process features with each block size the tests use."""
    return {block: features(vectorize(mosaics, block=block)) for block in (32, 48)}


@pytest.mark.parametrize(("block", "bands"), [(32, 2), (32, 3), (48, 5), (32, 40)])
def test_polygons_in_bands_equal_the_single_process(mosaics, single_features, block, bands) -> None:
    got = features(vectorize(mosaics, block=block, bands=bands))
    assert len(got) > 20 and got == single_features[block]


def test_polygon_tasks_join_objects_across_band_edges(mosaics, single_features) -> None:
    """Band tasks, one join, measuring in uneven chunks: the single process's features, and
    the test means it: objects do cross the band edges."""
    import pickle

    uris, tiles = mosaics
    want = single_features[32]
    plan = plan_region_vectors(
        uris["binary"], uris["prob"], uris["scale"], tiles=tiles, threshold=0.5,
        block=32, bands=3, region="r",
    )  # fmt: skip
    assert len(plan.bands) == 3
    pieces = [pickle.loads(pickle.dumps(polygonize_band(plan, i))) for i in range(3)]
    chunks = join_region(plan, pieces, chunks=4)
    records = [r for chunk in reversed(chunks) for r in measure_polygons(plan, chunk)]
    assert features(number_records(records)) == want
    edges = [plan.grid.y0 - band.row * plan.grid.res_y for band in plan.bands[1:]]
    crossing = [
        g for chunk in chunks for g in chunk if any(g.bounds[1] < y < g.bounds[3] for y in edges)
    ]
    assert crossing, "no object crosses a band edge: the join is untested"
    with rasterio.open(uris["binary"]) as src:
        assert (src.read(1) == 1).sum() == sum(
            round(g.area / plan.grid.res_x**2) for chunk in chunks for g in chunk
        )


def test_band_pieces_out_of_order_are_refused(mosaics) -> None:
    uris, tiles = mosaics
    plan = plan_region_vectors(
        uris["binary"], uris["prob"], uris["scale"], tiles=tiles, threshold=0.5,
        block=32, bands=2, region="r",
    )  # fmt: skip
    first, second = (polygonize_band(plan, i) for i in range(2))
    with pytest.raises(InputError, match=r"expected block \(0, 0\), got \(4, 0\)"):
        join_region(plan, [second, first])
    with pytest.raises(InputError, match=r"the blocks ended before block \(4, 0\)"):
        join_region(plan, [first])


def test_measuring_chunks_are_balanced_by_pixels(mosaics) -> None:
    uris, tiles = mosaics
    plan = plan_region_vectors(
        uris["binary"], uris["prob"], uris["scale"], tiles=tiles, threshold=0.5, block=64
    )
    chunks = join_region(plan, [polygonize_band(plan, 0)], chunks=2)
    from tilecast.vector.attributes import polygon_window

    loads = [sum(polygon_window(plan.grid, g).area for g in chunk) for chunk in chunks]
    biggest = max(polygon_window(plan.grid, g).area for chunk in chunks for g in chunk)
    assert abs(loads[0] - loads[1]) <= biggest
    assert np.sum([len(c) for c in chunks]) > 10
