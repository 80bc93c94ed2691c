"""Digitise scans with a bundle: the contract runs the pixels, :mod:`.extract` reads the curves.

A scan is a grayscale ``(H, W)`` or ``(1, H, W)`` array in the contract's dtype. The one
contract executor (:mod:`tilecast.bundle.runtime`) guards sentinel pixels (the well-log
bundle lists 0, the scans' missing-pixel value, among them; ``nodata`` adds a file's NoData
value), fills them, normalises, pads to the alignment (32), runs the model, applies the softmax
and crops back to exactly ``(H, W)``. The masked pixels are counted in
``DigitisedCurves.counts`` and never read as curve.

**One scan per model call, oneDNN on.** PyTorch's CPU convolutions through oneDNN choose their
kernel by batch size: a scan stacked with others differs from the same scan alone (6.6e-7 in
the probabilities of four 96 x 256 scans stacked, torch 2.13; oneDNN's ``deterministic`` flag
does not change that).
So the model only ever sees a batch of one, whatever ``batch_size`` is: a scan's
probabilities are the same bits alone, in a batch, in the job and in the service
(``tests/welllog/test_digitise.py`` holds us to that). The tiled job follows the same rule on
the CPU (:func:`tilecast.predict.batched.default_micro_batch`). oneDNN stays on: switching it
off, as this module once did process-wide, sends the convolutions to PyTorch's native im2col
kernels, about 3.6x the model's memory and 3x its time (11.6 GB against 3.2 GB for a
12800 x 640 scan, ``bench/welllog_memory.py``). The bits are those of one CPU and one torch
thread count: oneDNN's results also move with the number of intra-op threads (1 against 2
threads: curve values differ by up to 1.3e-6), so the job and the service should run with
the same thread setting when their outputs must match.

**One scan in memory at a time.** :func:`digitise_many` takes each scan through prepare,
model, activation, crop and curve extraction before preparing the next, so the peak is one
forward of the largest scan plus a few scan-sized arrays, not a batch's probabilities. The
bundle's model is called directly (it runs under ``torch.inference_mode``). ``batch_size``
stays the caller's unit of work (the job reads, retries and commits a batch at a time); it
never reaches the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.extract import extract_curves
from tilecast.apps.welllog.records import ScanRecord
from tilecast.bundle.load import Bundle
from tilecast.bundle.runtime import Inference, check_image, infer
from tilecast.errors import InputError


def as_scan(image: np.ndarray) -> np.ndarray:
    """A grayscale scan as ``(1, H, W)``; ``(H, W)`` gains its channel axis."""
    array = np.asarray(image)
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3 and array.shape[0] == 1:
        return array
    raise InputError(f"expected a grayscale scan (H, W) or (1, H, W), got shape {array.shape}")


def predict_scan(bundle: Bundle, image: np.ndarray, *, nodata: float | None = None) -> Inference:
    """Class probabilities (K, H, W) and pixel validity of one scan, through the contract.

    The model gets this one scan as a batch of one, with whatever convolution backend the
    process uses (oneDNN by default): nothing process-wide is switched here.
    """
    return infer(
        bundle.contract,
        bundle.stats,
        bundle.model,
        as_scan(image),
        channel_order=bundle.contract.input.channel_order,
        nodata=nodata,
    )


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, {batch_size!r} is given")


def predict_scans(
    bundle: Bundle,
    images: Sequence[np.ndarray],
    *,
    batch_size: int,
    nodata: float | None = None,
) -> list[Inference]:
    """:func:`predict_scan` for many scans, in input order.

    ``batch_size`` is checked but the model still sees one scan per call (see the module
    docstring): the result is bitwise the same for every batch size. All the probabilities
    are returned at once; :func:`digitise_many` does not keep them.
    """
    _check_batch_size(batch_size)
    return [predict_scan(bundle, image, nodata=nodata) for image in images]


def curves_of(
    bundle: Bundle, inference: Inference, record: ScanRecord, *, step: float | None = None
) -> DigitisedCurves:
    """The curves of one predicted scan, with its missing-pixel counts and registration."""
    curves = extract_curves(
        inference.probabilities,
        inference.valid,
        record,
        threshold=bundle.contract.postprocessing.threshold,
        step=step,
    )
    valid = inference.valid
    counts = {
        "pixels": int(valid.size),
        "missing_pixels": int(valid.size - np.count_nonzero(valid)),
        "masked_columns": int((~valid).any(axis=0).sum()),
        **{f"missing_pixels[{k}]": int(v) for k, v in inference.sentinel_counts.items()},
        **curves.counts,
    }
    padding = inference.padding
    registration = {
        **curves.registration,
        "padding": {"bottom": padding.bottom, "right": padding.right},
        "alignment": bundle.contract.alignment.multiple,
        "classes": list(bundle.contract.postprocessing.labels),
    }
    return dataclasses.replace(curves, counts=counts, registration=registration)


def _check_classes(bundle: Bundle, record: ScanRecord) -> None:
    slots = bundle.contract.model.classes - 1
    if len(record.curves) > slots:
        raise InputError(
            f"scan {record.scan_id} declares {len(record.curves)} curves "
            f"({', '.join(c.name for c in record.curves)}); the model reads at most {slots}"
        )


def digitise(
    bundle: Bundle,
    image: np.ndarray,
    record: ScanRecord,
    *,
    step: float | None = None,
    nodata: float | None = None,
) -> DigitisedCurves:
    """Digitise one scan: pad to the alignment, infer, crop back, extract the curves."""
    _check_classes(bundle, record)
    return curves_of(bundle, predict_scan(bundle, image, nodata=nodata), record, step=step)


def digitise_many(
    bundle: Bundle,
    images: Sequence[np.ndarray],
    records: Sequence[ScanRecord],
    *,
    batch_size: int,
    step: float | None = None,
    nodata: float | None = None,
) -> list[DigitisedCurves]:
    """:func:`digitise` for many scans, in input order, bitwise equal to one at a time.

    Every argument and scan is checked before the first scan runs, so a bad one costs the
    others nothing (the job retries a failed batch scan by scan). Each scan is finished (curves
    extracted, probabilities dropped) before the next is prepared, so memory does not grow
    with ``batch_size``; see the module docstring for why the model gets one scan per call.
    """
    if len(images) != len(records):
        raise InputError(f"{len(images)} scans but {len(records)} records; expected one each")
    _check_batch_size(batch_size)
    contract = bundle.contract
    scans = [as_scan(image) for image in images]
    for scan, record in zip(scans, records, strict=True):
        _check_classes(bundle, record)
        check_image(contract, scan, channel_order=contract.input.channel_order)
    return [
        digitise(bundle, scan, record, step=step, nodata=nodata)
        for scan, record in zip(scans, records, strict=True)
    ]
