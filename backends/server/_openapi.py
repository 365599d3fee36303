"""The OpenAPI document as the server behaves: every error a route can answer is listed
with the body it really has (`{"detail": ...}`, never FastAPI's list-shaped 422), path
parameters carry their constraints, and a 405 names every method the path allows.

Which errors a route can give follows from how the server is built: the auth middleware
(401, 403, 429, 402 for runs), bodies (400 unparsable, 413 too large, 422 invalid), path
parameters (404), creations (409), conditional saves (412). Schemathesis checks the result
in the test suite (tests/backends/test_server_fuzz.py).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from flowloom.backends.server.auth import runs_flow
from flowloom.backends.server.tenancy import ACCESS_KEY
from flowloom.flows.format import ID_PATTERN

__all__ = ["LiteralPaths", "install_openapi"]

ERROR = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {
    "title": "Error", "type": "object", "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "What was wrong, and where."},
        "problems": {"type": "array", "items": {"type": "object"},
                     "description": "A flow's problems, each with its JSON path."},
        "needed_role": {"type": "string", "description": "403: the role the route needs."},
        "etag": {"type": ["string", "null"], "description": "412: the current entity tag."},
    },
}
REASONS = {
    "400": "The body could not be read", "401": "No valid API key",
    "402": "The key's model budget is spent", "403": "The key's role may not do this",
    "404": "Not found (or another key's)", "409": "Conflicts with what exists",
    "412": "A condition (If-Match, If-None-Match) does not hold",
    "413": "The body is too large", "422": "The request is invalid",
    "429": "Rate limit reached (see Retry-After)",
}
UUID = {"type": "string", "format": "uuid"}
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "thread_id": UUID, "run_id": UUID, "assistant_id": UUID, "job_id": UUID,
    "flow_id": {"type": "string", "pattern": ID_PATTERN},
    "model": {"type": "string", "pattern": ID_PATTERN},
}
NAMED = {"/kbs/": {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,62}$"},
         "/prompts/": {"type": "string", "pattern": r"^[a-z][a-z0-9_\-]{0,63}$"}}
CREATES = re.compile(r"^/(threads|assistants|kbs|prompts/[^/]+)$")


def _errors(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    codes: list[str] = []
    access = operation.get(ACCESS_KEY)
    if access != "open":
        codes += ["401", "403", "429"]
    if runs_flow(method.upper(), re.sub(r"\{[^}]+\}", "x", path)):
        codes += ["402", "404", "409"]
    if "{" in path or access == "owner":
        codes.append("404")
    if method in ("post", "put", "patch") or "requestBody" in operation:
        codes += ["400", "413", "422"]
    if operation.get("parameters"):
        codes.append("422")
    if method == "post" and CREATES.match(path):
        codes.append("409")
    if method == "put" and path.startswith("/flows/"):
        codes += ["409", "412"]
    return sorted(set(codes))


def _document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            if path.startswith("/v1/"):  # OpenAI-shaped errors, documented by the router
                responses.pop("422", None)
                continue
            for code in _errors(path, method, operation):
                responses[code] = {"description": REASONS[code],
                                   "content": {"application/json": {"schema": ERROR}}}
            if path.endswith("/stream") and not path.startswith("/v1/"):
                responses["200"] = {"description": "Server-sent events",
                                    "content": {"text/event-stream": {"schema": {
                                        "type": "string"}}}}
            if path.endswith("/cancel"):  # 202 queued, 204 done (wait=true)
                responses.pop("200", None)
                responses["202"] = {"description": "Cancellation requested"}
                responses["204"] = {"description": "Cancelled (with wait=true)"}
            for param in operation.get("parameters", []):
                if param.get("in") != "path":
                    continue
                schema = PATH_PARAMS.get(param["name"])
                if schema is None and param["name"] == "name":
                    schema = next((s for p, s in NAMED.items() if path.startswith(p)), None)
                if schema is not None:
                    param["schema"] = {**schema, "title": param["schema"].get("title", "")}
    return doc


class LiteralPaths:
    """A path that is a route of its own (`/threads/search`) is that route, whatever the
    method: `PATCH /threads/search` is a 405 naming POST, not `PATCH /threads/{thread_id}`
    with the id "search"."""

    def __init__(self, app: ASGIApp, document: Any) -> None:
        self.app = app
        self.document = document
        self._methods: dict[str, set[str]] | None = None

    def methods(self) -> dict[str, set[str]]:
        if self._methods is None:  # from the document: every route is in by now
            self._methods = {path: {method.upper() for method in item}
                             for path, item in self.document()["paths"].items()
                             if "{" not in path}
        return self._methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            allowed = self.methods().get(scope["path"])
            if allowed and scope["method"] not in allowed | {"HEAD", "OPTIONS"}:
                await JSONResponse({"detail": "Method Not Allowed"}, status_code=405,
                                   headers={"Allow": ", ".join(sorted(allowed))}
                                   )(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_openapi(app: FastAPI) -> None:
    """Serve `_document(app)` at /openapi.json, and answer 405 with every allowed method.
    Add before the other middleware (it runs innermost)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(LiteralPaths, document=openapi)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names the first matching route's only
            allowed = {m for route in app.router.routes
                       if route.matches(request.scope)[0] is not Match.NONE
                       for m in (getattr(route, "methods", None) or ())}
            headers["Allow"] = ", ".join(sorted(allowed))
        if request.url.path.startswith("/v1/"):  # OpenAI clients read their own shape
            return JSONResponse({"error": {"message": str(exc.detail), "param": None,
                                           "type": "invalid_request_error", "code": None}},
                                status_code=exc.status_code, headers=headers)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=headers)
