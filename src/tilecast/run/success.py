"""``{output}/_SUCCESS``: written last, when every run log of the output is complete.

A reader (a downstream workflow, a person) that finds ``_SUCCESS`` can use the output: every
listed tile is committed or skipped with a reason, and the products (if any were made) are in
place. Its content is a small JSON summary. A run removes a stale marker before it writes
anything, so an output that is being rewritten never carries one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from tilecast.errors import StorageError
from tilecast.io import storage
from tilecast.run.runlogs import run_log_names

log = logging.getLogger(__name__)

SUCCESS_NAME = "_SUCCESS"
PRODUCT_DIRS = ("merged", "vectors", "report")


def success_uri(output: str) -> str:
    return storage.join(output, SUCCESS_NAME)


def clear_success(output: str) -> bool:
    """Remove a marker left by an earlier run; True if there was one."""
    uri = success_uri(output)
    if not storage.exists(uri):
        return False
    storage.delete(uri)
    log.info("%s: removed the marker of an earlier run", uri)
    return True


def read_success(output: str) -> dict[str, Any] | None:
    uri = success_uri(output)
    if not storage.exists(uri):
        return None
    return json.loads(storage.read_text(uri))


def _shard_of(name: str) -> str | None:
    middle = name.removeprefix("inference_log").removesuffix(".json")
    return middle.removeprefix(".") or None


def _product_files(output: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in PRODUCT_DIRS:
        try:
            found[name] = storage.list_files(storage.join(output, name))
        except StorageError:
            continue
    return found


def success_summary(output: str) -> dict[str, Any] | None:
    """The marker's content, or None when some run log is missing or not complete."""
    names = run_log_names(output)
    if not names:
        return None
    runs = []
    for name in names:
        data = json.loads(storage.read_text(storage.join(output, "logs", name)))
        if data.get("status") != "complete":
            log.info("%s/logs/%s is not complete; no %s", output, name, SUCCESS_NAME)
            return None
        starts = data.get("runs") or [{}]
        runs.append(
            {
                "log": f"logs/{name}",
                "shard": _shard_of(name),
                "run_ids": [r["run_id"] for r in starts if "run_id" in r],
                "n_tiles_total": data.get("n_tiles_total"),
                "n_tiles_processed": data.get("n_tiles_processed"),
                "n_tiles_skipped": data.get("n_tiles_skipped"),
                "n_tiles_with_detection": data.get("n_tiles_with_detection"),
                "first_started": starts[0].get("started"),
                "last_finished": starts[-1].get("finished"),
                "bundle_digest": data.get("bundle_digest"),
            }
        )
    digests = sorted({r["bundle_digest"] for r in runs if r["bundle_digest"]})
    return {
        "schema_version": 1,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "bundle_digest": digests[0] if len(digests) == 1 else digests,
        "n_tiles_total": sum(r["n_tiles_total"] or 0 for r in runs),
        "n_tiles_processed": sum(r["n_tiles_processed"] or 0 for r in runs),
        "n_tiles_skipped": sum(r["n_tiles_skipped"] or 0 for r in runs),
        "runs": runs,
        "products": _product_files(output),
    }


def write_success(output: str) -> dict[str, Any] | None:
    """Write the marker if the output is complete; return its content (None if not written).

    Call it last: after the tiles, the run logs' final checkpoint and the products.
    """
    summary = success_summary(output)
    if summary is None:
        return None
    storage.write_text(success_uri(output), json.dumps(summary, indent=1) + "\n")
    log.info("%s written", success_uri(output))
    return summary
