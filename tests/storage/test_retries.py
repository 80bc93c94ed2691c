"""io.retry: which failures are transient, the backoff arithmetic, the bounded loop; gdal_env."""

from __future__ import annotations

import logging
import random

import aiohttp
import botocore.exceptions as bx
import pytest
import requests
from botocore.parsers import ResponseParserError
from fsspec.exceptions import FSTimeoutError
from gcsfs.retry import HttpError
from s3fs.errors import translate_boto_error

from tilecast.io import remote
from tilecast.io.retry import RetrySettings, backoff_s, call, is_transient


def client_error(status: int, code: str) -> bx.ClientError:
    return bx.ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


TRANSIENT = {
    "s3 503 SlowDown": client_error(503, "SlowDown"),
    "s3 500 as s3fs raises it": translate_boto_error(client_error(500, "InternalError")),
    "s3 503 as s3fs raises it": translate_boto_error(client_error(503, "ServiceUnavailable")),
    "s3 RequestTimeout": translate_boto_error(client_error(400, "RequestTimeout")),
    "s3 connection reset": bx.ConnectionClosedError(endpoint_url="http://x"),
    "s3 connection refused": bx.EndpointConnectionError(endpoint_url="http://x"),
    "s3 read timeout": bx.ReadTimeoutError(endpoint_url="http://x"),
    "s3 throttled, unparsable reply": ResponseParserError("bad xml"),
    "gcs 503": HttpError({"code": 503, "message": "backend error"}),
    "gcs 429": HttpError({"code": 429, "message": "rate limit"}),
    "gcs 408": HttpError({"code": 408, "message": "timeout"}),
    "gcs expired token": HttpError({"code": 401, "message": "Invalid Credentials"}),
    "gcs 502 (gcsfs raises ProxyError)": requests.exceptions.ProxyError(),
    "aiohttp disconnect": aiohttp.ServerDisconnectedError(),
    "aiohttp read timeout": aiohttp.ServerTimeoutError("sock_read"),
    "aiohttp truncated body": aiohttp.ClientPayloadError("short"),
    "fsspec sync timeout": FSTimeoutError(),
    "requests connection error": requests.exceptions.ConnectionError(),
    "requests read timeout": requests.exceptions.ReadTimeout(),
    "socket reset": ConnectionResetError(104, "Connection reset by peer"),
    "socket refused": ConnectionRefusedError(111, "Connection refused"),
    "timeout": TimeoutError(),
}
PERMANENT = {
    "s3 403": translate_boto_error(client_error(403, "AccessDenied")),
    "s3 404 key": translate_boto_error(client_error(404, "NoSuchKey")),
    "s3 no bucket": translate_boto_error(client_error(404, "NoSuchBucket")),
    "s3 bad key id": translate_boto_error(client_error(403, "InvalidAccessKeyId")),
    "s3 412 create-only": translate_boto_error(client_error(412, "PreconditionFailed")),
    "s3 no credentials": bx.NoCredentialsError(),
    "gcs 403 (gcsfs raises OSError)": OSError("Forbidden: b/o\nnot allowed"),
    "gcs 404": FileNotFoundError("b/o"),
    "gcs 401": HttpError({"code": 401, "message": "Login Required"}),
    "gcs 400": HttpError({"code": 400, "message": "bad"}),
    "gcs 501": HttpError({"code": 501, "message": "not implemented"}),
    "a bug": ValueError("not storage at all"),
}


@pytest.mark.parametrize("name", TRANSIENT)
def test_transient_failures(name):
    assert is_transient(TRANSIENT[name])


@pytest.mark.parametrize("name", PERMANENT)
def test_permanent_failures(name):
    assert not is_transient(PERMANENT[name])


def test_a_wrapped_cause_decides():
    try:
        try:
            raise HttpError({"code": 503, "message": "busy"})
        except HttpError as inner:
            raise RuntimeError("wrapper") from inner
    except RuntimeError as outer:
        assert is_transient(outer)


def test_full_jitter_stays_under_the_exponential_ceiling():
    settings = RetrySettings(base_s=0.5, cap_s=5.0)
    rng = random.Random(42)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (9, 5.0)]:
        draws = [backoff_s(attempt, settings, rng) for _ in range(400)]
        assert min(draws) >= 0 and max(draws) <= ceiling
        assert max(draws) > 0.9 * ceiling  # the whole range is used (full jitter)
        assert min(draws) < 0.1 * ceiling


def test_backoff_is_reproducible_with_a_seed():
    settings = RetrySettings()
    a = [backoff_s(n, settings, random.Random(1)) for n in range(1, 6)]
    b = [backoff_s(n, settings, random.Random(1)) for n in range(1, 6)]
    assert a == b


class Flaky:
    """Fails with ``errors`` in turn, then returns 'ok'."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s

    def clock(self) -> float:
        return self.now


def run(fn, settings: RetrySettings, time: FakeTime):
    return call(
        fn,
        uri="s3://b/k",
        what="read",
        settings=settings,
        rng=random.Random(0),
        sleep=time.sleep,
        clock=time.clock,
    )


def test_transient_failures_are_retried_and_logged(caplog):
    caplog.set_level(logging.WARNING, logger="tilecast.io.retry")
    fn = Flaky(ConnectionResetError(), HttpError({"code": 503}), TimeoutError())
    time = FakeTime()
    assert run(fn, RetrySettings(attempts=4), time) == "ok"
    assert fn.calls == 4 and len(time.sleeps) == 3
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 3
    assert all("s3://b/k" in m for m in messages)
    assert [m.split("try ")[1].split(" of")[0] for m in messages] == ["1", "2", "3"]


def test_attempts_are_bounded():
    fn = Flaky(*[ConnectionResetError()] * 10)
    with pytest.raises(ConnectionResetError):
        run(fn, RetrySettings(attempts=3), FakeTime())
    assert fn.calls == 3


def test_total_time_is_bounded():
    fn = Flaky(*[TimeoutError()] * 100)
    time = FakeTime()
    settings = RetrySettings(attempts=100, base_s=1.0, cap_s=8.0, total_s=20.0)
    with pytest.raises(TimeoutError):
        run(fn, settings, time)
    assert time.now <= 20.0
    assert fn.calls < 100


def test_permanent_failures_are_not_retried():
    fn = Flaky(PermissionError("AccessDenied"), ConnectionResetError())
    time = FakeTime()
    with pytest.raises(PermissionError):
        run(fn, RetrySettings(), time)
    assert fn.calls == 1 and time.sleeps == []


def test_settings_from_the_environment():
    settings = RetrySettings.from_env(
        {"TILECAST_STORAGE_RETRY_ATTEMPTS": "3", "TILECAST_STORAGE_TIMEOUT_S": "7.5"}
    )
    assert settings.attempts == 3 and settings.timeout_s == 7.5
    assert settings.total_s == RetrySettings().total_s
    with pytest.raises(ValueError, match="attempts"):
        RetrySettings.from_env({"TILECAST_STORAGE_RETRY_ATTEMPTS": "0"})


def test_gdal_env_follows_the_settings():
    env = remote.gdal_env(RetrySettings(attempts=5, base_s=0.5, timeout_s=30))
    assert env["GDAL_HTTP_MAX_RETRY"] == "4"
    assert env["GDAL_HTTP_RETRY_DELAY"] == "0.5"
    assert env["GDAL_HTTP_RETRY_CODES"] == "408,429,500,502,503,504"
    assert env["GDAL_HTTP_TIMEOUT"] == "30"
