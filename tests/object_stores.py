"""Real object-store servers on 127.0.0.1 (moto for S3, gcp-storage-emulator for GCS).

Each server starts once per session on a free port; the environment is set the way a user
points the AWS and Google clients at a custom endpoint, so the library needs no test hooks.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator

import fsspec
import pytest

# moto's server logs every request through werkzeug; keep test output readable
logging.getLogger("werkzeug").setLevel(logging.ERROR)

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_HTTPS": "NO",
    "AWS_VIRTUAL_HOSTING": "FALSE",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clear_fs_caches() -> None:
    """Forget cached filesystem instances (they hold the credentials they were made with)."""
    for proto in ("s3", "gcs"):
        fsspec.get_filesystem_class(proto).clear_instance_cache()


@pytest.fixture(scope="session")
def session_env() -> Iterator[pytest.MonkeyPatch]:
    mp = pytest.MonkeyPatch()
    # no profile or config file from the machine running the tests
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"):
        mp.delenv(name, raising=False)
    mp.setenv("AWS_CONFIG_FILE", os.devnull)
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    # gcsfs reads this when it is imported (clear_fs_caches imports it), so set it first
    mp.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    yield mp
    mp.undo()
    clear_fs_caches()


@pytest.fixture(scope="session")
def s3_server(session_env: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server; yields its endpoint URL and sets the AWS and GDAL environment."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in S3_ENV.items():
        session_env.setenv(name, value)
    session_env.setenv("AWS_ENDPOINT_URL", endpoint)
    session_env.setenv("AWS_S3_ENDPOINT", f"127.0.0.1:{port}")  # GDAL's /vsis3/
    clear_fs_caches()
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def gcs_server(session_env: pytest.MonkeyPatch) -> Iterator[str]:
    """A gcp-storage-emulator server (in memory); yields its endpoint URL."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()  # serves from a thread; returns once the socket listens
    endpoint = f"http://127.0.0.1:{port}"
    session_env.setenv("STORAGE_EMULATOR_HOST", endpoint)
    # recent gcsfs asks the storage-control gRPC API (absent here) for each bucket's type,
    # and every call then waits 60 s for it
    session_env.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    clear_fs_caches()
    yield endpoint
    server.stop()


def _new_bucket(scheme: str) -> str:
    name = f"tc-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("gcs" if scheme == "gs" else scheme).mkdir(name)
    return f"{scheme}://{name}"


@pytest.fixture(scope="session")
def s3_bucket(s3_server: str) -> str:
    """URL of an empty bucket on the moto server, e.g. ``s3://tc-0123abcd``."""
    return _new_bucket("s3")


@pytest.fixture(scope="session")
def gs_bucket(gcs_server: str) -> str:
    return _new_bucket("gs")


@pytest.fixture(params=["s3", "gs"])
def bucket(request: pytest.FixtureRequest) -> str:
    """Each test that takes ``bucket`` runs once per store; a fresh prefix each time."""
    base = request.getfixturevalue(f"{request.param}_bucket")
    return f"{base}/{request.node.name.replace('[', '-').rstrip(']')}-{uuid.uuid4().hex[:6]}"
