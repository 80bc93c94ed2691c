"""Object stores (gs://, s3://) behind fsspec: one filesystem per URL, errors that name the URL.

Only ``io.storage`` calls this module. Credentials and endpoints come the usual way: the AWS
environment and profiles (``AWS_ENDPOINT_URL`` for any S3-compatible store), and
``GOOGLE_APPLICATION_CREDENTIALS`` / ``STORAGE_EMULATOR_HOST`` for GCS.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import fsspec

from tilecast.errors import StorageError

_CREDENTIAL_HINTS = {
    "s3": "check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) "
    "and the endpoint (AWS_ENDPOINT_URL)",
    "gs": "check the Google credentials (GOOGLE_APPLICATION_CREDENTIALS or gcloud auth) "
    "and the endpoint (STORAGE_EMULATOR_HOST)",
}
# Exception class names (botocore, google-auth) that mean "who you are" rather than "what is there".
_CREDENTIAL_ERRORS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "DefaultCredentialsError",
    "RefreshError",
}


def scheme(uri: str) -> str:
    text = uri.split("://", 1)[0].lower()
    return "gs" if text == "gcs" else text


def filesystem(uri: str) -> tuple[Any, str]:
    """The fsspec filesystem for ``uri`` and the bucket/key path inside it."""
    try:
        return fsspec.core.url_to_fs(uri)
    except Exception as exc:
        raise translate(exc, uri) from exc


def bucket_of(path: str) -> str:
    return path.split("/", 1)[0]


def translate(exc: BaseException, uri: str, *, fs: Any = None, path: str = "") -> StorageError:
    """A StorageError naming ``uri`` (and the bucket or credentials when they are the cause)."""
    if isinstance(exc, StorageError):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    if _is_denied(exc, names):
        hint = _CREDENTIAL_HINTS.get(scheme(uri), "check the credentials and endpoint")
        return StorageError(f"{uri}: access denied ({_short(exc)}); {hint}")
    if isinstance(exc, FileNotFoundError):
        if fs is not None and path and not bucket_exists(fs, bucket_of(path)):
            return StorageError(f"{uri}: no such bucket {bucket_of(path)!r}")
        return StorageError(f"{uri}: no such file")
    return StorageError(f"{uri}: storage request failed ({type(exc).__name__}: {_short(exc)})")


@contextlib.contextmanager
def errors_named(uri: str, fs: Any = None, path: str = "") -> Iterator[None]:
    """Turn any exception raised inside the block into a StorageError naming ``uri``."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        raise translate(exc, uri, fs=fs, path=path) from exc


def _is_denied(exc: BaseException, names: set[str]) -> bool:
    if isinstance(exc, PermissionError) or names & _CREDENTIAL_ERRORS:
        return True
    if _status(exc) in (401, 403):
        return True
    # gcsfs reports a 403 as a plain OSError("Forbidden: <url> ...")
    return type(exc) is OSError and str(exc).startswith("Forbidden")


def bucket_exists(fs: Any, bucket: str) -> bool:
    try:
        return bool(fs.exists(bucket))
    except Exception:
        return True  # cannot tell; do not claim the bucket is missing


def _status(exc: BaseException) -> int | None:
    for attr in ("code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(code, int):
            return code
    return None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
