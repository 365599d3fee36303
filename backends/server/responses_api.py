"""The Responses API per flow: `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`.

`model` is a flow id; `input` a text or message items (function calls and their outputs
included); `instructions` is a system message before them. A response without
`previous_response_id` starts a conversation on a new thread; one with it continues that
response's thread from that response's checkpoint (so two answers to one response are two
branches, as on OpenAI), sending only its own input (the thread holds the rest). A flow
that paused answers with the pending request (status `incomplete`, reason `interrupted`,
and a `flowloom` field); a response continuing it is the decision, and resumes it.

Responses are stored in the server database (table `fl_responses`: id, owner key, flow,
thread, checkpoint, the response) and owned like threads: another key's id is not found.
`store: false` keeps nothing: the response cannot be retrieved or continued, and a new
conversation's thread is deleted when it ends. `stream: true` sends the Responses events
(`response.created`, `response.in_progress`, `response.output_item.added`,
`response.content_part.added`, `response.output_text.delta`, ..., `response.completed`,
or `response.incomplete`/`response.failed`).

Example:
    >>> client = OpenAI(base_url="http://127.0.0.1:8123/v1", api_key="-")
    >>> first = client.responses.create(model="chat", input="My name is Ada.")
    >>> client.responses.create(model="chat", input="My name?",
    ...                         previous_response_id=first.id).output_text
    'Your name is Ada.'
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse

from flowloom.backends.server._openai_errors import OpenAIRequestError
from flowloom.backends.server._openai_messages import flow_input, last_user_text
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
from flowloom.backends.server._responses_shapes import ResponseDraft, ResponsesRequest
from flowloom.backends.server.catalog import CompiledFlow, FlowCatalog
from flowloom.backends.server.db import Database
from flowloom.backends.server.serde import to_jsonable
from flowloom.backends.server.store import now_iso
from flowloom.backends.server.tenancy import Principal, access, caller

__all__ = ["ResponseStore", "StoredResponse", "responses_router"]

logger = logging.getLogger(__name__)

_TABLE = """CREATE TABLE IF NOT EXISTS fl_responses (
    response_id TEXT PRIMARY KEY, owner_key TEXT, flow_id TEXT NOT NULL,
    thread_id TEXT NOT NULL, checkpoint_id TEXT, body TEXT NOT NULL, created_at TEXT NOT NULL)"""


@dataclass(frozen=True)
class StoredResponse:
    response_id: str
    owner_key: str | None
    flow_id: str
    thread_id: str
    checkpoint_id: str | None
    body: dict[str, Any]


class ResponseStore:
    """Stored responses, in the server database (`db`) or, for a router without one, in
    memory. Lookups by a principal find only what it may see (tenancy.py)."""

    def __init__(self, db: Database | None) -> None:
        self.db = db
        self._memory: dict[str, StoredResponse] = {}
        self._ready = False
        self._lock = asyncio.Lock()

    async def _setup(self) -> None:
        if self.db is None or self._ready:
            return
        async with self._lock:
            if not self._ready:
                await self.db.execute(_TABLE)
                self._ready = True

    async def put(self, stored: StoredResponse) -> None:
        if self.db is None:
            self._memory[stored.response_id] = stored
            return
        await self._setup()
        await self.db.execute(
            "INSERT INTO fl_responses (response_id, owner_key, flow_id, thread_id, "
            "checkpoint_id, body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stored.response_id, stored.owner_key, stored.flow_id, stored.thread_id,
             stored.checkpoint_id, json.dumps(stored.body, ensure_ascii=False), now_iso()))

    async def get(self, response_id: str, who: Principal) -> StoredResponse | None:
        if self.db is None:
            found = self._memory.get(response_id)
        else:
            await self._setup()
            row = await self.db.fetchone("SELECT * FROM fl_responses WHERE response_id = ?",
                                         (response_id,))
            found = None if row is None else StoredResponse(
                row["response_id"], row["owner_key"], row["flow_id"], row["thread_id"],
                row["checkpoint_id"], json.loads(row["body"]))
        return found if found is not None and who.sees(found.owner_key) else None

    async def delete(self, response_id: str, who: Principal) -> bool:
        if await self.get(response_id, who) is None:
            return False
        if self.db is None:
            self._memory.pop(response_id, None)
        else:
            await self.db.execute("DELETE FROM fl_responses WHERE response_id = ?",
                                  (response_id,))
        return True


def _not_found(response_id: str, param: str | None = None) -> OpenAIRequestError:
    return OpenAIRequestError(f"Response with id '{response_id}' not found.", status=404,
                              param=param, code="response_not_found")


@dataclass(frozen=True)
class _Work:
    """One response request, checked: its flow, thread, the turn's input, the plan."""

    compiled: CompiledFlow
    body: ResponsesRequest
    who: Principal
    turn: Turn
    new_thread: bool


