"""A service app under uvicorn in a thread of this process (embedding, tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from tilecast.optional import import_optional


class BackgroundServer:
    """``with BackgroundServer(app, port=0) as server: httpx.get(server.url + "/health")``;
    port 0 picks a free port."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        uvicorn = import_optional("uvicorn", extra="serve", purpose="the tilecast HTTP service")
        self._socket = socket.socket()
        self._socket.bind((host, port))
        self.host, self.port = host, self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
