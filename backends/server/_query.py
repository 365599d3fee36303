"""Query parameters a route does not take are refused (422 naming them), never ignored:
a client that sends `?subgraph=true` for `?subgraphs=true`, or an option this server does
not have, learns so instead of getting an answer that silently lacks it. The OpenAI-
compatible routes (`/v1`) refuse them as they refuse any bad request: an OpenAI 400."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from flowloom.backends.server.serde import dumps

__all__ = ["refuse_unknown_query"]


def _names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _names(sub)
    return names


class _StrictQuery:
    def __init__(self, app: ASGIApp, allowed: frozenset[str], *, openai: bool = False) -> None:
        self.app, self.allowed, self.openai = app, allowed, openai

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"")
        if query:
            given = {k for k, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)}
            unknown = sorted(given - self.allowed)
            if unknown:
                valid = ", ".join(sorted(self.allowed)) or "none"
                if self.openai:
                    from flowloom.backends.server._openai_route import error_response

                    await error_response(
                        400, f"query parameter {unknown[0]!r} is not supported here; "
                        f"valid: {valid}", param=unknown[0], code="unknown_parameter",
                    )(scope, receive, send)
                    return
                # the server's 422 shape: `detail` a string naming each, as for bodies
                detail = "; ".join(f"query.{name}: not supported here; valid: {valid}"
                                   for name in unknown)
                body = dumps({"detail": detail}).encode()
                await send({"type": "http.response.start", "status": 422, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _api_routes(routes: list[Any]) -> list[Any]:
    """The API routes (each with `.app` and `.dependant`) among `routes`. FastAPI before
    0.16x copies an included router's routes into the app; later ones keep the router,
    whose routes as included (`effective_candidates`, each with the `.app` requests
    reach) are where the wrapping must go."""
    found: list[Any] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif callable(getattr(route, "effective_candidates", None)):
            found += _api_routes(route.effective_candidates())
        elif getattr(route, "dependant", None) is not None and hasattr(route, "app"):
            found.append(route)  # an included route's effective context
    return found


def refuse_unknown_query(app: FastAPI) -> None:
    """Wrap every API route so a query parameter it does not declare is a 422."""
    try:
        from flowloom.backends.server._openai_route import OpenAIRoute
    except ImportError:  # as app.py: no OpenAI-compatible routes then
        OpenAIRoute = None  # noqa: N806

    for route in _api_routes(list(app.routes)):
        original = getattr(route, "original_route", route)
        openai = OpenAIRoute is not None and isinstance(original, OpenAIRoute)
        route.app = _StrictQuery(route.app, frozenset(_names(route.dependant)), openai=openai)
