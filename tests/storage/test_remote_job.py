"""The whole job (tiles, region COGs, GeoPackage, report) with every input and output on a store.

The same small job runs once on local paths and once per store (moto's S3, the GCS emulator)
through ``tilecast rts run`` with the config, the tile list, the bundle and the basemap all on
the store; the outputs are read back through their URLs the way a user would (rasterio,
rio-cogeo, geopandas) and must equal the local run's: tile files byte for byte, mosaics pixel
for pixel, polygons geometry and attributes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from click.testing import CliRunner
from geopandas.testing import assert_geodataframe_equal
from rio_cogeo.cogeo import cog_validate

from rts.rts_support import smooth_rgb, tiles_for, write_quad_basemap
from tilecast.apps.rts.tilelist import format_tile_list
from tilecast.cli.rts import run as rts_run
from tilecast.errors import StorageError
from tilecast.grid import Tile
from tilecast.io import storage, vsi
from tilecast.io.vector import read_polygons

pytestmark = pytest.mark.slow

MOSAICS = [f"region_{r}_{k}.tif" for r in ("east", "west") for k in ("binary", "prob", "scale")]


def upload_tree(local: Path, uri: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            storage.write_bytes(
                storage.join(uri, path.relative_to(local).as_posix()), path.read_bytes()
            )


def job_config(*, bundle: str, basemap: str, out: str) -> str:
    return yaml.safe_dump(
        {
            "model": {"bundle": bundle, "device": "cpu", "precision": "fp32"},
            "input": {"basemap": basemap, "basemap_version": "test"},
            "output": {"path": out},
            "inference": {
                "tile_size": 64,
                "scales": [1.0, 0.5],
                "tta": "minimal",
                "batch_size": 4,
                "workers": 2,
                "threshold": 0.5,
            },
            "products": {"min_area_m2": 150.0},
        }
    )


def run_cli(config: str, tile_list: str) -> str:
    result = CliRunner().invoke(
        rts_run, ["--config", config, "--tile-list", tile_list], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, make_bundle) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("remote-job")
    image = smooth_rgb(7, 128, 192)
    tiles = [
        Tile(t.tile_id, t.minx, t.miny, t.maxx, t.maxy, "west" if t.minx < -2_399_750 else "east")
        for t in tiles_for(image, tile_size=64, stride=32)
    ]
    (root / "tiles.csv").write_text(format_tile_list(tiles))
    return {
        "root": root,
        "bundle": make_bundle("export"),
        "basemap": write_quad_basemap(root / "basemap", image, quad=128),
        "tiles": root / "tiles.csv",
    }


@pytest.fixture(scope="module")
def local_run(inputs) -> Path:
    root = inputs["root"]
    out = root / "out"
    config = root / "job.yaml"
    config.write_text(
        job_config(bundle=str(inputs["bundle"]), basemap=str(inputs["basemap"]), out=str(out))
    )
    run_cli(str(config), str(inputs["tiles"]))
    return out


@pytest.fixture(scope="module", params=["s3", "gs"])
def remote_run(request, inputs) -> str:
    """Upload the inputs to a fresh prefix of the store, run the job there; the output URL."""
    base = f"{request.getfixturevalue(f'{request.param}_bucket')}/job"
    upload_tree(inputs["bundle"], f"{base}/bundle")
    upload_tree(inputs["basemap"], f"{base}/basemap")
    storage.write_bytes(f"{base}/tiles.csv", inputs["tiles"].read_bytes())
    storage.write_text(
        f"{base}/job.yaml",
        job_config(bundle=f"{base}/bundle", basemap=f"{base}/basemap", out=f"{base}/out"),
    )
    output = run_cli(f"{base}/job.yaml", f"{base}/tiles.csv")
    assert "polygons" in output and "report" in output
    return f"{base}/out"


def inputs_tiles(out: Path) -> list[str]:
    return json.loads((out / "logs" / "inference_log.json").read_text())["tiles"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_tile_files_are_byte_identical(local_run, remote_run):
    local = sorted(p.name for p in (local_run / "tiles").glob("*.tif"))
    remote = storage.list_files(storage.join(remote_run, "tiles"))
    assert remote == local and len(local) == len(inputs_tiles(local_run))
    for name in local:
        data = storage.read_bytes(storage.join(remote_run, "tiles", name))
        assert sha256(data) == sha256((local_run / "tiles" / name).read_bytes()), name


def test_run_log_records_the_same_tiles(local_run, remote_run):
    local = json.loads((local_run / "logs" / "inference_log.json").read_text())
    remote = json.loads(storage.read_text(storage.join(remote_run, "logs", "inference_log.json")))
    assert remote["status"] == local["status"] == "complete"
    assert remote["tiles"] == local["tiles"]
    assert remote["total_rts_area_km2"] == local["total_rts_area_km2"] > 0


def test_mosaics_are_valid_cogs_with_the_local_pixels(local_run, remote_run):
    assert [m for m in storage.list_files(storage.join(remote_run, "merged"))] == MOSAICS
    for name in MOSAICS:
        url = storage.join(remote_run, "merged", name)
        with rasterio.Env(**vsi.gdal_options(url)):  # what a user of the emulator sets
            valid, errors, _ = cog_validate(url)
            assert valid, (url, errors)
            with rasterio.open(url) as src, rasterio.open(local_run / "merged" / name) as ref:
                assert src.profile == ref.profile
                np.testing.assert_array_equal(src.read(), ref.read())
                assert src.overviews(1) == ref.overviews(1)
                level = len(ref.overviews(1))
                np.testing.assert_array_equal(
                    src.read(1, out_shape=(ref.height // 2**level, ref.width // 2**level)),
                    ref.read(1, out_shape=(ref.height // 2**level, ref.width // 2**level)),
                )


def test_polygons_equal_the_local_ones(local_run, remote_run, tmp_path):
    local = gpd.read_file(local_run / "vectors" / "rts_predictions.gpkg")
    url = storage.join(remote_run, "vectors", "rts_predictions.gpkg")
    copy = tmp_path / "downloaded.gpkg"
    copy.write_bytes(storage.read_bytes(url))
    downloaded = gpd.read_file(copy)
    assert len(local) > 0
    assert_geodataframe_equal(downloaded, local, check_less_precise=False)
    assert_geodataframe_equal(read_polygons(url), local)


def test_report_is_written(local_run, remote_run):
    html = storage.read_text(storage.join(remote_run, "report", "index.html"))
    assert "region_west_prob.tif" in html or "west" in html
    assert len(html) > 1000


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_missing_output_bucket_fails_before_any_tile(scheme, request, inputs, tmp_path):
    request.getfixturevalue(f"{scheme}_bucket")
    config = tmp_path / "job.yaml"
    out = f"{scheme}://tc-no-such-output-bucket/run"
    config.write_text(
        job_config(bundle=str(inputs["bundle"]), basemap=str(inputs["basemap"]), out=out)
    )
    result = CliRunner().invoke(
        rts_run, ["--config", str(config), "--tile-list", str(inputs["tiles"])]
    )
    assert result.exit_code == 1
    assert "output.path: cannot be written" in result.output
    assert "no such bucket 'tc-no-such-output-bucket'" in result.output
    assert "tiles written" not in result.output


def test_unreadable_basemap_is_named_at_start(bucket, inputs, tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text(
        job_config(
            bundle=str(inputs["bundle"]),
            basemap=f"{bucket}/no-basemap-here",
            out=str(tmp_path / "out"),
        )
    )
    result = CliRunner().invoke(
        rts_run, ["--config", str(config), "--tile-list", str(inputs["tiles"])]
    )
    assert result.exit_code == 1
    assert f"input.basemap: cannot be read: {bucket}/no-basemap-here" in result.output
    assert not (tmp_path / "out" / "tiles").exists()
    with pytest.raises(StorageError):
        storage.list_files(f"{bucket}/no-basemap-here")


def test_rerun_on_the_store_resumes_and_changes_no_tile(remote_run):
    tiles_dir = storage.join(remote_run, "tiles")
    before = {
        n: sha256(storage.read_bytes(storage.join(tiles_dir, n)))
        for n in storage.list_files(tiles_dir)
    }
    base = remote_run.rsplit("/", 1)[0]
    output = run_cli(f"{base}/job.yaml", f"{base}/tiles.csv")
    assert f"0 tiles written, 0 skipped, {len(before)} already done" in output
    after = {
        n: sha256(storage.read_bytes(storage.join(tiles_dir, n)))
        for n in storage.list_files(tiles_dir)
    }
    assert after == before
