"""`/assistants`: a system assistant per flow, plus assistants users create (versioned)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import create_model

from flowloom.backends.server._state import services, system_assistant
from flowloom.backends.server.errors import BadRequest, Conflict, NotFound
from flowloom.backends.server.schemas import (
    AssistantCreate,
    AssistantLatest,
    AssistantPatch,
    AssistantSearch,
    AssistantVersions,
)
from flowloom.backends.server.tenancy import Principal, access
from flowloom.backends.server.threads_api import Caller

__all__ = ["router"]

router = APIRouter(tags=["assistants"])
# System assistants (one per flow) are shared; assistants a key creates are its own.
OWNED = access("owner")


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadRequest(f"assistant_id must be a UUID, got {value!r}") from None


async def _all(request: Request, who: Principal) -> list[dict[str, Any]]:
    svc = services(request)
    system = [system_assistant(f, svc.started_at) for f in svc.catalog.all()]
    return system + await svc.store.list_assistants(who)


async def _get(request: Request, assistant_id: str, who: Principal) -> dict[str, Any]:
    assistant_id = _uuid(assistant_id)
    svc = services(request)
    for compiled in svc.catalog.all():
        if compiled.assistant_id == assistant_id:
            return system_assistant(compiled, svc.started_at)
    return await svc.store.get_assistant(assistant_id, who)


def _graph(request: Request, assistant: dict[str, Any]) -> Any:
    compiled = services(request).catalog.get(assistant["graph_id"])
    if compiled is None:
        raise NotFound(f"graph {assistant['graph_id']!r} of assistant "
                       f"{assistant['assistant_id']} is not loaded")
    return compiled.graph


@router.post("/assistants", openapi_extra=OWNED)
async def create_assistant(body: AssistantCreate, request: Request,
                           who: Caller) -> dict[str, Any]:
    svc = services(request)
    if svc.catalog.get(body.graph_id) is None:
        raise NotFound(f"graph {body.graph_id!r} not found; graphs: "
                       f"{', '.join(svc.catalog.ids()) or 'none'}")
    assistant_id = _uuid(body.assistant_id) if body.assistant_id else str(uuid.uuid4())
    try:
        existing = await _get(request, assistant_id, who)
    except NotFound:
        if await svc.store.assistant_exists(assistant_id):  # another key's: its id is taken
            raise Conflict(f"assistant {assistant_id} already exists") from None
    else:
        if body.if_exists == "do_nothing":
            return existing
        raise Conflict(f"assistant {assistant_id} already exists")
    return await svc.store.create_assistant({
        "assistant_id": assistant_id, "graph_id": body.graph_id,
        "name": body.name or "Untitled", "description": body.description,
        "config": body.config, "context": body.context, "metadata": body.metadata}, who)


@router.post("/assistants/search", openapi_extra=OWNED)
async def search_assistants(body: AssistantSearch, request: Request, response: Response,
                            who: Caller) -> list[dict[str, Any]]:
    found = [
        a for a in await _all(request, who)
        if (body.graph_id is None or a["graph_id"] == body.graph_id)
        and (body.name is None or body.name.lower() in (a["name"] or "").lower())
        and all(a["metadata"].get(k) == v for k, v in (body.metadata or {}).items())
    ]
    if body.sort_by is not None:
        key = body.sort_by
        found.sort(key=lambda a: str(a[key] or ""), reverse=body.sort_order != "asc")
    if len(found) > body.offset + body.limit:
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    found = found[body.offset:body.offset + body.limit]
    if body.select:
        found = [{k: a[k] for k in body.select if k in a} for a in found]
    return found


@router.post("/assistants/count", openapi_extra=OWNED)
async def count_assistants(body: AssistantSearch, request: Request, who: Caller) -> int:
    body.limit, body.offset, body.select = 1000, 0, None
    return len(await search_assistants(body, request, Response(), who))


@router.get("/assistants/{assistant_id}", openapi_extra=OWNED)
async def get_assistant(assistant_id: str, request: Request, who: Caller) -> dict[str, Any]:
    return await _get(request, assistant_id, who)


@router.patch("/assistants/{assistant_id}", openapi_extra=OWNED)
async def update_assistant(assistant_id: str, body: AssistantPatch,
                           request: Request, who: Caller) -> dict[str, Any]:
    assistant = await _get(request, assistant_id, who)
    if assistant["metadata"].get("created_by") == "system":
        raise BadRequest("system assistants change with their flow: edit the flow instead")
    if body.graph_id and services(request).catalog.get(body.graph_id) is None:
        raise NotFound(f"graph {body.graph_id!r} not found")
    return await services(request).store.update_assistant(
        assistant["assistant_id"], body.model_dump(exclude_none=True))


@router.delete("/assistants/{assistant_id}", status_code=204, openapi_extra=OWNED)
async def delete_assistant(assistant_id: str, request: Request, who: Caller,
                           delete_threads: bool = False) -> None:
    """Delete the assistant; `delete_threads`: and the threads its runs made or used
    (metadata.assistant_id), their runs and checkpoints, as the caller may see them.
    Threads with runs in progress are refused (409), and nothing is deleted then."""
    svc = services(request)
    assistant = await _get(request, assistant_id, who)
    if assistant["metadata"].get("created_by") == "system":
        raise BadRequest("system assistants are deleted with their flow (DELETE /flows/{id})")
    threads: list[dict[str, Any]] = []
    if delete_threads:
        threads = await svc.store.search_threads(
            metadata={"assistant_id": assistant["assistant_id"]}, limit=None, offset=0,
            who=who)
        for thread in threads:
            if await svc.store.active_runs(thread["thread_id"]):
                raise Conflict(f"thread {thread['thread_id']} has runs in progress; cancel "
                               "them first")
    await svc.store.delete_assistant(assistant["assistant_id"])
    for thread in threads:
        await svc.store.delete_thread(thread["thread_id"], who)
        await svc.catalog.checkpointer.adelete_thread(thread["thread_id"])


@router.post("/assistants/{assistant_id}/versions", openapi_extra=OWNED)
async def assistant_versions(assistant_id: str, request: Request, who: Caller,
                             body: AssistantVersions | None = None) -> list[dict[str, Any]]:
    """The assistant's saved versions, newest first (`metadata`: those whose metadata has
    these values)."""
    body = body or AssistantVersions()
    assistant = await _get(request, assistant_id, who)
    if assistant["metadata"].get("created_by") == "system":
        versions = [assistant]
    else:
        versions = await services(request).store.assistant_versions(assistant["assistant_id"])
    wanted = body.metadata or {}
    versions = [v for v in versions
                if all(v["metadata"].get(k) == val for k, val in wanted.items())]
    return versions[body.offset:body.offset + body.limit]


@router.post("/assistants/{assistant_id}/latest", openapi_extra=OWNED)
async def set_latest(assistant_id: str, body: AssistantLatest, request: Request,
                     who: Caller) -> dict[str, Any]:
    """Make one of the assistant's saved versions its current one (runs use it)."""
    assistant = await _get(request, assistant_id, who)
    if assistant["metadata"].get("created_by") == "system":
        raise BadRequest("system assistants have one version, their flow's: save an earlier "
                         "version of the flow instead (PUT /flows/{id})")
    return await services(request).store.set_latest_version(assistant["assistant_id"],
                                                            body.version)


