"""An OpenAI-compatible API over the server's flows: each flow is a "model".

`GET /v1/models` lists the flows; `POST /v1/chat/completions` runs one, streamed (SSE
chunks) or not. A thread is picked by the `X-Flowloom-Thread` header or the `user` field
and echoed back in the `X-Flowloom-Thread` response header; on a thread that already has
state only the last user message is sent, since the thread holds the history. The name
is the API key's own (`tenancy.scoped_thread_id`): two keys sending `user: "alice"` talk
on two threads. Errors use
OpenAI's `{"error": {...}}` bodies, so OpenAI clients raise their usual exceptions.

Example:
    >>> app.include_router(openai_router(lambda: catalog))
    >>> OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="x").chat.completions.create(
    ...     model="chat", messages=[{"role": "user", "content": "Hi"}]).choices[0].message.content
    'Hello! How can I help?'
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute

from flowloom.backends.errors import BackendError
from flowloom.backends.server._openai_messages import (
    ChatCompletionRequest,
    ErrorBody,
    ErrorDetail,
    OpenAIRequestError,
    describe_errors,
    flow_input,
    usage_of,
)
from flowloom.backends.server.catalog import CompiledFlow, FlowCatalog
from flowloom.backends.server.runs import RunManager, ThreadLocks
from flowloom.backends.server.tenancy import Principal, access, caller, scoped_thread_id
from flowloom.flows.errors import FlowError
from flowloom.flows.runtime import RunResult

__all__ = ["THREAD_HEADER", "openai_router"]

THREAD_HEADER = "X-Flowloom-Thread"

logger = logging.getLogger(__name__)

_THREAD_ID = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,255}$")  # printable ASCII: a header value
_ERRORS: dict[int | str, dict[str, Any]] = {
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


class _OpenAIRoute(APIRoute):
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


def _failure(flow_id: str, exc: Exception) -> str:
    """What to tell a client about a failed run: the error's message, never a traceback."""
    detail = str(exc) if isinstance(exc, FlowError | BackendError) else (
        f"{type(exc).__name__}: {exc}")
    return f"flow '{flow_id}' failed: {detail}"[:2000]


def _output_text(output: Any) -> str:
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, default=str)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _find(catalog: FlowCatalog, model: str) -> CompiledFlow:
    compiled = catalog.get(model)
    if compiled is None:
        ids = catalog.ids()
        raise OpenAIRequestError(
            f"model '{model}' is not a flow on this server; valid: {', '.join(ids) or 'none'}",
            status=404, param="model", code="model_not_found",
        )
    return compiled


def _thread_id(body: ChatCompletionRequest, header: str | None) -> str | None:
    for value, param in ((header, THREAD_HEADER), (body.user, "user")):
        if value:
            if not _THREAD_ID.match(value):
                raise OpenAIRequestError(
                    f"{param}: a thread id is 1 to 256 printable ASCII characters",
                    param=param, code="invalid_thread",
                )
            return value
    return None


async def _input(
    compiled: CompiledFlow, body: ChatCompletionRequest, thread_id: str, *, known: bool
) -> str | dict[str, Any]:
    """The flow's input. A thread with state gets the last user message only; a new or
    stateless one (`known` False) gets the request's whole conversation."""
    whole = True
    if known:
        state = await compiled.graph.aget_state({"configurable": {"thread_id": thread_id}})
        whole = not state.values
    return flow_input(compiled.flow, body.messages, whole=whole)


def _chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _sse({**base, "choices": [choice]})


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _stream(
    compiled: CompiledFlow,
    body: ChatCompletionRequest,
    thread_id: str,
    known: bool,
    base: dict[str, Any],
    runs: _Runs,
    who: Principal,
) -> AsyncIterator[bytes]:
    """SSE chunks: the role, the runner's tokens (or the whole output when the flow
    streamed none), the finish, optionally usage, then [DONE]; a failure is an `error`
    chunk followed by [DONE]. Work on the thread waits its turn (`runs.locks`)."""
    async with (runs.locks.hold(thread_id),
                runs.observed(compiled, thread_id, who) as (run, config)):
        value = await _input(compiled, body, thread_id, known=known)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        async for chunk in _stream_run(compiled, value, thread_id, base, include_usage,
                                       run, config):
            yield chunk


async def _stream_run(
    compiled: CompiledFlow,
    value: str | dict[str, Any],
    thread_id: str,
    base: dict[str, Any],
    include_usage: bool,
    run: Any,
    config: dict[str, Any],
) -> AsyncIterator[bytes]:
    yield _chunk(base, {"role": "assistant", "content": ""})
    streamed = False
    prompt = completion = 0
    result: RunResult | None = None
    try:
        async for event in compiled.runner.astream(value, thread_id=thread_id, tokens=True,
                                                   config=config):
            if event.kind == "token" and event.text:
                streamed = True
                yield _chunk(base, {"content": event.text})
            elif event.kind == "update":
                used = usage_of(event.data)
                prompt, completion = prompt + used[0], completion + used[1]
            elif event.kind == "done":
                result = event.result
    except Exception as exc:
        logger.exception("flow %s failed on thread %s", compiled.id, thread_id)
        run.result = {"__error__": {"error": type(exc).__name__, "message": str(exc)}}
        detail = ErrorDetail(message=_failure(compiled.id, exc), type="server_error",
                             code="flow_failed")
        yield _sse(ErrorBody(error=detail).model_dump())
        yield b"data: [DONE]\n\n"
        return
    run.result = result.values if result else None
    text = _output_text(result.output if result else None)
    if not streamed and text:
        yield _chunk(base, {"content": text})
    yield _chunk(base, {}, "stop")
    if include_usage:
        yield _sse({**base, "choices": [], "usage": _usage(prompt, completion)})
    yield b"data: [DONE]\n\n"


