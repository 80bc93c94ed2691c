"""The basemap reader against self-checking synthetic basemaps (pixel values encode row/col)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.crs
from affine import Affine
from basemap_scenes import (
    BASE_H,
    BASE_W,
    CRS,
    NODATA,
    RES,
    X0,
    Y0,
    Scene,
    quad_pixels,
    quad_transform,
    write_quad,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tilecast.errors import InputError, StorageError
from tilecast.grid.windows import Window
from tilecast.io.basemap import Basemap, open_basemap

BLOCK = 256


@pytest.fixture(scope="session", params=["file", "vrt", "quad"])
def scene(request: pytest.FixtureRequest) -> Scene:
    return request.getfixturevalue(f"{request.param}_scene")


@pytest.fixture(scope="session")
def basemap(scene: Scene) -> Iterator[Basemap]:
    with open_basemap(str(scene.uri)) as bm:
        yield bm


@st.composite
def windows(draw: st.DrawFn) -> Window:
    """Windows inside, across and wholly outside the basemap, from 1 px to 600 px a side."""
    height = draw(st.integers(1, 600))
    width = draw(st.integers(1, 600))
    row = draw(st.integers(-height - 40, BASE_H + 40))
    col = draw(st.integers(-width - 40, BASE_W + 40))
    return Window(row, col, height, width)


# crossing a lattice corner, a gap, the hole, the border; wholly outside; the whole basemap+
SPECIAL = [
    Window(500, 500, 40, 60),
    Window(505, 1030, 20, 30),
    Window(530, 540, 500, 500),
    Window(-20, -30, 64, 64),
    Window(BASE_H - 5, BASE_W - 7, 30, 30),
    Window(-100, -100, 50, 50),
    Window(BASE_H + 10, 10, 5, 5),
    Window(-8, -8, BASE_H + 16, BASE_W + 16),
    Window(517, 0, 1, BASE_W),
]


def check(bm: Basemap, scene: Scene, window: Window) -> None:
    data, valid = bm.read(window)
    want, want_valid = scene.expected(window)
    assert data.dtype == np.uint16 and data.shape == (3, *window.shape)
    assert valid.dtype == bool and valid.shape == window.shape
    np.testing.assert_array_equal(valid, want_valid)
    np.testing.assert_array_equal(data, want)
    direct, direct_valid = bm.read_region_direct(window)
    assert direct.tobytes() == data.tobytes()
    assert (direct_valid == valid).all()


@pytest.mark.parametrize("window", SPECIAL, ids=str)
def test_special_windows_read_the_pattern(basemap: Basemap, scene: Scene, window: Window) -> None:
    check(basemap, scene, window)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(window=windows())
def test_random_windows_read_the_pattern(basemap: Basemap, scene: Scene, window: Window) -> None:
    check(basemap, scene, window)


def test_description(basemap: Basemap, scene: Scene) -> None:
    assert basemap.crs == CRS
    assert basemap.count == 3 and basemap.dtype == np.uint16 and basemap.nodata == NODATA
    g = basemap.grid
    assert (g.x0, g.y0, g.res_x, g.res_y) == (X0, Y0, RES, RES)
    h, w = (700, 900) if scene.uri.name == "basemap.tif" else (BASE_H, BASE_W)
    assert g.shape == basemap.shape == (h, w)
    assert basemap.channel_order is None  # gray/undefined colour interpretation
    assert [q.footprint for q in basemap.quads] == list(scene.footprints)


def test_crs_comparison_and_empty_window(basemap: Basemap) -> None:
    assert basemap.crs_matches("EPSG:3413")
    assert basemap.crs_matches(rasterio.crs.CRS.from_epsg(3413).to_wkt())
    assert not basemap.crs_matches("EPSG:3031")
    with pytest.raises(InputError, match="cannot parse CRS"):
        basemap.crs_matches("not a crs")
    data, valid = basemap.read(Window(5, 5, 0, 7))
    assert data.shape == (3, 0, 7) and valid.shape == (0, 7)


def test_quads_are_picked_by_footprint(quad_scene: Scene) -> None:
    with open_basemap(str(quad_scene.uri)) as bm:
        assert bm.kind == "quads" and bm.quads[0].name == "quad_00.tif"
        assert len(bm.quads) == 5  # notes.txt and mosaic.vrt are not quads
        assert [q.index for q in bm.quads_for(Window(500, 500, 40, 60))] == [0, 1, 3]
        assert bm.quads_for(Window(530, 540, 400, 400)) == []  # the hole
        assert bm.quads_for(Window(-50, -50, 50, 50)) == []
        assert len(bm.quads_for(Window(-1000, -1000, 5000, 5000))) == 5


def distinct_blocks(scene: Scene, wins: list[Window]) -> set[tuple[int, int, int]]:
    found = set()
    for w in wins:
        for i, fp in enumerate(scene.footprints):
            part = w.intersection(fp)
            if part is None:
                continue
            local = part.relative_to(fp)
            for br in range(local.row // BLOCK, (local.row_stop - 1) // BLOCK + 1):
                for bc in range(local.col // BLOCK, (local.col_stop - 1) // BLOCK + 1):
                    found.add((i, br, bc))
    return found


def random_windows(n: int, seed: int) -> list[Window]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        h, w = rng.randint(1, 400), rng.randint(1, 400)
        out.append(Window(rng.randint(-h, BASE_H), rng.randint(-w, BASE_W), h, w))
    return out


def test_each_block_is_decoded_once(quad_scene: Scene) -> None:
    wins = random_windows(60, seed=1)
    blocks = distinct_blocks(quad_scene, wins)
    with open_basemap(str(quad_scene.uri)) as bm:
        for w in wins:
            bm.read(w)
        s = bm.stats
        assert s.window_reads == 60
        assert s.blocks_decoded == s.cache_misses == len(blocks)
        assert s.pixels_decoded == len(blocks) * BLOCK * BLOCK  # 512-px quads: no clipped blocks
        assert s.blocks_evicted == 0
        for w in wins:
            bm.read(w)
        again = bm.stats
        assert again.blocks_decoded == len(blocks) and again.cache_hits > s.cache_hits
        bm.reset_stats()
        assert bm.stats.blocks_decoded == bm.stats.window_reads == 0


def test_edge_blocks_count_their_clipped_pixels(file_scene: Scene) -> None:
    with open_basemap(str(file_scene.uri)) as bm:
        bm.read(Window(0, 0, 700, 900))  # 3 x 4 blocks of a 700 x 900 raster
        assert bm.stats.blocks_decoded == 12
        assert bm.stats.pixels_decoded == 700 * 900
        bm.reset_stats()
        bm.read_region_direct(Window(600, 800, 10, 10))  # one clipped 188 x 132 block
        assert bm.stats.blocks_decoded == 1 and bm.stats.pixels_decoded == 188 * 132


def test_small_budget_evicts_and_stays_correct(quad_scene: Scene) -> None:
    block_bytes = 3 * BLOCK * BLOCK * 2 + BLOCK * BLOCK
    wins = [*random_windows(25, seed=2), *SPECIAL]
    with open_basemap(str(quad_scene.uri), block_cache_bytes=3 * block_bytes) as bm:
        for w in wins:
            data, valid = bm.read(w)
            want, want_valid = quad_scene.expected(w)
            assert data.tobytes() == want.tobytes() and (valid == want_valid).all()
            assert bm.cache_bytes <= 3 * block_bytes
        s = bm.stats
        assert s.blocks_evicted > 0
        assert s.blocks_decoded > len(distinct_blocks(quad_scene, wins))


def test_zero_budget_caches_nothing(quad_scene: Scene) -> None:
    with open_basemap(str(quad_scene.uri), block_cache_bytes=0) as bm:
        w = Window(100, 100, 50, 50)
        check(bm, quad_scene, w)
        check(bm, quad_scene, w)
        assert bm.stats.cache_hits == 0 and bm.cache_bytes == 0


@pytest.mark.parametrize("handles", ["pool", "shared"])
@pytest.mark.parametrize("budget", [1 << 30, 600_000])
def test_concurrent_reads_agree_with_serial(quad_scene: Scene, handles: str, budget: int) -> None:
    wins = random_windows(40, seed=3)
    serial = [quad_scene.expected(w) for w in wins]
    results: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    errors: list[BaseException] = []
    with open_basemap(str(quad_scene.uri), block_cache_bytes=budget, handles=handles) as bm:
        start = threading.Barrier(4)

        def work(k: int) -> None:
            try:
                order = list(range(len(wins)))
                random.Random(k).shuffle(order)
                start.wait()
                got = {i: bm.read(wins[i]) for i in order}
                results[k] = [got[i] for i in range(len(wins))]
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for k in range(4):
            for (data, valid), (want, want_valid) in zip(results[k], serial, strict=True):
                assert data.tobytes() == want.tobytes() and (valid == want_valid).all()
        if budget == 1 << 30:  # no block decoded twice, even when threads race for it
            assert bm.stats.blocks_decoded == len(distinct_blocks(quad_scene, wins))


def test_overlapping_quads_first_valid_wins(tmp_path: Path) -> None:
    a, b = Window(0, 0, 64, 64), Window(10, 40, 64, 64)
    write_quad(tmp_path / "a.tif", quad_pixels(0, a), transform=quad_transform(a), tile=None)
    write_quad(tmp_path / "b.tif", quad_pixels(1, b), transform=quad_transform(b), tile=None)
    with open_basemap(str(tmp_path)) as bm:
        whole = Window(0, 0, 74, 104)
        for data, valid in (bm.read(whole), bm.read_region_direct(whole)):
            assert data[2, 20, 50] == 1  # both valid: a (first by name) wins
            assert data[2, 20, 62] == 2  # a's NoData margin: b fills it
            assert data[2, 70, 30] == NODATA and not valid[70, 30]  # in neither
            assert data[0, 20, 62] == 20 and data[1, 20, 62] == 62


def test_internal_mask_and_alpha_mark_pixels_invalid(tmp_path: Path) -> None:
    t = Affine(RES, 0, X0, 0, -RES, Y0)
    rgb = np.full((3, 32, 32), 7, np.uint8)
    prof = dict(driver="GTiff", width=32, height=32, dtype="uint8", crs=CRS, transform=t)
    with rasterio.open(tmp_path / "masked.tif", "w", count=3, photometric="RGB", **prof) as d:
        d.write(rgb)
        mask = np.full((32, 32), 255, np.uint8)
        mask[:4] = 0
        d.write_mask(mask)
    rgba = np.concatenate([rgb, np.full((1, 32, 32), 255, np.uint8)])
    rgba[3, :, :5] = 0
    alpha = {"photometric": "RGB", "alpha": "YES"}
    with rasterio.open(tmp_path / "alpha.tif", "w", count=4, **alpha, **prof) as d:
        d.write(rgba)
    with open_basemap(str(tmp_path / "masked.tif")) as bm:
        data, valid = bm.read(Window(-1, 0, 10, 10))
        assert bm.nodata is None and bm.channel_order == "RGB"
        assert not valid[:5].any() and valid[5:].all()
        assert (data[:, :5] == 0).all() and (data[:, 5:] == 7).all()
    with open_basemap(str(tmp_path / "alpha.tif")) as bm:
        assert bm.count == 3 and bm.channel_order == "RGB"
        assert bm.band_colorinterp == ("red", "green", "blue")
        data, valid = bm.read(Window(0, 0, 32, 32))
        assert data.shape == (3, 32, 32)
        assert not valid[:, :5].any() and valid[:, 5:].all() and (data[:, :, 5:] == 7).all()


def test_cog_quads_use_their_internal_tiles(tmp_path: Path) -> None:
    fp = Window(0, 0, 600, 700)
    write_quad(
        tmp_path / "q.tif",
        quad_pixels(0, fp, margin=0),
        transform=quad_transform(fp),
        driver="COG",
        tile=512,
    )
    write_quad(
        tmp_path / "small.tif", quad_pixels(0, fp, margin=0), transform=quad_transform(fp), tile=128
    )
    write_quad(
        tmp_path / "strips.tif",
        quad_pixels(0, fp, margin=0),
        transform=quad_transform(fp),
        tile=None,
    )
    for name, block in (("q.tif", 512), ("small.tif", 256), ("strips.tif", 512)):
        with open_basemap(str(tmp_path / name)) as bm:
            info = bm.quads[0].info
            assert (info.block_height, info.block_width) == (block, block)
            data, valid = bm.read(Window(590, 690, 20, 20))
            assert valid[:10, :10].all() and not valid[10:].any() and not valid[:, 10:].any()
            assert data[0, 0, 0] == 590 and data[1, 9, 9] == 699


def test_closed_basemap_refuses_reads(file_scene: Scene) -> None:
    bm = open_basemap(str(file_scene.uri))
    bm.read(Window(0, 0, 4, 4))
    bm.close()
    bm.close()
    with pytest.raises(StorageError, match="closed"):
        bm.read(Window(0, 0, 4, 4))


def test_read_needs_a_window(file_scene: Scene) -> None:
    with open_basemap(str(file_scene.uri)) as bm, pytest.raises(InputError, match="Window"):
        bm.read((0, 0, 4, 4))  # type: ignore[arg-type]
