"""Limits on request bodies, checked once for every route before any of them reads one.

A JSON body is refused, naming the limit and where it was broken, when it is larger than
`MAX_BODY_BYTES` (413), nested deeper than `MAX_DEPTH`, or holds a string or key with a
NUL character or an unpaired surrogate, which no database column or UTF-8 response can
hold (422; OpenAI-style 400 under `/v1`). Nothing has been read or written by then, so a
hostile document costs a parse, never a half-stored run. Multipart uploads (knowledge-base
files) keep their own per-file cap.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowloom.flows.limits import MAX_DEPTH, json_problem

__all__ = ["MAX_BODY_BYTES", "BodyLimits"]

MAX_BODY_BYTES = 32 * 1024 * 1024


def _refusal(path: str, status: int, message: str) -> JSONResponse:
    if path.startswith("/v1/"):  # OpenAI clients read their own error shape
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error",
                                       "param": None, "code": "invalid_body"}},
                            status_code=400 if status == 422 else status)
    return JSONResponse({"detail": message}, status_code=status)


class BodyLimits:
    """ASGI middleware: reads a request's body once, refuses it past a limit, and hands
    the same bytes on to the app."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-type", "").startswith("multipart/"):
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = self._problem(body)
        if problem is not None:
            await _refusal(scope["path"], 422, problem)(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: disconnects, for streaming routes

        await self.app(scope, replay, send)

    @staticmethod
    def _problem(body: bytes) -> str | None:
        if not body.strip():
            return None
        try:
            value = json.loads(body)
        except RecursionError:
            return f"body: nested deeper than {MAX_DEPTH} levels; flatten it"
        except ValueError:  # not JSON (or not UTF-8): the route says what it expected
            return None
        return json_problem(value)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_bytes // (1024 * 1024)
        await _refusal(scope["path"], 413, f"request body is larger than {limit} MB")(
            scope, receive, send)
