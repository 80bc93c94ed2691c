"""The Dockerfile, built and run: the demo job in the container equals the same job on the host.

The test starts its own dockerd (installing docker.io and debootstrap with apt-get when they are
missing), makes a Debian bookworm minbase base with debootstrap, builds the image FROM it with
the host's CPU torch wheel and the host venv's versions as constraints (pip reaches its index
through the machine's proxy, trusting its locally added CAs), then runs the demo job
(``scripts/make_demo_basemap.py``'s basemap, mounted read-only; ``configs/inference.yaml``) in the
container and on the host, both writing to the moto S3 server, and compares every tile's sha256.

On 2 cores the first run takes about 4.5 minutes (apt-get, debootstrap, the image's pip install
from the index); later runs about 1.5 minutes: they reuse the cached root file system and the
daemon's layers under ~/.cache/tilecast-container (``$TILECAST_CONTAINER_CACHE``; see
container_support), and rebuild only what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from container_support import (
    REPO,
    Dockerd,
    cache_dir,
    cache_lock,
    debian_base,
    ensure_tools,
    local_wheel_dirs,
    make_build_context,
    pinned_requirements,
    pip_build_args,
    pip_config,
    proxy_build_args,
)

from object_stores import S3_ENV
from tilecast.io import storage

pytestmark = pytest.mark.slow

log = logging.getLogger(__name__)

IMAGE = "tilecast-test:latest"
BUILD_STAGE = "tilecast-test-build:latest"  # tagged so that pruning keeps its cached layers
CONTAINER_USER = "10001"
# what the job in the container needs to reach the moto server the way a user sets it
S3_VARIABLES = (*S3_ENV, "AWS_ENDPOINT_URL", "AWS_S3_ENDPOINT")
# what decides the bytes of a tile (compared between the host and the image), and where
# tilecast and pip are imported from
PROBE_PY = """
import importlib.util, json, os, numpy, rasterio, torch, tilecast
pip = importlib.util.find_spec("pip")
print(json.dumps({
    "torch": torch.__version__, "numpy": numpy.__version__,
    "rasterio": rasterio.__version__, "gdal": rasterio.__gdal_version__,
    "tilecast": tilecast.__file__, "pip": pip.origin if pip else None, "uid": os.getuid(),
}))
"""


@pytest.fixture(scope="module")
def docker_daemon() -> Iterator[Dockerd]:
    ensure_tools()
    cache = cache_dir()
    with cache_lock(cache), Dockerd(cache / "docker") as daemon:
        try:
            yield daemon
        finally:
            # untagged leftovers of earlier builds; the tagged base, build stage and image stay
            daemon.docker("image", "prune", "--force", check=False, timeout=300)


@pytest.fixture(scope="module")
def image(docker_daemon: Dockerd, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Dockerfile built FROM the debootstrap base, with the host's pins and torch wheel."""
    work = tmp_path_factory.mktemp("image")
    build_log = work / "build.log"
    start = time.monotonic()
    base = debian_base(docker_daemon, cache_dir(), build_log)
    log.info("base %s ready in %.0f s", base, time.monotonic() - start)

    options = pip_config()
    pins = pinned_requirements()
    assert "torch" in pins and "rasterio" in pins, pins
    added = make_build_context(work / "context", pins=pins, wheel_dirs=local_wheel_dirs(options))
    log.info(
        "build context: %d pins, wheels %s, CAs %s",
        len(pins),
        added["wheels"],
        added["ca-certificates"],
    )
    args = {"BASE": base, **pip_build_args(options), **proxy_build_args()}
    build_args = [a for name, value in args.items() for a in ("--build-arg", f"{name}={value}")]

    start = time.monotonic()
    for target, tag in (("build", BUILD_STAGE), (None, IMAGE)):
        docker_daemon.docker(
            "build",
            "--network",
            "host",
            *(["--target", target] if target else []),
            "--tag",
            tag,
            *build_args,
            work / "context",
            timeout=3600,
            log_to=build_log,
        )
    size = int(docker_daemon.docker("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    log.info("image %s built in %.0f s, %.0f MB", IMAGE, time.monotonic() - start, size / 1e6)
    return IMAGE


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """The demo basemap and tile list, in a folder the container's user may read (pytest's
    tmp_path is private to root) and that is mounted at the same path in the container."""
    folder = Path(tempfile.mkdtemp(prefix="tc-demo-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        subprocess.run(
            [sys.executable, REPO / "scripts" / "make_demo_basemap.py", "--out", folder],
            check=True,
            capture_output=True,
            timeout=300,
        )
        for path in folder.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def job_config(demo: Path, output: str) -> Path:
    """configs/inference.yaml (the demo run) on ``demo``'s basemap, writing to ``output``."""
    data = yaml.safe_load((REPO / "configs" / "inference.yaml").read_text())
    data["input"]["basemap"] = str(demo / "basemap")
    data["output"]["path"] = output
    path = demo / f"{output.rstrip('/').rsplit('/', 1)[-1]}.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o644)
    return path


def tile_digests(output: str) -> dict[str, str]:
    base = storage.join(output, "tiles")
    return {
        name: hashlib.sha256(storage.read_bytes(storage.join(base, name))).hexdigest()
        for name in storage.list_files(base)
    }


def test_the_image_runs_the_demo_job_byte_for_byte_like_the_host(
    image: str, docker_daemon: Dockerd, s3_bucket: str, demo_dir: Path
) -> None:
    # the image as documented: non-root, /cache as scratch, the job as its entrypoint
    config = json.loads(
        docker_daemon.docker("image", "inspect", "--format", "{{json .Config}}", image).stdout
    )
    assert config["User"] == CONTAINER_USER
    assert "/cache" in config["Volumes"]
    assert "TMPDIR=/cache" in config["Env"]
    assert config["WorkingDir"] == "/opt/tilecast"
    assert config["Entrypoint"] == ["python", "scripts/inference.py"]

    # the same torch build and GDAL as the host; tilecast from the venv, and no pip left in it
    inside = docker_daemon.docker(
        "run", "--rm", "--network", "host", "--entrypoint", "python", image, "-c", PROBE_PY
    )
    host = subprocess.run(
        [sys.executable, "-c", PROBE_PY], capture_output=True, text=True, check=True
    )
    probe, host_probe = json.loads(inside.stdout), json.loads(host.stdout)
    for name in ("torch", "numpy", "rasterio", "gdal"):
        assert probe[name] == host_probe[name], (name, probe, host_probe)
    assert probe["uid"] == int(CONTAINER_USER)
    assert probe["tilecast"].startswith("/opt/venv/"), probe
    assert not (probe["pip"] or "").startswith("/opt/venv/"), probe

    tile_list = demo_dir / "tiles.csv"
    n_listed = len(tile_list.read_text().splitlines()) - 1
    run_id = uuid.uuid4().hex[:8]
    host_out = storage.join(s3_bucket, f"image-host-{run_id}")
    container_out = storage.join(s3_bucket, f"image-container-{run_id}")

    start = time.monotonic()
    host_run = subprocess.run(
        [
            sys.executable,
            "scripts/inference.py",
            "--config",
            job_config(demo_dir, host_out),
            "--tile-list",
            tile_list,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert host_run.returncode == 0, host_run.stdout[-3000:] + host_run.stderr[-3000:]
    log.info("host run: %.0f s", time.monotonic() - start)

    container_config = job_config(demo_dir, container_out)
    env = [a for name in S3_VARIABLES for a in ("--env", f"{name}={os.environ[name]}")]
    start = time.monotonic()
    container_run = docker_daemon.docker(
        "run",
        "--rm",
        "--network",
        "host",
        "--name",
        f"tilecast-test-{run_id}",
        "--volume",
        f"{demo_dir}:{demo_dir}:ro",
        *env,
        image,
        "--config",
        container_config,
        "--tile-list",
        tile_list,
        timeout=900,
        check=False,
    )
    output = container_run.stdout + container_run.stderr
    assert container_run.returncode == 0, output[-6000:]
    log.info("container run: %.0f s", time.monotonic() - start)

    # the container's run is complete, its log lists every tile with the digest of its object
    runlog = json.loads(
        storage.read_text(storage.join(container_out, "logs", "inference_log.json"))
    )
    assert runlog["status"] == "complete", runlog["final_check"]
    assert runlog["n_tiles_total"] == n_listed
    assert runlog["n_tiles_processed"] + runlog["n_tiles_skipped"] == n_listed
    assert runlog["final_check"]["n_missing"] == 0
    success = json.loads(storage.read_text(storage.join(container_out, "_SUCCESS")))
    host_success = json.loads(storage.read_text(storage.join(host_out, "_SUCCESS")))
    assert success["bundle_digest"] == host_success["bundle_digest"]
    assert success["products"] == host_success["products"]

    in_container, on_host = tile_digests(container_out), tile_digests(host_out)
    assert len(in_container) == runlog["n_tiles_processed"] > 0
    logged = {
        f"{tile_id}.tif": entry["sha256"]
        for tile_id, entry in runlog["tiles"].items()
        if entry["status"] == "done"
    }
    assert logged == in_container
    differ = sorted(name for name in on_host if in_container.get(name) != on_host[name])
    assert sorted(in_container) == sorted(on_host)
    assert not differ, f"{len(differ)} of {len(on_host)} tiles differ from the host's: {differ[:5]}"
