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
