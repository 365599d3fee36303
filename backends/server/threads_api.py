"""`/threads`: threads, their state (from the checkpointer), history, updates, copies."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver

from flowloom.backends.server._state import EMPTY_STATE, services, snapshot_dict
from flowloom.backends.server.errors import BadRequest, Conflict, NotFound
from flowloom.backends.server.schemas import (
    CheckpointRequest,
    HistoryRequest,
    StateUpdate,
    ThreadCreate,
    ThreadPatch,
    ThreadSearch,
)
from flowloom.backends.server.serde import to_jsonable
from flowloom.backends.server.tenancy import Principal, access, caller

__all__ = ["Caller", "router"]

router = APIRouter(tags=["threads"])
OWNED = access("owner")
Caller = Annotated[Principal, Depends(caller)]
"""A route's principal (tenancy.py): what it may see of threads, runs and assistants."""


def _config(request: Request, thread_id: str,
            checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    for key in ("checkpoint_id", "checkpoint_ns"):
        if checkpoint and checkpoint.get(key) is not None:
            configurable[key] = checkpoint[key]
    # a stateless run's thread keeps its state in memory while the run lasts
    return services(request).runs.graph_config(thread_id, {"configurable": configurable})


async def _graph_of(request: Request, thread: dict[str, Any]) -> Any:
    graph_id = thread["metadata"].get("graph_id")
    compiled = services(request).catalog.get(graph_id) if graph_id else None
    return compiled.graph if compiled is not None else None


async def _with_values(request: Request, thread: dict[str, Any]) -> dict[str, Any]:
    graph = await _graph_of(request, thread)
    if graph is not None:
        snapshot = await graph.aget_state(_config(request, thread["thread_id"]))
        thread["values"] = to_jsonable(snapshot.values)
        thread["interrupts"] = {t.id: to_jsonable(t.interrupts) for t in snapshot.tasks
                                if t.interrupts}
    return thread


@router.post("/threads", openapi_extra=OWNED)
async def create_thread(body: ThreadCreate, request: Request, who: Caller) -> dict[str, Any]:
    svc = services(request)
    if body.thread_id is not None:
        try:
            uuid.UUID(body.thread_id)
        except ValueError:
            raise BadRequest(f"thread_id must be a UUID, got {body.thread_id!r}") from None
    thread = await svc.store.create_thread(body.thread_id, body.metadata, body.if_exists,
                                           graph_id=body.graph_id, who=who)
    return await _with_values(request, thread)


@router.post("/threads/search", openapi_extra=OWNED)
async def search_threads(body: ThreadSearch, request: Request,
                         who: Caller) -> list[dict[str, Any]]:
    threads = await services(request).store.search_threads(
        metadata=body.metadata, status=body.status, limit=body.limit, offset=body.offset,
        ids=body.ids, who=who)
    out = [await _with_values(request, t) for t in threads]
    if body.values:
        out = [t for t in out
               if all((t["values"] or {}).get(k) == v for k, v in body.values.items())]
    if body.select:
        out = [{k: t[k] for k in body.select if k in t} for t in out]
    return out


@router.post("/threads/count", openapi_extra=OWNED)
async def count_threads(body: ThreadSearch, request: Request, who: Caller) -> int:
    body.limit, body.offset = 1000, 0
    return len(await search_threads(body, request, who))


@router.get("/threads/{thread_id}", openapi_extra=OWNED)
async def get_thread(thread_id: str, request: Request, who: Caller) -> dict[str, Any]:
    return await _with_values(request, await services(request).store.get_thread(thread_id, who))


@router.patch("/threads/{thread_id}", openapi_extra=OWNED)
async def patch_thread(thread_id: str, body: ThreadPatch, request: Request,
                       who: Caller) -> dict[str, Any]:
    store = services(request).store
    await store.update_thread(thread_id, metadata=body.metadata, who=who)
    return await get_thread(thread_id, request, who)


@router.delete("/threads/{thread_id}", status_code=204, openapi_extra=OWNED)
async def delete_thread(thread_id: str, request: Request, who: Caller) -> None:
    svc = services(request)
    await svc.store.get_thread(thread_id, who)
    if await svc.store.active_runs(thread_id):
        raise Conflict(f"thread {thread_id} has runs in progress; cancel them first")
    await svc.store.delete_thread(thread_id, who)
    await svc.catalog.checkpointer.adelete_thread(thread_id)


async def _copy_checkpoints(saver: BaseCheckpointSaver, source: str, target: str,
                            into: BaseCheckpointSaver) -> None:
    tuples = [t async for t in saver.alist({"configurable": {"thread_id": source}})]
    for saved in reversed(tuples):  # oldest first, so parents exist
        conf = saved.config["configurable"]
        parent = (saved.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        config: RunnableConfig = {"configurable": {"thread_id": target, "checkpoint_ns": conf.get(
            "checkpoint_ns", ""), **({"checkpoint_id": parent} if parent else {})}}
        new_config = await into.aput(config, saved.checkpoint, saved.metadata,
                                      saved.checkpoint.get("channel_versions", {}))
        if saved.pending_writes:
            by_task: dict[str, list[tuple[str, Any]]] = {}
            for task_id, channel, value in saved.pending_writes:
                by_task.setdefault(task_id, []).append((channel, value))
            for task_id, writes in by_task.items():
                await into.aput_writes(new_config, writes, task_id)


@router.post("/threads/{thread_id}/copy", openapi_extra=OWNED)
async def copy_thread(thread_id: str, request: Request, who: Caller) -> dict[str, Any]:
    svc = services(request)
    thread = await svc.store.get_thread(thread_id, who)
    copy = await svc.store.create_thread(None, thread["metadata"],
                                         graph_id=thread["metadata"].get("graph_id"), who=who)
    await _copy_checkpoints(svc.runs.saver_for(thread_id), thread_id, copy["thread_id"],
                            svc.catalog.checkpointer)
    return await _with_values(request, copy)


async def _state(request: Request, thread_id: str, who: Principal,
                 checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    thread = await services(request).store.get_thread(thread_id, who)
    graph = await _graph_of(request, thread)
    if graph is None:
        return dict(EMPTY_STATE)
    snapshot = await graph.aget_state(_config(request, thread_id, checkpoint))
    if checkpoint and checkpoint.get("checkpoint_id") and snapshot.config is None:
        raise NotFound(f"checkpoint {checkpoint['checkpoint_id']} not found")
    return snapshot_dict(snapshot)


@router.get("/threads/{thread_id}/state", openapi_extra=OWNED)
async def get_state(thread_id: str, request: Request, who: Caller,
                    subgraphs: bool = False) -> Any:
    return await _state(request, thread_id, who)


@router.get("/threads/{thread_id}/state/{checkpoint_id}", openapi_extra=OWNED)
async def get_state_at(thread_id: str, checkpoint_id: str, request: Request,
                       who: Caller) -> Any:
    return await _state(request, thread_id, who, {"checkpoint_id": checkpoint_id})


@router.post("/threads/{thread_id}/state/checkpoint", openapi_extra=OWNED)
async def get_state_at_checkpoint(thread_id: str, body: CheckpointRequest,
                                  request: Request, who: Caller) -> Any:
    return await _state(request, thread_id, who, body.checkpoint)


@router.post("/threads/{thread_id}/state", openapi_extra=OWNED)
async def update_state(thread_id: str, body: StateUpdate, request: Request,
                       who: Caller) -> dict[str, Any]:
    svc = services(request)
    thread = await svc.store.get_thread(thread_id, who)
    graph = await _graph_of(request, thread)
    if graph is None:
        raise BadRequest(f"thread {thread_id} has no graph yet: run it once, or create it "
                         "with a graph_id")
    checkpoint = body.checkpoint or ({"checkpoint_id": body.checkpoint_id}
                                     if body.checkpoint_id else None)
    try:
        config = await graph.aupdate_state(_config(request, thread_id, checkpoint), body.values,
                                           as_node=body.as_node)
    except Exception as exc:  # unknown node name, bad values for a reducer, ...
        raise BadRequest(f"cannot update state: {exc}") from None
    await svc.store.update_thread(thread_id, state_changed=True)
    return {"checkpoint": config["configurable"]}


async def _history(request: Request, thread_id: str, body: HistoryRequest,
                   who: Principal) -> list[Any]:
    thread = await services(request).store.get_thread(thread_id, who)
    graph = await _graph_of(request, thread)
    if graph is None:
        return []
    before = body.before
    before_config = (_config(request, thread_id, before if isinstance(before, dict)
                             else {"checkpoint_id": before}) if before else None)
    return [snapshot_dict(s) async for s in graph.aget_state_history(
        _config(request, thread_id, body.checkpoint), limit=body.limit, before=before_config,
        filter=body.metadata)]


@router.post("/threads/{thread_id}/history", openapi_extra=OWNED)
async def post_history(thread_id: str, body: HistoryRequest, request: Request,
                       who: Caller) -> list[Any]:
    return await _history(request, thread_id, body, who)


@router.get("/threads/{thread_id}/history", openapi_extra=OWNED)
async def get_history(thread_id: str, request: Request, who: Caller,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 10,
                      before: str | None = None) -> list[Any]:
    return await _history(request, thread_id, HistoryRequest(limit=limit, before=before), who)
