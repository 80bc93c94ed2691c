"""The optional bearer token: without it, every request gets 401 and nothing else.

A pure ASGI middleware around the whole app, so it covers every path (``/health``,
``/contract``, ``/docs``, ``/openapi.json``, unknown paths alike) before any routing. The
token is compared with :func:`hmac.compare_digest`; a refusal carries no detail, only
``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def bearer_matches(header: bytes | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``Bearer <token>``."""
    if header is None:
        return False
    scheme, _, given = header.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(given.strip(), token.encode())


class BearerTokenMiddleware:
    """Answers 401 (empty body) to any HTTP or websocket request without the token."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization")
        if bearer_matches(header, self.token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"www-authenticate", b"Bearer"), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})
