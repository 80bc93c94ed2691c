"""io.storage through a fault-injecting proxy in front of moto and the GCS emulator.

Transient faults (503, 500, 429, connection resets before and after the server acted, stalls
past the client timeout) are retried until the bytes are right; permanent ones (403, 404) fail
at once with the URL named; a multipart upload that fails part-way leaves no object and no
open upload.
"""

from __future__ import annotations

import logging
import random
import re
import threading

import pytest
from fault_proxy import FAULT_RATE, RETRY_ENV, FaultProxy, proxied

from tilecast.errors import StorageError
from tilecast.io import storage

RETRY_MESSAGE = re.compile(r"transient failure on try (\d+) of")

log = logging.getLogger(__name__)


@pytest.fixture
def fast_retries(monkeypatch):
    for name, value in RETRY_ENV.items():
        monkeypatch.setenv(name, value)


def scheme_of(uri: str) -> str:
    return uri.split("://", 1)[0]


def upstream_of(uri: str, request) -> str:
    return request.getfixturevalue("s3_server" if scheme_of(uri) == "s3" else "gcs_server")


def retries_logged(caplog) -> list[int]:
    return [
        int(m.group(1))
        for r in caplog.records
        if r.levelno == logging.WARNING and (m := RETRY_MESSAGE.search(r.getMessage()))
    ]


def report(proxy: FaultProxy, caplog, what: str) -> None:
    tries = retries_logged(caplog)
    log.warning(
        "%s: %d requests, outcomes %s; %d retries logged by io.retry (highest try %d)",
        what,
        len(proxy.log.entries),
        dict(sorted(proxy.log.counts().items())),
        len(tries),
        max(tries, default=0),
    )


def test_round_trips_survive_transient_faults(bucket, request, fast_retries, monkeypatch, caplog):
    base, scheme = bucket, scheme_of(bucket)
    rng = random.Random(5)
    payloads = {f"obj/{i:02d}.bin": rng.randbytes(rng.randrange(1, 200_000)) for i in range(16)}
    caplog.set_level(logging.WARNING, logger="tilecast.io.retry")
    with (
        FaultProxy(upstream_of(base, request), rate=FAULT_RATE, seed=7) as proxy,
        proxied(proxy, scheme, monkeypatch),
    ):
        for name, data in payloads.items():
            storage.write_bytes(storage.join(base, name), data)
        with storage.atomic_local_path(storage.join(base, "obj/atomic.tif"), suffix=".tif") as tmp:
            tmp.write_bytes(b"pixels" * 1000)
        storage.write_text(storage.join(base, "obj/00.bin"), "rewritten")
        listed = storage.list_files(storage.join(base, "obj"))
        read = {name: storage.read_bytes(storage.join(base, name)) for name in payloads}
        assert storage.exists(storage.join(base, "obj/atomic.tif"))
        assert not storage.exists(storage.join(base, "obj/none.bin"))
        report(proxy, caplog, f"{scheme} round trips at {FAULT_RATE:.0%}")
    payloads["obj/00.bin"] = b"rewritten"
    assert listed == sorted(n.removeprefix("obj/") for n in [*payloads, "obj/atomic.tif"])
    assert read == payloads
    assert proxy.log.faults() > 10  # the faults really happened
    if scheme == "s3":
        # botocore's and s3fs's loops are off: the retries are ours, each logged with its URL
        # (aiohttp alone re-sends once on a kept-alive connection the server closed)
        assert len(retries_logged(caplog)) >= proxy.log.counts()["503"]
        assert all(base in r.getMessage() for r in caplog.records if "transient" in r.getMessage())


def test_forbidden_fails_fast_with_the_url(bucket, request, fast_retries, monkeypatch):
    base, scheme = bucket, scheme_of(bucket)
    uri = storage.join(base, "locked/data.bin")

    def deny(method: str, path: str, body: bytes) -> int:
        return 403

    with (
        FaultProxy(upstream_of(base, request), rules=(deny,)) as proxy,
        proxied(proxy, scheme, monkeypatch),
    ):
        with pytest.raises(StorageError, match="access denied") as err:
            storage.read_bytes(uri)
        with pytest.raises(StorageError, match="access denied"):
            storage.write_bytes(uri, b"x")
    assert str(err.value).startswith(f"{uri}: ")
    assert proxy.log.counts()["403"] <= 2  # one request each, never retried


