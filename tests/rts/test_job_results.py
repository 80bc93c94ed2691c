"""The job's numbers: independent of batching and order, equal to the reference path, QC'd."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.windows import Window as RioWindow
from rts_support import make_config, smooth_rgb, tile_hashes, tiles_for, write_quad_basemap

from tilecast.apps.rts.job import RtsJob
from tilecast.bundle import load_bundle
from tilecast.bundle.runtime import infer
from tilecast.errors import InputError

H, W = 300, 330


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("rgb")
    image = smooth_rgb(7, H, W)
    image[:, 250:, :120] = 0  # NoData corner
    basemap = write_quad_basemap(root / "basemap", image, quad=160)
    return root, image, basemap


def run(config, tiles):
    return RtsJob(config, tiles).run()


def test_results_do_not_depend_on_batch_size_workers_or_tile_order(scene, make_bundle, tmp_path):
    _, image, basemap = scene
    bundle = make_bundle("export")
    tiles = tiles_for(image, tile_size=64, stride=32)
    reference = None
    settings = [
        (1, 1, 1, "per_tile"),
        (5, 3, -1, "per_tile"),
        (16, 2, 7, "per_tile"),
        (4, 2, -1, "batched"),  # the GPU's shape, run on the CPU: the same bytes
    ]
    for i, (batch, workers, order, shape) in enumerate(settings):
        shuffled = (
            tiles[::order]
            if order in (1, -1)
            else [tiles[(j * order) % len(tiles)] for j in range(len(tiles))]
        )
        assert sorted(t.tile_id for t in shuffled) == sorted(t.tile_id for t in tiles)
        out = tmp_path / f"run{i}"
        result = run(
            make_config(
                bundle=bundle,
                basemap=basemap,
                out=out,
                batch_size=batch,
                workers=workers,
                pipeline=shape,
            ),
            shuffled,
        )
        hashes = tile_hashes(out)
        assert len(hashes) > 0.8 * len(tiles)
        if reference is None:
            reference = hashes
        else:
            assert hashes == reference, (
                f"batch {batch}, workers {workers}, {shape} pipeline changed the output"
            )
        # where the time went, per stage, in the run log and the result
        logged = json.loads((out / "logs" / "inference_log.json").read_text())["stage_seconds"]
        assert {"read", "prepare", "device", "post", "encode", "write"} <= set(logged)
        assert logged["encode"]["n"] == result.n_committed and logged["read"]["cpu_s"] > 0
        assert result.pipeline_cpu_s > 0 and result.stage_seconds["device"].n > 0


def test_scale_half_minimal_tta_equals_the_reference_path(scene, make_bundle, tmp_path):
    """One tile at scale 0.5: read the 128 px context directly, run `infer` on it resized."""
    _, image, basemap = scene
    bundle_dir = make_bundle("export")
    tiles = tiles_for(image, tile_size=64, stride=32)
    tile = next(t for t in tiles if t.tile_id == "r0000003_c0000004")
    run(make_config(bundle=bundle_dir, basemap=basemap, out=tmp_path / "out", scales=[0.5]), [tile])
    row0, col0 = 3 * 32, 4 * 32
    context = np.zeros((3, 128, 128), np.uint8)  # outside the basemap: NoData
    for quad in sorted(basemap.glob("*.tif")):
        with rasterio.open(quad) as src:
            qr = round((src.transform.f - (-300_000.0)) / -3.0)
            qc = round((src.transform.c - (-2_400_000.0)) / 3.0)
            data = src.read(
                window=RioWindow(col0 - 32 - qc, row0 - 32 - qr, 128, 128),
                boundless=True,
                fill_value=0,
            )
            context = np.where(context == 0, data, context)
    b = load_bundle(bundle_dir)
    views = []
    for flip in (False, True):
        src = context[:, :, ::-1].copy() if flip else context
        p = infer(
            b.contract, b.stats, b.model, src, channel_order="RGB", nodata=0, resize_to=(64, 64)
        ).probabilities[0]
        views.append(p[:, ::-1] if flip else p)
    mean = (views[0] + views[1]) / 2
    up = F.interpolate(
        torch.from_numpy(mean.copy())[None, None],
        size=(128, 128),
        mode="bilinear",
        align_corners=False,
    )
    expected = up[0, 0, 32:96, 32:96].numpy()
    with rasterio.open(tmp_path / "out" / "tiles" / f"{tile.tile_id}.tif") as src:
        got = src.read(1)
    valid = got != -1
    assert valid.sum() > 1000
    np.testing.assert_allclose(got[valid], expected[valid], atol=1e-5)


def test_all_nodata_tiles_are_skipped_counted_and_logged(scene, make_bundle, tmp_path, caplog):
    _, image, basemap = scene
    tiles = tiles_for(image, tile_size=64, stride=32)
    inside_hole = [t for t in tiles if t.tile_id in ("r0000008_c0000000", "r0000008_c0000001")]
    assert len(inside_hole) == 2
    result = run(
        make_config(bundle=make_bundle("export"), basemap=basemap, out=tmp_path / "out"),
        inside_hole,
    )
    assert result.n_skipped == 2 and result.n_committed == 0
    log = json.loads((tmp_path / "out" / "logs" / "inference_log.json").read_text())
    assert log["skipped_reasons"] == {"all NoData": 2}
    assert log["status"] == "complete"
    assert (
        not list((tmp_path / "out" / "tiles").glob("*.tif"))
        if (tmp_path / "out" / "tiles").exists()
        else True
    )
    assert "skipped: all NoData" in caplog.text


def test_predictions_outside_unit_range_are_clipped_and_logged(tmp_path, caplog):
    from rts_support import echo_bundle

    coords = np.stack([np.full((H, W), 5000), np.full((H, W), 100), np.ones((H, W))]).astype(
        np.uint16
    )
    basemap = write_quad_basemap(tmp_path / "bm", coords, quad=160)
    bundle = echo_bundle(tmp_path / "echo", channel=0)  # outputs 5000 / 4096 > 1
    tiles = tiles_for(coords, tile_size=64, stride=32)[:2]
    run(make_config(bundle=bundle, basemap=basemap, out=tmp_path / "out", scales=[1.0]), tiles)
    log = json.loads((tmp_path / "out" / "logs" / "inference_log.json").read_text())
    assert log["qc_errors"]["clipped_predictions"] == 2 * 64 * 64
    with rasterio.open(tmp_path / "out" / "tiles" / f"{tiles[0].tile_id}.tif") as src:
        assert src.read(1).max() == 1.0
    assert "outside [0, 1] clipped" in caplog.text


def test_tile_list_in_another_crs_stops_the_run(scene, make_bundle, tmp_path):
    _, image, basemap = scene
    config = make_config(bundle=make_bundle("export"), basemap=basemap, out=tmp_path / "out")
    config = config.model_copy(
        update={"input": config.input.model_copy(update={"tile_list_crs": "EPSG:3995"})}
    )
    with pytest.raises(InputError, match="EPSG:3995"):
        run(config, tiles_for(image, tile_size=64, stride=32))


def test_off_grid_and_wrong_size_tiles_stop_the_run_before_any_read(scene, make_bundle, tmp_path):
    from tilecast.grid import Tile

    _, image, basemap = scene
    good = tiles_for(image, tile_size=64, stride=32)[0]
    off = Tile(
        tile_id="off", minx=good.minx + 1.5, miny=good.miny, maxx=good.maxx + 1.5, maxy=good.maxy
    )
    big = Tile(tile_id="big", minx=good.minx, miny=good.miny - 3.0, maxx=good.maxx, maxy=good.maxy)
    config = make_config(bundle=make_bundle("export"), basemap=basemap, out=tmp_path / "out")
    with pytest.raises(InputError) as err:
        run(config, [good, off, big])
    assert "off" in str(err.value) and "px off the basemap pixel grid" in str(err.value)
    assert "big: 64 x 65 px (width x height)" in str(err.value)
    assert not (tmp_path / "out" / "tiles").exists()


def test_a_restart_with_other_settings_is_refused(scene, make_bundle, tmp_path):
    _, image, basemap = scene
    tiles = tiles_for(image, tile_size=64, stride=32)[:3]
    run(make_config(bundle=make_bundle("export"), basemap=basemap, out=tmp_path / "out"), tiles)
    with pytest.raises(InputError, match="another tile list or settings"):
        run(
            make_config(
                bundle=make_bundle("export"), basemap=basemap, out=tmp_path / "out", tta="none"
            ),
            tiles,
        )
    again = run(
        make_config(bundle=make_bundle("export"), basemap=basemap, out=tmp_path / "out"), tiles
    )
    assert again.n_already_done == 3 and again.n_committed == 0
