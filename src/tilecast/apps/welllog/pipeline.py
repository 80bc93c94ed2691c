"""One scan through the serving path, shared by the batch job and the HTTP service.

bytes -> :func:`decode_scan` (sha256, pixels, checked against the contract) -> the digitiser ->
:func:`write_scan` (render the layout's objects, commit them). The job and the service call the
same functions, so a scan served over HTTP is written exactly as the batch job writes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.outputs import Provenance, ScanOutputs, render_outputs
from tilecast.apps.welllog.records import ScanRecord
from tilecast.apps.welllog.writeback import Committed, commit_scan
from tilecast.bundle import Bundle
from tilecast.bundle.runtime import check_image
from tilecast.errors import InputError
from tilecast.io.raster import decode_raster


class Digitiser(Protocol):
    """A batch of scans (C, H, W) and their records in, their curves out (same order).

    ``nodata`` is the scans' NoData value from their files (masked like a sentinel), if any.
    """

    def __call__(
        self,
        images: Sequence[np.ndarray],
        records: Sequence[ScanRecord],
        *,
        nodata: float | None = None,
    ) -> list[DigitisedCurves]: ...


@dataclass(frozen=True, eq=False)
class DecodedScan:
    record: ScanRecord
    image: np.ndarray  # (C, H, W) as the file holds it
    sha256: str  # of the file's bytes
    nodata: float | None = None  # the file's NoData value

    @property
    def height(self) -> int:
        return int(self.image.shape[1])

    @property
    def valid(self) -> np.ndarray | None:
        """(H, W) bool: pixels not NoData in every channel (None: the file has no NoData)."""
        if self.nodata is None:
            return None
        return ~(self.image == self.nodata).all(axis=0)

    @property
    def width(self) -> int:
        return int(self.image.shape[2])


def decode_scan(bundle: Bundle, record: ScanRecord, data: bytes) -> DecodedScan:
    """The scan's pixels, checked against the model's input; InputError naming what is wrong."""
    raster = decode_raster(data, name=record.scan_uri)
    try:
        check_image(
            bundle.contract, raster.array, channel_order=bundle.contract.input.channel_order
        )
    except InputError as exc:
        raise InputError(f"{record.scan_uri}: {exc}") from None
    return DecodedScan(
        record=record,
        image=raster.array,
        sha256=hashlib.sha256(data).hexdigest(),
        nodata=raster.nodata,
    )


def bundle_digitiser(bundle: Bundle, *, batch_size: int) -> Digitiser:
    """The bundle's digitiser (``apps.welllog.digitise.digitise_many``), ``batch_size`` per call."""
    from tilecast.apps.welllog.digitise import digitise_many

    def run(
        images: Sequence[np.ndarray],
        records: Sequence[ScanRecord],
        *,
        nodata: float | None = None,
    ) -> list[DigitisedCurves]:
        return digitise_many(
            bundle, list(images), list(records), batch_size=batch_size, nodata=nodata
        )

    return run


def provenance(bundle: Bundle, scan: DecodedScan) -> Provenance:
    contract = bundle.contract
    return Provenance(
        source_sha256=scan.sha256,
        width_px=scan.width,
        height_px=scan.height,
        bundle_digest=bundle.digest,
        model=f"{contract.name} {contract.version}",
    )


def write_scan(
    out: str, bundle: Bundle, scan: DecodedScan, curves: DigitisedCurves
) -> tuple[ScanOutputs, Committed]:
    """Render the scan's objects and commit them under ``out`` (``_SUCCESS`` last)."""
    outputs = render_outputs(curves, scan.record, provenance(bundle, scan))
    return outputs, commit_scan(out, scan.record, outputs)