def test_missing_input_fails_fast_with_the_url(bucket, request, fast_retries, monkeypatch):
    base, scheme = bucket, scheme_of(bucket)
    uri = storage.join(base, "inputs/missing.tif")
    with (
        FaultProxy(upstream_of(base, request)) as proxy,
        proxied(proxy, scheme, monkeypatch),
        pytest.raises(StorageError, match=rf"^{re.escape(uri)}: no such file$"),
    ):
        storage.read_bytes(uri)
    assert len(proxy.log.entries) <= 3  # the read (and a bucket probe), no retries


def test_unavailable_store_gives_up_within_the_bounds(bucket, request, monkeypatch, caplog):
    base, scheme = bucket, scheme_of(bucket)
    uri = storage.join(base, "down.bin")
    monkeypatch.setenv("TILECAST_STORAGE_RETRY_ATTEMPTS", "3")
    monkeypatch.setenv("TILECAST_STORAGE_RETRY_BASE_S", "0.01")
    caplog.set_level(logging.WARNING, logger="tilecast.io.retry")

    def down(method: str, path: str, body: bytes) -> str:
        return "503"

    with (
        FaultProxy(upstream_of(base, request), rules=(down,)) as proxy,
        proxied(proxy, scheme, monkeypatch),
        pytest.raises(StorageError, match="failed after up to 3 tries") as err,
    ):
        storage.write_bytes(uri, b"x")
    assert str(err.value).startswith(f"{uri}: ")
    assert retries_logged(caplog) == [1, 2]
    # one request per try: the clients' own retry loops are off
    assert len(proxy.log.entries) == 3


def test_a_store_that_goes_away_and_comes_back(bucket, request, fast_retries, monkeypatch, caplog):
    """Connections refused for a moment (the endpoint restarts): the requests wait it out."""
    base, scheme = bucket, scheme_of(bucket)
    uri = storage.join(base, "restart/obj.bin")
    caplog.set_level(logging.WARNING, logger="tilecast.io.retry")
    upstream = upstream_of(base, request)
    first = FaultProxy(upstream)
    port = first.port
    with first, proxied(first, scheme, monkeypatch):
        storage.write_bytes(uri, b"before")
        first.__exit__(None, None, None)  # the endpoint goes away: connections are refused
        restarted: list[FaultProxy] = []
        timer = threading.Timer(
            0.5, lambda: restarted.append(FaultProxy(upstream, port=port).__enter__())
        )
        timer.start()
        try:
            storage.write_bytes(uri, b"after")
            assert storage.read_bytes(uri) == b"after"
        finally:
            timer.join()
            for proxy in restarted:
                proxy.__exit__(None, None, None)
    assert any("try 1 of" in r.getMessage() for r in caplog.records)
    assert all(uri in r.getMessage() for r in caplog.records if "transient" in r.getMessage())


def test_failed_multipart_upload_leaves_no_object(bucket, request, monkeypatch):
    """A part fails for good mid-upload: the client aborts, nothing is visible or left open."""
    base, scheme = bucket, scheme_of(bucket)
    uri = storage.join(base, "big/mosaic.tif")
    chunk = 5 * 2**20  # S3's smallest part; a multiple of GCS's 256 KiB
    monkeypatch.setattr(storage, "MULTIPART_CHUNK", chunk)
    data = random.Random(3).randbytes(3 * chunk + 123)
    storage.write_bytes(uri, b"old")
    seen_parts: list[str] = []

    def fail_second_part(method: str, path: str, body: bytes) -> int | None:
        is_part = ("partNumber=" in path) or ("upload_id=" in path and method in ("PUT", "POST"))
        if not is_part:
            return None
        seen_parts.append(path)
        return 403 if len(seen_parts) == 2 else None

    with (
        FaultProxy(upstream_of(base, request), rules=(fail_second_part,)) as proxy,
        proxied(proxy, scheme, monkeypatch),
        pytest.raises(StorageError) as err,
    ):
        storage.write_bytes(uri, data)
    assert str(err.value).startswith(f"{uri}: ")
    # s3fs aborts the multipart upload and re-raises the 403; gcsfs cancels the resumable
    # session with a DELETE, which the emulator does not implement (501, raised instead)
    assert "access denied" in str(err.value) or scheme == "gs"
    assert proxy.log.counts()["403"] == 1, proxy.log.entries  # permanent: never retried
    assert storage.read_bytes(uri) == b"old"  # the old object, whole
    if scheme == "s3":
        import fsspec

        bucket = base.removeprefix("s3://").split("/", 1)[0]
        fs = fsspec.filesystem("s3")
        uploads = fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
        assert [u for u in uploads if u["Key"].endswith("big/mosaic.tif")] == []
    # and the same write without the failure goes through whole
    storage.write_bytes(uri, data)
    assert storage.read_bytes(uri) == data
