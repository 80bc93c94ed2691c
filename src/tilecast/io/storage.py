"""Opening URIs and committing files atomically.

Every path or URL the library touches goes through this module (or ``io.raster`` for pixels).
A write lands in a temporary sibling first and is moved into place in one step, so a reader
sees the old file or the whole new one, never a part. On object stores (gs://, s3://) a write
is one PUT of the complete bytes, which the store makes visible whole or not at all (an object
of ``2 * MULTIPART_CHUNK`` (s3://) or ``MULTIPART_CHUNK`` (gs://) or more is a multipart or
resumable upload that the client aborts on error, so it too appears whole or not
at all); there "directories" are key prefixes. Every remote request is retried when it fails
transiently (``io.retry``). Remote details (filesystems, error messages) live in ``io.remote``.
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
from tilecast.io import remote
from tilecast.run import killpoints

# Objects this large or larger go up in parts (S3 multipart, GCS resumable upload) of this size;
# the client aborts the upload if a part fails, so no partial object is ever visible.
MULTIPART_CHUNK = 50 * 2**20


class ObjectExistsError(StorageError, FileExistsError):
    """A create-only write found the object already there."""


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
    if not is_local(uri):
        text = os.fspath(uri)
        fs, path = remote.filesystem(text)
        return remote.request(text, "read", lambda: fs.cat_file(path), fs=fs, path=path)
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
    if not is_local(uri):
        text = os.fspath(uri)
        fs, path = remote.filesystem(text)
        return remote.request(text, "exists", lambda: _remote_exists(fs, path), fs=fs, path=path)
    fs, path = fsspec.core.url_to_fs(os.fspath(uri))
    return fs.exists(path)


def _remote_exists(fs, path: str) -> bool:
    """Like ``fs.exists``, but a failed request raises (fsspec's exists says False to errors)."""
    try:
        fs.info(path)
    except FileNotFoundError:
        return False
    return True


def list_files(uri: str | os.PathLike[str]) -> list[str]:
    """Relative paths (with '/') of every file below a directory URI, sorted.

    On object stores the directory is the key prefix ``uri + '/'``; it "exists" when some
    object has that prefix.
    """
    if not is_local(uri):
        return _list_remote(os.fspath(uri))
    _, root = fsspec.core.url_to_fs(os.fspath(uri))
    if not os.path.isdir(root):
        raise StorageError(f"{os.fspath(uri)}: not a directory")
    # os.walk, not a stat per entry: a file renamed or removed meanwhile by another process
    # (a temporary being committed beside the files listed) is simply not listed
    found = []
    for folder, _, names in os.walk(root):
        relative = os.path.relpath(folder, root)
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        found += [prefix + name for name in names]
    return sorted(found)


def glob(pattern: str) -> list[str]:
    """URIs matching a glob pattern (``*``, ``?``, ``[...]``; ``**`` spans folders), sorted.

    Remote matches keep the pattern's scheme (``s3://bucket/a/*.png`` gives ``s3://...``).
    """
    if not is_local(pattern):
        fs, path = remote.filesystem(pattern)
        found = remote.request(pattern, "list", lambda: fs.glob(path), fs=fs, path=path)
        prefix = f"{remote.scheme(pattern)}://"
        return sorted(prefix + p.lstrip("/") for p in found)
    fs, path = fsspec.core.url_to_fs(pattern)
    return sorted(p for p in fs.glob(path) if fs.isfile(p))


def _list_remote(uri: str) -> list[str]:
    fs, root = remote.filesystem(uri)
    root = root.rstrip("/")
    found = remote.request(uri, "list", lambda: fs.find(root), fs=fs, path=root)
    prefix = root + "/"
    names = sorted(p[len(prefix) :] for p in found if p.startswith(prefix) and not p.endswith("/"))
    if not names:
        if not remote.bucket_exists(fs, remote.bucket_of(root)):
            raise StorageError(f"{uri}: no such bucket {remote.bucket_of(root)!r}")
        raise StorageError(f"{uri}: not a directory (no objects below this prefix)")
    return names


def _put_remote(uri: str, data: bytes, *, create: bool = False) -> None:
    """One PUT of the complete bytes: readers see the old object or the whole new one.

    ``create``: only if no object is there (S3 ``If-None-Match: *``, GCS ``ifGenerationMatch=0``).
    """
    fs, path = remote.filesystem(uri)
    payload = bytes(data)

    def put() -> None:
        fs.pipe_file(
            path, payload, chunksize=MULTIPART_CHUNK, mode="create" if create else "overwrite"
        )

    try:
        remote.request(uri, "write", put, fs=fs, path=path)
    except StorageError as exc:
        if isinstance(exc.__cause__, FileExistsError):
            raise ObjectExistsError(f"{uri}: already exists") from exc.__cause__
        raise


def write_bytes(uri: str | os.PathLike[str], data: bytes, *, create: bool = False) -> None:
    """Write ``data`` to ``uri`` atomically.

    ``create=True`` writes only if ``uri`` does not exist yet, and raises ObjectExistsError
    otherwise (local: ``O_EXCL``; object stores: a conditional PUT, which some S3-compatible
    stores and the GCS emulator ignore: callers that rely on it read the object back).
    """
    if not is_local(uri):
        _put_remote(os.fspath(uri), data, create=create)
        return
    if create:
        _create_local(local_path(uri), bytes(data))
        return
    try:
        with atomic_local_path(uri) as tmp:
            tmp.write_bytes(data)
    except StorageError:
        raise
    except OSError as exc:  # disk full, file too large, permission denied...
        raise StorageError(f"{os.fspath(uri)}: cannot write ({exc})") from exc


def _create_local(final: Path, data: bytes) -> None:
    """Write a new file, complete before it is visible: stage, then hard-link (fails if taken)."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    except OSError as exc:
        raise StorageError(f"{final}: cannot create ({exc})") from exc
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        tmp.chmod(0o644)
        os.link(tmp, final)
    except FileExistsError as exc:
        raise ObjectExistsError(f"{final}: already exists") from exc
    except OSError as exc:
        raise StorageError(f"{final}: cannot create ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)


def delete(uri: str | os.PathLike[str], *, missing_ok: bool = True) -> None:
    """Remove one file or object."""
    text = os.fspath(uri)
    if not is_local(text):
        fs, path = remote.filesystem(text)

        def rm() -> None:
            try:
                fs.rm_file(path)
            except FileNotFoundError:
                if not missing_ok:
                    raise

        remote.request(text, "delete", rm, fs=fs, path=path)
        return
    try:
        local_path(text).unlink(missing_ok=missing_ok)
    except FileNotFoundError as exc:
        raise StorageError(f"{text}: no such file") from exc
    except OSError as exc:
        raise StorageError(f"{text}: cannot delete ({exc})") from exc


def write_text(uri: str | os.PathLike[str], text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_local_path(uri: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary local path; on success its content becomes ``uri`` in one step.

    On error the temporary file is removed and ``uri`` is untouched. For a remote ``uri`` the
    temporary file is in the local temp directory and is uploaded with one PUT on success.
    """
    if not is_local(uri):
        with _remote_staging(os.fspath(uri), suffix=suffix) as tmp:
            yield tmp
        return
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
        killpoints.reached("storage.commit")
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _remote_staging(uri: str, *, suffix: str) -> Iterator[Path]:
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    fd, tmpname = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix or ".part")
    os.close(fd)
    tmp = Path(tmpname)
    try:
        yield tmp
        _put_remote(uri, tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)


def remove_temporaries(directory: str | os.PathLike[str]) -> int:
    """Delete temporary files a killed writer left in ``directory`` (``.{name}.*`` siblings).

    They are never visible as outputs (hidden names), but would pile up over restarts. Object
    stores have none: a remote write stages in the local temp directory and PUTs once.
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
    """A binary file handle. On object stores opening is retried (``io.retry``); the reads of an
    open handle are the client's ranged GETs, which are not: use :func:`read_bytes` for whole
    objects."""
    if not is_local(uri):
        text = os.fspath(uri)
        fs, path = remote.filesystem(text)
        fh = remote.request(text, "open", lambda: fs.open(path, "rb"), fs=fs, path=path)
        with fh:
            yield fh
        return
    try:
        with fsspec.open(os.fspath(uri), "rb") as fh:
            yield fh
    except FileNotFoundError as exc:
        raise StorageError(f"{os.fspath(uri)}: no such file") from exc
