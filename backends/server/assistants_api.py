"""`/assistants`: a system assistant per flow, plus assistants users create (versioned)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from flowloom.backends.server._state import services, system_assistant
from flowloom.backends.server.errors import BadRequest, Conflict, NotFound
from flowloom.backends.server.schemas import AssistantCreate, AssistantPatch, AssistantSearch

__all__ = ["router"]

router = APIRouter(tags=["assistants"])


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadRequest(f"assistant_id must be a UUID, got {value!r}") from None


async def _all(request: Request) -> list[dict[str, Any]]:
    svc = services(request)
    system = [system_assistant(f, svc.started_at) for f in svc.catalog.all()]
    return system + await svc.store.list_assistants()


async def _get(request: Request, assistant_id: str) -> dict[str, Any]:
    assistant_id = _uuid(assistant_id)
    for assistant in await _all(request):
        if assistant["assistant_id"] == assistant_id:
            return assistant
    raise NotFound(f"assistant {assistant_id} not found")


def _graph(request: Request, assistant: dict[str, Any]) -> Any:
    compiled = services(request).catalog.get(assistant["graph_id"])
    if compiled is None:
        raise NotFound(f"graph {assistant['graph_id']!r} of assistant "
                       f"{assistant['assistant_id']} is not loaded")
    return compiled.graph


@router.post("/assistants")
async def create_assistant(body: AssistantCreate, request: Request) -> dict[str, Any]:
    svc = services(request)
    if svc.catalog.get(body.graph_id) is None:
        raise NotFound(f"graph {body.graph_id!r} not found; graphs: "
                       f"{', '.join(svc.catalog.ids()) or 'none'}")
    assistant_id = _uuid(body.assistant_id) if body.assistant_id else str(uuid.uuid4())
    existing = [a for a in await _all(request) if a["assistant_id"] == assistant_id]
    if existing:
        if body.if_exists == "do_nothing":
            return existing[0]
        raise Conflict(f"assistant {assistant_id} already exists")
    return await svc.store.create_assistant({
        "assistant_id": assistant_id, "graph_id": body.graph_id,
        "name": body.name or "Untitled", "description": body.description,
        "config": body.config, "context": body.context, "metadata": body.metadata})


@router.post("/assistants/search")
async def search_assistants(body: AssistantSearch, request: Request) -> list[dict[str, Any]]:
    found = [
        a for a in await _all(request)
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


@router.post("/assistants/count")
async def count_assistants(body: AssistantSearch, request: Request) -> int:
    body.limit, body.offset = 1000, 0
    return len(await search_assistants(body, request))


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, request: Request) -> dict[str, Any]:
    return await _get(request, assistant_id)


@router.patch("/assistants/{assistant_id}")
async def update_assistant(assistant_id: str, body: AssistantPatch,
                           request: Request) -> dict[str, Any]:
    assistant = await _get(request, assistant_id)
    if assistant["metadata"].get("created_by") == "system":
        raise BadRequest("system assistants change with their flow: edit the flow instead")
    if body.graph_id and services(request).catalog.get(body.graph_id) is None:
        raise NotFound(f"graph {body.graph_id!r} not found")
    return await services(request).store.update_assistant(
        assistant["assistant_id"], body.model_dump(exclude_none=True))


@router.delete("/assistants/{assistant_id}", status_code=204)
async def delete_assistant(assistant_id: str, request: Request) -> None:
    assistant = await _get(request, assistant_id)
    if assistant["metadata"].get("created_by") == "system":
        raise BadRequest("system assistants are deleted with their flow (DELETE /flows/{id})")
    await services(request).store.delete_assistant(assistant["assistant_id"])


@router.post("/assistants/{assistant_id}/versions")
async def assistant_versions(assistant_id: str, request: Request) -> list[dict[str, Any]]:
    assistant = await _get(request, assistant_id)
    if assistant["metadata"].get("created_by") == "system":
        return [assistant]
    return await services(request).store.assistant_versions(assistant["assistant_id"])


@router.get("/assistants/{assistant_id}/graph")
async def assistant_graph(assistant_id: str, request: Request, xray: bool = False) -> Any:
    graph = _graph(request, await _get(request, assistant_id))
    return graph.get_graph(xray=xray).to_json()


@router.get("/assistants/{assistant_id}/schemas")
async def assistant_schemas(assistant_id: str, request: Request) -> dict[str, Any]:
    assistant = await _get(request, assistant_id)
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


@router.get("/assistants/{assistant_id}/subgraphs")
async def assistant_subgraphs(assistant_id: str, request: Request) -> dict[str, Any]:
    await _get(request, assistant_id)
    return {}
