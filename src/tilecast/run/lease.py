"""A lease on an output: one run at a time writes ``{output}/logs/inference[.{shard}].lease``.

At start a run creates the lease file with a create-only write (local: a hard link, which fails
if the name is taken; S3: ``If-None-Match: *``; GCS: ``ifGenerationMatch=0``). The file says who
holds it (a run id, host, pid), since when, and until when. A second run that finds a live lease
stops with an error naming the holder and the expiry; one that finds an expired lease (its
holder crashed), or a lease whose holder ran on this host and whose process is gone (killed),
takes it over with a WARNING. A heartbeat thread renews the lease (and notices
if another run took it); the run checks :meth:`Lease.check` as it commits, and releases the
lease at the end.

Some stores ignore the create-only condition (the GCS emulator, some S3-compatible stores). So
after writing, the lease is read back after a short settling time, and every renewal reads it
again: of two runs that both believed they wrote it, all but the last writer find another
owner and stop. Even then no file is ever half-written: tiles are deterministic whole-object
PUTs, so two runs write the same bytes.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid

from pydantic import BaseModel, ConfigDict, ValidationError

from tilecast.errors import StorageError, TilecastError
from tilecast.io import storage

log = logging.getLogger(__name__)


class LeaseHeldError(TilecastError, RuntimeError):
    """Another run holds the output (or took it over while this run was writing)."""


class LeaseRecord(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    owner: str  # the run id
    host: str
    pid: int
    started: str  # ISO time the holder acquired the lease
    expires: str  # ISO time after which another run may take it over
    expires_unix: float

    def describe(self) -> str:
        return (
            f"run {self.owner} (host {self.host}, pid {self.pid}, started {self.started}, "
            f"lease expires {self.expires})"
        )


def lease_uri_for(output: str, shard: str | None) -> str:
    name = f"inference.{shard}.lease" if shard else "inference.lease"
    return storage.join(output, "logs", name)


def holder_is_gone(record: LeaseRecord) -> bool:
    """The holder ran on this host and its process no longer exists (it was killed)."""
    if record.host != socket.gethostname() or record.pid == os.getpid():
        return False
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a process of another user has that pid now
    return False


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat(timespec="seconds")


class Lease:
    """``with Lease(uri, ttl_s=600) as lease: ... lease.check() ...``"""

    def __init__(
        self,
        uri: str,
        *,
        ttl_s: float = 600.0,
        heartbeat_s: float | None = None,
        settle_s: float | None = None,
        owner: str | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"lease ttl_s must be positive, {ttl_s} is given")
        self.uri = uri
        self.ttl_s = ttl_s
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else ttl_s / 3
        self.settle_s = (
            settle_s if settle_s is not None else (0.0 if storage.is_local(uri) else 1.0)
        )
        self.owner = owner or uuid.uuid4().hex
        self.started = _iso(time.time())
        self._lost: LeaseHeldError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the record ----------------------------------------------------------------------

    def _record(self) -> LeaseRecord:
        expires = time.time() + self.ttl_s
        return LeaseRecord(
            owner=self.owner,
            host=socket.gethostname(),
            pid=os.getpid(),
            started=self.started,
            expires=_iso(expires),
            expires_unix=expires,
        )

    def read(self) -> LeaseRecord | None:
        """The lease as stored, or None when there is none (or it is unreadable)."""
        try:
            text = storage.read_text(self.uri)
        except StorageError:
            if storage.exists(self.uri):
                raise
            return None
        try:
            return LeaseRecord.model_validate_json(text)
        except ValidationError:
            log.warning("%s: not a lease record; treating it as expired", self.uri)
            return None

    # -- acquire, renew, release ---------------------------------------------------------

    def acquire(self) -> LeaseRecord:
        mine = self._record()
        data = mine.model_dump_json().encode()
        current = self.read()  # first look: stores that ignore create-only still see a holder
        if current is not None and current.owner != self.owner:
            self._refuse_unless_stale(current)
            storage.write_bytes(self.uri, data)
        else:
            try:
                storage.write_bytes(self.uri, data, create=True)
            except storage.ObjectExistsError:  # another run got there since the first look
                current = self.read()
                if current is not None and current.owner != self.owner:
                    self._refuse_unless_stale(current)
                storage.write_bytes(self.uri, data)
        if self.settle_s:
            time.sleep(self.settle_s)
        self._confirm()
        self._thread = threading.Thread(target=self._heartbeat, name="tilecast-lease", daemon=True)
        self._thread.start()
        log.info("%s: lease taken by run %s until %s", self.uri, self.owner, mine.expires)
        return mine

    def _refuse_unless_stale(self, current: LeaseRecord) -> None:
        if current.expires_unix > time.time() and not holder_is_gone(current):
            raise LeaseHeldError(
                f"{self.uri}: this output is being written by {current.describe()}; "
                "wait for that run to finish (or its lease to expire), or use another "
                "output.path"
            )
        log.warning(
            "%s: taking over the lease of %s: it expired or its process is gone "
            "(that run stopped without releasing it)",
            self.uri,
            current.describe(),
        )

    def _confirm(self) -> None:
        current = self.read()
        if current is None or current.owner != self.owner:
            holder = current.describe() if current else "nobody (the lease file is gone)"
            raise LeaseHeldError(
                f"{self.uri}: another run took this output: the lease now names {holder}"
            )

    def renew(self) -> None:
        """Extend the lease; record a LeaseHeldError (raised by :meth:`check`) if it was taken."""
        try:
            self._confirm()
            storage.write_bytes(self.uri, self._record().model_dump_json().encode())
        except LeaseHeldError as exc:
            self._lost = exc
            self._stop.set()
        except StorageError as exc:  # the store is down for longer than the retries last
            log.warning("%s: could not renew the lease (%s); trying again", self.uri, exc)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self.renew()

    def check(self) -> None:
        """Raise if another run has taken the output since this run acquired it."""
        if self._lost is not None:
            raise self._lost

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._lost is not None:
            return
        try:
            current = self.read()
            if current is not None and current.owner == self.owner:
                storage.delete(self.uri)
        except StorageError as exc:
            log.warning("%s: could not release the lease (%s); it expires by itself", self.uri, exc)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
