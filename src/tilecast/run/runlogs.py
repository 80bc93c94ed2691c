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
from collections.abc import Mapping
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


def _load_logs(output: str) -> dict[str, dict[str, Any]]:
    """Every run log of ``output`` as JSON, by URI; refuses none, unreadable or malformed ones."""
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
        loaded[uri] = data
    return loaded


def read_run_logs(output: str) -> RunLogs:
    """Every ``logs/inference_log*.json`` of ``output``, checked for agreement and combined."""
    loaded = _load_logs(output)
    for uri, data in loaded.items():
        if data.get("status", "complete") != "complete":
            log.warning("%s: status is %r; merging what it records so far", uri, data["status"])
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


#: Products settings that change what the products hold. A ``--config`` that sets one of them
#: to another value than the run logs recorded is refused; an explicit option wins.
PRODUCTS_RESULT_KEYS = ("merge", "vectorize", "report", "min_area_m2")
#: Products settings that only change how the merge runs (its result is byte-identical): they
#: follow the machine that makes the products, so the config's value wins over the record.
PRODUCTS_HOW_KEYS = ("merge_strategy", "memory_budget_mb")


@dataclass(frozen=True)
class RecordedProducts:
    """The products settings the run logs of an output recorded (``RunLog.products``)."""

    uris: tuple[str, ...]  # every run log read
    settings: dict[str, Any]  # key -> the value every log that records it agrees on
    disagreements: dict[str, dict[str, Any]]  # key -> {log: value}, where logs disagree
    unrecorded: tuple[str, ...]  # logs written before products settings were recorded


def read_recorded_products(output: str) -> RecordedProducts:
    """The products settings recorded in ``output``'s run logs, compared across them."""
    loaded = _load_logs(output)
    recorded = {
        uri: d["products"] for uri, d in loaded.items() if isinstance(d.get("products"), dict)
    }
    settings: dict[str, Any] = {}
    disagreements: dict[str, dict[str, Any]] = {}
    for key in sorted({k for products in recorded.values() for k in products}):
        values = {uri: products.get(key) for uri, products in recorded.items()}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            disagreements[key] = values
        else:
            settings[key] = next(iter(values.values()))
    return RecordedProducts(
        uris=tuple(loaded),
        settings=settings,
        disagreements=disagreements,
        unrecorded=tuple(uri for uri in loaded if uri not in recorded),
    )


def settle_products(
    recorded: RecordedProducts,
    *,
    config: Mapping[str, Any] | None,
    explicit: Mapping[str, Any],
    options: Mapping[str, str],
) -> dict[str, Any]:
    """The products settings to use, as a mapping of the keys that are decided.

    Each key: an ``explicit`` option's value; else the value the run logs recorded (a
    ``config`` that sets a result key, :data:`PRODUCTS_RESULT_KEYS`, to another value is
    refused; for :data:`PRODUCTS_HOW_KEYS` the config wins); else the config's. ``config``
    holds only the keys a config file sets; a key in none of them is left out (the caller's
    default applies). ``options`` names the command-line option that sets each key, for the
    messages. Raises :class:`RunLogError` naming the key and the logs when the logs disagree on
    a result key and no option decides it. Logs without a record are named in a WARNING.
    """
    config = dict(config or {})
    if recorded.unrecorded:
        fallback = "--config" if config else "the defaults"
        log.warning(
            "%s: no products settings recorded (written before tilecast recorded them); "
            "using %s%s for them",
            ", ".join(recorded.unrecorded),
            fallback,
            " and the other logs' record" if recorded.settings else "",
        )
    settled = dict(config)
    for key, values in recorded.disagreements.items():
        if key in explicit:
            continue
        found = "; ".join(f"{uri}: {value!r}" for uri, value in values.items())
        if key in PRODUCTS_HOW_KEYS:
            log.info(
                "products.%s: the run logs disagree (%s); using --config's value or the default",
                key,
                found,
            )
            continue
        raise RunLogError(
            f"products.{key}: the run logs disagree ({found}); pass {_option(options, key)} "
            "to choose"
        )
    for key, value in recorded.settings.items():
        if key in explicit:
            continue
        if key in config and config[key] != value:
            if key in PRODUCTS_HOW_KEYS:
                log.info(
                    "products.%s: the run logs recorded %r; using --config's %r (it changes "
                    "how the merge runs, not its result)",
                    key,
                    value,
                    config[key],
                )
                continue
            raise RunLogError(
                f"products.{key}: the run logs recorded {value!r}, --config says "
                f"{config[key]!r}; pass {_option(options, key)} to override the record, or "
                "a config that agrees with it"
            )
        settled[key] = value
    settled.update(explicit)
    return settled


def _option(options: Mapping[str, str], key: str) -> str:
    return options.get(key, f"a value for products.{key}")


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
