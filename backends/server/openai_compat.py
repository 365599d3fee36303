"""An OpenAI-compatible API over the server's flows: each flow is a "model".

`GET /v1/models` lists the flows; `POST /v1/chat/completions` runs one, streamed (SSE
chunks) or not; `POST /v1/embeddings` embeds with the gateway's embedding aliases
(`embeddings_api.py`) and `/v1/responses` is the Responses API (`responses_api.py`).

A thread is picked by the `X-Flowloom-Thread` header or the `user` field and echoed back
in the `X-Flowloom-Thread` response header; on a thread that already has state only the
new turn is sent (tool results and the last user message), since the thread holds the
history. The name is the API key's own (`tenancy.scoped_thread_id`): two keys sending
`user: "alice"` talk on two threads.

The request's model parameters (`max_tokens`/`max_completion_tokens`, `stop`,
`temperature`, `top_p`, `seed`, penalties, `response_format`, `tools`, `tool_choice`,
`parallel_tool_calls`) go to the flow's answering model call (`_openai_options.py`), or
are refused (400, `param` named) when the flow's answering nodes cannot take them; the
finish reason says `length` when the token limit cut the answer and `tool_calls` when it
called the client's tools. A flow that pauses for a person answers with the pending
request (finish reason `interrupted`, and a `flowloom` field with what it waits for); the
next message on the thread is the decision, and resumes it (`_openai_turn.py`). Errors use
OpenAI's `{"error": {...}}` bodies, so OpenAI clients raise their usual exceptions.

Example:
    >>> app.include_router(openai_router(lambda: catalog))
    >>> OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="x").chat.completions.create(
    ...     model="chat", messages=[{"role": "user", "content": "Hi"}]).choices[0].message.content
    'Hello! How can I help?'
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response
from fastapi.responses import JSONResponse, StreamingResponse

from flowloom.backends.server._openai_messages import (
    ChatCompletionRequest,
    ErrorBody,
    ErrorDetail,
    OpenAIRequestError,
    flow_input,
    last_user_text,
    tool_call_param,
)
from flowloom.backends.server._openai_route import (
    ERRORS,
    THREAD_HEADER,
    OpenAIRoute,
    Plan,
    RunAccess,
    error_response,
    failure,
    find_flow,
    last_of,
    plan_answer,
    thread_status,
)
from flowloom.backends.server._openai_turn import Outcome, Turn, decision_of, run_turn
from flowloom.backends.server.catalog import CompiledFlow, FlowCatalog
from flowloom.backends.server.embeddings_api import embeddings_router
from flowloom.backends.server.responses_api import responses_router
from flowloom.backends.server.runs import RunManager
from flowloom.backends.server.serde import to_jsonable
from flowloom.backends.server.tenancy import Principal, access, caller, scoped_thread_id

__all__ = ["THREAD_HEADER", "openai_router"]

logger = logging.getLogger(__name__)

_THREAD_ID = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,255}$")  # printable ASCII: a header value


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


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


async def _turn(compiled: CompiledFlow, body: ChatCompletionRequest, thread_id: str,
                plan: Plan, *, known: bool) -> Turn:
    """What this request sends the flow. A thread with state gets the new turn only (the
    thread holds the history); a paused one, the decision the last user message states; a
    new or stateless one (`known` False), the request's whole conversation."""
    has_state = paused = False
    if known:
        has_state, paused = await thread_status(compiled, thread_id)
    if paused:
        return Turn(thread_id, resume=decision_of(last_user_text(body.messages)),
                    overrides=plan.overrides, answerers=plan.answerers)
    return Turn(thread_id, flow_input(compiled.flow, body.messages, whole=not has_state),
                overrides=plan.overrides, answerers=plan.answerers)


def _chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _sse({**base, "choices": [choice]})


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _paused(outcome: Outcome, name: str) -> dict[str, Any]:
    """The `flowloom` extension of an answer whose flow paused: what it waits for."""
    return {"status": "interrupted", "thread": name,
            "interrupts": to_jsonable(outcome.interrupts)}


