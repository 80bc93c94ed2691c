"""Where an output stands: per run log, tiles done, skipped and missing, speed, ETA, leases.

:func:`read_status` only reads (through :mod:`tilecast.io.storage`, so local paths, s3:// and
gs:// alike): the run logs, the lease files (never taken, renewed or removed), the product
folders and ``_SUCCESS``. :func:`shard_status` and :func:`lease_state` are the arithmetic, on
what was read.

A run log says ``running`` from its run's start until its final check; a run that was killed or
stopped by an error leaves it so. Status tells them apart by the shard's lease: a live lease
means the run is going (as far as anyone can tell: a run killed on another host keeps its lease
until it expires), none or a stale one means it stopped, and the shard is ``incomplete``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from tilecast.errors import StorageError
from tilecast.io import storage
from tilecast.run.lease import LeaseRecord, holder_is_gone
from tilecast.run.runlogs import RunLogError, run_log_names

__all__ = [
    "LeaseState",
    "OutputStatus",
    "ShardStatus",
    "lease_state",
    "read_status",
    "shard_status",
]

_LEASE_NAME = re.compile(r"inference(?:\.(?P<shard>[A-Za-z0-9][A-Za-z0-9._-]*))?\.lease")
PRODUCT_DIRS = ("merged", "vectors", "report")

State = Literal["running", "complete", "incomplete"]


@dataclass(frozen=True)
class LeaseState:
    """A lease file as found: who holds it until when, and whether that holder is still live."""

    name: str  # inference.lease, inference.<shard>.lease
    shard: str | None
    state: Literal["held", "expired", "holder gone", "unreadable"]
    owner: str | None = None  # the run id
    host: str | None = None
    pid: int | None = None
    started: str | None = None
    expires: str | None = None

    @property
    def stale(self) -> bool:
        """The holder stopped without releasing it: the next run takes it over."""
        return self.state != "held"

    def describe(self) -> str:
        if self.state == "unreadable":
            return f"{self.name}: unreadable (stale)"
        holder = f"run {self.owner} (host {self.host}, pid {self.pid})"
        if self.state == "held":
            return f"{self.name}: held by {holder} until {self.expires}"
        return f"{self.name}: stale, {self.state}: {holder}, expires {self.expires}"


@dataclass(frozen=True)
class ShardStatus:
    """One run log: what its run has recorded, how fast, and what is left."""

    log: str  # logs/inference_log[.<shard>].json
    shard: str | None
    state: State
    detail: str  # why incomplete, or "" (e.g. "stopped before finishing (lease: holder gone)")
    n_listed: int
    n_done: int
    skipped: dict[str, int]  # reason -> tiles
    n_missing: int  # listed, not recorded (not reached yet)
    n_to_retry: int  # skipped for a reason a rerun can fix (from the final check)
    tiles_per_s: float | None  # None: nothing measured yet
    eta_s: float | None  # None when complete or the speed is unknown
    lease: LeaseState | None

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def n_left(self) -> int:
        return self.n_missing + self.n_to_retry


@dataclass(frozen=True)
class OutputStatus:
    """Every run log of an output, its leases and its products."""

    output: str
    shards: tuple[ShardStatus, ...]
    leases: tuple[LeaseState, ...]  # every lease file, a shard's or not
    products: dict[str, bool] = field(default_factory=dict)  # merged/vectors/report: has files
    success: bool = False  # _SUCCESS exists

    @property
    def state(self) -> State:
        states = {s.state for s in self.shards}
        if "running" in states or (not self.shards and any(not x.stale for x in self.leases)):
            return "running"
        return "complete" if self.shards and states == {"complete"} else "incomplete"

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "state": self.state,
            "shards": [
                {**asdict(s), "n_skipped": s.n_skipped, "n_left": s.n_left} for s in self.shards
            ],
            "leases": [{**asdict(x), "stale": x.stale} for x in self.leases],
            "products": dict(self.products),
            "success": self.success,
        }


def lease_state(name: str, text: str | None, *, now: float) -> LeaseState:
    """The :class:`LeaseState` of a lease file's ``text`` (None or garbage: unreadable).

    Stale when it expired before ``now``, or when its holder ran on this machine and that
    process is gone (``run.lease.holder_is_gone``: a SIGKILLed run): the rules by which the
    next run takes it over.
    """
    match = _LEASE_NAME.fullmatch(name)
    shard = match["shard"] if match else None
    try:
        record = LeaseRecord.model_validate_json(text or "")
    except ValidationError:
        return LeaseState(name, shard, "unreadable")
    if record.expires_unix <= now:
        state = "expired"
    elif holder_is_gone(record):
        state = "holder gone"
    else:
        state = "held"
    return LeaseState(
        name,
        shard,
        state,
        owner=record.owner,
        host=record.host,
        pid=record.pid,
        started=record.started,
        expires=record.expires,
    )


def _shard_of_log(name: str) -> str | None:
    return name.removeprefix("inference_log").removesuffix(".json").removeprefix(".") or None


def _speed(data: dict[str, Any], n_recorded: int) -> float | None:
    """Tiles per second: the last (re)start's pipeline time when it has one, else every
    tile recorded over the log's processing time (which includes setup and earlier starts)."""
    runs = data.get("runs") or []
    last = runs[-1] if runs else {}
    pipeline_s = last.get("pipeline_s")
    done_then = n_recorded - int(last.get("tiles_already_recorded") or 0)
    if pipeline_s and done_then > 0:
        return done_then / float(pipeline_s)
    seconds = float(data.get("processing_time_hours") or 0.0) * 3600
    if seconds > 0 and n_recorded > 0:
        return n_recorded / seconds
    return None


