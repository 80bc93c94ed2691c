"""The output lease: one run at a time per output (and shard), on local paths, s3:// and gs://."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import uuid

import pytest

from tilecast.io import storage
from tilecast.run.lease import Lease, LeaseHeldError, LeaseRecord, lease_uri_for


@pytest.fixture(params=["local", "s3", "gs"])
def where(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "out")
    base = request.getfixturevalue(f"{request.param}_bucket")
    return f"{base}/{uuid.uuid4().hex[:10]}"


def test_a_second_run_is_refused_while_the_first_holds_the_lease(where):
    uri = lease_uri_for(where, None)
    with Lease(uri, ttl_s=60, settle_s=0) as first:
        held = LeaseRecord.model_validate_json(storage.read_text(uri))
        assert held.owner == first.owner
        with pytest.raises(LeaseHeldError) as err:
            Lease(uri, ttl_s=60, settle_s=0).acquire()
        message = str(err.value)
        assert first.owner in message and held.expires in message and uri in message
        first.check()  # still ours
    assert not storage.exists(uri)  # released
    with Lease(uri, ttl_s=60, settle_s=0):  # free again
        pass


def test_an_expired_lease_is_taken_over_with_a_warning(where, caplog):
    uri = lease_uri_for(where, "s1")
    crashed = Lease(uri, ttl_s=0.2, heartbeat_s=3600, settle_s=0)
    crashed.acquire()  # the holder "dies" now: no heartbeat in time, no release
    time.sleep(0.3)
    caplog.set_level(logging.WARNING, logger="tilecast.run.lease")
    with Lease(uri, ttl_s=60, settle_s=0) as taker:
        assert LeaseRecord.model_validate_json(storage.read_text(uri)).owner == taker.owner
    assert any("taking over the lease" in r.getMessage() for r in caplog.records)
    crashed.renew()  # the old holder comes back: it finds the lease gone or someone else's
    with pytest.raises(LeaseHeldError):
        crashed.check()


def test_a_killed_holder_on_this_host_is_taken_over_at_once(tmp_path, caplog):
    uri = lease_uri_for(str(tmp_path / "out"), None)
    code = (
        "import sys; from tilecast.run.lease import Lease; "
        f"Lease({uri!r}, ttl_s=3600, settle_s=0).acquire(); sys.exit(0)"  # exits, no release
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert storage.exists(uri)
    caplog.set_level(logging.WARNING, logger="tilecast.run.lease")
    with Lease(uri, ttl_s=60, settle_s=0):
        pass
    assert any("its process is gone" in r.getMessage() for r in caplog.records)


def test_a_renewal_that_finds_another_owner_stops_the_run(where):
    uri = lease_uri_for(where, None)
    lease = Lease(uri, ttl_s=60, settle_s=0)
    lease.acquire()
    try:
        # a store that ignored the create-only condition let another run overwrite the lease
        other = Lease(uri, ttl_s=60)._record()
        storage.write_bytes(uri, other.model_dump_json().encode())
        lease.renew()
        with pytest.raises(LeaseHeldError, match=other.owner):
            lease.check()
    finally:
        lease.release()
    assert LeaseRecord.model_validate_json(storage.read_text(uri)).owner == other.owner


def test_create_only_writes(where):
    uri = storage.join(where, "once.txt")
    storage.write_bytes(uri, b"first", create=True)
    if where.startswith("gs://"):
        # the emulator ignores ifGenerationMatch=0 (real GCS honours it); the lease reads back
        pytest.skip("gcp-storage-emulator does not implement preconditions")
    with pytest.raises(storage.ObjectExistsError, match="already exists"):
        storage.write_bytes(uri, b"second", create=True)
    assert storage.read_bytes(uri) == b"first"
