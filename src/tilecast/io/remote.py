"""Object stores (gs://, s3://) behind fsspec: one filesystem per URL, errors that name the URL,
requests retried when the failure is transient.

Only ``io.storage`` (and ``io.raster`` for GDAL's settings) calls this module. Credentials and
endpoints come the usual way: the AWS environment and profiles (``AWS_ENDPOINT_URL`` for any
S3-compatible store), and ``GOOGLE_APPLICATION_CREDENTIALS`` / ``STORAGE_EMULATOR_HOST`` for
GCS. Retry and timeout settings: ``io.retry.RetrySettings`` (environment variables).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import fsspec

from tilecast.errors import StorageError
from tilecast.io import retry
from tilecast.io.retry import RetrySettings

T = TypeVar("T")

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


def client_options(name: str, settings: RetrySettings) -> dict[str, Any]:
    """fsspec options for scheme ``name``: request timeouts, and no retry loop of botocore's."""
    if name == "s3":
        return {
            "config_kwargs": {
                "connect_timeout": settings.timeout_s,
                "read_timeout": settings.timeout_s,
                # one try per call: io.retry is the retry loop (and logs each retry)
                "retries": {"mode": "standard", "total_max_attempts": 1},
            }
        }
    if name == "gs":
        import aiohttp

        return {
            "requests_timeout": aiohttp.ClientTimeout(
                total=None, sock_connect=settings.timeout_s, sock_read=settings.timeout_s
            )
        }
    return {}


def filesystem(uri: str) -> tuple[Any, str]:
    """The fsspec filesystem for ``uri`` and the bucket/key path inside it."""
    settings = RetrySettings.from_env()
    try:
        fs, path = fsspec.core.url_to_fs(uri, **client_options(scheme(uri), settings))
    except Exception as exc:
        raise translate(exc, uri) from exc
    if scheme(uri) == "s3":
        fs.retries = 1  # s3fs's own loop (transport errors, 5 tries, silent): io.retry instead
    elif scheme(uri) == "gs":
        _one_try_per_request(fs)
    return fs, path


def _one_try_per_request(fs: Any) -> None:
    """Make gcsfs send each request once, so that io.retry is the one retry loop on gs://.

    gcsfs wraps every request in a retry decorator fixed when the class is made (6 tries,
    sleeping 1, 2, 4, ... 32 s, logged at DEBUG): a store that is down holds each call for
    half a minute per io.retry attempt. This instance (made with this module's options, so no
    other code shares it) calls the undecorated request instead.
    """
    if "_request" in vars(fs):
        return
    plain = getattr(type(fs)._request, "__wrapped__", None)
    if plain is not None:
        fs._request = types.MethodType(plain, fs)


def request(uri: str, what: str, fn: Callable[[], T], *, fs: Any = None, path: str = "") -> T:
    """Call ``fn`` (one storage request), retrying transient failures; errors name ``uri``."""
    settings = RetrySettings.from_env()
    with errors_named(uri, fs, path, settings=settings):
        return retry.call(fn, uri=uri, what=what, settings=settings)


def gdal_env(settings: RetrySettings | None = None) -> dict[str, str]:
    """GDAL configuration for /vsis3/ and /vsigs/ reads: GDAL's own retries and timeouts.

    GDAL retries inside its HTTP layer; these keep it in line with ``io.retry`` (same number of
    tries, first delay, codes and timeout). Use as ``rasterio.Env(**gdal_env())``.
    """
    settings = settings or RetrySettings.from_env()
    timeout = str(max(1, round(settings.timeout_s)))
    return {
        "GDAL_HTTP_MAX_RETRY": str(settings.attempts - 1),
        "GDAL_HTTP_RETRY_DELAY": f"{settings.base_s:g}",
        "GDAL_HTTP_RETRY_CODES": ",".join(str(c) for c in sorted(retry.TRANSIENT_STATUS)),
        "GDAL_HTTP_TIMEOUT": timeout,
        "GDAL_HTTP_CONNECTTIMEOUT": timeout,
    }


def bucket_of(path: str) -> str:
    return path.split("/", 1)[0]


def translate(
    exc: BaseException,
    uri: str,
    *,
    fs: Any = None,
    path: str = "",
    settings: RetrySettings | None = None,
) -> StorageError:
    """A StorageError naming ``uri`` (and the bucket or credentials when they are the cause)."""
    if isinstance(exc, StorageError):
        return exc
    if retry.is_transient(exc):
        settings = settings or RetrySettings.from_env()
        return StorageError(
            f"{uri}: storage request failed after up to {settings.attempts} tries "
            f"({settings.total_s:g} s at most; {type(exc).__name__}: {_short(exc)}); "
            f"the store is unavailable or overloaded"
        )
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
def errors_named(
    uri: str, fs: Any = None, path: str = "", *, settings: RetrySettings | None = None
) -> Iterator[None]:
    """Turn any exception raised inside the block into a StorageError naming ``uri``."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        raise translate(exc, uri, fs=fs, path=path, settings=settings) from exc


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
    return retry.status_of(exc)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
