"""Opening URIs and committing files atomically.

Every path or URL the library touches goes through this module (or ``io.raster`` for pixels).
A write lands in a temporary sibling first and is moved into place in one step, so a reader
sees the old file or the whole new one, never a part.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import fsspec

from tilecast.errors import StorageError


def is_local(uri: str | os.PathLike[str]) -> bool:
    text = os.fspath(uri)
    return "://" not in text or text.startswith("file://")


def local_path(uri: str | os.PathLike[str]) -> Path:
    text = os.fspath(uri)
    return Path(text.removeprefix("file://"))


def join(base: str | os.PathLike[str], *parts: str) -> str:
    text = os.fspath(base).rstrip("/")
    return "/".join([text, *(p.strip("/") for p in parts)])


def read_bytes(uri: str | os.PathLike[str]) -> bytes:
    try:
        with fsspec.open(os.fspath(uri), "rb") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise StorageError(f"{os.fspath(uri)}: no such file") from exc
    except OSError as exc:
        raise StorageError(f"{os.fspath(uri)}: cannot read ({exc})") from exc


def read_text(uri: str | os.PathLike[str]) -> str:
    return read_bytes(uri).decode("utf-8")


def exists(uri: str | os.PathLike[str]) -> bool:
    fs, path = fsspec.core.url_to_fs(os.fspath(uri))
    return fs.exists(path)


def list_files(uri: str | os.PathLike[str]) -> list[str]:
    """Relative paths (with '/') of every file below a directory URI, sorted."""
    fs, root = fsspec.core.url_to_fs(os.fspath(uri))
    if not fs.isdir(root):
        raise StorageError(f"{os.fspath(uri)}: not a directory")
    root = root.rstrip("/")
    found = fs.find(root)
    return sorted(p[len(root) + 1 :] for p in found)


def write_bytes(uri: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``uri`` atomically."""
    with atomic_local_path(uri) as tmp:
        tmp.write_bytes(data)


def write_text(uri: str | os.PathLike[str], text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_local_path(uri: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary local path; on success its content becomes ``uri`` in one step.

    On error the temporary file is removed and ``uri`` is untouched.
    """
    if not is_local(uri):
        raise StorageError(f"{os.fspath(uri)}: remote writes are not supported yet")
    final = local_path(uri)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{final.parent}: cannot create directory ({exc})") from exc
    fd, name = tempfile.mkstemp(
        prefix=f".{final.name}.", suffix=suffix or ".part", dir=final.parent
    )
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o644)  # mkstemp makes it private; outputs are for sharing
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_temporaries(directory: str | os.PathLike[str]) -> int:
    """Delete temporary files a killed writer left in ``directory`` (``.{name}.*`` siblings).

    They are never visible as outputs (hidden names), but would pile up over restarts.
    """
    if not is_local(directory):
        return 0
    root = local_path(directory)
    if not root.is_dir():
        return 0
    removed = 0
    for path in root.iterdir():
        if path.name.startswith(".") and path.is_file() and path.name.count(".") >= 3:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


@contextlib.contextmanager
def open_read(uri: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    try:
        with fsspec.open(os.fspath(uri), "rb") as fh:
            yield fh
    except FileNotFoundError as exc:
        raise StorageError(f"{os.fspath(uri)}: no such file") from exc
