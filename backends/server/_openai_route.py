"""What the `/v1` routers share: OpenAI error responses (bad requests as 400s, not
FastAPI's 422s), the flow a `model` names, the check of a request's model parameters
against the flow's answering nodes, and the server's run manager as these endpoints use it
(per-thread turns, observers, thread ownership).

Example:
    >>> router = APIRouter(prefix="/v1", route_class=OpenAIRoute)
    >>> plan = plan_answer(catalog, find_flow(catalog, "chat"), options, None)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from flowloom.backends.errors import BackendError
from flowloom.backends.server._openai_errors import (
    ErrorBody,
    ErrorDetail,
    OpenAIRequestError,
    describe_errors,
)
from flowloom.backends.server._openai_options import AnswerOptions, answering_nodes
from flowloom.backends.server._openai_turn import Outcome
from flowloom.backends.server.catalog import CompiledFlow, FlowCatalog
from flowloom.backends.server.runs import RunManager, ThreadLocks
from flowloom.backends.server.tenancy import Principal
from flowloom.flows.errors import FlowError

__all__ = ["ERRORS", "THREAD_HEADER", "OpenAIRoute", "Plan", "RunAccess", "error_response",
           "failure", "find_flow", "last_of", "plan_answer", "thread_status"]

THREAD_HEADER = "X-Flowloom-Thread"
"""Names the thread of a request (chat completions) and is echoed in each answer."""

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in ((400, "Invalid request"), (404, "Unknown model (flow id)"),
                         (500, "The flow failed"), ("default", "An OpenAI-style error"))
}  # "default" also stands in for FastAPI's 422 body: bad requests are OpenAI 400s here


def error_response(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    detail = ErrorDetail(message=message, type=type, param=param, code=code)
    return JSONResponse(ErrorBody(error=detail).model_dump(), status_code=status,
                        headers=headers)


class OpenAIRoute(APIRoute):
    """Reports bad requests as OpenAI errors (400) instead of FastAPI's 422 bodies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                message, param = describe_errors(exc.errors())
                return error_response(400, message, param=param, code="invalid_request")
            except OpenAIRequestError as exc:
                return error_response(exc.status, exc.message, type=exc.type,
                                      param=exc.param, code=exc.code)

        return handle


def failure(flow_id: str, exc: Exception) -> str:
    """What to tell a client about a failed run: the error's message, never a traceback."""
    detail = str(exc) if isinstance(exc, FlowError | BackendError) else (
        f"{type(exc).__name__}: {exc}")
    return f"flow '{flow_id}' failed: {detail}"[:2000]


def find_flow(catalog: FlowCatalog, model: str) -> CompiledFlow:
    """The flow a request names as its `model`; 404 (OpenAI's shape) naming the valid ids."""
    compiled = catalog.get(model)
    if compiled is None:
        ids = catalog.ids()
        raise OpenAIRequestError(
            f"model '{model}' is not a flow on this server; valid: {', '.join(ids) or 'none'}",
            status=404, param="model", code="model_not_found",
        )
    return compiled


@dataclass(frozen=True)
class Plan:
    """What a request sets on the flow's answering nodes (checked: a parameter that none
    of them takes was refused), and which nodes answer."""

    overrides: dict[str, dict[str, Any]]
    answerers: frozenset[str]


def plan_answer(catalog: FlowCatalog, compiled: CompiledFlow, options: AnswerOptions,
                tool_param: str | None) -> Plan:
    """Check `options`, and a conversation carrying tool calls (at `tool_param`), against
    the flow's answering nodes; a 400 naming what the flow cannot honour."""
    answerers = answering_nodes(compiled.flow, catalog.registry)
    if tool_param is not None:
        options.require_tools(compiled.flow, catalog.registry, param=tool_param,
                              answerers=answerers)
    overrides = options.overrides(compiled.flow, catalog.registry, answerers)
    return Plan(overrides, frozenset(a.node_id for a in answerers))


async def thread_status(compiled: CompiledFlow, thread_id: str,
                        checkpoint_id: str | None = None) -> tuple[bool, bool]:
    """(whether the thread has state, whether it is paused waiting for a decision), at
    its latest checkpoint or at `checkpoint_id`."""
    configurable = {"thread_id": thread_id}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    state = await compiled.graph.aget_state({"configurable": configurable})
    return bool(state.values), bool(state.interrupts)


async def last_of(items: AsyncIterator[str | Outcome]) -> Outcome:
    """The `Outcome` a turn ends with (its tokens, if any, are dropped)."""
    outcome = None
    async for item in items:
        if isinstance(item, Outcome):
            outcome = item
    assert outcome is not None  # run_turn always ends with one
    return outcome


class RunAccess:
    """What the endpoints need of the server's run manager: its per-thread locks (requests
    on one thread take turns with its runs), its observers (metrics, run history and spend
    see these runs as theirs) and its store (threads are owned). Alone (no manager): own
    locks, nobody observing, no owners."""

    def __init__(self, manager: RunManager | None, locks: ThreadLocks | None = None) -> None:
        self.manager = manager
        self.locks = manager.locks if manager is not None else (locks or ThreadLocks())

    @contextlib.asynccontextmanager
    async def observed(self, compiled: CompiledFlow, thread_id: str, who: Principal
                       ) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
        if self.manager is None:
            yield SimpleNamespace(result=None), {}
            return
        async with self.manager.observed(compiled, thread_id, source="openai",
                                         who=who) as observed:
            yield observed

    async def claim(self, thread_id: str, who: Principal, flow_id: str, name: str, *,
                    param: str = "user") -> None:
        """Record the thread as `who`'s (made on first use); another key's is refused."""
        if self.manager is None:
            return
        if not await self.manager.store.claim_thread(
                thread_id, who, flow_id, {"source": "openai", "name": name}):
            raise OpenAIRequestError(f"thread {name!r} not found", status=404, param=param,
                                     code="thread_not_found")
