"""Errors of the Text-to-SQL tool: what was refused or failed, for which statement, and
why in one sentence. The node shows `str(error)` to the model or the user; the API
server maps them to 4xx/5xx at the edge."""

from __future__ import annotations

__all__ = ["SqlConnectionError", "SqlError", "SqlExecutionError", "SqlRefused"]


class SqlError(Exception):
    """Base of every error of the SQL tool."""


class SqlRefused(SqlError):
    """The statement is not allowed, or not valid against the schema; nothing ran.

    `reason` is one sentence saying why ("only SELECT queries are allowed; this is a
    DELETE"), `sql` the statement as it was given.
    """

    def __init__(self, reason: str, sql: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sql = sql


class SqlExecutionError(SqlError):
    """The database refused the statement or it ran past the time limit."""

    def __init__(self, reason: str, sql: str, *, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sql = sql
        self.timed_out = timed_out


class SqlConnectionError(SqlError):
    """The URL is malformed, the database is missing, or it cannot be reached; the
    message names the (password-masked) URL and what would be valid."""

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message)
        self.url = url