async def _complete(
    compiled: CompiledFlow, value: str | dict[str, Any], thread_id: str, base: dict[str, Any],
    run: Any, config: dict[str, Any],
) -> dict[str, Any]:
    prompt = completion = 0
    result: RunResult | None = None
    async for event in compiled.runner.astream(value, thread_id=thread_id, tokens=False,
                                               config=config):
        if event.kind == "update":
            used = usage_of(event.data)
            prompt, completion = prompt + used[0], completion + used[1]
        elif event.kind == "done":
            result = event.result
    run.result = result.values if result else None
    message = {"role": "assistant", "content": _output_text(result.output if result else None)}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    return {**base, "object": "chat.completion", "choices": [choice],
            "usage": _usage(prompt, completion)}


def _created(compiled: CompiledFlow, default: int) -> int:
    """A flow file's modification time; flows saved through the API have none."""
    if compiled.source.startswith("file:"):
        try:
            return int(Path(compiled.source.removeprefix("file:")).stat().st_mtime)
        except OSError:
            pass
    return default


class _Runs:
    """What the endpoint needs of the server's run manager: its per-thread locks (requests
    on one thread take turns with its runs) and its observers (metrics, run history and
    spend see these runs as theirs). Alone (no manager): own locks, nobody observing."""

    def __init__(self, manager: RunManager | None) -> None:
        self.manager = manager
        self.locks = manager.locks if manager is not None else ThreadLocks()

    @contextlib.asynccontextmanager
    async def observed(self, compiled: CompiledFlow, thread_id: str, who: Principal
                       ) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
        if self.manager is None:
            yield SimpleNamespace(result=None), {}
            return
        async with self.manager.observed(compiled, thread_id, source="openai",
                                         who=who) as observed:
            yield observed

    async def claim(self, thread_id: str, who: Principal, flow_id: str, name: str) -> None:
        """Record the thread as `who`'s (made on first use); another key's is refused."""
        if self.manager is None:
            return
        if not await self.manager.store.claim_thread(
                thread_id, who, flow_id, {"source": "openai", "name": name}):
            raise OpenAIRequestError(f"thread {name!r} not found", status=404, param="user",
                                     code="thread_not_found")


def openai_router(get_catalog: Callable[[], FlowCatalog],
                  get_runs: Callable[[], RunManager] | None = None) -> APIRouter:
    """The `/v1/models` and `/v1/chat/completions` routes over `get_catalog()`'s flows.
    With `get_runs()`, the server's run manager: requests on one thread take turns with
    its runs, and its observers see each request as a run (`_Runs`).

    Example:
        >>> app = FastAPI()
        >>> app.include_router(openai_router(lambda: catalog))
    """
    router = APIRouter(prefix="/v1", tags=["openai"], route_class=_OpenAIRoute)
    started = int(time.time())
    alone = _Runs(None)

    def runs() -> _Runs:
        return _Runs(get_runs()) if get_runs is not None else alone

    def model_object(compiled: CompiledFlow) -> dict[str, Any]:
        return {"id": compiled.id, "object": "model",
                "created": _created(compiled, started), "owned_by": "flowloom"}

    @router.get("/models", summary="Flows, as OpenAI models", openapi_extra=access("shared"))
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_object(c) for c in get_catalog().all()]}

    @router.get("/models/{model}", summary="One flow, as an OpenAI model", responses=_ERRORS,
                openapi_extra=access("shared"))
    async def get_model(model: str) -> dict[str, Any]:
        return model_object(_find(get_catalog(), model))

    @router.post("/chat/completions", summary="Run a flow on chat messages",
                 responses=_ERRORS, response_model=None, openapi_extra=access("owner"))
    async def chat_completions(
        body: ChatCompletionRequest,
        who: Annotated[Principal, Depends(caller)],
        thread: Annotated[str | None, Header(alias=THREAD_HEADER)] = None,
    ) -> Response:
        compiled = _find(get_catalog(), body.model)
        chosen = _thread_id(body, thread)
        name = chosen or str(uuid.uuid4())
        thread_id = scoped_thread_id(who, name)  # the name is within the key's own space
        flow_input(compiled.flow, body.messages, whole=True)  # bad messages: 400 up front
        headers = {THREAD_HEADER: name}
        await runs().claim(thread_id, who, compiled.id, name)
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": compiled.id}
        if body.stream:
            return StreamingResponse(
                _stream(compiled, body, thread_id, chosen is not None, base, runs(), who),
                media_type="text/event-stream",
                headers={**headers, "Cache-Control": "no-cache"},
            )
        work = runs()
        try:
            async with (work.locks.hold(thread_id),
                        work.observed(compiled, thread_id, who) as (run, config)):
                value = await _input(compiled, body, thread_id, known=chosen is not None)
                completion = await _complete(compiled, value, thread_id, base, run, config)
        except Exception as exc:
            logger.exception("flow %s failed on thread %s", compiled.id, thread_id)
            return error_response(500, _failure(compiled.id, exc), type="server_error",
                                  code="flow_failed", headers=headers)
        return JSONResponse(completion, headers=headers)

    return router
