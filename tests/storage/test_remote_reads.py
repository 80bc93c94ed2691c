"""Basemap reads from s3:// and gs:// through GDAL and through fsspec equal local reads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rts.rts_support import smooth_rgb, write_quad_basemap
from tilecast.errors import InputError
from tilecast.grid import Window
from tilecast.io import storage, vsi
from tilecast.io.basemap import open_basemap

WINDOWS = [Window(0, 0, 64, 64), Window(100, 90, 80, 70), Window(-20, 150, 96, 96)]


def test_gdal_options_derive_from_the_usual_endpoint_settings():
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "STORAGE_EMULATOR_HOST": "localhost:9023"}
    s3 = vsi.gdal_options("s3://b/k.tif", env)
    assert s3["AWS_S3_ENDPOINT"] == "127.0.0.1:9000"
    assert s3["AWS_HTTPS"] == "NO" and s3["AWS_VIRTUAL_HOSTING"] == "FALSE"
    assert s3["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    gs = vsi.gdal_options("gs://b/k.tif", env)
    assert gs["CPL_GS_ENDPOINT"] == "http://localhost:9023/" and gs["GS_NO_SIGN_REQUEST"] == "YES"
    assert "AWS_S3_ENDPOINT" not in gs
    # the service-specific variable wins, an explicit GDAL setting is left alone
    env["AWS_ENDPOINT_URL_S3"] = "https://minio.example.org"
    assert vsi.gdal_options("s3://b/k", env)["AWS_S3_ENDPOINT"] == "minio.example.org"
    assert vsi.gdal_options("s3://b/k", env)["AWS_HTTPS"] == "YES"
    assert "AWS_S3_ENDPOINT" not in vsi.gdal_options("s3://b/k", {**env, "AWS_S3_ENDPOINT": "x"})
    # real clouds: no endpoint settings at all
    assert "CPL_GS_ENDPOINT" not in vsi.gdal_options("gs://b/k", {})
    assert "AWS_S3_ENDPOINT" not in vsi.gdal_options("s3://b/k", {})
    assert vsi.gdal_options("/data/basemap/q.tif", env) == {}


def test_unknown_read_way_is_refused(monkeypatch):
    monkeypatch.setenv(vsi.READS_VARIABLE, "curl")
    with pytest.raises(InputError, match="TILECAST_REMOTE_READS must be 'gdal' or 'fsspec'"):
        vsi.read_way()


@pytest.fixture(scope="module")
def local_basemap(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote-reads")
    return write_quad_basemap(root / "basemap", smooth_rgb(3, 192, 224), quad=128)


@pytest.mark.parametrize("way", ["gdal", "fsspec"])
def test_remote_basemap_reads_equal_local_reads(way, bucket, local_basemap, monkeypatch):
    uri = f"{bucket}/basemap"
    for path in sorted(local_basemap.glob("*.tif")):
        storage.write_bytes(storage.join(uri, path.name), path.read_bytes())
    monkeypatch.setenv(vsi.READS_VARIABLE, way)
    # GDAL's S3 endpoint comes from AWS_ENDPOINT_URL alone, as for boto3 and s3fs
    monkeypatch.delenv("AWS_S3_ENDPOINT", raising=False)
    with open_basemap(str(local_basemap)) as local, open_basemap(uri) as remote:
        assert remote.kind == "quads" and len(remote.quads) == len(local.quads)
        assert remote.grid == local.grid
        with ThreadPoolExecutor(2) as pool:  # handles opened in reader threads
            got = list(pool.map(remote.read, WINDOWS))
        for window, (array, valid) in zip(WINDOWS, got, strict=True):
            want, want_valid = local.read(window)
            np.testing.assert_array_equal(array, want)
            np.testing.assert_array_equal(valid, want_valid)
    # closed from this thread, after reads in others: nothing raised, nothing left open
    assert remote._closed
