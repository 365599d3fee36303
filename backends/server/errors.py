"""Server domain errors; only the web layer (`app.py`, `auth.py`) turns them into HTTP."""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BadRequest",
    "BudgetExhausted",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PreconditionFailed",
    "RateLimited",
    "ServerError",
    "Unauthenticated",
]


class ServerError(Exception):
    """Base of the API's client-facing errors."""


class NotFound(ServerError):
    """404: no such assistant, thread, run or flow."""


class Conflict(ServerError):
    """409: e.g. a run on a busy thread with multitask_strategy=reject."""


class PreconditionFailed(ServerError):
    """412: a conditional request (If-Match, If-None-Match) whose condition does not hold;
    `etag` is the resource's current tag (None when it does not exist)."""

    def __init__(self, message: str, *, etag: str | None) -> None:
        super().__init__(message)
        self.etag = etag


class BadRequest(ServerError):
    """422: a well-formed request that asks for something invalid."""


class AuthError(ServerError):
    """A request the API-key policy refuses (see `auth.py`)."""


class Unauthenticated(AuthError):
    """401: no API key, or one that is unknown or revoked."""


class Forbidden(AuthError):
    """403: a valid key whose role may not do this."""

    def __init__(self, message: str, *, needed_role: str) -> None:
        super().__init__(message)
        self.needed_role = needed_role


class RateLimited(AuthError):
    """429: the key's requests-per-minute are used up for now."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BudgetExhausted(AuthError):
    """402: the key's model-cost budget (USD) is spent."""