@router.get("/assistants/{assistant_id}/graph", openapi_extra=OWNED)
async def assistant_graph(assistant_id: str, request: Request, who: Caller,
                          xray: bool = False) -> Any:
    graph = _graph(request, await _get(request, assistant_id, who))
    return graph.get_graph(xray=xray).to_json()


def _state_schema(graph: Any) -> dict[str, Any]:
    """The state's channels as a JSON Schema object (each channel's update type; Any
    where that type has no JSON Schema form), as the reference server gives it."""
    fields: dict[str, Any] = {}
    for name in graph.stream_channels_list:
        kind = graph.channels[name].UpdateType
        try:
            create_model(name, value=(kind, None)).model_json_schema()
            fields[name] = (kind, None)
        except Exception:
            fields[name] = (Any, None)
    return create_model(graph.get_name("State"), **fields).model_json_schema()


def _schemas(graph: Any) -> dict[str, Any]:
    def schema(getter: Any) -> Any:
        try:
            return getter()
        except Exception:  # some annotations have no JSON Schema form
            return None

    return {
        "input_schema": schema(graph.get_input_jsonschema),
        "output_schema": schema(graph.get_output_jsonschema),
        "state_schema": schema(lambda: _state_schema(graph)),
        "config_schema": schema(graph.get_config_jsonschema),
        "context_schema": schema(graph.get_context_jsonschema),
    }


@router.get("/assistants/{assistant_id}/schemas", openapi_extra=OWNED)
async def assistant_schemas(assistant_id: str, request: Request,
                            who: Caller) -> dict[str, Any]:
    assistant = await _get(request, assistant_id, who)
    return {"graph_id": assistant["graph_id"], **_schemas(_graph(request, assistant))}


@router.get("/assistants/{assistant_id}/subgraphs", openapi_extra=OWNED)
async def assistant_subgraphs(assistant_id: str, request: Request, who: Caller,
                              recurse: bool = False) -> dict[str, Any]:
    """The flow's subgraphs (a supervisor's flows) by namespace, with their schemas."""
    return await _subgraphs(request, assistant_id, who, None, recurse)


@router.get("/assistants/{assistant_id}/subgraphs/{namespace}", openapi_extra=OWNED)
async def assistant_subgraphs_in(assistant_id: str, namespace: str, request: Request,
                                 who: Caller, recurse: bool = False) -> dict[str, Any]:
    return await _subgraphs(request, assistant_id, who, namespace, recurse)


async def _subgraphs(request: Request, assistant_id: str, who: Principal,
                     namespace: str | None, recurse: bool) -> dict[str, Any]:
    graph = _graph(request, await _get(request, assistant_id, who))
    return {ns: _schemas(sub) async for ns, sub in graph.aget_subgraphs(
        namespace=namespace, recurse=recurse)}
