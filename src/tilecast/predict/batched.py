"""The batched multi-scale, multi-view predictor.

Work arrives as :class:`TileInputs` (one tile, every scale prepared at the model's input size,
as tensors on the model's device). Each (tile, scale, view) is one model pass; passes from many
tiles are packed into full batches of ``batch_size`` (:meth:`BatchedPredictor.run`, the GPU
way), or one tile's passes run together (:meth:`BatchedPredictor.predict_one`, the CPU way,
where each worker thread carries a tile end to end). When every pass of a tile is back, views are inverted and
averaged per scale, each scale is upsampled to its context and the centre tile cropped, and
scales are fused by pixel-wise maximum, keeping which scale won. The result does not depend on
batch size or on how tiles are interleaved: each tile's views are reduced in a fixed order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from tilecast.errors import InputError
from tilecast.predict.views import View
from tilecast.run.stages import StageClock

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "fp16"]
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True, eq=False)
class TileInputs:
    """One tile, prepared at every scale (``arrays[i]`` is scale ``scales[i]``)."""

    key: Hashable
    arrays: torch.Tensor | np.ndarray  # float32 (S, C, m, m): prepared at the model size
    context_sizes: tuple[int, ...]  # context side in source pixels per scale (m / scale)
    tile_size: int  # side of the tile footprint in source pixels
    valid: torch.Tensor | np.ndarray  # bool (tile_size, tile_size): validity of the footprint
    payload: object = None  # carried through untouched (e.g. the tile record, counts)


@dataclass(frozen=True, eq=False)
class TileOutput:
    key: Hashable
    probability: np.ndarray  # float32 (T, T): fused over scales, raw (not yet masked)
    winning_scale: np.ndarray  # uint8 (T, T): index into the scales of the run
    valid: np.ndarray  # bool (T, T)
    payload: object = None
    # on a GPU the arrays above are being copied back asynchronously into page-locked memory:
    # wait on this event (ready.synchronize()) before reading them; None: they are ready
    ready: torch.cuda.Event | None = None


@dataclass(eq=False)
class _Pending:
    inputs: TileInputs
    device_arrays: torch.Tensor  # (S, C, m, m) on the device
    outputs: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)  # (s, v) -> (m, m)


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def default_micro_batch(device: torch.device) -> int:
    """Samples per model call. On the CPU one at a time: measured faster than batches of 8 for
    the demo U-Net at 512 px (0.09 s vs 0.185 s per tile on 2 cores), and oneDNN's results
    then do not depend on what else is in the batch, so outputs are bitwise independent of
    batch size. On a GPU the whole batch."""
    return 1 if device.type == "cpu" else 1 << 30


def fuse_scales(per_scale: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """S (T, T) maps -> pixel-wise max and the index (uint8) of the first scale reaching it.

    Elementwise, one scale at a time (what ``torch.max(dim=0)`` returns, without stacking the
    maps and at a tenth of its cost on the CPU); a later scale wins only where it is larger.
    """
    best = per_scale[0]
    index = torch.zeros(best.shape, dtype=torch.uint8, device=best.device)
    for s, prob in enumerate(per_scale[1:], start=1):
        better = prob > best
        best = torch.where(better, prob, best)
        index.masked_fill_(better, s)
    return best, index


def context_to_tile(prob: torch.Tensor, *, context_size: int, tile_size: int) -> torch.Tensor:
    """(m, m) prediction of a context -> upsampled (bilinear) to the context, centre tile cropped.

    When the context is a whole multiple ``k`` of the model size (scales 1/2, 1/4 ...), only
    the source pixels the centre tile needs are upsampled: the same interpolation weights and
    neighbours as upsampling the whole context (source coordinate (i + 0.5) / k - 0.5 for
    output pixel i), so the same values, for a (1/k)^2 share of the work.
    """
    m = prob.shape[-1]
    offset = (context_size - tile_size) // 2
    if m == context_size:
        return prob[offset : offset + tile_size, offset : offset + tile_size]
    k, rest = divmod(context_size, m)
    if rest == 0 and offset % k == 0:
        # source pixels under output pixels offset .. offset + tile_size - 1, one more each side
        first = max(0, offset // k - 1)
        last = min(m, (offset + tile_size) // k + 1)
        part = F.interpolate(
            prob[None, None, first:last, first:last],
            size=((last - first) * k, (last - first) * k),
            mode="bilinear",
            align_corners=False,
        )[0, 0]
        start = offset - first * k
        return part[start : start + tile_size, start : start + tile_size]
    full = F.interpolate(
        prob[None, None], size=(context_size, context_size), mode="bilinear", align_corners=False
    )[0, 0]
    return full[offset : offset + tile_size, offset : offset + tile_size]


def _to_host(*tensors: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.cuda.Event | None]:
    """The tensors on the CPU. From a GPU: copies into page-locked memory started without
    waiting, and the event that marks them done (the caller's thread goes on feeding the GPU)."""
    if all(t.device.type == "cpu" for t in tensors):
        return tensors, None
    host = tuple(torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors)
    for dst, src in zip(host, tensors, strict=True):
        dst.copy_(src, non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return host, event


class BatchedPredictor:
    """Packs (tile, scale, view) passes into full batches and reassembles fused tiles."""

    def __init__(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        *,
        activate: Callable[[torch.Tensor], torch.Tensor],
        views: Sequence[View],
        batch_size: int,
        positive_index: int = -1,
        device: torch.device | str = "cpu",
        precision: Precision = "fp32",
        channels_last: bool = False,
        micro_batch: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be positive, {batch_size} is given")
        if not views:
            raise InputError("at least one view (identity) is needed")
        self.model = model
        self.activate = activate
        self.views = tuple(views)
        self.batch_size = batch_size
        self.positive_index = positive_index
        self.device = torch.device(device)
        self.precision = precision
        self.channels_last = channels_last
        self.micro_batch = micro_batch or default_micro_batch(self.device)
        self.passes = 0
        self.batches = 0
        self._count_lock = threading.Lock()  # predict_one runs on many worker threads
        self.clock = StageClock()  # model work is clocked as stage "device"; a job sets its own

    def _autocast(self):  # type: ignore[no-untyped-def]
        dtype = AUTOCAST_DTYPES.get(self.precision)
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Model + activation for one batch; a CUDA out-of-memory halves the batch and retries."""
        while True:
            try:
                outs = []
                step = min(self.micro_batch, self.batch_size)
                for start in range(0, batch.shape[0], step):
                    part = batch[start : start + step]
                    if self.channels_last:
                        part = part.contiguous(memory_format=torch.channels_last)
                    with torch.inference_mode(), self._autocast():
                        logits = self.model(part)
                    outs.append(self.activate(logits.float())[:, self.positive_index])
                    with self._count_lock:
                        self.batches += 1
                return torch.cat(outs)
            except Exception as exc:
                if not is_out_of_memory(exc) or self.batch_size == 1:
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.batch_size = max(1, self.batch_size // 2)
                log.warning("out of memory: batch size halved to %d, retrying", self.batch_size)

    def _finish(self, pending: _Pending) -> TileOutput:
        inputs = pending.inputs
        n_views = len(self.views)
        per_scale = []
        for s, context in enumerate(inputs.context_sizes):
            total = pending.outputs[(s, 0)].clone()
            for v in range(1, n_views):  # fixed order: identical sums whatever the batching
                total += pending.outputs[(s, v)]
            mean = total / n_views
            per_scale.append(
                context_to_tile(mean, context_size=context, tile_size=inputs.tile_size)
            )
        best, index = fuse_scales(per_scale)
        valid = inputs.valid
        if not isinstance(valid, torch.Tensor):
            valid = torch.from_numpy(valid)
        host, ready = _to_host(best.float(), index.to(torch.uint8), valid)
        return TileOutput(
            key=inputs.key,
            probability=host[0].numpy(),
            winning_scale=host[1].numpy(),
            valid=host[2].numpy(),
            payload=inputs.payload,
            ready=ready,
        )

    def _device_arrays(self, tile: TileInputs) -> torch.Tensor:
        arrays = tile.arrays
        if isinstance(arrays, np.ndarray):
            arrays = torch.from_numpy(arrays)
        return arrays.to(self.device, non_blocking=True)

    def predict_one(self, tile: TileInputs) -> TileOutput:
        """Every pass of one tile, reduced: what :meth:`run` yields for it, bit for bit on the
        CPU (where the model sees one sample per call either way)."""
        with self.clock.stage("device"):
            return self._predict_one(tile)

    def _predict_one(self, tile: TileInputs) -> TileOutput:
        pending = _Pending(inputs=tile, device_arrays=self._device_arrays(tile))
        take = [
            (s, v) for s in range(pending.device_arrays.shape[0]) for v in range(len(self.views))
        ]
        step = min(self.batch_size, self.micro_batch)  # one sample per call on the CPU
        for start in range(0, len(take), step):
            part = take[start : start + step]
            views = [self.views[v].forward(pending.device_arrays[s]) for s, v in part]
            probs = self._forward(views[0][None] if len(views) == 1 else torch.stack(views))
            with self._count_lock:
                self.passes += len(part)
            for (s, v), prob in zip(part, probs, strict=True):
                pending.outputs[(s, v)] = self.views[v].inverse(prob)
        return self._finish(pending)

    def run(self, tiles: Iterable[TileInputs]) -> Iterator[TileOutput]:
        """Yield fused tiles in input order, as soon as all passes of each are done."""
        order: list[_Pending] = []  # tiles not yet yielded, in input order
        queue: list[tuple[_Pending, int, int]] = []  # passes not yet run

        def drain(final: bool) -> Iterator[TileOutput]:
            while queue and (final or len(queue) >= self.batch_size):
                with self.clock.stage("device"):
                    take = queue[: self.batch_size] if not final else queue[:]
                    del queue[: len(take)]
                    views = [self.views[v].forward(p.device_arrays[s]) for p, s, v in take]
                    probs = self._forward(torch.stack(views))
                    self.passes += len(take)
                    for (p, s, v), prob in zip(take, probs, strict=True):
                        p.outputs[(s, v)] = self.views[v].inverse(prob)
            n_passes = len(self.views)
            while order and len(order[0].outputs) == len(order[0].inputs.context_sizes) * n_passes:
                with self.clock.stage("device"):
                    done = self._finish(order.pop(0))
                yield done

        for tile in tiles:
            arrays = self._device_arrays(tile)
            pending = _Pending(inputs=tile, device_arrays=arrays)
            order.append(pending)
            for s in range(arrays.shape[0]):
                for v in range(len(self.views)):
                    queue.append((pending, s, v))
            yield from drain(final=False)
        yield from drain(final=True)
