"""`/runs` and `/threads/{id}/runs`: background runs, wait, SSE streams, join, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.types import Receive, Scope, Send

from flowloom.backends.server._state import services
from flowloom.backends.server.errors import BadRequest, NotFound
from flowloom.backends.server.runs import FINAL, HEARTBEAT_S, RunHandle, RunRequest
from flowloom.backends.server.schemas import MAX_OFFSET, CancelRuns, RunCreate
from flowloom.backends.server.serde import dumps
from flowloom.backends.server.tenancy import Principal, access
from flowloom.backends.server.threads_api import Caller, get_thread

__all__ = ["router"]

router = APIRouter(tags=["runs"])
OWNED = access("owner")


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
    return RunRequest(
        assistant_id=body.assistant_id, input=body.input, command=body.command,
        config=config, context=body.context, metadata=body.metadata,
        stream_mode=body.modes(), stream_subgraphs=body.stream_subgraphs,
        interrupt_before=body.interrupt_before, interrupt_after=body.interrupt_after,
        checkpoint_id=body.checkpoint_id, checkpoint=body.checkpoint,
        multitask_strategy=body.multitask_strategy, if_not_exists=body.if_not_exists,
        on_completion=body.on_completion, durability=body.durability,
    )


def _sse(event_id: int | None, event: str, data: Any) -> bytes:
    head = f"id: {event_id}\r\n" if event_id is not None else ""
    return f"{head}event: {event}\r\ndata: {dumps(data)}\r\n\r\n".encode()


async def _sse_stream(handle: RunHandle, after: int = 0) -> AsyncIterator[bytes]:
    async for item in handle.follow(after):
        if item is None:
            yield b": heartbeat\r\n\r\n"
        else:
            yield _sse(*item)


class _EventStream(Response):
    """A run's events as SSE, live. Plain ASGI: one task watches for the client leaving
    (then the stream stops, and with `cancel_on_disconnect` the run is cancelled), where
    StreamingResponse runs a task group per request."""

    def __init__(self, handle: RunHandle, after: int, *, cancel_on_disconnect: bool,
                 manager: Any) -> None:
        super().__init__(media_type="text/event-stream")
        location = f"/threads/{handle.thread_id}/runs/{handle.run_id}/stream".encode()
        self.handle, self.after = handle, after
        self.cancel_on_disconnect, self.manager = cancel_on_disconnect, manager
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"location", location),
            (b"content-location", location), (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            if self.cancel_on_disconnect and self.manager is not None:
                await self.manager.cancel(self.handle)

        watcher = asyncio.ensure_future(watch())
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": self.raw_headers})
            async for chunk in _sse_stream(self.handle, self.after):
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()


def _stream_response(handle: RunHandle, after: int = 0, *, cancel_on_disconnect: bool = False,
                     manager: Any = None) -> Response:
    return _EventStream(handle, after, cancel_on_disconnect=cancel_on_disconnect,
                        manager=manager)


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
                    status: str | None = None) -> list[dict[str, Any]]:
    svc = services(request)
    await svc.store.get_thread(thread_id, who)
    return await svc.store.list_runs(thread_id, limit=limit, offset=offset, status=status)


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


@router.get("/threads/{thread_id}/runs/{run_id}/join", openapi_extra=OWNED)
async def join_run(thread_id: str, run_id: str, request: Request, who: Caller) -> Any:
    svc = services(request)
    await _run_of(request, thread_id, run_id, who)
    handle = svc.runs.handle(run_id)
    if handle is not None:
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
                      cancel_on_disconnect: bool = False) -> Response:
    svc = services(request)
    await _run_of(request, thread_id, run_id, who)
    handle = svc.runs.handle(run_id)
    if handle is None:
        raise NotFound(f"run {run_id} has no stream on this server (finished long ago, or "
                       "running in another server process)")
    last = request.headers.get("last-event-id")
    after = int(last) if last and last.isdigit() else 0
    return _stream_response(handle, after, cancel_on_disconnect=cancel_on_disconnect,
                            manager=svc.runs)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel", openapi_extra=OWNED)
async def cancel_run(thread_id: str, run_id: str, request: Request, who: Caller,
                     wait: bool = False, action: str = "interrupt") -> Response:
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
                      action: str = "interrupt") -> Response:
    svc = services(request)
    for run_id in body.run_ids:  # a user key cancels only its own: others are not found
        if await svc.store.find_run(run_id, who) is None:
            raise NotFound(f"run {run_id} not found")
    for run_id in body.run_ids:
        handle = svc.runs.handle(run_id)
        if handle is not None and not handle.finished.is_set():
            await svc.runs.cancel(handle, action=action, wait=wait)
    return Response(status_code=204 if wait else 202)
