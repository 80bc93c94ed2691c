"""The hidden scratch folders of the region merge, and what killed merges leave in them.

- :func:`scratch_directory`: a private hidden folder beside the outputs (or in ``TMPDIR`` for
  outputs on an object store) for one process's intermediate files;
- :class:`SharedScratch` / :func:`shared_scratch`: one that the tasks of a banded merge in other
  processes or on other machines reach too (a hidden folder, or a hidden prefix on a store);
- :func:`region_arrays` (and :func:`scratch_arrays`): the two accumulators of the in-memory
  strategy, in RAM or as ``np.memmap`` files in a scratch folder;
- :func:`remove_leftovers`: what killed merges left beside the outputs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilecast.errors import StorageError
from tilecast.io import storage
from tilecast.io.storage import is_local, local_path, remove_temporaries

__all__ = [
    "SharedScratch",
    "region_arrays",
    "remove_leftovers",
    "scratch_arrays",
    "scratch_directory",
    "shared_scratch",
]

_SCRATCH_PREFIX = ".merge-scratch-"


@contextlib.contextmanager
def scratch_directory(near: str | os.PathLike[str]) -> Iterator[Path]:
    """A hidden temporary directory beside ``near`` (same file system as the outputs), removed
    at exit whatever happens. For outputs on an object store it is in the local temporary
    directory (``TMPDIR``): the COGs are built there and uploaded once each."""
    parent = local_path(near).parent if is_local(near) else Path(tempfile.gettempdir())
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=_SCRATCH_PREFIX, dir=parent))
    except OSError as exc:
        raise StorageError(f"{parent}: cannot create a scratch directory ({exc})") from exc
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def scratch_arrays(
    shape: tuple[int, int], *, fill: float, scratch: Path | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`region_arrays` for the time of the ``with`` block; memory-mapped ones live in a
    private hidden directory in ``scratch`` (so concurrent users of one scratch folder do not
    meet), removed at exit whatever happens."""
    if scratch is None:
        yield region_arrays(shape, fill=fill)
        return
    try:
        private = Path(tempfile.mkdtemp(prefix=".arrays-", dir=scratch))
    except OSError as exc:
        raise StorageError(f"{scratch}: cannot create a scratch directory ({exc})") from exc
    try:
        yield region_arrays(shape, fill=fill, scratch=private)
    finally:
        shutil.rmtree(private, ignore_errors=True)


@dataclass(frozen=True)
class SharedScratch:
    """The folder where the tasks of one banded merge leave files for each other.

    ``uri`` is a hidden directory beside local outputs (every task sees it, as it sees the
    outputs), or a hidden prefix beside outputs on an object store. There a task makes or
    reads files in a local temporary directory (:meth:`workdir`), uploads what it made (one
    PUT each, :meth:`publish`) and downloads what it reads (:meth:`fetch`); on a local scratch
    both are no-ops and the work directory is the scratch directory itself.
    """

    uri: str

    @property
    def is_local(self) -> bool:
        return is_local(self.uri)

    @contextlib.contextmanager
    def workdir(self) -> Iterator[Path]:
        if self.is_local:
            yield local_path(self.uri)
            return
        try:
            path = Path(tempfile.mkdtemp(prefix=".merge-work-"))
        except OSError as exc:
            raise StorageError(f"cannot create a local work directory ({exc})") from exc
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def publish(self, paths: Sequence[Path]) -> None:
        """Make files of :meth:`workdir` visible to the other tasks, by their names."""
        if self.is_local:
            return
        for path in paths:
            storage.write_bytes(storage.join(self.uri, path.name), path.read_bytes())
            path.unlink()

    def fetch(self, names: Sequence[str], workdir: Path) -> list[Path]:
        """Local paths of the named files (downloaded into ``workdir`` from a remote scratch)."""
        if self.is_local:
            found = [local_path(self.uri) / name for name in names]
            missing = [p.name for p in found if not p.is_file()]
            if missing:
                raise StorageError(f"{self.uri}: expected band files are missing: {missing[:5]}")
            return found
        paths = []
        for name in names:
            path = workdir / name
            path.write_bytes(storage.read_bytes(storage.join(self.uri, name)))
            paths.append(path)
        return paths


@contextlib.contextmanager
def shared_scratch(near: str | os.PathLike[str]) -> Iterator[SharedScratch]:
    """A :class:`SharedScratch` beside ``near`` (an output), removed at exit whatever happens:
    a hidden directory for a local output, a hidden prefix for one on an object store."""
    text = os.fspath(near)
    if is_local(text):
        with scratch_directory(text) as path:
            yield SharedScratch(str(path))
        return
    parent = text.rstrip("/").rsplit("/", 1)[0]
    uri = storage.join(parent, f"{_SCRATCH_PREFIX}{uuid.uuid4().hex}")
    try:
        yield SharedScratch(uri)
    finally:
        _remove_remote(uri)


def _remove_remote(uri: str) -> int:
    """Delete every object below the prefix ``uri``; how many there were."""
    try:
        names = storage.list_files(uri)
    except StorageError:  # nothing there (or the store is unreachable: nothing to do here)
        return 0
    for name in names:
        storage.delete(storage.join(uri, name))
    return len(names)


def region_arrays(
    shape: tuple[int, int], *, fill: float, scratch: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 arrays of ``shape`` filled with ``fill``: in RAM, or memory-mapped files in
    ``scratch`` when it is given (the OS pages them; resident memory stays what is touched)."""
    if scratch is None:
        return np.full(shape, fill, np.float32), np.full(shape, fill, np.float32)
    needed = 2 * 4 * shape[0] * shape[1]
    free = shutil.disk_usage(scratch).free
    if needed > free:
        raise StorageError(
            f"{scratch}: memory-mapping the region needs {needed} bytes of disk, {free} are free "
            "(use the streaming strategy)"
        )
    arrays = []
    for name in ("prob", "scale"):
        try:
            array = np.memmap(scratch / f"{name}.f32", dtype=np.float32, mode="w+", shape=shape)
        except OSError as exc:
            raise StorageError(f"{scratch}: cannot map a {shape} float32 array ({exc})") from exc
        for start in range(0, shape[0], 1024):  # fill row bands: no whole-size temporary
            array[start : start + 1024] = fill
        arrays.append(array)
    return arrays[0], arrays[1]


def remove_leftovers(directory: str | os.PathLike[str]) -> int:
    """Delete what killed merges left in ``directory``: hidden scratch directories (or, on an
    object store, the objects below hidden scratch prefixes) and temporary COGs
    (``.{name}.*``); returns how many were removed. Neither is ever visible as an output, but
    they would pile up over restarts."""
    removed = remove_temporaries(directory)
    if not is_local(directory):
        try:
            names = storage.list_files(directory)
        except StorageError:  # no such prefix: nothing was left
            return removed
        prefixes = {n.split("/", 1)[0] for n in names if n.startswith(_SCRATCH_PREFIX)}
        for prefix in sorted(prefixes):
            _remove_remote(storage.join(directory, prefix))
        return removed + len(prefixes)
    if not local_path(directory).is_dir():
        return removed
    for path in local_path(directory).glob(f"{_SCRATCH_PREFIX}*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed
