"""What POST /predict does per contract task: the batched forward and the reply.

Each task has one signature: ``forward(bundle)`` gives the function the batcher's worker
calls on a group of prepared arrays of one shape (model and activation, nothing else), and
``reply(bundle, decoded, output, fmt=...)`` turns one output into the response body, in the
request's own thread.

Batch independence: a forward calls the model on ``default_micro_batch`` samples at a time
(:func:`tilecast.predict.batched.default_micro_batch`): one on the CPU, where oneDNN's
kernels may pick other algorithms (and other bits) for other batch sizes, the whole group on
a GPU. So on the CPU a batched answer is bitwise the answer of the request alone, and the same
as ``tilecast classify`` / ``tilecast predict`` give for the file.

- ``classification``: the JSON row ``tilecast classify`` writes (:meth:`Row.record`): label,
  confidence, top-k with names, ``uncertain``, the input's size, the checks that ran.
- ``segmentation``: ``fmt="tif"`` the float32 probability GeoTIFF ``tilecast predict`` writes
  (every class band bit for bit, NoData -1 where the input is invalid, the input's CRS and
  transform, the same tags, the input-drift verdict of this image included);
  ``fmt="png"`` the mask of the thresholded class (255 at or above the threshold, 0 below or
  invalid), its georeferencing in the ``X-Tilecast-CRS`` / ``X-Tilecast-Transform`` headers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch

from tilecast.apps.classify.decide import decide
from tilecast.apps.classify.job import DEFAULT_TOP_K, checks_that_ran
from tilecast.apps.classify.predictor import ClassPredictor
from tilecast.apps.classify.results import Row
from tilecast.bundle import Bundle
from tilecast.bundle.runtime import activate
from tilecast.errors import UnknownNameError
from tilecast.io.raster import GTiffCoding, encode_gtiff
from tilecast.predict.batched import default_micro_batch
from tilecast.predict.reference import PROBABILITY_NODATA, probability_tags
from tilecast.predict.views import tta_views
from tilecast.prep import crop_padding
from tilecast.serve.errors import RequestError
from tilecast.serve.images import Decoded

Format = Literal["json", "tif", "png"]
Forward = Callable[[Sequence[torch.Tensor]], list[Any]]


@dataclass(frozen=True)
class Reply:
    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


class Task(Protocol):
    formats: tuple[Format, ...]  # the first is the default

    def forward(self, bundle: Bundle) -> Forward: ...

    def reply(self, bundle: Bundle, decoded: Decoded, output: Any, *, fmt: Format) -> Reply: ...


def in_micro_batches(
    call: Callable[[torch.Tensor], Sequence[Any]], arrays: Sequence[torch.Tensor]
) -> list[Any]:
    """``call`` on stacked slices of ``arrays``, one sample each on the CPU (see the module)."""
    step = default_micro_batch(arrays[0].device)
    outputs: list[Any] = []
    for start in range(0, len(arrays), step):
        outputs.extend(call(torch.stack(list(arrays[start : start + step]))))
    return outputs


class Classification:
    formats: tuple[Format, ...] = ("json",)

    def forward(self, bundle: Bundle) -> Forward:
        predictor = ClassPredictor(bundle, tta_views("none"))
        return lambda arrays: in_micro_batches(lambda batch: predictor(list(batch)), arrays)

    def reply(self, bundle: Bundle, decoded: Decoded, output: Any, *, fmt: Format) -> Reply:
        post = bundle.contract.postprocessing
        answer = decide(
            np.asarray(output),
            post.labels,
            activation=post.activation,  # type: ignore[arg-type]
            threshold=post.threshold,
            k=post.top_k or min(DEFAULT_TOP_K, len(post.labels)),
        )
        _, height, width = decoded.image.shape
        row = Row(
            input=decoded.name,
            status="classified",
            answer=answer,
            size_wh=(width, height),
            checks=checks_that_ran(bundle, decoded.image, decoded.order, decoded.prepared),
        )
        return Reply(json.dumps(row.record()).encode(), "application/json")


class Segmentation:
    formats: tuple[Format, ...] = ("tif", "png")

    def forward(self, bundle: Bundle) -> Forward:
        contract, model = bundle.contract, bundle.model
        return lambda arrays: in_micro_batches(lambda b: activate(contract, model(b)), arrays)

    def reply(self, bundle: Bundle, decoded: Decoded, output: Any, *, fmt: Format) -> Reply:
        prepared, contract = decoded.prepared, bundle.contract
        probabilities = crop_padding(output, prepared.padding).cpu().numpy()
        out = probabilities.astype(np.float32, copy=True)
        valid = prepared.valid.cpu().numpy()
        out[:, ~valid] = PROBABILITY_NODATA
        georef = decoded.image.georef
        if fmt == "png":
            positive = out[contract.postprocessing.positive_index]
            mask = np.where(valid & (positive >= bundle.threshold), 255, 0).astype(np.uint8)
            headers = {
                "X-Tilecast-Transform": ",".join(repr(v) for v in tuple(georef.transform)[:6])
            }
            if georef.crs is not None:
                headers["X-Tilecast-CRS"] = georef.crs
            return Reply(png_bytes(mask), "image/png", headers)
        labels = list(contract.postprocessing.labels)
        # what tilecast.predict.reference.predict_image_file writes: pixels, profile, tags
        data = encode_gtiff(
            out,
            georef=georef,
            nodata=PROBABILITY_NODATA,
            coding=GTiffCoding(compress="lzw", blocksize=256),
            tags=probability_tags(
                bundle,
                sentinel_counts=prepared.sentinel_counts,
                channel_order=decoded.order,
                drift=decoded.drift,
            ),
            band_descriptions=labels[-out.shape[0] :] if len(labels) >= out.shape[0] else None,
        )
        return Reply(data, "image/tiff")


def png_bytes(mask: np.ndarray) -> bytes:
    """A (H, W) uint8 mask as PNG bytes (encoded in memory)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG")
    return buffer.getvalue()


TASKS: dict[str, Task] = {"classification": Classification(), "segmentation": Segmentation()}


def task_for(bundle: Bundle) -> Task:
    task = TASKS.get(bundle.contract.task)
    if task is None:
        raise UnknownNameError("served task", bundle.contract.task, list(TASKS))
    return task


def check_format(task: Task, fmt: str | None) -> Format:
    """The reply format asked for, or the task's default; 422 naming ``format`` otherwise."""
    if fmt is None:
        return task.formats[0]
    if fmt not in task.formats:
        raise RequestError(
            422, "format", f"{fmt!r} is not served for this bundle; expected one of {task.formats}"
        )
    return fmt  # type: ignore[return-value]
