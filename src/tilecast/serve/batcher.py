"""Dynamic batching: requests queue, one worker thread runs them in groups of one shape.

The worker takes the first waiting request, then waits at most ``max_wait_ms`` for others
(``max_batch`` in all), groups them by the shape of their prepared array, in arrival order,
and calls ``run`` once per group; each request's future gets its own result. The queue is
bounded: :meth:`DynamicBatcher.submit` raises :class:`QueueFullError` instead of letting it
grow, and the service answers 503 with ``Retry-After``.

Batching never changes a result: what ``run`` does with a group is the task's business, and
the tasks' forwards (:mod:`tilecast.serve.tasks`) call the model one sample at a time on the
CPU, so an answer is bitwise the answer the same input gets alone.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from tilecast.serve.errors import QueueFullError

log = logging.getLogger(__name__)

RunGroup = Callable[[Sequence[Any]], Sequence[Any]]


@dataclass(eq=False)
class _Waiting:
    key: Hashable
    item: Any
    future: Future = field(default_factory=Future)


@dataclass
class BatcherStats:
    """What the worker has done: requests answered, model groups run, the largest group."""

    requests: int = 0
    groups: int = 0
    largest_group: int = 0
    refused: int = 0


_STOP = object()


class DynamicBatcher:
    """``batcher.submit(key, item)`` -> a future of ``run([item, ...])``'s entry for ``item``.

    ``key`` says which items may share a call of ``run`` (the prepared array's shape).
    """

    def __init__(
        self,
        run: RunGroup,
        *,
        max_batch: int,
        max_wait_ms: float,
        queue_size: int,
        name: str = "tilecast-batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be positive, {max_batch} is given")
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.stats = BatcherStats()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Requests queued and not yet taken by the worker."""
        return self._queue.qsize()

    def submit(self, key: Hashable, item: Any) -> Future:
        waiting = _Waiting(key, item)
        try:
            self._queue.put_nowait(waiting)
        except queue.Full:
            with self._lock:
                self.stats.refused += 1
            raise QueueFullError(
                f"{self._queue.maxsize} requests are already waiting for the model"
            ) from None
        return waiting.future

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker once the requests queued before are answered (at most ``timeout``
        seconds of waiting; the worker is a daemon thread either way)."""
        if not self._thread.is_alive():
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("the batcher's queue stayed full for %.0f s; not waiting for it", timeout)
            return
        self._thread.join(timeout)

    def _gather(self) -> tuple[list[_Waiting], bool]:
        """The next batch: the first waiting request and those arriving within max_wait."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _work(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._gather()
            # a request whose caller went away (its future cancelled) is dropped; the others
            # can no longer be cancelled
            batch = [w for w in batch if w.future.set_running_or_notify_cancel()]
            groups: dict[Hashable, list[_Waiting]] = {}
            for waiting in batch:
                groups.setdefault(waiting.key, []).append(waiting)
            for group in groups.values():
                self._answer(group)

    def _answer(self, group: list[_Waiting]) -> None:
        try:
            results = self._run([w.item for w in group])
            if len(results) != len(group):
                raise RuntimeError(f"{len(group)} items in, {len(results)} results out")
        except Exception as exc:  # every waiting request hears about it, the worker goes on
            log.exception("a batch of %d failed", len(group))
            for waiting in group:
                waiting.future.set_exception(exc)
            return
        with self._lock:
            self.stats.requests += len(group)
            self.stats.groups += 1
            self.stats.largest_group = max(self.stats.largest_group, len(group))
        for waiting, result in zip(group, results, strict=True):
            waiting.future.set_result(result)