async def _prepare(catalog: FlowCatalog, body: ResponsesRequest, who: Principal,
                   store: ResponseStore, runs: RunAccess) -> _Work:
    compiled = find_flow(catalog, body.model)
    messages = body.messages()
    if compiled.flow.input_field is not None \
            and compiled.flow.state[compiled.flow.input_field].type != "messages":
        if body.instructions:
            raise OpenAIRequestError(
                f"instructions: flow '{compiled.id}' takes text, not a conversation, so it "
                "has nowhere to put them", param="instructions",
                code="unsupported_parameter")
        if not any(m.role == "user" for m in messages):
            raise OpenAIRequestError("input: needs a user message (this flow takes text)",
                                     param="input")
    plan: Plan = plan_answer(catalog, compiled, body.answer_options(), body.tool_param())
    previous = None
    if body.previous_response_id is not None:
        previous = await store.get(body.previous_response_id, who)
        if previous is None:
            raise _not_found(body.previous_response_id, "previous_response_id")
        if previous.flow_id != compiled.id:
            raise OpenAIRequestError(
                f"previous response '{previous.response_id}' was made by flow "
                f"'{previous.flow_id}', not '{compiled.id}'", param="model")
    thread_id = previous.thread_id if previous is not None else str(uuid.uuid4())
    if body.store or previous is not None:
        await runs.claim(thread_id, who, compiled.id, thread_id,
                         param="previous_response_id")
    checkpoint = previous.checkpoint_id if previous is not None else None
    paused = False
    if previous is not None:
        paused = (await thread_status(compiled, thread_id, checkpoint))[1]
    if paused:
        if not any(m.role == "user" for m in messages):
            raise OpenAIRequestError(
                "input: the previous response waits for a decision; send it as a user "
                'message ("yes", "no", or {"approved": ...})', param="input")
        turn = Turn(thread_id, resume=decision_of(last_user_text(messages)),
                    overrides=plan.overrides, answerers=plan.answerers,
                    checkpoint_id=checkpoint)
    else:
        turn = Turn(thread_id, flow_input(compiled.flow, messages, whole=True),
                    overrides=plan.overrides, answerers=plan.answerers,
                    checkpoint_id=checkpoint)
    return _Work(compiled, body, who, turn, previous is None)


async def _head(compiled: CompiledFlow, thread_id: str) -> str | None:
    state = await compiled.graph.aget_state({"configurable": {"thread_id": thread_id}})
    config = state.config or {}
    return config.get("configurable", {}).get("checkpoint_id")


async def _keep(work: _Work, store: ResponseStore, final: dict[str, Any]) -> None:
    """Store the response (its thread's head is where the next one goes on from); with
    `store: false`, keep nothing: a new conversation's thread is deleted."""
    compiled, thread_id = work.compiled, work.turn.thread_id
    if work.body.store:
        await store.put(StoredResponse(final["id"], work.who.owner, compiled.id, thread_id,
                                       await _head(compiled, thread_id), final))
    elif work.new_thread and compiled.graph.checkpointer is not None:
        await compiled.graph.checkpointer.adelete_thread(thread_id)


def _extension(outcome: Outcome, thread_id: str) -> dict[str, Any]:
    extension: dict[str, Any] = {"thread": thread_id}
    if outcome.paused:
        extension.update(status="interrupted", interrupts=to_jsonable(outcome.interrupts))
    return extension


def _sse(event: dict[str, Any]) -> bytes:
    return (f"event: {event['type']}\n"
            f"data: {json.dumps(event, ensure_ascii=False)}\n\n").encode()


