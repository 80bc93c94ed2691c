"""A fault-injecting HTTP reverse proxy on 127.0.0.1, put in front of moto or the GCS emulator.

For a seeded fraction of requests it answers 503, 500 or 429, resets the connection (before the
request reaches the server, or after the server applied it and before the client hears back),
or stalls past the client's timeout; every other request goes to the server unchanged. The
``Host`` header is passed through, so URLs the server hands out (GCS resumable-upload
locations) point back at the proxy. ``rules`` force an answer for matching requests (a
permanent 403, a failing multipart part).
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import http.server
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

FAULTS = ("503", "500", "429", "reset", "reset_after", "stall")

# What the fault tests run with: a quarter of requests fail, and retries short enough for tests.
FAULT_RATE = 0.25
RETRY_ENV = {
    "TILECAST_STORAGE_RETRY_ATTEMPTS": "12",
    "TILECAST_STORAGE_RETRY_BASE_S": "0.05",
    "TILECAST_STORAGE_RETRY_CAP_S": "0.5",
    "TILECAST_STORAGE_TIMEOUT_S": "1.5",
}

# A rule looks at (method, path with query, body) and returns a fault name, an HTTP status, or
# None to leave the request to chance.
Rule = Callable[[str, str, bytes], "str | int | None"]


@dataclass
class FaultLog:
    """What the proxy did: one (method, path, outcome) per request; outcome 'pass' or a fault."""

    entries: list[tuple[str, str, str]] = field(default_factory=list)

    def counts(self) -> collections.Counter[str]:
        return collections.Counter(outcome for _, _, outcome in self.entries)

    def faults(self) -> int:
        return sum(n for outcome, n in self.counts().items() if outcome != "pass")


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.open_connections: set[socket.socket] = set()

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:  # type: ignore[no-untyped-def]
        self.open_connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Close kept-alive client connections too: the endpoint is gone, not just closed."""
        for conn in list(self.open_connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a connection the proxy reset on purpose fails to flush; that is the point


class FaultProxy:
    """``with FaultProxy(upstream, rate=0.25, seed=1) as proxy: ... proxy.url ...``"""

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        seed: int = 0,
        faults: tuple[str, ...] = FAULTS,
        stall_s: float = 4.0,
        rules: tuple[Rule, ...] = (),
        port: int = 0,
    ) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {FAULTS}")
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rate = rate
        self.faults = faults
        self.stall_s = stall_s
        self.rules = rules
        self.log = FaultLog()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()

    def decide(self, method: str, path: str, body: bytes = b"") -> str | int:
        for rule in self.rules:
            forced = rule(method, path, body)
            if forced is not None:
                return forced
        with self._lock:
            if self.rate and self._rng.random() < self.rate:
                return self._rng.choice(self.faults)
        return "pass"

    def record(self, method: str, path: str, outcome: str | int) -> None:
        with self._lock:
            self.log.entries.append((method, path, str(outcome)))

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reset(self) -> None:
                # SO_LINGER 0: close with RST, the client sees "connection reset by peer"
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.close()

            def _status(self, code: int) -> None:
                body = b'{"error": {"code": %d, "message": "injected by the fault proxy"}}' % code
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if code in (429, 503):
                    self.send_header("Retry-After", "0")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items()}
                    headers.pop("Transfer-Encoding", None)
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    return resp.status, resp.reason, resp.getheaders(), data
                finally:
                    conn.close()

            def _handle(self) -> None:
                body = self._body()
                outcome = proxy.decide(self.command, self.path, body)
                proxy.record(self.command, self.path, outcome)
                if isinstance(outcome, int) or outcome in ("503", "500", "429"):
                    self._status(int(outcome))
                    return
                if outcome == "reset":
                    self._reset()
                    return
                if outcome == "stall":
                    time.sleep(proxy.stall_s)
                    self._reset()
                    return
                status, reason, headers, data = self._forward(body)
                if outcome == "reset_after":
                    self._reset()
                    return
                self.send_response(status, reason)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

        return Handler


@contextlib.contextmanager
def proxied(proxy: FaultProxy, scheme: str, monkeypatch) -> Iterator[FaultProxy]:
    """Point the S3 or GCS clients at ``proxy`` (the usual environment variables) in the block."""
    from object_stores import clear_fs_caches

    with monkeypatch.context() as mp:
        if scheme == "s3":
            mp.setenv("AWS_ENDPOINT_URL", proxy.url)
            mp.setenv("AWS_S3_ENDPOINT", f"127.0.0.1:{proxy.port}")
        else:
            mp.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        clear_fs_caches()
        try:
            yield proxy
        finally:
            clear_fs_caches()
