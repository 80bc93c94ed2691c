"""Progress reporting through a callback; the library never prints.

The CLI renders :class:`ProgressEvent` as a bar with rate and ETA in a terminal, or as periodic
log lines when not attached to one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    done: int  # items finished this run (committed or skipped)
    total: int  # items this run has to do
    skipped: int  # of done, how many were skipped (QC)
    elapsed_s: float
    stages: Mapping[str, Any] = field(default_factory=dict)  # name -> run.stages.StageTotals

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.done == 0 or self.rate == 0:
            return None
        return (self.total - self.done) / self.rate


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    return None


class ProgressTracker:
    """Counts finished items and calls back at most every ``interval_s`` (and at the end)."""

    def __init__(
        self,
        total: int,
        callback: ProgressCallback,
        *,
        interval_s: float = 0.5,
        stages: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.total = total
        self.callback = callback
        self.stages = stages
        self.interval_s = interval_s
        self.done = 0
        self.skipped = 0
        self.start = time.monotonic()
        self._last = 0.0

    def advance(self, *, skipped: bool = False) -> None:
        self.done += 1
        self.skipped += int(skipped)
        now = time.monotonic()
        if now - self._last >= self.interval_s or self.done == self.total:
            self._last = now
            self.callback(self.event())

    def event(self) -> ProgressEvent:
        return ProgressEvent(
            done=self.done,
            total=self.total,
            skipped=self.skipped,
            elapsed_s=time.monotonic() - self.start,
            stages=self.stages() if self.stages else {},
        )
