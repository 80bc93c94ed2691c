"""The tiled job writing to s3:// and gs:// through a proxy that fails a quarter of the requests.

Each store gets the same small job as a clean local run, with its output (tiles, run log, lease,
region mosaics, ``_SUCCESS``) on the store behind the fault proxy (503, 500, 429, connection
resets before and after the server acted, stalls past the client timeout). The run must finish
with tile files byte-identical to the local run's and the same mosaics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from click.testing import CliRunner
from fault_proxy import FAULT_RATE, RETRY_ENV, FaultProxy, proxied
from rasterio.io import MemoryFile

from rts.rts_support import make_config, smooth_rgb, tiles_for, write_quad_basemap
from tilecast.apps.rts.job import RtsJob
from tilecast.apps.rts.tilelist import format_tile_list, parse_tile_list
from tilecast.cli.rts import rts
from tilecast.errors import StorageError
from tilecast.io import storage

pytestmark = pytest.mark.slow

RETRY_MESSAGE = re.compile(r"^(\w+) .*transient failure on try (\d+) of")

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def job(tmp_path_factory, make_bundle):
    """Inputs on local disk, and the reference: the same job run locally with no faults."""
    root = tmp_path_factory.mktemp("faults")
    image = smooth_rgb(9, 192, 256)
    basemap = write_quad_basemap(root / "basemap", image, quad=128)
    tiles = tiles_for(image, tile_size=64, stride=64)
    tile_list = root / "tiles.csv"
    tile_list.write_text(format_tile_list(tiles))
    bundle = make_bundle("export")
    local = root / "local"
    run_cli(root / "local.yaml", bundle=bundle, basemap=basemap, out=str(local), tiles=tile_list)
    return bundle, basemap, tile_list, local


def run_cli(config_path: Path, *, bundle, basemap, out: str, tiles: Path) -> str:
    data = make_config(bundle=bundle, basemap=basemap, out=Path("placeholder")).model_dump(
        mode="json"
    )
    data["output"]["path"] = out
    data["inference"]["checkpoint_every"] = 2
    data["products"] = {"merge": True, "vectorize": False, "report": False}
    config_path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(
        rts, ["run", "--config", str(config_path), "--tile-list", str(tiles)]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def digests(out: str, folder: str) -> dict[str, str]:
    base = storage.join(out, folder)
    return {
        name: hashlib.sha256(storage.read_bytes(storage.join(base, name))).hexdigest()
        for name in storage.list_files(base)
    }


def pixels(uri: str) -> np.ndarray:
    with MemoryFile(storage.read_bytes(uri)) as mem, mem.open() as src:
        return src.read()


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_job_through_storage_faults_equals_a_clean_local_run(
    scheme, job, request, tmp_path, monkeypatch, caplog
):
    bundle, basemap, tile_list, local = job
    server = request.getfixturevalue("s3_server" if scheme == "s3" else "gcs_server")
    out = storage.join(request.getfixturevalue(f"{scheme}_bucket"), f"job-{tmp_path.name}")
    for name, value in RETRY_ENV.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.WARNING, logger="tilecast.io.retry")
    with (
        FaultProxy(server, rate=FAULT_RATE, seed=11, stall_s=4.0) as proxy,
        proxied(proxy, scheme, monkeypatch),
    ):
        run_cli(tmp_path / "c.yaml", bundle=bundle, basemap=basemap, out=out, tiles=tile_list)
    # read back directly from the server
    tiles_remote = digests(out, "tiles")
    merged = storage.join(out, "merged")
    merged_remote = {n: pixels(storage.join(merged, n)) for n in storage.list_files(merged)}
    runlog = json.loads(storage.read_text(storage.join(out, "logs", "inference_log.json")))
    success = json.loads(storage.read_text(storage.join(out, "_SUCCESS")))
    lease_left = storage.exists(storage.join(out, "logs", "inference.lease"))

    tries = [
        (m.group(1), int(m.group(2)))
        for r in caplog.records
        if (m := RETRY_MESSAGE.match(r.getMessage()))
    ]
    by_op: dict[str, int] = {}
    for op, _ in tries:
        by_op[op] = by_op.get(op, 0) + 1
    log.warning(
        "%s job at %.0f%% faults: %d requests through the proxy, outcomes %s; %d retries by "
        "io.retry %s, highest try %d",
        scheme,
        FAULT_RATE * 100,
        len(proxy.log.entries),
        dict(sorted(proxy.log.counts().items())),
        len(tries),
        dict(sorted(by_op.items())),
        max((t for _, t in tries), default=0),
    )
    assert proxy.log.faults() > 10
    assert tiles_remote == digests(str(local), "tiles")  # byte-identical tiles
    assert sorted(merged_remote) == sorted(p.name for p in (local / "merged").iterdir())
    for name, array in merged_remote.items():
        with rasterio.open(local / "merged" / name) as src:
            np.testing.assert_array_equal(array, src.read())
    assert runlog["status"] == "complete"
    for tile_id, entry in runlog["tiles"].items():
        if entry["status"] == "done":
            assert tiles_remote[f"{tile_id}.tif"] == entry["sha256"]
    assert success["n_tiles_total"] == runlog["n_tiles_total"]
    assert not lease_left


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_a_tile_the_store_refuses_stops_the_run_and_is_not_recorded(
    scheme, job, request, tmp_path, monkeypatch
):
    """A permanent 403 on one tile's PUT: the run stops naming that URL, never retries it, and
    the run log lists no tile whose object is not in place; a restart completes the output."""
    bundle, basemap, tile_list, local = job
    server = request.getfixturevalue("s3_server" if scheme == "s3" else "gcs_server")
    out = storage.join(request.getfixturevalue(f"{scheme}_bucket"), f"refused-{tmp_path.name}")
    victim = "r0000001_c0000002.tif"

    def refuse_victim(method: str, path: str, body: bytes) -> int | None:
        # S3 names the key in the path; a GCS upload names it in the JSON part of the body
        named = (
            victim in path or f'"name": "{out.split("/", 3)[3]}/tiles/{victim}"'.encode() in body
        )
        return 403 if method in ("PUT", "POST") and named else None

    config = make_config(
        bundle=bundle, basemap=basemap, out=Path("placeholder"), checkpoint_every=1, workers=1
    )
    config = config.model_copy(update={"output": config.output.model_copy(update={"path": out})})
    tiles = parse_tile_list(tile_list.read_text(), source=str(tile_list))
    with (
        FaultProxy(server, rules=(refuse_victim,)) as proxy,
        proxied(proxy, scheme, monkeypatch),
        pytest.raises(StorageError, match="access denied") as err,
    ):
        RtsJob(config, tiles).run()
    assert str(err.value).startswith(storage.join(out, "tiles", victim))
    assert proxy.log.counts()["403"] == 1  # permanent: one request, no retry
    runlog = json.loads(storage.read_text(storage.join(out, "logs", "inference_log.json")))
    present = digests(out, "tiles")
    assert victim not in present
    assert victim.removesuffix(".tif") not in runlog["tiles"]
    for tile_id, entry in runlog["tiles"].items():  # recorded only once committed
        assert present[f"{tile_id}.tif"] == entry["sha256"]

    result = RtsJob(config, tiles).run()  # the store lets it through now: the restart finishes
    assert result.complete
    assert digests(out, "tiles") == digests(str(local), "tiles")