def shard_status(name: str, data: dict[str, Any], lease: LeaseState | None) -> ShardStatus:
    """The :class:`ShardStatus` of run log ``name`` (its JSON ``data``) and its shard's lease."""
    tiles = data.get("tiles") or {}
    n_done = sum(1 for v in tiles.values() if v.get("status") == "done")
    skipped: dict[str, int] = {}
    for v in tiles.values():
        if v.get("status") == "skipped":
            reason = v.get("reason") or "no reason recorded"
            skipped[reason] = skipped.get(reason, 0) + 1
    n_listed = int(data.get("n_tiles_total") or 0)
    n_missing = max(0, n_listed - n_done - sum(skipped.values()))
    check = data.get("final_check") or {}
    n_to_retry = int(check.get("n_to_retry") or 0)
    logged = data.get("status", "running")
    detail = ""
    if logged == "complete":
        state: State = "complete"
    elif logged == "incomplete":
        state = "incomplete"
        detail = "finished, not done: " + ", ".join(
            f"{reason}: {n}" for reason, n in (check.get("not_done") or {}).items()
        )
    elif lease is not None and not lease.stale:
        state = "running"
    else:
        state = "incomplete"
        why = f"lease {lease.state}" if lease is not None else "no lease"
        detail = f"stopped before finishing ({why}); rerun the same command to resume"
    speed = _speed(data, n_done + sum(skipped.values()))
    left = n_missing + n_to_retry
    eta = left / speed if speed and state != "complete" else None
    return ShardStatus(
        log=f"logs/{name}",
        shard=_shard_of_log(name),
        state=state,
        detail=detail,
        n_listed=n_listed,
        n_done=n_done,
        skipped=dict(sorted(skipped.items())),
        n_missing=n_missing,
        n_to_retry=n_to_retry,
        tiles_per_s=speed,
        eta_s=eta,
        lease=lease,
    )


def _has_files(uri: str) -> bool:
    try:
        return any(not n.rsplit("/", 1)[-1].startswith(".") for n in storage.list_files(uri))
    except StorageError:  # no such folder
        return False


def read_status(output: str, *, now: float | None = None) -> OutputStatus:
    """Read where ``output`` stands; raises :class:`RunLogError` when it holds neither a run
    log nor a lease (nothing has started there, or it is not a job's output)."""
    now = time.time() if now is None else now
    logs_dir = storage.join(output, "logs")
    try:
        names = storage.list_files(logs_dir)
    except StorageError:
        names = []
    leases = []
    for name in names:
        if _LEASE_NAME.fullmatch(name):
            try:
                text: str | None = storage.read_text(storage.join(logs_dir, name))
            except StorageError:  # released between the listing and the read
                continue
            leases.append(lease_state(name, text, now=now))
    by_shard = {x.shard: x for x in leases}
    shards = []
    for name in run_log_names(output):
        uri = storage.join(logs_dir, name)
        try:
            data = json.loads(storage.read_text(uri))
        except json.JSONDecodeError as exc:
            raise RunLogError(f"{uri}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise RunLogError(f"{uri}: expected a run log object, found {type(data).__name__}")
        shards.append(shard_status(name, data, by_shard.get(_shard_of_log(name))))
    if not shards and not leases:
        raise RunLogError(
            f"no run log (inference_log*.json) or lease (inference*.lease) in {logs_dir}: "
            "expected the output path of a thaw-slump job that has started"
        )
    return OutputStatus(
        output=output,
        shards=tuple(shards),
        leases=tuple(leases),
        products={d: _has_files(storage.join(output, d)) for d in PRODUCT_DIRS},
        success=storage.exists(storage.join(output, "_SUCCESS")),
    )
