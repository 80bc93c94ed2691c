"""Every output pixel lands where it came from: coordinate-echo models through the whole job."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rts_support import (
    COORD_SCALE,
    coordinate_image,
    echo_bundle,
    make_config,
    tiles_for,
    write_quad_basemap,
)

from tilecast.apps.rts.job import RtsJob
from tilecast.grid import window_bounds

H, W, QUAD, TILE, STRIDE = 400, 416, 200, 64, 32


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("coords")
    image = coordinate_image(H, W)
    image[:, :9, :] = 0  # a NoData margin along the top
    image[:, 150:170, 300:330] = 0  # a NoData hole that crosses a quad edge
    basemap = write_quad_basemap(root / "basemap", image, quad=QUAD)
    bundles = {ch: echo_bundle(root / f"echo{ch}", channel=ch) for ch in (0, 1)}
    return root, image, basemap, bundles


def near_invalid(valid: np.ndarray, distance: int) -> np.ndarray:
    """Pixels within ``distance`` of an invalid pixel (or of the edge of the known area)."""
    bad = np.pad(~valid, distance, constant_values=True)
    out = np.zeros_like(valid)
    h, w = valid.shape
    for dr in range(2 * distance + 1):
        for dc in range(2 * distance + 1):
            out |= bad[dr : dr + h, dc : dc + w]
    return out


@pytest.mark.parametrize("scales", [[1.0], [0.5], [0.25], [1.0, 0.5, 0.25]])
@pytest.mark.parametrize("channel", [0, 1])
def test_output_pixels_land_where_they_came_from(scene, tmp_path, scales, channel):
    _, image, basemap, bundles = scene
    tiles = tiles_for(image, tile_size=TILE, stride=STRIDE)
    config = make_config(
        bundle=bundles[channel],
        basemap=basemap,
        out=tmp_path / "out",
        scales=scales,
        tta="standard",
    )
    result = RtsJob(config, tiles).run()
    assert result.n_committed + result.n_skipped == len(tiles)
    valid_source = (image != 0).all(axis=0)
    # bilinear down/up-sampling is exact on a linear ramp, but not within a few pixels of a
    # kink (NoData filled with 0 next to the ramp): those pixels are checked for NoData only
    margin = {1.0: 0, 0.5: 3, 0.25: 7}[min(scales)]
    trusted = valid_source & ~near_invalid(valid_source, margin) if margin else valid_source
    checked = 0
    for tile in tiles:
        path = tmp_path / "out" / "tiles" / f"{tile.tile_id}.tif"
        if not path.exists():
            continue
        with rasterio.open(path) as src:
            prob = src.read(1)
            col0 = round((src.transform.c - basemap_origin(basemap)[0]) / 3.0)
            row0 = round((basemap_origin(basemap)[1] - src.transform.f) / 3.0)
            minx, miny, maxx, maxy = src.bounds
            assert (maxx - minx, maxy - miny) == (TILE * 3.0, TILE * 3.0)
        rows, cols = np.mgrid[row0 : row0 + TILE, col0 : col0 + TILE]
        inside = (rows < H) & (cols < W)
        expected_valid = np.zeros((TILE, TILE), bool)
        expected_valid[inside] = valid_source[rows[inside], cols[inside]]
        assert np.array_equal(prob != -1.0, expected_valid), f"{tile.tile_id}: NoData mask is off"
        want = (rows if channel == 0 else cols) + 1
        ok = np.zeros((TILE, TILE), bool)
        ok[inside] = trusted[rows[inside], cols[inside]]
        np.testing.assert_allclose(
            prob[ok] * COORD_SCALE, want[ok], atol=2e-3, err_msg=tile.tile_id
        )
        checked += int(ok.sum())
    assert checked > 0.5 * H * W


def basemap_origin(basemap):
    from tilecast.io.basemap import open_basemap

    with open_basemap(str(basemap)) as bm:
        return bm.grid.x0, bm.grid.y0


def test_tile_bounds_match_the_tile_list(scene, tmp_path):
    _, image, basemap, bundles = scene
    tiles = tiles_for(image, tile_size=TILE, stride=STRIDE)[:6]
    config = make_config(bundle=bundles[0], basemap=basemap, out=tmp_path / "out")
    RtsJob(config, tiles).run()
    for tile in tiles:
        with rasterio.open(tmp_path / "out" / "tiles" / f"{tile.tile_id}.tif") as src:
            assert tuple(src.bounds) == pytest.approx(tile.bounds, abs=1e-6)
            assert src.crs.to_epsg() == 3413
            assert src.descriptions == ("probability", "winning_scale")
            assert set(np.unique(src.read(2))) <= {-1.0, 1.0, 0.5}
    assert window_bounds  # the grid helper the job uses for these bounds
