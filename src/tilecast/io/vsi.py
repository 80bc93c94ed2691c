"""Opening rasters on object stores: GDAL's /vsis3/ and /vsigs/, or fsspec file objects.

rasterio opens ``s3://`` and ``gs://`` URLs through GDAL's network file systems, which read
their own configuration. :func:`gdal_options` derives it from the settings every other client
reads, so a user points tilecast at a custom endpoint once, the usual way:

- ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (any S3-compatible store) becomes GDAL's
  ``AWS_S3_ENDPOINT``, ``AWS_HTTPS`` and ``AWS_VIRTUAL_HOSTING=FALSE`` (path-style requests),
  unless ``AWS_S3_ENDPOINT`` is set already;
- ``STORAGE_EMULATOR_HOST`` (the GCS emulator convention) becomes ``CPL_GS_ENDPOINT`` with
  unsigned requests (``GS_NO_SIGN_REQUEST``), as the Google client libraries treat it.

Credentials come the usual way: for S3 a boto3 session (the AWS environment, profiles, instance
roles), made once per credential setting rather than per open; for GCS GDAL's own lookup
(``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's application-default credentials). A raster on
an object store never has side-car files, so GDAL is told not to list its "directory" on open
(``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``), which saves a LIST per file. GDAL's HTTP retry
settings come from ``io.remote.gdal_env`` (the same budget as every other storage request).

The second way, ``TILECAST_REMOTE_READS=fsspec``, hands rasterio an fsspec file object
(``rasterio.open(path, opener=fs)``), so reads go through s3fs/gcsfs and their block cache.
``bench/remote_reads.py`` measures both ways on the demo basemap; GDAL's is the default (see
:data:`DEFAULT_READS`).
"""

from __future__ import annotations

import contextvars
import functools
import os
from typing import Any, Literal
from urllib.parse import urlsplit

import rasterio

from tilecast.errors import InputError

ReadWay = Literal["gdal", "fsspec"]

#: How remote rasters are read unless ``TILECAST_REMOTE_READS`` says otherwise (measured with
#: ``bench/remote_reads.py``).
DEFAULT_READS: ReadWay = "gdal"
READS_VARIABLE = "TILECAST_REMOTE_READS"


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def _scheme(uri: str) -> str:
    name = uri.split("://", 1)[0].lower()
    return "gs" if name == "gcs" else name


def read_way() -> ReadWay:
    """``gdal`` or ``fsspec``, from ``TILECAST_REMOTE_READS`` (default :data:`DEFAULT_READS`)."""
    value = os.environ.get(READS_VARIABLE, "").strip().lower() or DEFAULT_READS
    if value not in ("gdal", "fsspec"):
        raise InputError(f"{READS_VARIABLE} must be 'gdal' or 'fsspec', {value!r} is set")
    return value  # type: ignore[return-value]


def _retry_options() -> dict[str, str]:
    try:
        from tilecast.io.remote import gdal_env
    except ImportError:  # pragma: no cover - older io.remote without GDAL retry settings
        return {}
    return gdal_env()