async def _stream(work: _Work, runs: RunAccess, store: ResponseStore) -> AsyncIterator[bytes]:
    draft = ResponseDraft(work.body, work.compiled.id)
    thread_id = work.turn.thread_id
    async with (runs.locks.hold(thread_id),
                runs.observed(work.compiled, thread_id, work.who) as (run, config)):
        for event in draft.started():
            yield _sse(event)
        outcome: Outcome | None = None
        try:
            async for item in run_turn(work.compiled, work.turn, config, tokens=True):
                if isinstance(item, str):
                    for event in draft.delta(item):
                        yield _sse(event)
                else:
                    outcome = item
            assert outcome is not None  # run_turn always ends with one
            if outcome.text and (outcome.paused or not draft.text):
                for event in draft.delta(("\n\n" if draft.text else "") + outcome.text):
                    yield _sse(event)
            events, final = draft.finished(outcome, _extension(outcome, thread_id))
            run.result = outcome.result.values if outcome.result else None
            await _keep(work, store, final)
        except Exception as exc:
            logger.exception("flow %s failed on thread %s", work.compiled.id, thread_id)
            run.result = {"__error__": {"error": type(exc).__name__, "message": str(exc)}}
            yield _sse(draft.failed(failure(work.compiled.id, exc)))
            return
        for event in events:
            yield _sse(event)


def responses_router(get_catalog: Callable[[], FlowCatalog],
                     get_runs: Callable[[], RunAccess]) -> APIRouter:
    """`/responses` routes (mounted under `/v1` by `openai_router`)."""
    router = APIRouter(tags=["openai"], route_class=OpenAIRoute)
    stores: dict[int, ResponseStore] = {}

    def store_of(runs: RunAccess) -> ResponseStore:
        db = runs.manager.store.db if runs.manager is not None else None
        key = id(db)
        if key not in stores:
            stores[key] = ResponseStore(db)
        return stores[key]

    @router.post("/responses", summary="Run a flow on Responses API input",
                 responses=ERRORS, response_model=None, openapi_extra=access("owner"))
    async def create_response(body: ResponsesRequest,
                              who: Annotated[Principal, Depends(caller)]) -> Response:
        runs = get_runs()
        store = store_of(runs)
        work = await _prepare(get_catalog(), body, who, store, runs)
        headers = {THREAD_HEADER: work.turn.thread_id}
        if body.stream:
            return StreamingResponse(_stream(work, runs, store), media_type="text/event-stream",
                                     headers={**headers, "Cache-Control": "no-cache"})
        draft = ResponseDraft(body, work.compiled.id)
        thread_id = work.turn.thread_id
        try:
            async with (runs.locks.hold(thread_id),
                        runs.observed(work.compiled, thread_id, who) as (run, config)):
                outcome = await last_of(run_turn(work.compiled, work.turn, config,
                                                 tokens=False))
                run.result = outcome.result.values if outcome.result else None
                final = draft.object(draft.status(outcome), draft.output(outcome, outcome.text),
                                     outcome=outcome,
                                     extension=_extension(outcome, thread_id))
                await _keep(work, store, final)
        except Exception as exc:
            logger.exception("flow %s failed on thread %s", work.compiled.id, thread_id)
            return error_response(500, failure(work.compiled.id, exc), type="server_error",
                                  code="flow_failed", headers=headers)
        return JSONResponse(final, headers=headers)

    @router.get("/responses/{response_id}", summary="A stored response",
                responses=ERRORS, response_model=None, openapi_extra=access("owner"))
    async def get_response(
        response_id: str, who: Annotated[Principal, Depends(caller)],
        stream: Annotated[bool, Query(description="Not supported: false only.")] = False,
    ) -> dict[str, Any]:
        if stream:
            raise OpenAIRequestError("stream: a stored response is sent whole, not "
                                     "streamed again", param="stream")
        found = await store_of(get_runs()).get(response_id, who)
        if found is None:
            raise _not_found(response_id)
        return found.body

    @router.delete("/responses/{response_id}", summary="Delete a stored response",
                   responses=ERRORS, response_model=None, openapi_extra=access("owner"))
    async def delete_response(response_id: str,
                              who: Annotated[Principal, Depends(caller)]) -> dict[str, Any]:
        if not await store_of(get_runs()).delete(response_id, who):
            raise _not_found(response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    return router
