"""Checks at start: can the job read its inputs and write its output?

A run over millions of tiles must not find out after its first hour that the output bucket is
missing or its credentials cannot write there. :func:`check_locations` looks at every input
(the object or folder exists and can be read) and output (a small probe object can be written
and removed) before any tile is read, and raises one :class:`StorageError` that lists every
problem, each naming the config key, the URL and the cause (no such bucket, access denied
with the credential settings to check, ...).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping

from tilecast.errors import StorageError
from tilecast.io import storage

log = logging.getLogger(__name__)

#: Name prefix of the probe object written (and removed) under an output location.
PROBE_PREFIX = ".tilecast-write-check-"


def check_readable(uri: str | os.PathLike[str]) -> None:
    """:class:`StorageError` naming ``uri`` unless it is a file or folder that can be read."""
    text = os.fspath(uri)
    if storage.exists(text):
        return
    if not storage.is_local(text):
        storage.list_files(text)  # names a missing bucket (or an empty prefix)
    raise StorageError(f"{text}: no such file or directory")


def check_writable(uri: str | os.PathLike[str]) -> None:
    """:class:`StorageError` naming ``uri`` unless an object can be written below it.

    Writes a small probe object (``.tilecast-write-check-*``) under ``uri`` and removes it; a
    probe that cannot be removed (a store that grants writes but not deletes) is logged, not
    an error.
    """
    text = os.fspath(uri).rstrip("/")
    storage.remove_temporaries(text)  # what killed writers left here (probes, _SUCCESS)
    probe = storage.join(text, f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}")
    storage.write_bytes(probe, b"tilecast can write here\n")
    try:
        _remove(probe)
    except (OSError, StorageError) as exc:
        log.warning("%s: could not remove the write-check object (%s)", probe, exc)


def _remove(uri: str) -> None:
    if storage.is_local(uri):
        storage.local_path(uri).unlink(missing_ok=True)
        return
    from tilecast.io import remote

    fs, path = remote.filesystem(uri)
    with remote.errors_named(uri, fs, path):
        fs.rm_file(path)


def check_locations(
    *, inputs: Mapping[str, str | os.PathLike[str]], outputs: Mapping[str, str | os.PathLike[str]]
) -> None:
    """Check every input (readable) and output (writable); one error listing every problem.

    ``inputs`` and ``outputs`` map what the location is (a config key such as
    ``input.basemap``) to its URI.
    """
    problems = []
    for what, uri in inputs.items():
        try:
            check_readable(uri)
        except StorageError as exc:
            problems.append(f"{what}: cannot be read: {exc}")
    for what, uri in outputs.items():
        try:
            check_writable(uri)
        except StorageError as exc:
            problems.append(f"{what}: cannot be written: {exc}")
    if problems:
        raise StorageError("checked at start, before any tile:\n  " + "\n  ".join(problems))