def _s3_endpoint_options(env: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    if env.get("AWS_S3_ENDPOINT"):
        return {}
    url = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if not url:
        return {}
    parts = urlsplit(url if "://" in url else f"https://{url}")
    return {
        "AWS_S3_ENDPOINT": parts.netloc + parts.path.rstrip("/"),
        "AWS_HTTPS": "NO" if parts.scheme == "http" else "YES",
        "AWS_VIRTUAL_HOSTING": "FALSE",
    }


def _gs_endpoint_options(env: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    host = env.get("STORAGE_EMULATOR_HOST")
    if not host:
        return {}
    url = host if "://" in host else f"http://{host}"
    return {"CPL_GS_ENDPOINT": url.rstrip("/") + "/", "GS_NO_SIGN_REQUEST": "YES"}


def gdal_options(uri: str, env: os._Environ[str] | dict[str, str] | None = None) -> dict[str, str]:
    """GDAL configuration options for opening ``uri`` (empty for a local path)."""
    if not is_remote(uri):
        return {}
    env = os.environ if env is None else env
    options = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", **_retry_options()}
    scheme = _scheme(uri)
    if scheme == "s3":
        options.update(_s3_endpoint_options(env))
    elif scheme == "gs":
        options.update(_gs_endpoint_options(env))
    return options


def open_raster(uri: str, **kwargs: Any) -> Any:
    """``rasterio.open(uri, **kwargs)`` for reading, with object-store URLs opened as set above.

    Local paths open as they are; ``s3://`` and ``gs://`` URLs through GDAL with
    :func:`gdal_options`, or through fsspec (``TILECAST_REMOTE_READS=fsspec``). The dataset
    keeps its settings for later reads from any thread; the caller closes it. Raises what
    ``rasterio.open`` raises (``RasterioIOError``), so callers word their own errors.
    """
    if not is_remote(uri):
        with without_credentials():
            return rasterio.open(uri, **kwargs)
    if _scheme(uri) in ("s3", "gs") and read_way() == "fsspec":
        from tilecast.io import remote

        fs, path = remote.filesystem(uri)
        return _FsspecDataset(fs, path, kwargs)
    with env_for(uri):
        return rasterio.open(_gdal_url(uri), **kwargs)


def env_for(uri: str) -> Any:
    """The rasterio environment reads of ``uri`` run in: the one it was opened with.

    A dataset read or closed outside any environment makes rasterio build one from the
    process's variables, and with AWS keys among them that is a boto3 session per call (a
    local open, read and close took 25 ms instead of 5.6); readers that hold a dataset wrap
    their reads in this.
    """
    if not is_remote(uri):
        return without_credentials()
    return rasterio.Env(session=_session_for(uri), **gdal_options(uri))


#: What decides the AWS credentials a boto3 session finds.
_AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


def _session_for(uri: str) -> Any:
    """One rasterio AWS session per credential setting (rasterio would make a boto3 session
    per open otherwise); its credentials refresh themselves. None off S3."""
    if _scheme(uri) != "s3":
        return None
    try:
        import boto3  # noqa: F401  (rasterio's AWS session needs it)
    except ImportError:
        return None  # GDAL looks the credentials up itself
    return _aws_session(tuple(os.environ.get(name) for name in _AWS_VARIABLES))


@functools.lru_cache(maxsize=8)
def _aws_session(key: tuple[str | None, ...]) -> Any:
    from rasterio.session import AWSSession

    return AWSSession()


class _FsspecDataset:
    """A rasterio dataset reading an fsspec file, closable from any thread.

    rasterio registers the file opener in a context variable of the opening thread and looks it
    up again on close; the basemap's handle pool opens in one reader thread and may close in
    another. Opening and closing both run in one saved context; reads work from any thread.
    """

    def __init__(self, fs: Any, path: str, kwargs: dict[str, Any]) -> None:
        self._context = contextvars.copy_context()
        self._dataset = self._context.run(rasterio.open, path, opener=fs, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset, name)

    def close(self) -> None:
        self._context.run(self._dataset.close)

    def __enter__(self) -> _FsspecDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _gdal_url(uri: str) -> str:
    """rasterio maps ``s3://`` and ``gs://`` to /vsis3/ and /vsigs/; ``gcs://`` is fsspec's."""
    if uri.lower().startswith("gcs://"):
        return "gs://" + uri[len("gcs://") :]
    return uri


def without_credentials() -> Any:
    """A rasterio environment for work that opens no remote file (in-memory rasters, masks).

    Outside any environment rasterio builds a boto3 session for every such call whenever AWS
    keys are in the environment: milliseconds each, minutes over a region's polygons.
    """
    from rasterio.session import DummySession

    return rasterio.Env(session=DummySession())
