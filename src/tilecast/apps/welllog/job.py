"""The batch job: registration records -> scans -> curves -> the write-back layout; resumable.

A scan whose ``_SUCCESS`` is already under the output is skipped (a restart does only what is
left). Scans are read one batch ahead of the digitiser (a reader thread), digitised a batch at a
time and committed in order. One bad scan never stops the others: a scan whose registration was
refused or whose file cannot be read or does not fit the model is *rejected* (with the reason),
one whose digitising or write fails is *failed*; the summary lists both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.manifest import ScanList
from tilecast.apps.welllog.pipeline import (
    DecodedScan,
    Digitiser,
    bundle_digitiser,
    decode_scan,
    write_scan,
)
from tilecast.apps.welllog.records import ScanRecord
from tilecast.apps.welllog.writeback import is_committed, scan_prefix
from tilecast.bundle import Bundle
from tilecast.drift import DriftMode, DriftMonitor, DriftVerdict
from tilecast.errors import InputError, StorageError
from tilecast.io import storage
from tilecast.run.progress import ProgressCallback, ProgressTracker, no_progress

log = logging.getLogger(__name__)

Status = Literal["accepted", "skipped", "rejected", "failed"]


@dataclass(frozen=True)
class ScanOutcome:
    scan: str  # scan_uri
    status: Status  # accepted: written now; skipped: committed by an earlier run
    prefix: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class JobSummary:
    out: str
    outcomes: tuple[ScanOutcome, ...]
    elapsed_s: float
    input_drift: DriftVerdict | None = None  # the digitised scans' pixels against training

    def with_status(self, status: Status) -> list[ScanOutcome]:
        return [o for o in self.outcomes if o.status == status]

    def count(self, status: Status) -> int:
        return len(self.with_status(status))

    @property
    def ok(self) -> bool:
        """No scan failed (rejected scans are the input's fault and are reported, not failed)."""
        return self.count("failed") == 0


@dataclass(frozen=True, eq=False)
class _Read:
    record: ScanRecord
    scan: DecodedScan | None
    outcome: ScanOutcome | None = None  # why it stopped while reading


def _read(bundle: Bundle, record: ScanRecord) -> _Read:
    uri = record.scan_uri
    try:
        return _Read(record, decode_scan(bundle, record, storage.read_bytes(uri)))
    except (StorageError, InputError) as exc:
        return _Read(record, None, ScanOutcome(uri, "rejected", reason=f"unreadable scan: {exc}"))
    except Exception as exc:  # one scan's failure never stops the others
        reason = f"reading: {type(exc).__name__}: {exc}"
        return _Read(record, None, ScanOutcome(uri, "failed", reason=reason))


def _batches(records: Sequence[ScanRecord], size: int) -> Iterator[Sequence[ScanRecord]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


class WelllogJob:
    """One run (or restart) of the digitiser over a list of scans."""

    def __init__(
        self,
        bundle: Bundle,
        out: str,
        *,
        batch_size: int = 4,
        progress: ProgressCallback = no_progress,
        digitiser: Digitiser | None = None,
        input_drift: DriftMode = "warn",
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be positive, {batch_size} is given")
        self.bundle = bundle
        self.out = out.rstrip("/")
        self.batch_size = batch_size
        self.progress = progress
        self.digitiser = digitiser or bundle_digitiser(bundle, batch_size=batch_size)
        self.drift = DriftMonitor.for_bundle(bundle, mode=input_drift)

    def run(self, scans: ScanList) -> JobSummary:
        start = time.monotonic()
        outcomes: list[ScanOutcome] = []
        for rejected in scans.rejected:
            log.warning("rejected %s: %s", rejected.scan, rejected.reason)
            outcomes.append(ScanOutcome(rejected.scan, "rejected", reason=rejected.reason))
        pending: list[ScanRecord] = []
        for record in scans.records:
            prefix = scan_prefix(self.out, record)
            if is_committed(prefix):
                outcomes.append(ScanOutcome(record.scan_uri, "skipped", prefix=prefix))
            else:
                pending.append(record)
        n_done_before = len(scans.records) - len(pending)
        if n_done_before:
            log.info("%d scan(s) already committed under %s: skipped", n_done_before, self.out)
        tracker = ProgressTracker(len(pending), self.progress)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="welllog-read") as reader:
            batches = list(_batches(pending, self.batch_size))
            ahead: Future[list[_Read]] | None = None
            if batches:
                ahead = reader.submit(self._read_batch, batches[0])
            for i in range(len(batches)):
                assert ahead is not None
                reads = ahead.result()
                if i + 1 < len(batches):
                    ahead = reader.submit(self._read_batch, batches[i + 1])
                self._observe(reads)
                for outcome in self._process(reads):
                    if outcome.status in ("rejected", "failed"):
                        log.warning("%s %s: %s", outcome.status, outcome.scan, outcome.reason)
                    outcomes.append(outcome)
                    tracker.advance(skipped=outcome.status != "accepted")
        order = {record.scan_uri: i for i, record in enumerate(scans.records)}
        outcomes.sort(key=lambda o: order.get(o.scan, -1))  # the rejected first, then as listed
        return JobSummary(
            out=self.out,
            outcomes=tuple(outcomes),
            elapsed_s=time.monotonic() - start,
            input_drift=self.drift.enforce(f"{self.out}: {len(pending)} scan(s)"),
        )

    def _observe(self, reads: list[_Read]) -> None:
        """Add the batch's scans to the input statistics; ``fail`` stops before digitising."""
        order = self.bundle.contract.input.channel_order
        for read in reads:
            if read.scan is not None:
                self.drift.observe(read.scan.image, read.scan.valid, channel_order=order)
        if self.drift.mode == "fail":
            self.drift.enforce(self.out)

    def _read_batch(self, records: Sequence[ScanRecord]) -> list[_Read]:
        return [_read(self.bundle, record) for record in records]

    def _process(self, reads: list[_Read]) -> Iterator[ScanOutcome]:
        good = [r.scan for r in reads if r.scan is not None]
        curves = self._digitise(good)
        for read in reads:
            uri = read.record.scan_uri
            if read.scan is None:
                assert read.outcome is not None
                yield read.outcome
                continue
            result = curves[id(read.scan)]
            if isinstance(result, ScanOutcome):
                yield result
                continue
            try:
                _, committed = write_scan(self.out, self.bundle, read.scan, result)
            except InputError as exc:  # the curves of this scan cannot be written as LAS
                yield ScanOutcome(uri, "rejected", reason=f"cannot write the curves: {exc}")
            except Exception as exc:  # one scan's failure never stops the others
                yield ScanOutcome(uri, "failed", reason=f"write-back: {type(exc).__name__}: {exc}")
            else:
                yield ScanOutcome(uri, "accepted", prefix=committed.prefix)

    def _digitise(self, scans: list[DecodedScan]) -> dict[int, DigitisedCurves | ScanOutcome]:
        """Curves per scan (keyed by id), one digitiser call per NoData value in the batch."""
        by_nodata: dict[float | None, list[DecodedScan]] = {}
        for scan in scans:
            by_nodata.setdefault(scan.nodata, []).append(scan)
        results: dict[int, DigitisedCurves | ScanOutcome] = {}
        for nodata, group in by_nodata.items():
            results.update(self._digitise_group(group, nodata))
        return results

    def _digitise_group(
        self, scans: list[DecodedScan], nodata: float | None
    ) -> dict[int, DigitisedCurves | ScanOutcome]:
        """Curves of scans sharing a NoData value; a batch that fails is retried one by one."""
        try:
            curves = self.digitiser(
                [s.image for s in scans], [s.record for s in scans], nodata=nodata
            )
            return {id(s): c for s, c in zip(scans, curves, strict=True)}
        except Exception as exc:
            if len(scans) == 1:
                return {id(scans[0]): self._failure(scans[0], exc)}
            log.info("a batch of %d failed (%s); digitising one at a time", len(scans), exc)
        results: dict[int, DigitisedCurves | ScanOutcome] = {}
        for scan in scans:
            try:
                results[id(scan)] = self.digitiser([scan.image], [scan.record], nodata=nodata)[0]
            except Exception as exc:
                results[id(scan)] = self._failure(scan, exc)
        return results

    @staticmethod
    def _failure(scan: DecodedScan, exc: Exception) -> ScanOutcome:
        uri = scan.record.scan_uri
        if isinstance(exc, InputError):  # the scan does not fit the model or its registration
            return ScanOutcome(uri, "rejected", reason=f"cannot digitise: {exc}")
        return ScanOutcome(uri, "failed", reason=f"digitising: {type(exc).__name__}: {exc}")
