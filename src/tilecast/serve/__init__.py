"""One HTTP service for any bundle (``tilecast serve BUNDLE``; the ``serve`` extra).

``app`` makes the FastAPI app by the contract's task, ``tasks`` the per-task forward and
reply, ``batcher`` the dynamic batcher with its bounded queue, ``images`` the request body to
a prepared image, ``auth`` the optional bearer token, ``limits`` the body size limit,
``settings`` the knobs, ``server`` uvicorn in a thread. FastAPI is imported only when an app
is made: ``create_app`` and ``BackgroundServer`` are loaded on first use.
"""

from __future__ import annotations

from typing import Any

from tilecast.serve.settings import TOKEN_VARIABLE, ServeSettings

__all__ = ["TOKEN_VARIABLE", "BackgroundServer", "ServeSettings", "create_app", "health_payload"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "health_payload"):
        from tilecast.serve import app

        return getattr(app, name)
    if name == "BackgroundServer":
        from tilecast.serve.server import BackgroundServer

        return BackgroundServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
