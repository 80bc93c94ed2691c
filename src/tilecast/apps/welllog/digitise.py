"""Digitise scans with a bundle: the contract runs the pixels, :mod:`.extract` reads the curves.

A scan is a grayscale ``(H, W)`` or ``(1, H, W)`` array in the contract's dtype. The one
contract executor (:mod:`tilecast.bundle.runtime`) guards sentinel pixels (the well-log
bundle lists 0, the scans' missing-pixel value, among them; ``nodata`` adds a file's NoData
value), fills them, normalises, pads to the alignment (32), runs the model, applies the softmax
and crops back to exactly ``(H, W)``. The masked pixels are counted in
``DigitisedCurves.counts`` and never read as curve.

:func:`digitise_many` stacks scans whose padded shapes are equal into one model call. GroupNorm
normalises each sample on its own, so a batch gives the same probabilities as one scan at a
time, bit for bit, once oneDNN's batch-size-dependent convolutions are switched off
(:class:`BatchInvariant`; ``tests/welllog/test_digitise.py`` holds us to that).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.extract import extract_curves
from tilecast.apps.welllog.records import ScanRecord
from tilecast.bundle.load import Bundle
from tilecast.bundle.runtime import Inference, activate, infer, prepare
from tilecast.errors import InputError
from tilecast.prep import crop_padding, padding_for


class _NativeConvolutions:
    """Switch oneDNN off while any well-log call runs (reference-counted, thread-safe).

    The flag is process-wide: concurrent calls share one "off" period and it is restored when
    the last one leaves, so no call runs with oneDNN switched back on underneath it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = True

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._saved = torch.backends.mkldnn.enabled
                torch.backends.mkldnn.enabled = False
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    torch.backends.mkldnn.enabled = self._saved


_NATIVE = _NativeConvolutions()


class BatchInvariant:
    """The bundle's model with oneDNN (mkldnn) convolutions switched off for each call.

    PyTorch's CPU convolutions through oneDNN choose their kernel by batch size: a scan in a
    batch of 2 or 3 differed from the same scan alone by up to 1e-6 (measured on torch 2.13,
    oneDNN 3.12, AVX2, in convolutions with 32 or more input channels on small feature maps;
    ``torch.backends.mkldnn.deterministic`` and ``torch.use_deterministic_algorithms`` do not
    change that). PyTorch's native kernels compute every sample of a batch the same way, so
    with them a batch is bitwise equal to one scan at a time, at the price of slower
    convolutions. While a call runs the switch is process-wide.
    """

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.model = model

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with _NATIVE.active():
            return self.model(batch)


def as_scan(image: np.ndarray) -> np.ndarray:
    """A grayscale scan as ``(1, H, W)``; ``(H, W)`` gains its channel axis."""
    array = np.asarray(image)
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3 and array.shape[0] == 1:
        return array
    raise InputError(f"expected a grayscale scan (H, W) or (1, H, W), got shape {array.shape}")


def predict_scan(bundle: Bundle, image: np.ndarray, *, nodata: float | None = None) -> Inference:
    """Class probabilities (K, H, W) and pixel validity of one scan, through the contract."""
    return infer(
        bundle.contract,
        bundle.stats,
        BatchInvariant(bundle.model),
        as_scan(image),
        channel_order=bundle.contract.input.channel_order,
        nodata=nodata,
    )


def predict_scans(
    bundle: Bundle,
    images: Sequence[np.ndarray],
    *,
    batch_size: int,
    nodata: float | None = None,
) -> list[Inference]:
    """:func:`predict_scan` for many scans, same-padded-shape scans stacked ``batch_size`` at a
    time into one model call; results in input order."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, {batch_size!r} is given")
    contract = bundle.contract
    model = BatchInvariant(bundle.model)
    scans = [as_scan(image) for image in images]
    groups: dict[tuple[int, int], list[int]] = {}
    for index, scan in enumerate(scans):
        padded = padding_for(*scan.shape[1:], multiple=contract.alignment.multiple).padded_shape
        groups.setdefault(padded, []).append(index)
    results: list[Inference | None] = [None] * len(scans)
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            prepared = [
                prepare(
                    contract,
                    bundle.stats,
                    scans[i],
                    channel_order=contract.input.channel_order,
                    nodata=nodata,
                )
                for i in chunk
            ]
            batch = torch.from_numpy(np.stack([p.array for p in prepared]))
            probs = activate(contract, model(batch))
            for i, item, p in zip(chunk, probs, prepared, strict=True):
                out = crop_padding(item, p.padding).cpu().numpy().astype(np.float32, copy=False)
                results[i] = Inference(
                    probabilities=out,
                    valid=p.valid,
                    sentinel_counts=p.sentinel_counts,
                    padding=p.padding,
                )
    return [r for r in results if r is not None]


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
    """:func:`digitise` for many scans, batched by padded shape; equal to one at a time."""
    if len(images) != len(records):
        raise InputError(f"{len(images)} scans but {len(records)} records; expected one each")
    for record in records:
        _check_classes(bundle, record)
    inferences = predict_scans(bundle, images, batch_size=batch_size, nodata=nodata)
    return [
        curves_of(bundle, inference, record, step=step)
        for inference, record in zip(inferences, records, strict=True)
    ]
