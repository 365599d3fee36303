"""Server domain errors; only `app.py` turns them into HTTP status codes."""

from __future__ import annotations

__all__ = ["BadRequest", "Conflict", "NotFound", "ServerError"]


class ServerError(Exception):
    """Base of the API's client-facing errors."""


class NotFound(ServerError):
    """404: no such assistant, thread, run or flow."""


class Conflict(ServerError):
    """409: e.g. a run on a busy thread with multitask_strategy=reject."""


class BadRequest(ServerError):
    """422: a well-formed request that asks for something invalid."""
