"""The tile pipeline: read, prepare, predict, commit, in the shape the device wants.

Two shapes, one set of stage functions, the same bytes out:

- ``per_tile`` (the default on the CPU): each of ``workers`` threads carries a tile end to end,
  read -> prepare -> model -> fuse -> encode -> write. Every stage is torch, GDAL or hashlib
  work that releases the GIL, so the threads scale with cores. The model runs one sample per
  call with one intra-op thread per worker (oneDNN's results depend on both the batch and the
  thread count; fixing them makes outputs bitwise independent of ``workers``, batch size and
  tile order).
- ``batched`` (the default on a GPU): reader threads decode tiles into page-locked memory;
  the calling thread copies them to the device on a side stream (so the copy of the next tiles
  overlaps the model on the current ones), prepares them there, packs passes from many tiles
  into full batches, and starts each fused tile's copy back asynchronously; writer threads wait
  for that copy, then encode and write.

Either way :meth:`TilePipeline.run` yields, in a bounded window, one result per work item:
:class:`Committed` once the tile's file is in place, or the :class:`SkippedTile` saying why
not. The caller records them; nothing here touches the run log.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import torch

from tilecast.apps.rts.plan import WorkItem
from tilecast.apps.rts.sink import CommittedTile, TileSink
from tilecast.apps.rts.tiles import (
    ALL_NODATA,
    RawTile,
    SkippedTile,
    TilePayload,
    prepare_tile,
    read_tile,
)
from tilecast.bundle import Bundle
from tilecast.drift import ChannelMoments, DriftMonitor
from tilecast.io.basemap import Basemap
from tilecast.predict.batched import BatchedPredictor, TileInputs, TileOutput
from tilecast.run import killpoints
from tilecast.run.stages import StageClock

log = logging.getLogger(__name__)

PipelineShape = Literal["per_tile", "batched"]


@dataclass(frozen=True)
class Committed:
    """A tile whose file is in place, with the counts the run log sums."""

    item: WorkItem
    tile: CommittedTile
    sentinel_counts: dict[str, int]
    drift: ChannelMoments | None = None  # statistics of its valid raw pixels


Result = Committed | SkippedTile


def default_shape(device: torch.device) -> PipelineShape:
    return "per_tile" if device.type == "cpu" else "batched"


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the block (it is process-wide)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TilePipeline:
    """Runs work items through read -> prepare -> predict -> commit; see the module notes."""

    def __init__(
        self,
        *,
        basemap: Basemap,
        bundle: Bundle,
        predictor: BatchedPredictor,
        sink: TileSink,
        channel_order: str,
        workers: int,
        window: int,
        clock: StageClock,
        before_commit: Callable[[], None] = lambda: None,
        shape: PipelineShape | None = None,
        drift: DriftMonitor | None = None,
    ) -> None:
        self.basemap = basemap
        self.bundle = bundle
        self.predictor = predictor
        self.sink = sink
        self.channel_order = channel_order
        self.workers = max(1, workers)
        self.window = max(1, window)  # results in flight (bounded memory)
        self.clock = clock
        self.before_commit = before_commit
        self.drift = drift
        self.device = predictor.device
        self.shape = shape or default_shape(self.device)
        predictor.clock = clock

    # -- the stages ------------------------------------------------------------------------

    def _read(self, item: WorkItem, *, pin: bool = False) -> RawTile | SkippedTile:
        with self.clock.stage("read"):
            return read_tile(item, basemap=self.basemap, pin=pin)

    def _prepare(self, raw: RawTile) -> TileInputs:
        with self.clock.stage("prepare"):
            return prepare_tile(
                raw,
                bundle=self.bundle,
                channel_order=self.channel_order,
                nodata=self.basemap.nodata,
                mask_rule=self.basemap.mask_rule,
                device=self.device,
                drift=self.drift,
            )

    def _commit(self, out: TileOutput) -> Result:
        """Post-process, encode and write one fused tile (a skip if nothing in it is valid)."""
        payload: TilePayload = out.payload  # type: ignore[assignment]
        if out.ready is not None:
            with self.clock.stage("device"):
                out.ready.synchronize()  # the asynchronous copy back has landed
        if not out.valid.any():  # the sentinel guard rejected every pixel of the footprint
            return SkippedTile(item=payload.item, reason=ALL_NODATA)
        self.before_commit()
        done = self.sink.commit(out, clock=self.clock)
        with self.clock.stage("record"):
            counts = dict(payload.sentinel_counts)
            moments = None if payload.drift is None else payload.drift.resolve()
        return Committed(item=payload.item, tile=done, sentinel_counts=counts, drift=moments)

    def _whole_tile(self, item: WorkItem) -> Result:
        """``per_tile``: one tile end to end on this worker thread."""
        raw = self._read(item)
        if isinstance(raw, SkippedTile):
            return raw
        inputs = self._prepare(raw)
        out = self.predictor.predict_one(inputs)  # clocked as "device" by the predictor
        killpoints.reached("infer.tile")
        return self._commit(out)

    # -- the shapes ------------------------------------------------------------------------

    def run(self, items: Iterable[WorkItem]) -> Iterator[Result]:
        if self.shape == "per_tile":
            return self._run_per_tile(items)
        return self._run_batched(items)

    def _run_per_tile(self, items: Iterable[WorkItem]) -> Iterator[Result]:
        pending: collections.deque[Future[Result]] = collections.deque()
        with (
            intra_op_threads(1) if self.device.type == "cpu" else contextlib.nullcontext(),
            ThreadPoolExecutor(self.workers, thread_name_prefix="tilecast-tile") as pool,
        ):
            try:
                for item in items:
                    pending.append(pool.submit(self._whole_tile, item))
                    while len(pending) > self.window:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:  # an error or an early stop: start nothing new
                    future.cancel()

    def _run_batched(self, items: Iterable[WorkItem]) -> Iterator[Result]:
        results: collections.deque[Future[Result]] = collections.deque()
        pin = self.device.type == "cuda"
        copy_stream = torch.cuda.Stream(self.device) if pin else None
        with (
            # on the CPU, the same thread count as per_tile: oneDNN's results depend on it
            intra_op_threads(1) if self.device.type == "cpu" else contextlib.nullcontext(),
            ThreadPoolExecutor(self.workers, thread_name_prefix="tilecast-read") as readers,
            ThreadPoolExecutor(self.workers, thread_name_prefix="tilecast-write") as writers,
        ):

            def inputs() -> Iterator[TileInputs]:
                queue = iter(items)
                reads: collections.deque[Future[RawTile | SkippedTile]] = collections.deque()
                for item in queue:
                    reads.append(readers.submit(self._read, item, pin=pin))
                    if len(reads) >= self.window:
                        break
                while reads:
                    raw = reads.popleft().result()
                    nxt = next(queue, None)
                    if nxt is not None:
                        reads.append(readers.submit(self._read, nxt, pin=pin))
                    if isinstance(raw, SkippedTile):
                        results.append(_done(raw))
                        continue
                    yield self._prepare(_to_device(raw, self.device, copy_stream))

            try:
                for out in self.predictor.run(inputs()):
                    killpoints.reached("infer.tile")
                    results.append(writers.submit(self._commit, out))
                    while results and (results[0].done() or len(results) > self.window):
                        yield results.popleft().result()
                while results:
                    yield results.popleft().result()
            finally:
                for future in results:
                    future.cancel()


def _done(result: Result) -> Future[Result]:
    future: Future[Result] = Future()
    future.set_result(result)
    return future


def _to_device(raw: RawTile, device: torch.device, stream: torch.cuda.Stream | None) -> RawTile:
    """The tile's pixels on ``device``: on a side stream from pinned memory when it is a GPU,
    so the copy overlaps the model's work on earlier tiles; the compute stream waits for it."""
    if stream is None:
        return raw
    with torch.cuda.stream(stream):
        pixels = tuple(p.to(device, non_blocking=True) for p in raw.pixels)
        valid = tuple(None if v is None else v.to(device, non_blocking=True) for v in raw.valid)
    compute = torch.cuda.current_stream(device)
    compute.wait_stream(stream)
    for t in (*pixels, *valid):  # allocated on the copy stream, used on the compute stream
        if t is not None:
            t.record_stream(compute)
    return RawTile(item=raw.item, pixels=pixels, valid=valid)
