"""Classifying many images with a bundle: read, prepare, batch, predict, decide.

Each image is read through :mod:`tilecast.io.raster` and prepared by the contract's one
executor (:func:`tilecast.bundle.runtime.prepare`: channel order, sentinels, the declared
resize policy, scaling); the prepared images are stacked into batches for the model, TTA
views are averaged after the activation, and :mod:`.decide` turns each probability vector
into an answer. Reading runs in a small thread pool one batch ahead of the model. An image
that cannot be read or does not fit the contract is a rejection with its reason; the run
goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from tilecast.apps.classify.decide import decide
from tilecast.apps.classify.predictor import ClassPredictor
from tilecast.apps.classify.results import Row, Summary, summarise
from tilecast.bundle import Bundle
from tilecast.bundle.runtime import Prepared, resize_plan
from tilecast.drift import DriftMode, DriftMonitor, PendingMoments
from tilecast.errors import ContractError, InputError, StorageError
from tilecast.io.raster import RasterImage, read_raster
from tilecast.predict.reference import prepare_raster
from tilecast.predict.views import tta_views
from tilecast.run.progress import ProgressCallback, ProgressTracker, no_progress

log = logging.getLogger(__name__)

DEFAULT_TOP_K = 3


@dataclass(frozen=True)
class Loaded:
    """One input after reading and the host steps: prepared, or the reason it was not."""

    uri: str
    prepared: Prepared | None
    size_wh: tuple[int, int] | None = None
    checks: tuple[str, ...] = ()
    reason: str = ""
    drift: PendingMoments | None = None  # statistics of its valid raw pixels


@dataclass(frozen=True)
class ClassifyRun:
    rows: tuple[Row, ...]
    summary: Summary


def checks_that_ran(
    bundle: Bundle, image: RasterImage, order: str, prepared: Prepared
) -> tuple[str, ...]:
    """What the contract checked and did on this image, in words, for the results row."""
    contract = bundle.contract
    spec = contract.input
    c, h, w = image.shape
    invalid = sum(int(v) for v in prepared.sentinel_counts.values())
    target = spec.channel_order
    checks = [
        f"channels {c} = {spec.channels}",
        f"dtype {image.array.dtype.name}",
        f"invalid pixels {invalid}",
        f"channel order {order}" if order == target else f"channel order {order}->{target}",
    ]
    plan = resize_plan(contract, h, w)
    resize = contract.resize
    if plan is not None and resize is not None:
        if plan.resamples or plan.crops:
            crop = f" crop {plan.crop}" if plan.crops else ""
            checks.append(
                f"resize {plan.source}->{plan.resized}{crop} "
                f"({resize.policy}, {resize.interpolation})"
            )
        else:
            checks.append(f"size {plan.source} as trained")
    return tuple(checks)


def load_one(
    bundle: Bundle, uri: str, *, channel_order: str | None, drift: DriftMonitor | None = None
) -> Loaded:
    """Read ``uri`` and run the contract's host steps; a bad image becomes a rejection.
    ``drift`` samples the statistics of its valid raw pixels (added by the caller)."""
    try:
        image = read_raster(uri, channel_order=channel_order)
        order, prepared = prepare_raster(bundle, image, channel_order=channel_order)
    except (InputError, StorageError) as exc:
        reason = str(exc).removeprefix(f"{uri}: ")
        log.info("rejected %s: %s", uri, reason)
        return Loaded(uri=uri, prepared=None, reason=reason)
    _, h, w = image.shape
    return Loaded(
        uri=uri,
        prepared=prepared,
        size_wh=(w, h),
        checks=checks_that_ran(bundle, image, order, prepared),
        drift=None
        if drift is None
        else drift.sample(image.array, prepared.valid, channel_order=order),
    )


def classify(
    bundle: Bundle,
    uris: Sequence[str],
    *,
    tta: str = "none",
    batch_size: int = 16,
    channel_order: str | None = None,
    progress: ProgressCallback = no_progress,
    read_workers: int = 4,
    input_drift: DriftMode = "warn",
) -> ClassifyRun:
    """Classify every image in ``uris`` (already expanded), one row each, in input order.

    The valid pixels of every classified image are pooled and judged against the training
    statistics (:mod:`tilecast.drift`): the verdict is in the summary; ``input_drift="fail"``
    raises :class:`InputDriftError` when the whole pool looks unlike training, before any
    result is returned. (Per image, or per batch of a folder sorted by class, it would say
    little: a chip of a lake is darker than the training average without being unlike
    training.)
    """
    contract = bundle.contract
    if contract.task != "classification":
        raise ContractError(
            f"{bundle.uri}: a {contract.task} bundle; classify needs a classification bundle"
        )
    if batch_size < 1:
        raise InputError(f"batch_size must be positive, {batch_size} is given")
    predictor = ClassPredictor(bundle, tta_views(tta))
    post = contract.postprocessing
    labels = post.labels
    k = post.top_k or min(DEFAULT_TOP_K, len(labels))
    chunks = [list(uris[i : i + batch_size]) for i in range(0, len(uris), batch_size)]
    tracker = ProgressTracker(len(uris), progress)
    rows: list[Row] = []
    start = time.monotonic()
    drift = DriftMonitor.for_bundle(bundle, mode=input_drift)

    def submit(pool: ThreadPoolExecutor, chunk: list[str]) -> list[Future[Loaded]]:
        return [
            pool.submit(load_one, bundle, u, channel_order=channel_order, drift=drift)
            for u in chunk
        ]

    with ThreadPoolExecutor(max_workers=max(1, read_workers)) as pool:
        pending = submit(pool, chunks[0]) if chunks else []
        for i in range(len(chunks)):
            current = pending
            pending = submit(pool, chunks[i + 1]) if i + 1 < len(chunks) else []
            loaded = [f.result() for f in current]
            ready = [item for item in loaded if item.prepared is not None]
            probabilities = predictor([item.prepared.array for item in ready]) if ready else None
            answers = iter(() if probabilities is None else probabilities)
            for item in loaded:
                if item.prepared is None:
                    rows.append(Row(input=item.uri, status="rejected", reason=item.reason))
                    tracker.advance(skipped=True)
                    continue
                answer = decide(
                    np.asarray(next(answers)),
                    labels,
                    activation=post.activation,  # type: ignore[arg-type]
                    threshold=post.threshold,
                    k=k,
                )
                if item.drift is not None:
                    drift.add(item.drift)
                rows.append(
                    Row(
                        input=item.uri,
                        status="classified",
                        answer=answer,
                        size_wh=item.size_wh,
                        checks=item.checks,
                    )
                )
                tracker.advance()
    verdict = drift.enforce(f"{len(rows)} image(s) classified")
    summary = summarise(
        rows,
        elapsed_s=time.monotonic() - start,
        tta=tta,
        batch_size=batch_size,
        bundle=f"{contract.name} {contract.version} ({bundle.digest[:12]})",
        input_drift=verdict,
    )
    log.info(
        "classified %d of %d image(s), %d uncertain, %d rejected",
        summary.classified,
        summary.total,
        summary.uncertain,
        summary.rejected,
    )
    return ClassifyRun(rows=tuple(rows), summary=summary)
