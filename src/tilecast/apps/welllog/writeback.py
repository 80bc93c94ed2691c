"""The write-back layout (version 1) and its atomic, idempotent commit.

```
{prefix}/well={uwi}/scan={scan_id}/curves.las    LAS 2.0
                                  /curves.json   the same arrays, channel order, depth range
                                  /qc.json       pixel counts, gaps, bundle digest, source sha256
                                  /_SUCCESS      written last: layout version, sha256 of each file
```

Each object is written whole (one PUT on s3:// and gs://, a rename locally), ``_SUCCESS`` only
after the others, so a reader that finds ``_SUCCESS`` finds the whole scan. A retry writes the
same bytes; a scan whose ``_SUCCESS`` already records the same files is left alone, and one that
records different files is refused (:class:`ConflictingScanError`), never silently replaced.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from tilecast.apps.welllog.lasfile import check_curve_names
from tilecast.apps.welllog.outputs import FILE_NAMES, SUCCESS_NAME, ScanOutputs
from tilecast.apps.welllog.records import ScanRecord
from tilecast.errors import InputError, TilecastError
from tilecast.io import storage

MAX_KEY_PART = 128
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ConflictingScanError(TilecastError, FileExistsError):
    """A scan is already committed with other content (another model, scan or registration)."""


def check_key_part(value: str, *, field: str) -> str:
    """``value`` when it can name a key segment; InputError naming ``field`` otherwise.

    Letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters:
    no '/', '=', spaces or '..' that would change or escape the layout.
    """
    if not _KEY_PART.match(value) or ".." in value or len(value) > MAX_KEY_PART:
        raise InputError(
            f"{field} {value!r} cannot be used in an output key: expected letters, digits, "
            f"'.', '_' and '-' (starting with a letter or digit, no '..', at most "
            f"{MAX_KEY_PART} characters)"
        )
    return value


def check_writable(record: ScanRecord) -> None:
    """InputError naming the field when a record cannot be written in this layout."""
    check_key_part(record.uwi, field="uwi")
    check_key_part(record.scan_id, field="scan_id")
    check_curve_names(record)


def scan_prefix(out: str, record: ScanRecord) -> str:
    """``{out}/well={uwi}/scan={scan_id}``."""
    check_key_part(record.uwi, field="uwi")
    check_key_part(record.scan_id, field="scan_id")
    return storage.join(out, f"well={record.uwi}", f"scan={record.scan_id}")


def object_keys(prefix: str) -> list[str]:
    """The URIs of one scan's objects, ``_SUCCESS`` last."""
    return [storage.join(prefix, name) for name in (*FILE_NAMES, SUCCESS_NAME)]


def is_committed(prefix: str) -> bool:
    return storage.exists(storage.join(prefix, SUCCESS_NAME))


@dataclass(frozen=True)
class Committed:
    prefix: str
    keys: tuple[str, ...]
    written: bool  # False when the same scan was already committed


def commit_scan(out: str, record: ScanRecord, outputs: ScanOutputs) -> Committed:
    """Write one scan's objects, then ``_SUCCESS``; a no-op when already committed the same."""
    prefix = scan_prefix(out, record)
    keys = tuple(object_keys(prefix))
    success_uri = storage.join(prefix, SUCCESS_NAME)
    if storage.exists(success_uri):
        existing = storage.read_bytes(success_uri)
        if existing == outputs.success:
            return Committed(prefix=prefix, keys=keys, written=False)
        raise ConflictingScanError(
            f"{prefix}: already committed with other content (its {SUCCESS_NAME} records "
            "different files); write to another prefix or remove the old scan"
        )
    for name in FILE_NAMES:
        storage.write_bytes(storage.join(prefix, name), outputs.files[name])
    storage.write_bytes(success_uri, outputs.success)
    return Committed(prefix=prefix, keys=keys, written=True)


def verify_committed(prefix: str) -> list[str]:
    """Problems with a committed scan (missing marker, missing or altered files); [] when whole."""
    success_uri = storage.join(prefix, SUCCESS_NAME)
    if not storage.exists(success_uri):
        return [f"{success_uri}: missing"]
    marker = json.loads(storage.read_bytes(success_uri))
    problems = []
    for name in FILE_NAMES:
        uri = storage.join(prefix, name)
        expected = marker["files"].get(name)
        if expected is None:
            problems.append(f"{uri}: not listed in {SUCCESS_NAME}")
            continue
        if not storage.exists(uri):
            problems.append(f"{uri}: missing")
            continue
        digest = hashlib.sha256(storage.read_bytes(uri)).hexdigest()
        if digest != expected["sha256"]:
            problems.append(f"{uri}: sha256 {digest}, {SUCCESS_NAME} records {expected['sha256']}")
    return problems
