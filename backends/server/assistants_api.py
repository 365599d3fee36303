"""`/assistants`: a system assistant per flow, plus assistants users create (versioned)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from flowloom.backends.server._state import services, system_assistant
from flowloom.backends.server.errors import BadRequest, Conflict, NotFound
from flowloom.backends.server.schemas import AssistantCreate, AssistantPatch, AssistantSearch
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
async def search_assistants(body: AssistantSearch, request: Request,
                            who: Caller) -> list[dict[str, Any]]:
    found = [
        a for a in await _all(request, who)
        if (body.graph_id is None or a["graph_id"] == body.graph_id)
        and (body.name is None or body.name.lower() in (a["name"] or "").lower())
        and all(a["metadata"].get(k) == v for k, v in (body.metadata or {}).items())
    ]
    if body.sort_by in ("assistant_id", "graph_id", "name", "created_at", "updated_at"):
        found.sort(key=lambda a: str(a[body.sort_by]), reverse=body.sort_order == "desc")
    found = found[body.offset:body.offset + body.limit]
    if body.select:
        found = [{k: a[k] for k in body.select if k in a} for a in found]
    return found


@router.post("/assistants/count", openapi_extra=OWNED)
async def count_assistants(body: AssistantSearch, request: Request, who: Caller) -> int:
    body.limit, body.offset = 1000, 0
    return len(await search_assistants(body, request, who))


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
async def delete_assistant(assistant_id: str, request: Request, who: Caller) -> None:
    assistant = await _get(request, assistant_id, who)
    if assistant["metadata"].get("created_by") == "system":
        raise BadRequest("system assistants are deleted with their flow (DELETE /flows/{id})")
    await services(request).store.delete_assistant(assistant["assistant_id"])


@router.post("/assistants/{assistant_id}/versions", openapi_extra=OWNED)
async def assistant_versions(assistant_id: str, request: Request,
                             who: Caller) -> list[dict[str, Any]]:
    assistant = await _get(request, assistant_id, who)
    if assistant["metadata"].get("created_by") == "system":
        return [assistant]
    return await services(request).store.assistant_versions(assistant["assistant_id"])


@router.get("/assistants/{assistant_id}/graph", openapi_extra=OWNED)
async def assistant_graph(assistant_id: str, request: Request, who: Caller,
                          xray: bool = False) -> Any:
    graph = _graph(request, await _get(request, assistant_id, who))
    return graph.get_graph(xray=xray).to_json()


@router.get("/assistants/{assistant_id}/schemas", openapi_extra=OWNED)
async def assistant_schemas(assistant_id: str, request: Request,
                            who: Caller) -> dict[str, Any]:
    assistant = await _get(request, assistant_id, who)
    graph = _graph(request, assistant)

    def schema(getter: Any) -> Any:
        try:
            return getter()
        except Exception:  # some annotations have no JSON Schema form
            return None

    return {
        "graph_id": assistant["graph_id"],
        "input_schema": schema(graph.get_input_jsonschema),
        "output_schema": schema(graph.get_output_jsonschema),
        "state_schema": schema(lambda: graph.get_input_jsonschema()),
        "config_schema": schema(graph.get_config_jsonschema),
        "context_schema": schema(graph.get_context_jsonschema),
    }


@router.get("/assistants/{assistant_id}/subgraphs", openapi_extra=OWNED)
async def assistant_subgraphs(assistant_id: str, request: Request,
                              who: Caller) -> dict[str, Any]:
    await _get(request, assistant_id, who)
    return {}
