"""OpenAI's error shape: the exception the `/v1` modules raise, its body, and pydantic's
validation errors as one message naming the first bad field (`messages[0].role`).

Example:
    >>> describe_errors([{"loc": ("body", "n"), "msg": "Value error, only n=1"}])
    ('n: only n=1', 'n')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

__all__ = ["ErrorBody", "ErrorDetail", "OpenAIRequestError", "describe_errors"]


class OpenAIRequestError(Exception):
    """A request the server cannot serve, with the OpenAI error fields to report it."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str = "invalid_request",
        type: str = "invalid_request_error",
    ) -> None:
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type
        super().__init__(message)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """OpenAI's error envelope: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorDetail


def _path(loc: Sequence[Any]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """FastAPI/pydantic validation errors as one message and the first field's path
    (`messages[0].role`)."""
    lines: list[str] = []
    param: str | None = None
    for error in errors:
        loc = [part for part in error.get("loc", ())
               if not (isinstance(part, str) and "[" in part)]  # union branch names
        if loc and loc[0] == "body":
            loc = loc[1:]
        kind = str(error.get("type", ""))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", message)
            where = f" at character {loc[0]}" if loc else ""
            lines.append(f"the request body is not valid JSON: {reason}{where}")
            continue
        if not loc:
            lines.append("the request body must be a JSON object with `model` and its input")
            continue
        path = _path(loc)
        param = param or path
        lines.append(f"{path}: {message}")
    return "; ".join(lines) or "invalid request", param
