"""Body size limits: a declared length over the limit is refused before reading, and a body
sent without one (chunked) is read only up to the limit."""

from __future__ import annotations

from typing import Any

from tilecast.serve.errors import RequestError


def too_large(size: int | str, limit: int) -> RequestError:
    return RequestError(413, "body", f"{size} bytes, at most {limit} accepted")


async def read_body(request: Any, limit: int) -> bytes:
    """The body of a Starlette ``request``, at most ``limit`` bytes; RequestError 413 beyond."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(declared, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"more than {limit}", limit)
        chunks.append(chunk)
    return b"".join(chunks)