async def _stream(
    compiled: CompiledFlow,
    body: ChatCompletionRequest,
    thread_id: str,
    known: bool,
    base: dict[str, Any],
    runs: RunAccess,
    who: Principal,
    plan: Plan,
    name: str,
) -> AsyncIterator[bytes]:
    """SSE chunks: the role, the runner's tokens (or the whole output when the flow
    streamed none; a paused flow's pending request), tool calls, the finish, optionally
    usage, then [DONE]; a failure is an `error` chunk followed by [DONE]. Work on the
    thread waits its turn (`runs.locks`)."""
    async with (runs.locks.hold(thread_id),
                runs.observed(compiled, thread_id, who) as (run, config)):
        turn = await _turn(compiled, body, thread_id, plan, known=known)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        yield _chunk(base, {"role": "assistant", "content": ""})
        streamed = False
        outcome: Outcome | None = None
        try:
            async for item in run_turn(compiled, turn, config, tokens=True):
                if isinstance(item, str):
                    streamed = True
                    yield _chunk(base, {"content": item})
                else:
                    outcome = item
        except Exception as exc:
            logger.exception("flow %s failed on thread %s", compiled.id, thread_id)
            run.result = {"__error__": {"error": type(exc).__name__, "message": str(exc)}}
            detail = ErrorDetail(message=failure(compiled.id, exc), type="server_error",
                                 code="flow_failed")
            yield _sse(ErrorBody(error=detail).model_dump())
            yield b"data: [DONE]\n\n"
            return
        assert outcome is not None  # run_turn always ends with one
        run.result = outcome.result.values if outcome.result else None
        if outcome.text and (outcome.paused or not streamed):
            yield _chunk(base, {"content": ("\n\n" if streamed else "") + outcome.text})
        if outcome.tool_calls:
            calls = [{"index": i, **call} for i, call in enumerate(outcome.tool_calls)]
            yield _chunk(base, {"tool_calls": calls})
        last = {**base, "flowloom": _paused(outcome, name)} if outcome.paused else base
        yield _chunk(last, {}, outcome.finish_reason)
        if include_usage:
            usage = _usage(outcome.prompt_tokens, outcome.completion_tokens)
            yield _sse({**base, "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"


def _completion(base: dict[str, Any], outcome: Outcome, name: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": outcome.text}
    if outcome.tool_calls:
        message = {"role": "assistant", "content": outcome.text or None,
                   "tool_calls": outcome.tool_calls}
    choice = {"index": 0, "message": message, "logprobs": None,
              "finish_reason": outcome.finish_reason}
    completion = {**base, "object": "chat.completion", "choices": [choice],
                  "usage": _usage(outcome.prompt_tokens, outcome.completion_tokens)}
    if outcome.paused:
        completion["flowloom"] = _paused(outcome, name)
    return completion


def _created(compiled: CompiledFlow, default: int) -> int:
    """A flow file's modification time; flows saved through the API have none."""
    if compiled.source.startswith("file:"):
        try:
            return int(Path(compiled.source.removeprefix("file:")).stat().st_mtime)
        except OSError:
            pass
    return default


def openai_router(get_catalog: Callable[[], FlowCatalog],
                  get_runs: Callable[[], RunManager] | None = None) -> APIRouter:
    """The `/v1` routes over `get_catalog()`'s flows (models, chat completions, embeddings
    through their models' gateway, responses). With `get_runs()`, the server's run
    manager: requests on one thread take turns with its runs, its observers see each
    request as a run, threads and responses are owned, responses stored (`RunAccess`).

    Example:
        >>> app = FastAPI()
        >>> app.include_router(openai_router(lambda: catalog))
    """
    router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)
    started = int(time.time())
    alone = RunAccess(None)

    def runs() -> RunAccess:
        return RunAccess(get_runs()) if get_runs is not None else alone

    def model_object(compiled: CompiledFlow) -> dict[str, Any]:
        return {"id": compiled.id, "object": "model",
                "created": _created(compiled, started), "owned_by": "flowloom"}

    @router.get("/models", summary="Flows, as OpenAI models", openapi_extra=access("shared"))
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_object(c) for c in get_catalog().all()]}

    @router.get("/models/{model}", summary="One flow, as an OpenAI model", responses=ERRORS,
                openapi_extra=access("shared"))
    async def get_model(model: str) -> dict[str, Any]:
        return model_object(find_flow(get_catalog(), model))

    @router.post("/chat/completions", summary="Run a flow on chat messages",
                 responses=ERRORS, response_model=None, openapi_extra=access("owner"))
    async def chat_completions(
        body: ChatCompletionRequest,
        who: Annotated[Principal, Depends(caller)],
        thread: Annotated[str | None, Header(alias=THREAD_HEADER)] = None,
    ) -> Response:
        catalog = get_catalog()
        compiled = find_flow(catalog, body.model)
        chosen = _thread_id(body, thread)
        name = chosen or str(uuid.uuid4())
        thread_id = scoped_thread_id(who, name)  # the name is within the key's own space
        flow_input(compiled.flow, body.messages, whole=True)  # bad messages: 400 up front
        plan = plan_answer(catalog, compiled, body.answer_options(),
                           tool_call_param(body.messages))
        headers = {THREAD_HEADER: name}
        await runs().claim(thread_id, who, compiled.id, name)
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": compiled.id}
        if body.stream:
            return StreamingResponse(
                _stream(compiled, body, thread_id, chosen is not None, base, runs(), who,
                        plan, name),
                media_type="text/event-stream",
                headers={**headers, "Cache-Control": "no-cache"},
            )
        work = runs()
        try:
            async with (work.locks.hold(thread_id),
                        work.observed(compiled, thread_id, who) as (run, config)):
                turn = await _turn(compiled, body, thread_id, plan, known=chosen is not None)
                outcome = await last_of(run_turn(compiled, turn, config, tokens=False))
                run.result = outcome.result.values if outcome.result else None
        except Exception as exc:
            logger.exception("flow %s failed on thread %s", compiled.id, thread_id)
            return error_response(500, failure(compiled.id, exc), type="server_error",
                                  code="flow_failed", headers=headers)
        return JSONResponse(_completion(base, outcome, name), headers=headers)

    router.include_router(embeddings_router(get_catalog))
    router.include_router(responses_router(get_catalog, runs))
    return router
