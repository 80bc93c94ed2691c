"""Named crash points for the kill tests: a no-op unless ``TILECAST_KILL_AT`` is set.

``TILECAST_KILL_AT=merge.block:3`` makes the process SIGKILL itself the 3rd time it reaches
``reached("merge.block")``; the tests use it to land kills in a chosen phase (reading,
inferring, writing a tile, checkpointing the run log, merging, vectorising) and then restart
the job. With ``TILECAST_KILL_ONCE=PATH`` too, only the first process to get there dies: it
creates ``PATH`` first, and a process that finds ``PATH`` goes on (a Ray task that is retried
in a new worker, with the same environment, must not die again). Without the variables
:func:`reached` returns at once. The named points are:

==================  ================================================================
``read.tile``       a tile's basemap pixels were read, before they are prepared
``infer.tile``      a tile's fused prediction came out of the model, before it is queued
``write.tile``      a tile is about to be written
``write.done``      a tile file is in place, not yet in the run log
``storage.commit``  a local atomic write's temporary is complete, before the rename
``runlog.write``    a run-log checkpoint is about to be written
``merge.tile``      a tile was read into a region mosaic
``merge.block``     a block of a region mosaic is about to be written
``vector.region``   a region is about to be vectorised
``vector.write``    the GeoPackage is about to be written
==================  ================================================================
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)

ENV = "TILECAST_KILL_AT"
ONCE_ENV = "TILECAST_KILL_ONCE"

_lock = threading.Lock()
_counts: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    text = os.environ.get(ENV)
    if not text:
        return None
    name, _, nth = text.rpartition(":")
    if not name or not nth.isdigit() or int(nth) < 1:
        raise ValueError(f"{ENV} must be NAME:N with N >= 1, {text!r} is given")
    return name, int(nth)


def reached(name: str) -> None:
    """SIGKILL this process at the Nth call with ``name`` when ``TILECAST_KILL_AT`` says so."""
    target = _target()
    if target is None or target[0] != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        if _counts[name] == target[1] and _first_to_die():
            log.critical("killpoint %s reached %d time(s): SIGKILL", name, target[1])
            os.kill(os.getpid(), signal.SIGKILL)


def _first_to_die() -> bool:
    """True unless ``TILECAST_KILL_ONCE`` names a marker some process already created."""
    marker = os.environ.get(ONCE_ENV)
    if not marker:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
