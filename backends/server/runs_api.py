"""`/runs` and `/threads/{id}/runs`: background runs, wait, SSE streams, join, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field
from starlette.types import Receive, Scope, Send

from flowloom.backends.server._state import services
from flowloom.backends.server.errors import BadRequest, NotFound
from flowloom.backends.server.runs import FINAL, HEARTBEAT_S, RunHandle, RunRequest
from flowloom.backends.server.schemas import (
    MAX_OFFSET,
    BatchRunCreate,
    CancelRuns,
    RunCreate,
    RunField,
)
from flowloom.backends.server.serde import dumps
from flowloom.backends.server.tenancy import Principal, access
from flowloom.backends.server.threads_api import Caller, get_thread

__all__ = ["router"]

router = APIRouter(tags=["runs"])
OWNED = access("owner")
RunStatus = Literal["pending", "running", "error", "success", "timeout", "interrupted"]


ROUTE_HEADER = "x-flowloom-route"
ROUTE_OVERRIDES = ("force_fast", "force_slow")


def _request(body: RunCreate, route: str | None = None) -> RunRequest:
    """The run to start; `route` (from the X-Flowloom-Route header) reaches adaptive routers
    as `config.configurable.flowloom_route`."""
    config = body.config
    if route is not None:
        if route not in ROUTE_OVERRIDES:
            raise BadRequest(f"header X-Flowloom-Route: {route!r} is not one of "
                             f"{', '.join(ROUTE_OVERRIDES)}")
        config = {**config, "configurable": {**config.get("configurable", {}),
                                             "flowloom_route": route}}
    if body.feedback_keys:
        raise BadRequest("feedback_keys: run feedback is a LangSmith feature; this server "
                         "does not keep it")
    if body.langsmith_tracer:
        raise BadRequest("langsmith_tracer: this server runs offline and sends no traces; "
                         "see /observe for its own run history")
    durability = body.durability
    if body.checkpoint_during is not None:
        if durability is not None:
            raise BadRequest("checkpoint_during: give durability or checkpoint_during, not both")
        durability = "async" if body.checkpoint_during else "exit"
    return RunRequest(
        assistant_id=body.assistant_id, input=body.input, command=body.command,
        config=config, context=body.context, metadata=body.metadata,
        stream_mode=body.modes(), stream_subgraphs=body.stream_subgraphs,
        interrupt_before=body.interrupt_before, interrupt_after=body.interrupt_after,
        checkpoint_id=body.checkpoint_id, checkpoint=body.checkpoint,
        multitask_strategy=body.multitask_strategy, if_not_exists=body.if_not_exists,
        on_completion=body.on_completion, durability=durability, webhook=body.webhook,
        after_seconds=body.after_seconds, strict_resume=bool(body.strict_resume),
    )


def _sse(event_id: int | str | None, event: str, data: Any) -> bytes:
    head = f"id: {event_id}\r\n" if event_id is not None else ""
    return f"{head}event: {event}\r\ndata: {dumps(data)}\r\n\r\n".encode()


ALWAYS_SENT = ("metadata", "error", "end")


def _mode_of(event: str) -> str:
    """The stream mode an event belongs to: `messages/partial` to messages, the tuple
    form's `messages` to messages-tuple, `updates|ns` to updates."""
    base = event.split("|", 1)[0]
    if base.startswith("messages/"):
        return "messages"
    return "messages-tuple" if base == "messages" else base


async def _sse_stream(handle: RunHandle, after: int = 0,
                      modes: set[str] | None = None) -> AsyncIterator[bytes]:
    async for item in handle.follow(after):
        if item is None:
            yield b": heartbeat\r\n\r\n"
        elif modes is None or item[1] in ALWAYS_SENT or _mode_of(item[1]) in modes:
            yield _sse(*item)


