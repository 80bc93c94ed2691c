"""The service's settings: batching, the queue bound, body and image limits, the token."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tilecast.errors import ContractError

TOKEN_VARIABLE = "TILECAST_API_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    """How the service batches and what it accepts.

    ``max_batch`` requests at most are run together; the worker waits at most ``max_wait_ms``
    after the first for others to join. ``queue`` requests at most wait for the worker; one
    more is answered 503 with ``Retry-After: retry_after_s``. ``max_body_bytes`` bounds a
    request body (413), ``max_pixels`` a decoded image (422). ``token``: when set, every
    request must carry ``Authorization: Bearer <token>``; by default ``TILECAST_API_TOKEN``
    as set when the settings are made (unset: no token).
    """

    max_batch: int = 8
    max_wait_ms: float = 3.0
    queue: int = 64
    retry_after_s: int = 1
    max_body_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 64 * 1024 * 1024
    token: str | None = field(default_factory=lambda: token_from_env(), repr=False)
    input_drift: str = "warn"  # or "fail": an image unlike training is a 422

    def __post_init__(self) -> None:
        for name in ("max_batch", "queue", "retry_after_s", "max_body_bytes", "max_pixels"):
            value = getattr(self, name)
            if value < 1:
                raise ContractError(f"{name} must be positive, {value} is given")
        if self.max_wait_ms < 0:
            raise ContractError(f"max_wait_ms must be 0 or more, {self.max_wait_ms} is given")
        if self.input_drift not in ("warn", "fail"):
            raise ContractError(f"input_drift must be warn or fail, {self.input_drift!r} is given")
        if self.token is not None and not self.token:
            raise ContractError(
                f"the API token is empty; unset {TOKEN_VARIABLE} or give it a value"
            )


def token_from_env() -> str | None:
    """``TILECAST_API_TOKEN`` as set now (None when unset); an empty value is refused later."""
    return os.environ.get(TOKEN_VARIABLE)
