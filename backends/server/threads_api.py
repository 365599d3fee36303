"""`/threads`: threads, their state (from the checkpointer), history, updates, copies."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import StateUpdate as GraphUpdate

from flowloom.backends.server._state import EMPTY_STATE, services, snapshot_dict
from flowloom.backends.server.errors import BadRequest, Conflict, NotFound
from flowloom.backends.server.runs import as_command
from flowloom.backends.server.schemas import (
    CheckpointRequest,
    HistoryRequest,
    StateUpdate,
    ThreadCreate,
    ThreadPatch,
    ThreadPrune,
    ThreadSearch,
)
from flowloom.backends.server.serde import to_jsonable
from flowloom.backends.server.tenancy import Principal, access, caller

__all__ = ["Caller", "router"]

logger = logging.getLogger("flowloom.server")
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
    """The thread with its state's values and pending interrupts. A state that cannot be
    read (writes a reducer refused) still lists the thread: status `error`, values None,
    and `error` saying why."""
    graph = await _graph_of(request, thread)
    if graph is not None:
        try:
            snapshot = await graph.aget_state(_config(request, thread["thread_id"]))
        except Exception as exc:
            logger.warning("thread %s: state cannot be read: %s", thread["thread_id"], exc)
            thread["status"] = "error"
            thread["error"] = f"its state cannot be read: {type(exc).__name__}: {exc}"[:500]
            return thread
        thread["values"] = to_jsonable(snapshot.values)
        thread["interrupts"] = {t.id: to_jsonable(t.interrupts) for t in snapshot.tasks
                                if t.interrupts}
    return thread


def _extract(thread: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    """`extract`: alias -> a value found by a dotted path with [i] indexes (negative from
    the end), None where the path leads nowhere."""
    out: dict[str, Any] = {}
    for alias, path in paths.items():
        value: Any = thread
        for key, index in _PATH_PART.findall(path):
            try:
                value = value[int(index)] if index else value[key]
            except (KeyError, IndexError, TypeError, ValueError):
                value = None
                break
        out[alias] = value
    return out


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


@router.post("/threads", openapi_extra=OWNED)
async def create_thread(body: ThreadCreate, request: Request, who: Caller) -> dict[str, Any]:
    svc = services(request)
    if body.ttl is not None:
        raise BadRequest("ttl: threads are kept until deleted on this server (TTLs are not "
                         "supported); delete or prune them")
    if body.thread_id is not None:
        try:
            uuid.UUID(body.thread_id)
        except ValueError:
            raise BadRequest(f"thread_id must be a UUID, got {body.thread_id!r}") from None
    # the Python SDK sends `threads.create(graph_id=...)` as metadata.graph_id
    named = body.metadata.get("graph_id")
    graph_id = body.graph_id or (named if isinstance(named, str) else None)
    graph = None
    if body.supersteps:
        compiled = svc.catalog.get(graph_id) if graph_id else None
        if compiled is None:
            raise BadRequest("supersteps: give the graph_id of a flow they apply to; graphs: "
                             f"{', '.join(svc.catalog.ids())}")
        graph = compiled.graph
    thread = await svc.store.create_thread(body.thread_id, body.metadata, body.if_exists,
                                           graph_id=graph_id, who=who)
    if graph is not None and body.supersteps:
        steps = [[GraphUpdate(as_command(u.command) if u.command else u.values, u.as_node)
                  for u in step.updates] for step in body.supersteps]
        try:
            await graph.abulk_update_state(_config(request, thread["thread_id"]), steps)
        except Exception as exc:  # a node name or values the graph refuses
            await svc.store.delete_thread(thread["thread_id"])
            await svc.catalog.checkpointer.adelete_thread(thread["thread_id"])
            raise BadRequest(f"supersteps: {exc}") from None
        await svc.store.update_thread(thread["thread_id"], state_changed=True)
    return await _with_values(request, thread)


async def _matching(request: Request, body: ThreadSearch, who: Principal,
                    ) -> tuple[list[dict[str, Any]], bool]:
    """The threads of the search's page (with their values) and whether more follow. A
    `values` filter is applied before the page is cut, so pages hold matches."""
    store = services(request).store
    if not body.values:
        threads = await store.search_threads(
            metadata=body.metadata, status=body.status, limit=body.limit + 1,
            offset=body.offset, ids=body.ids, who=who, sort_by=body.sort_by,
            sort_order=body.sort_order)
        page = [await _with_values(request, t) for t in threads[:body.limit]]
        return page, len(threads) > body.limit
    matches: list[dict[str, Any]] = []
    for thread in await store.search_threads(
            metadata=body.metadata, status=body.status, limit=None, offset=0, ids=body.ids,
            who=who, sort_by=body.sort_by, sort_order=body.sort_order):
        thread = await _with_values(request, thread)
        if all((thread.get("values") or {}).get(k) == v for k, v in body.values.items()):
            matches.append(thread)
    return (matches[body.offset:body.offset + body.limit],
            len(matches) > body.offset + body.limit)


@router.post("/threads/search", openapi_extra=OWNED)
async def search_threads(body: ThreadSearch, request: Request, response: Response,
                         who: Caller) -> list[dict[str, Any]]:
    out, more = await _matching(request, body, who)
    if more:
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    if body.extract:
        for thread in out:
            thread["extracted"] = _extract(thread, body.extract)
    if body.select:
        keep = [*body.select, *(["extracted"] if body.extract else [])]
        out = [{k: t[k] for k in keep if k in t} for t in out]
    return out


@router.post("/threads/count", openapi_extra=OWNED)
async def count_threads(body: ThreadSearch, request: Request, who: Caller) -> int:
    store = services(request).store
    if not body.values:
        return await store.count_threads(metadata=body.metadata, status=body.status,
                                         ids=body.ids, who=who)
    body.limit, body.offset = 1_000_000, 0
    return len((await _matching(request, body, who))[0])


@router.post("/threads/prune", openapi_extra=OWNED)
async def prune_threads(body: ThreadPrune, request: Request, who: Caller) -> dict[str, Any]:
    """Delete threads (`delete`), or keep each one's latest checkpoint only
    (`keep_latest`); threads with runs in progress are refused, none is touched then."""
    svc = services(request)
    for thread_id in body.thread_ids:
        await svc.store.get_thread(thread_id, who)  # another key's: not found
        if await svc.store.active_runs(thread_id):
            raise Conflict(f"thread {thread_id} has runs in progress; cancel them first")
    pruned = 0
    for thread_id in body.thread_ids:
        if body.strategy == "delete":
            await svc.store.delete_thread(thread_id, who)
            await svc.catalog.checkpointer.adelete_thread(thread_id)
        else:
            await _keep_latest(svc.catalog.checkpointer, thread_id)
        pruned += 1
    return {"pruned_count": pruned}


async def _keep_latest(saver: BaseCheckpointSaver, thread_id: str) -> None:
    """Keep a thread's newest checkpoint (of each namespace) and drop the rest: copied into
    a fresh history with no parent."""
    config: Any = {"configurable": {"thread_id": thread_id}}
    newest: dict[str, Any] = {}
    async for saved in saver.alist(config):
        ns = saved.config["configurable"].get("checkpoint_ns", "")
        newest.setdefault(ns, saved)
    if not newest:
        return
    await saver.adelete_thread(thread_id)
    for ns, saved in newest.items():
        target: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
        new = await saver.aput(target, saved.checkpoint, saved.metadata,
                               saved.checkpoint.get("channel_versions", {}))
        by_task: dict[str, list[tuple[str, Any]]] = {}
        for task_id, channel, value in saved.pending_writes or ():
            by_task.setdefault(task_id, []).append((channel, value))
        for task_id, writes in by_task.items():
            await saver.aput_writes(new, writes, task_id)


@router.get("/threads/{thread_id}", openapi_extra=OWNED)
async def get_thread(thread_id: str, request: Request, who: Caller,
                     include: str | None = None) -> dict[str, Any]:
    """The thread; `include=ttl` adds its TTL (null: threads here are kept until deleted)."""
    extra = [f.strip() for f in (include or "").split(",") if f.strip()]
    if unknown := [f for f in extra if f != "ttl"]:
        raise BadRequest(f"include: {', '.join(unknown)} not supported; valid: ttl")
    thread = await _with_values(request, await services(request).store.get_thread(thread_id,
                                                                                 who))
    if extra:
        thread["ttl"] = None
    return thread


@router.patch("/threads/{thread_id}", openapi_extra=OWNED)
async def patch_thread(thread_id: str, body: ThreadPatch, request: Request,
                       who: Caller) -> dict[str, Any]:
    if body.ttl is not None:
        raise BadRequest("ttl: threads are kept until deleted on this server (TTLs are not "
                         "supported)")
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
                 checkpoint: dict[str, Any] | None = None, *,
                 subgraphs: bool = False, select: list[str] | None = None) -> dict[str, Any]:
    """The thread's state (at `checkpoint`); `subgraphs`: each pending subgraph task (a
    supervisor's flow) carries its own state under `state`; `select`: only these dotted
    paths of it (`values.messages`, `next`)."""
    thread = await services(request).store.get_thread(thread_id, who)
    graph = await _graph_of(request, thread)
    if graph is None:
        state = dict(EMPTY_STATE)
    else:
        snapshot = await graph.aget_state(_config(request, thread_id, checkpoint),
                                          subgraphs=subgraphs)
        if checkpoint and checkpoint.get("checkpoint_id") and snapshot.config is None:
            raise NotFound(f"checkpoint {checkpoint['checkpoint_id']} not found")
        state = snapshot_dict(snapshot)
    return _selected(state, select) if select else state


def _selected(state: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """Only `paths` (dotted) of `state`; a path whose top field the state does not have
    is refused, one leading past the values it has is left out."""
    out: dict[str, Any] = {}
    for path in paths:
        keys = path.split(".")
        if keys[0] not in state:
            raise BadRequest(f"select: {path!r}: a thread state has no {keys[0]!r}; "
                             f"valid: {', '.join(state)}")
        source: Any = state
        target = out
        for depth, key in enumerate(keys):
            if not isinstance(source, dict) or key not in source:
                break
            if depth == len(keys) - 1:
                target[key] = source[key]
            else:
                target = target.setdefault(key, {})
                source = source[key]
    return out


@router.get("/threads/{thread_id}/state", openapi_extra=OWNED)
async def get_state(thread_id: str, request: Request, who: Caller, subgraphs: bool = False,
                    select: Annotated[list[str] | None, Query()] = None) -> Any:
    return await _state(request, thread_id, who, subgraphs=subgraphs, select=select)


@router.get("/threads/{thread_id}/state/{checkpoint_id}", openapi_extra=OWNED)
async def get_state_at(thread_id: str, checkpoint_id: str, request: Request,
                       who: Caller, subgraphs: bool = False,
                       select: Annotated[list[str] | None, Query()] = None) -> Any:
    return await _state(request, thread_id, who, {"checkpoint_id": checkpoint_id},
                        subgraphs=subgraphs, select=select)


@router.post("/threads/{thread_id}/state/checkpoint", openapi_extra=OWNED)
async def get_state_at_checkpoint(thread_id: str, body: CheckpointRequest,
                                  request: Request, who: Caller) -> Any:
    return await _state(request, thread_id, who, body.checkpoint, subgraphs=body.subgraphs,
                        select=body.select)


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