class _EventStream(Response):
    """SSE chunks, live. Plain ASGI: one task watches for the client leaving (then the
    stream stops, and `on_gone` runs: a run's stream with `cancel_on_disconnect` cancels
    it), where StreamingResponse runs a task group per request."""

    def __init__(self, chunks: AsyncIterator[bytes], location: str | None = None,
                 on_gone: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(media_type="text/event-stream")
        self.chunks, self.on_gone = chunks, on_gone
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"), (b"x-accel-buffering", b"no")]
        if location is not None:
            self.raw_headers += [(b"location", location.encode()),
                                 (b"content-location", location.encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            if self.on_gone is not None:
                await self.on_gone()

        watcher = asyncio.ensure_future(watch())
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": self.raw_headers})
            async for chunk in self.chunks:
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()


def _stream_response(handle: RunHandle, after: int = 0, *, cancel_on_disconnect: bool = False,
                     manager: Any = None, modes: set[str] | None = None) -> Response:
    on_gone = None
    if cancel_on_disconnect and manager is not None:
        async def on_gone() -> None:
            await manager.cancel(handle)

    return _EventStream(_sse_stream(handle, after, modes),
                        f"/threads/{handle.thread_id}/runs/{handle.run_id}/stream", on_gone)


THREAD_STREAM_MODES = ("run_modes", "lifecycle")


async def _thread_events(manager: Any, thread_id: str, modes: list[str],
                         last_event_id: str | None) -> AsyncIterator[bytes]:
    """Every run of the thread, one after another as they start, until the client leaves:
    `run_modes`, each run's events as its own stream has them; `lifecycle`, its start
    (`metadata` with run_id and attempt) and end (`metadata` {"status": "run_done"}).
    Event ids are `<run_id>:<n>`: after a Last-Event-ID the stream goes on from there.
    A run in progress when the client joins is sent from its start."""
    seen: set[str] = set()
    resume_run, _, resume_n = (last_event_id or "").partition(":")
    known = manager.thread_handles(thread_id)
    if resume_run and any(h.run_id == resume_run for h in known):
        for h in known:  # the runs before the one resumed were sent
            if h.run_id == resume_run:
                break
            seen.add(h.run_id)
    else:
        resume_run = ""
        seen.update(h.run_id for h in known if h.finished.is_set())
    everything = "run_modes" in modes
    while True:
        pending = [h for h in manager.thread_handles(thread_id) if h.run_id not in seen]
        if not pending:
            await manager.next_run(thread_id, HEARTBEAT_S)
            if not [h for h in manager.thread_handles(thread_id) if h.run_id not in seen]:
                yield b": heartbeat\r\n\r\n"
            continue
        for handle in pending:
            seen.add(handle.run_id)
            after = int(resume_n) if handle.run_id == resume_run and resume_n.isdigit() else 0
            if after > len(handle.events) and handle.finished.is_set():
                continue  # its run_done was sent
            n = after
            async for item in handle.follow(after):
                if item is None:
                    yield b": heartbeat\r\n\r\n"
                    continue
                n, event, data = item
                if everything or (event == "metadata" and isinstance(data, dict)
                                  and "attempt" in data):
                    yield _sse(f"{handle.run_id}:{n}", event, data)
            yield _sse(f"{handle.run_id}:{n + 1}", "metadata",
                       {"status": "run_done", "run_id": handle.run_id})


@router.get("/threads/{thread_id}/stream", openapi_extra=OWNED)
async def join_thread_stream(
        thread_id: str, request: Request, who: Caller,
        stream_mode: Annotated[list[str] | None, Query()] = None,
        stream_modes: str | None = None) -> Response:
    """Follow a thread: its runs' events as they start, until the client disconnects
    (runs started by this server process). The modes come as `stream_mode` (the SDKs:
    repeated) or `stream_modes` (comma-separated, as the reference server reads them)."""
    svc = services(request)
    await svc.store.get_thread(thread_id, who)
    given = [*(stream_mode or []), *(stream_modes.split(",") if stream_modes else [])]
    modes = [m.strip() for m in given if m.strip()] or ["run_modes"]
    for mode in modes:
        if mode == "state_update":
            raise BadRequest("stream_modes: state_update is not supported by this server; "
                             f"valid: {', '.join(THREAD_STREAM_MODES)}")
        if mode not in THREAD_STREAM_MODES:
            raise BadRequest(f"stream_modes: {mode!r} is not one of "
                             f"{', '.join(THREAD_STREAM_MODES)}")
    return _EventStream(_thread_events(svc.runs, thread_id, modes,
                                       request.headers.get("last-event-id")))


class _WaitResponse(Response):
    """A run's final values as JSON. A run that ends within HEARTBEAT_S is answered in one
    piece; a longer one gets its headers at once and then a newline every HEARTBEAT_S
    (JSON parsers skip leading whitespace), so proxies don't time out on it. Plain ASGI:
    no task group per request, as StreamingResponse has."""

    def __init__(self, handle: RunHandle) -> None:
        super().__init__(media_type="application/json")
        location = f"/threads/{handle.thread_id}/runs/{handle.run_id}/join".encode()
        self.handle = handle
        self.raw_headers = [(b"content-type", b"application/json"),
                            (b"location", location), (b"content-location", location)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        finished = self.handle.finished
        waiter = asyncio.ensure_future(finished.wait())
        try:
            await asyncio.wait({waiter}, timeout=HEARTBEAT_S)
            if finished.is_set():
                body = dumps(self.handle.result).encode()
                await send({"type": "http.response.start", "status": 200, "headers": [
                    *self.raw_headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            await send({"type": "http.response.start", "status": 200,
                        "headers": self.raw_headers})
            while not finished.is_set():
                await send({"type": "http.response.body", "body": b"\n", "more_body": True})
                await asyncio.wait({waiter}, timeout=HEARTBEAT_S)
            await send({"type": "http.response.body",
                        "body": dumps(self.handle.result).encode()})
        finally:
            waiter.cancel()


def _wait_response(handle: RunHandle) -> Response:
    return _WaitResponse(handle)


def _run_json(handle: RunHandle) -> dict[str, Any]:
    return dict(handle.run)


async def _create(request: Request, thread_id: str | None, body: RunCreate,
                  who: Principal) -> RunHandle:
    route = request.headers.get(ROUTE_HEADER)
    return await services(request).runs.create(thread_id, _request(body, route), who)


async def _run_of(request: Request, thread_id: str, run_id: str,
                  who: Principal) -> dict[str, Any]:
    """The stored run, on a thread `who` may see (else NotFound, whoever owns it)."""
    store = services(request).store
    await store.get_thread(thread_id, who)
    return await store.get_run(thread_id, run_id)


@router.post("/threads/{thread_id}/runs", openapi_extra=OWNED)
async def create_run(thread_id: str, body: RunCreate, request: Request,
                     response: Response, who: Caller) -> dict[str, Any]:
    handle = await _create(request, thread_id, body, who)
    response.headers["Content-Location"] = f"/threads/{thread_id}/runs/{handle.run_id}"
    return _run_json(handle)


@router.post("/runs", openapi_extra=OWNED)
async def create_stateless_run(body: RunCreate, request: Request,
                               response: Response, who: Caller) -> dict[str, Any]:
    handle = await _create(request, None, body, who)
    response.headers["Content-Location"] = f"/threads/{handle.thread_id}/runs/{handle.run_id}"
    return _run_json(handle)


@router.post("/threads/{thread_id}/runs/wait", openapi_extra=OWNED)
async def wait_run(thread_id: str, body: RunCreate, request: Request, who: Caller) -> Response:
    handle = await _create(request, thread_id, body, who)
    return _wait_response(handle)


@router.post("/runs/batch", openapi_extra=OWNED)
async def create_run_batch(body: Annotated[list[BatchRunCreate],
                                           Field(min_length=1, max_length=1000)],
                           request: Request, who: Caller) -> list[dict[str, Any]]:
    """Several stateless background runs at once. Every run is checked before any starts:
    one bad run refuses the batch (422 naming its index), and none is started."""
    route = request.headers.get(ROUTE_HEADER)
    requests = [_request(run, route) for run in body]
    manager = services(request).runs
    for index, req in enumerate(requests):
        try:
            await manager.check(req, who)
        except BadRequest as exc:
            raise BadRequest(f"[{index}]: {exc}") from None
        except NotFound as exc:
            raise NotFound(f"[{index}]: {exc}") from None
    return [_run_json(await manager.create(None, req, who)) for req in requests]


@router.post("/runs/wait", openapi_extra=OWNED)
async def wait_stateless_run(body: RunCreate, request: Request, who: Caller) -> Response:
    handle = await _create(request, None, body, who)
    return _wait_response(handle)


@router.post("/threads/{thread_id}/runs/stream", openapi_extra=OWNED)
async def stream_run(thread_id: str, body: RunCreate, request: Request,
                     who: Caller) -> Response:
    handle = await _create(request, thread_id, body, who)
    return _stream_response(handle, cancel_on_disconnect=body.on_disconnect == "cancel",
                            manager=services(request).runs)


@router.post("/runs/stream", openapi_extra=OWNED)
async def stream_stateless_run(body: RunCreate, request: Request, who: Caller) -> Response:
    handle = await _create(request, None, body, who)
    return _stream_response(handle, cancel_on_disconnect=body.on_disconnect == "cancel",
                            manager=services(request).runs)


@router.get("/threads/{thread_id}/runs", openapi_extra=OWNED)
async def list_runs(thread_id: str, request: Request, who: Caller,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
                    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                    status: RunStatus | None = None,
                    select: Annotated[list[RunField] | None, Query()] = None,
                    ) -> list[dict[str, Any]]:
    svc = services(request)
    await svc.store.get_thread(thread_id, who)
    runs = await svc.store.list_runs(thread_id, limit=limit, offset=offset, status=status)
    return [{k: r[k] for k in select} for r in runs] if select else runs


@router.get("/threads/{thread_id}/runs/{run_id}", openapi_extra=OWNED)
async def get_run(thread_id: str, run_id: str, request: Request,
                  who: Caller) -> dict[str, Any]:
    # the stored row is current: a run's status is written before its handle finishes
    return await _run_of(request, thread_id, run_id, who)


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204, openapi_extra=OWNED)
async def delete_run(thread_id: str, run_id: str, request: Request, who: Caller) -> None:
    svc = services(request)
    run = await _run_of(request, thread_id, run_id, who)
    handle = svc.runs.handle(run_id)
    if run["status"] not in FINAL and handle is not None:
        await svc.runs.cancel(handle, wait=True)
    await svc.store.delete_run(thread_id, run_id)


async def _wait_or_cancel(request: Request, manager: Any, handle: RunHandle) -> None:
    """Wait for the run to end; if the client leaves first, cancel the run."""
    waiter = asyncio.ensure_future(handle.finished.wait())
    try:
        while not handle.finished.is_set():
            await asyncio.wait({waiter}, timeout=0.5)
            if not handle.finished.is_set() and await request.is_disconnected():
                await manager.cancel(handle)
                return
    finally:
        waiter.cancel()


@router.get("/threads/{thread_id}/runs/{run_id}/join", openapi_extra=OWNED)
async def join_run(thread_id: str, run_id: str, request: Request, who: Caller,
                   cancel_on_disconnect: bool = False) -> Any:
    """The run's final values, once it ends; `cancel_on_disconnect`: a client that leaves
    before then cancels the run (the JS SDK's `runs.join` always sends it)."""
    svc = services(request)
    await _run_of(request, thread_id, run_id, who)
    handle = svc.runs.handle(run_id)
    if handle is not None:
        if cancel_on_disconnect:
            await _wait_or_cancel(request, svc.runs, handle)
        else:
            await handle.finished.wait()
        if handle.result is not None:
            return Response(dumps(handle.result), media_type="application/json")
    while (run := await svc.store.get_run(thread_id, run_id))["status"] not in FINAL:
        await asyncio.sleep(0.2)  # a run of another server process sharing the database
    error = run["metadata"].get("__error__")
    if run["status"] in ("error", "timeout") and isinstance(error, dict):
        return {"__error__": error}  # as the run's own answer was (a server that stopped)
    return (await get_thread(thread_id, request, who))["values"] or {}


@router.get("/threads/{thread_id}/runs/{run_id}/stream", openapi_extra=OWNED)
async def join_stream(thread_id: str, run_id: str, request: Request, who: Caller,
                      cancel_on_disconnect: bool = False,
                      stream_mode: Annotated[list[str] | None, Query()] = None) -> Response:
    """A run's stream, live, from its start or after Last-Event-ID; `stream_mode`: only
    those of the run's modes (metadata, error and end always come)."""
    svc = services(request)
    await _run_of(request, thread_id, run_id, who)
    handle = svc.runs.handle(run_id)
    if handle is None:
        raise NotFound(f"run {run_id} has no stream on this server (finished long ago, or "
                       "running in another server process)")
    modes = None
    if given := {m for m in stream_mode or () if m}:  # the SDK sends an empty one for none
        asked = set(handle.run["kwargs"].get("stream_mode") or ["values"])
        modes = given
        if not modes <= asked:
            raise BadRequest(f"stream_mode: {', '.join(sorted(modes - asked))} not among the "
                             f"run's stream modes ({', '.join(sorted(asked))})")
    last = request.headers.get("last-event-id")
    after = int(last) if last and last.isdigit() else 0
    return _stream_response(handle, after, cancel_on_disconnect=cancel_on_disconnect,
                            manager=svc.runs, modes=modes)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel", openapi_extra=OWNED)
async def cancel_run(thread_id: str, run_id: str, request: Request, who: Caller,
                     wait: bool = False,
                     action: Literal["interrupt", "rollback"] = "interrupt") -> Response:
    svc = services(request)
    run = await _run_of(request, thread_id, run_id, who)
    handle = svc.runs.handle(run_id)
    if run["status"] in FINAL or handle is None or handle.finished.is_set():
        raise NotFound(f"run {run_id} is not running (status: {run['status']})")
    await svc.runs.cancel(handle, action=action, wait=wait)
    if wait:
        return Response(status_code=204)
    return Response(status_code=202)


@router.post("/runs/cancel", openapi_extra=OWNED)
async def cancel_many(body: CancelRuns, request: Request, who: Caller, wait: bool = False,
                      action: Literal["interrupt", "rollback"] = "interrupt") -> Response:
    """Cancel runs, as the reference does: every pending and/or running run (`status`:
    "pending", "running", "all"), or the given `run_ids` (on `thread_id` when given), or
    every active run of `thread_id`. A user key cancels only its own: others are not found."""
    svc = services(request)
    if body.status is not None:
        if body.thread_id is not None or body.run_ids is not None:
            raise BadRequest("status cancels every run with that status: give it without "
                             "thread_id and run_ids")
        runs = await svc.store.runs_to_cancel(who, status=body.status)
    elif body.run_ids is not None:
        if body.thread_id is not None:
            await svc.store.get_thread(body.thread_id, who)
        runs = []
        for run_id in body.run_ids:
            run = await svc.store.find_run(run_id, who)
            if run is None or (body.thread_id is not None
                               and run["thread_id"] != body.thread_id):
                where = f" on thread {body.thread_id}" if body.thread_id else ""
                raise NotFound(f"run {run_id} not found{where}")
            runs.append(run)
    elif body.thread_id is not None:
        await svc.store.get_thread(body.thread_id, who)
        runs = await svc.store.runs_to_cancel(who, thread_id=body.thread_id)
    else:
        raise BadRequest("give run_ids (with or without thread_id), thread_id, or status")
    for run in runs:
        handle = svc.runs.handle(run["run_id"])
        if handle is not None and not handle.finished.is_set():
            await svc.runs.cancel(handle, action=action, wait=wait)
    return Response(status_code=204 if wait else 202)
