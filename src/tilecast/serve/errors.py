"""What the service answers when it refuses a request: a status, the field at fault, a detail.

Every refusal is ``{"field": ..., "detail": ...}`` with its HTTP status (``field`` is None when
no field is at fault, e.g. a full queue); headers such as ``Retry-After`` travel with it.
"""

from __future__ import annotations

from collections.abc import Mapping

from tilecast.errors import TilecastError


class RequestError(TilecastError, ValueError):
    """A request the service refuses, with the HTTP status and the field at fault."""

    def __init__(
        self,
        status: int,
        field: str | None,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{field}: {detail}")
        self.status, self.field, self.detail = status, field, detail
        self.headers = dict(headers or {})


class QueueFullError(TilecastError, RuntimeError):
    """The batcher's queue holds as many requests as it may; the caller should retry later."""
