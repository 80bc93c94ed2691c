"""Running input statistics for a job or a service, judged against training, warn or fail.

A :class:`DriftMonitor` keeps one :class:`ChannelMoments` per key (a region of the tiled job,
``None`` for a single stream) and adds every observation to it under a lock, so reader and
writer threads can feed it. :meth:`verdict` judges one key or all of them pooled;
:meth:`enforce` raises :class:`InputDriftError` when the mode is ``fail`` and the pooled input
is flagged. :meth:`to_json` is what a run log records as ``input_drift`` (with the moments, so
a restart carries on from them: :meth:`restore`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from tilecast.drift.judge import DriftPolicy, DriftVerdict, judge
from tilecast.drift.moments import ChannelMoments, PendingMoments, sample_moments
from tilecast.drift.reference import TrainingReference
from tilecast.errors import InputDriftError
from tilecast.prep.arrays import Array

log = logging.getLogger(__name__)

DriftMode = Literal["warn", "fail"]
DRIFT_MODES: tuple[str, ...] = ("warn", "fail")


class DriftMonitor:
    """Per-key running statistics of valid raw input, and their verdicts."""

    def __init__(
        self,
        reference: TrainingReference,
        *,
        mode: DriftMode = "warn",
        policy: DriftPolicy | None = None,
    ) -> None:
        if mode not in DRIFT_MODES:
            raise ValueError(f"input drift mode must be one of {DRIFT_MODES}, got {mode!r}")
        self.reference = reference
        self.mode = mode
        self.policy = policy or DriftPolicy()
        self._lock = threading.Lock()
        self._moments: dict[str | None, ChannelMoments] = {}
        self._warned = False

    @classmethod
    def for_bundle(cls, bundle: Any, *, mode: DriftMode = "warn") -> DriftMonitor:
        return cls(TrainingReference.from_bundle(bundle), mode=mode)

    # -- feeding ---------------------------------------------------------------------------

    def sample(self, image: Array, valid: Array | None, *, channel_order: str) -> PendingMoments:
        """Sampled statistics of one image (source ``channel_order``) to :meth:`add` later."""
        ref = self.reference
        return sample_moments(
            image,
            valid,
            source_order=channel_order,
            target_order=ref.channel_order,
            channels=ref.channels,
            value_range=ref.input_range,
        )

    def observe(
        self, image: Array, valid: Array | None, *, channel_order: str, key: str | None = None
    ) -> None:
        self.add(self.sample(image, valid, channel_order=channel_order), key=key)

    def observe_alone(
        self, image: Array, valid: Array | None, *, channel_order: str
    ) -> DriftVerdict:
        """Judge one image on its own (a service's request): in ``fail`` mode a flagged image
        raises :class:`InputDriftError` and is not pooled; otherwise it is pooled and its own
        verdict returned."""
        moments = self.sample(image, valid, channel_order=channel_order).resolve()
        verdict = judge(moments, self.reference, self.policy)
        if verdict.drifted and self.mode == "fail":
            raise InputDriftError(f"input unlike training data: {verdict.summary()}")
        self.add(moments)
        return verdict

    def add(self, moments: ChannelMoments | PendingMoments, *, key: str | None = None) -> None:
        resolved = moments.resolve() if isinstance(moments, PendingMoments) else moments
        with self._lock:
            before = self._moments.get(key)
            self._moments[key] = resolved if before is None else before.merged(resolved)

    def restore(self, recorded: Mapping[str, Any] | None) -> None:
        """Carry on from what an earlier (re)start recorded (:meth:`to_json`'s ``moments``)."""
        if not recorded:
            return
        for key, data in (recorded.get("moments") or {}).items():
            moments = ChannelMoments.from_json(data)
            if moments.channels != self.reference.channels:
                log.warning("input drift: recorded statistics are for other channels; restarted")
                continue
            self.add(moments, key=None if key == "" else key)

    # -- judging ---------------------------------------------------------------------------

    def pooled(self) -> ChannelMoments:
        with self._lock:
            parts = list(self._moments.values())
        ref = self.reference
        total = ChannelMoments.empty(ref.channels, *ref.input_range)
        for part in parts:
            total = total.merged(part)
        return total

    def verdict(self, key: str | None = None, *, pooled: bool = True) -> DriftVerdict:
        """The verdict over every key (``pooled``) or over ``key`` alone."""
        if pooled:
            moments = self.pooled()
        else:
            with self._lock:
                moments = self._moments.get(key) or ChannelMoments.empty(
                    self.reference.channels, *self.reference.input_range
                )
        return judge(moments, self.reference, self.policy)

    def keys(self) -> list[str | None]:
        with self._lock:
            return sorted(self._moments, key=lambda k: "" if k is None else k)

    def enforce(self, where: str) -> DriftVerdict:
        """Judge the pooled input; warn once, or raise in ``fail`` mode, when it is flagged."""
        verdict = self.verdict()
        if verdict.drifted:
            message = f"{where}: input unlike training data: {verdict.summary()}"
            if self.mode == "fail":
                raise InputDriftError(message + " (input_drift: fail)")
            if not self._warned:
                log.warning("%s (input_drift: warn; the run goes on)", message)
                self._warned = True
        return verdict

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            items = sorted(self._moments.items(), key=lambda kv: "" if kv[0] is None else kv[0])
        regions = {
            key: judge(moments, self.reference, self.policy).to_json()
            for key, moments in items
            if key is not None
        }
        return {
            "mode": self.mode,
            "reference": self.reference.to_json(),
            "verdict": self.verdict().to_json(),
            "regions": regions,
            "moments": {"" if k is None else k: m.to_json() for k, m in items},
        }


def from_records(records: Sequence[Mapping[str, Any]]) -> DriftMonitor | None:
    """One monitor holding what several run logs recorded (shards of one output), or None
    when none recorded input statistics (or they were for other training data)."""
    usable = [r for r in records if r and r.get("reference") and r.get("moments") is not None]
    if not usable:
        return None
    reference = TrainingReference.from_json(usable[0]["reference"])
    monitor = DriftMonitor(reference, mode=usable[0].get("mode", "warn"))
    for record in usable:
        if TrainingReference.from_json(record["reference"]) != reference:
            log.warning("input drift: run logs judged against other training statistics; skipped")
            continue
        monitor.restore(record)
    return monitor
