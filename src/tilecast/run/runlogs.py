"""The run logs of one output, read together: ``logs/inference_log.json`` and the shards'
``logs/inference_log.<shard>.json``.

Merging, vectorising and reporting all start from here. Logs must agree on what produced their
tiles (:data:`CONSISTENT_KEYS`) and on every tile they both record; otherwise their tiles do not
belong in one product.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from tilecast.errors import InputError, StorageError
from tilecast.io import storage

log = logging.getLogger(__name__)


class RunLogError(InputError):
    """The run logs of an output are missing, unreadable or disagree."""


CONSISTENT_KEYS = (
    "threshold",
    "bundle_digest",
    "basemap_version",
    "scales_used",
    "tta_config",
    "tile_size",
)

_LOG_NAME = re.compile(r"inference_log(?:\.[A-Za-z0-9][A-Za-z0-9._-]*)?\.json")


@dataclass(frozen=True)
class RunLogs:
    """The run logs of one output, combined: their shared settings and every tile record."""

    uris: tuple[str, ...]
    settings: dict[str, Any]  # the CONSISTENT_KEYS found, with their common value
    tiles: dict[str, dict[str, Any]]  # tile_id -> record (status, sha256, region, ...)

    @property
    def threshold(self) -> float:
        value = self.settings.get("threshold")
        if value is None:
            raise RunLogError(
                f"no threshold in the run log(s) {', '.join(self.uris)}; pass one explicitly"
            )
        return float(value)


def run_log_names(output: str) -> list[str]:
    """Names of the run logs under ``{output}/logs`` (empty when there is none)."""
    try:
        return [
            n for n in storage.list_files(storage.join(output, "logs")) if _LOG_NAME.fullmatch(n)
        ]
    except StorageError:
        return []


def read_run_logs(output: str) -> RunLogs:
    """Every ``logs/inference_log*.json`` of ``output``, checked for agreement and combined."""
    logs_dir = storage.join(output, "logs")
    names = run_log_names(output)
    if not names:
        raise RunLogError(f"no run log (inference_log*.json) in {logs_dir}")
    loaded: dict[str, dict[str, Any]] = {}
    for name in names:
        uri = storage.join(logs_dir, name)
        try:
            data = json.loads(storage.read_text(uri))
        except json.JSONDecodeError as exc:
            raise RunLogError(f"{uri}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("tiles", {}), dict):
            raise RunLogError(f"{uri}: expected a run log object with a 'tiles' mapping")
        if data.get("status", "complete") != "complete":
            log.warning("%s: status is %r; merging what it records so far", uri, data["status"])
        loaded[uri] = data
    settings: dict[str, Any] = {}
    for key in CONSISTENT_KEYS:
        values = {uri: data.get(key) for uri, data in loaded.items()}
        if all(v is None for v in values.values()):
            continue
        distinct = {json.dumps(v, sort_keys=True) for v in values.values()}
        if len(distinct) > 1:
            found = "; ".join(f"{uri}: {v!r}" for uri, v in values.items())
            raise RunLogError(
                f"the run logs disagree on {key}, so their tiles do not belong in one mosaic: "
                f"{found}"
            )
        settings[key] = next(iter(values.values()))
    tiles: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    for uri, data in loaded.items():
        for tile_id, record in data.get("tiles", {}).items():
            if tile_id in tiles and tiles[tile_id] != record:
                raise RunLogError(
                    f"tile {tile_id} is recorded differently in {origin[tile_id]} "
                    f"({tiles[tile_id]}) and {uri} ({record})"
                )
            tiles[tile_id] = record
            origin.setdefault(tile_id, uri)
    return RunLogs(uris=tuple(loaded), settings=settings, tiles=tiles)


@dataclass(frozen=True)
class Completeness:
    """Whether every run log of an output is complete, and if not, which tiles are not done."""

    n_listed: int
    not_done: dict[str, int]  # reason -> tiles, over every log
    logs_not_complete: tuple[str, ...]  # names of the logs whose status is not "complete"

    @property
    def complete(self) -> bool:
        return not self.logs_not_complete

    @property
    def n_not_done(self) -> int:
        return sum(self.not_done.values())

    def line(self) -> str:
        """One sentence for the end of a command's output (and the report's verdict)."""
        if self.complete:
            return f"complete: all {self.n_listed:,} listed tiles done or skipped for good"
        reasons = ", ".join(f"{reason}: {n:,}" for reason, n in self.not_done.items())
        return (
            f"incomplete: {self.n_not_done:,} of {self.n_listed:,} tiles not done "
            f"({reasons or 'see ' + ', '.join(self.logs_not_complete)}); no _SUCCESS. Rerun the "
            "same command (same config, tile list and shard) to retry them"
        )


def read_completeness(output: str) -> Completeness:
    """The :class:`Completeness` of ``output`` from its run logs' status and final check.

    A log that never reached its final check (a run still going, or killed) counts its
    unaccounted tiles as ``run not finished``.
    """
    names = run_log_names(output)
    if not names:
        raise RunLogError(f"no run log (inference_log*.json) in {storage.join(output, 'logs')}")
    listed = 0
    not_done: dict[str, int] = {}
    incomplete: list[str] = []
    for name in names:
        uri = storage.join(output, "logs", name)
        try:
            data = json.loads(storage.read_text(uri))
        except json.JSONDecodeError as exc:
            raise RunLogError(f"{uri}: not valid JSON ({exc})") from exc
        listed += int(data.get("n_tiles_total") or 0)
        if data.get("status") == "complete":
            continue
        incomplete.append(name)
        check = data.get("final_check") or {}
        reasons = check.get("not_done")
        if reasons is None:  # no final check: the run has not finished
            total = int(data.get("n_tiles_total") or 0)
            accounted = int(data.get("n_tiles_processed") or 0) + int(
                data.get("n_tiles_skipped") or 0
            )
            reasons = {"run not finished": max(0, total - accounted)}
        for reason, n in reasons.items():
            not_done[reason] = not_done.get(reason, 0) + int(n)
    return Completeness(
        n_listed=listed,
        not_done=dict(sorted(not_done.items())),
        logs_not_complete=tuple(incomplete),
    )
