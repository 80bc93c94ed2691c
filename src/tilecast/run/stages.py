"""Where a run's time goes: seconds per stage, summed over every thread that ran it.

Each stage records wall seconds (time the stage was busy, summed over threads) and CPU seconds
(``time.thread_time`` of the thread that ran it: what the stage cost the host). On a GPU the
device stage's wall time includes waiting for the device; its CPU time is what feeding it cost.
The run log keeps the totals and the progress line shows milliseconds per tile, so a user
sees at a glance whether a run is GPU-bound or host-bound, and where.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

#: The stages of the tiled job, in pipeline order.
STAGES = ("read", "prepare", "device", "post", "encode", "write", "record")


@dataclass(frozen=True)
class StageTotals:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    n: int = 0


class StageClock:
    """Thread-safe per-stage accumulators; ``with clock.stage("read"): ...``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, StageTotals] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - wall, time.thread_time() - cpu)

    def add(self, name: str, wall_s: float, cpu_s: float, n: int = 1) -> None:
        with self._lock:
            t = self._totals.get(name, StageTotals())
            self._totals[name] = StageTotals(t.wall_s + wall_s, t.cpu_s + cpu_s, t.n + n)

    def snapshot(self) -> dict[str, StageTotals]:
        with self._lock:
            order = {name: i for i, name in enumerate(STAGES)}
            return dict(sorted(self._totals.items(), key=lambda kv: order.get(kv[0], 99)))

    def to_json(self) -> dict[str, dict[str, float]]:
        return {
            name: {"wall_s": round(t.wall_s, 3), "cpu_s": round(t.cpu_s, 3), "n": t.n}
            for name, t in self.snapshot().items()
        }


def per_tile_ms(totals: Mapping[str, StageTotals], n_tiles: int, *, cpu: bool = True) -> str:
    """``read 3.1, prepare 2.0, device 9.5 ... ms/tile`` (CPU ms by default)."""
    if n_tiles <= 0 or not totals:
        return ""
    parts = [
        f"{name} {1000 * (t.cpu_s if cpu else t.wall_s) / n_tiles:.1f}"
        for name, t in totals.items()
    ]
    return ", ".join(parts) + (" CPU ms/tile" if cpu else " ms/tile")
