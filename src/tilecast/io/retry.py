"""Retrying object-store requests: which failures are transient, and how long to wait.

A transient failure (HTTP 408/429/5xx, a timeout, a connection dropped or refused) is retried
with exponential backoff and full jitter (a delay drawn uniformly from ``[0, min(cap, base *
2**(attempt - 1))]``), bounded by a number of attempts and a total time; every retry is logged
at WARNING with the URL and the attempt. Anything else (401/403, a missing object or bucket,
bad credentials, a precondition that failed) is permanent and raised at once.

The clients have retry loops of their own, silent and each with its own bounds: botocore (5
tries for 5xx, throttling and connection errors), s3fs (5 tries for transport errors) and gcsfs
(6 tries for 408/429/5xx and aiohttp errors, sleeping 1, 2, 4, ... 32 s). ``io.remote`` turns
them off on the filesystems it makes, so this module is the one loop: one set of bounds, every
retry logged. (aiohttp still re-sends an idempotent request once when a kept-alive connection
turns out closed.) GDAL's HTTP layer has its own, configured by ``io.remote.gdal_env``.

The settings come from the environment (``TILECAST_STORAGE_RETRY_ATTEMPTS``,
``TILECAST_STORAGE_RETRY_BASE_S``, ``TILECAST_STORAGE_RETRY_CAP_S``,
``TILECAST_STORAGE_RETRY_TOTAL_S``, ``TILECAST_STORAGE_TIMEOUT_S``) so that every process of a
job (and a launching workflow) agrees without a config change. This module does no I/O.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

T = TypeVar("T")

ENV_PREFIX = "TILECAST_STORAGE_"

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

# Exception class names (anywhere in the MRO) of the clients' transport failures: botocore,
# aiohttp, urllib3/http.client, requests, fsspec. Names, not imports: every client is optional.
TRANSIENT_NAMES = frozenset(
    {
        "HTTPClientError",  # botocore: ConnectionClosedError, ReadTimeoutError, ...
        "ConnectionError",  # botocore: EndpointConnectionError (refused); requests; builtin
        "Timeout",  # requests: ConnectTimeout, ReadTimeout
        "ResponseParserError",  # botocore: a throttled response that is not valid XML
        "ClientConnectionError",  # aiohttp: ServerDisconnectedError, ClientOSError, ...
        "ClientPayloadError",  # aiohttp: the body stopped short
        "ServerTimeoutError",  # aiohttp: sock_read / sock_connect timeouts
        "IncompleteRead",  # http.client / urllib3
        "ProtocolError",  # urllib3: connection aborted
        "RemoteDisconnected",  # http.client
        "ChunkedEncodingError",  # requests
        "ProxyError",  # requests; gcsfs raises it for a 502
        "FSTimeoutError",  # fsspec: a sync call ran past its timeout
    }
)
# Codes S3-compatible stores send with a throttling or internal error.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestLimitExceeded",
        "InternalError",
        "ServiceUnavailable",
        "TooManyRequests",
    }
)
PERMANENT_NAMES = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "DefaultCredentialsError",
    }
)


class RetrySettings(BaseModel):
    """How hard to try a storage request before giving up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(8, ge=1, description="tries per request, the first included")
    base_s: float = Field(0.25, gt=0, description="backoff before the 2nd try (upper bound)")
    cap_s: float = Field(20.0, gt=0, description="largest backoff between two tries")
    total_s: float = Field(300.0, gt=0, description="no new try after this long")
    timeout_s: float = Field(60.0, gt=0, description="a request silent this long has failed")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RetrySettings:
        env = os.environ if environ is None else environ
        values = {
            name: env[ENV_PREFIX + key]
            for name, key in (
                ("attempts", "RETRY_ATTEMPTS"),
                ("base_s", "RETRY_BASE_S"),
                ("cap_s", "RETRY_CAP_S"),
                ("total_s", "RETRY_TOTAL_S"),
                ("timeout_s", "TIMEOUT_S"),
            )
            if ENV_PREFIX + key in env
        }
        return cls.model_validate(values)


def backoff_s(attempt: int, settings: RetrySettings, rng: random.Random) -> float:
    """Full jitter: the wait after failed try number ``attempt`` (1-based)."""
    ceiling = min(settings.cap_s, settings.base_s * 2 ** (attempt - 1))
    return rng.uniform(0.0, ceiling)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from (clients wrap the HTTP error)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (gcsfs ``code``, aiohttp ``status``, botocore)."""
    for attr in ("code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(code, int):
            return code
    return None


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return code if isinstance(code, str) else None
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether trying the same request again may succeed."""
    if isinstance(exc, (FileNotFoundError, FileExistsError, PermissionError)):
        return False  # what is there (or who you are) will not change by asking again
    for link in _chain(exc):
        names = {cls.__name__ for cls in type(link).__mro__}
        if names & PERMANENT_NAMES:
            return False
        status = status_of(link)
        if status == 401 and "Invalid Credentials" in str(link):
            return True  # GCS: an access token that expired in flight; the next try refreshes
        if status is not None:
            return status in TRANSIENT_STATUS
        if _error_code(link) in TRANSIENT_CODES:
            return True
        if names & TRANSIENT_NAMES:
            return True
        if isinstance(link, (ConnectionError, TimeoutError)):
            return True  # resets, refusals, broken pipes; asyncio and socket timeouts
    return False


def call(
    fn: Callable[[], T],
    *,
    uri: str,
    what: str,
    settings: RetrySettings | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``fn`` until it succeeds, fails permanently, or the attempts or time run out.

    The last exception is raised as it is (``io.remote`` names the URL in it).
    """
    settings = settings or RetrySettings.from_env()
    rng = rng or random.Random()
    start = clock()
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or attempt >= settings.attempts:
                raise
            wait = backoff_s(attempt, settings, rng)
            if clock() - start + wait > settings.total_s:
                raise
            log.warning(
                "%s %s: transient failure on try %d of %d (%s: %s); retrying in %.2f s",
                what,
                uri,
                attempt,
                settings.attempts,
                type(exc).__name__,
                " ".join(str(exc).split())[:160],
                wait,
            )
            sleep(wait)
            attempt += 1
