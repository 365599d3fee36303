"""`/flows`: save, read, delete and validate flow documents; saved flows go live at once."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request, Response

from flowloom.backends.server._state import services
from flowloom.backends.server.catalog import FlowCatalog
from flowloom.backends.server.errors import BadRequest, NotFound
from flowloom.backends.server.store import FlowDocuments, ServerStore
from flowloom.flows.errors import FlowError, FlowLoadError
from flowloom.flows.format import dump_flow
from flowloom.flows.loader import check_flow, load_flow
from flowloom.flows.migrations import migrate

__all__ = ["load_saved_flows", "router"]

logger = logging.getLogger("flowloom.server")
router = APIRouter(tags=["flows"])


async def load_saved_flows(store: ServerStore, catalog: FlowCatalog) -> None:
    """Compile the flows saved in the database (a broken one is logged, not fatal)."""
    for flow_id, document in await FlowDocuments(store.db).all():
        try:
            catalog.add(load_flow(json.loads(document), catalog.registry).flow, "api")
        except (FlowError, ValueError) as exc:
            logger.error("saved flow %s could not be loaded: %s", flow_id, exc)


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}") from None


@router.get("/flows")
async def list_flows(request: Request) -> list[dict[str, Any]]:
    catalog = services(request).catalog
    return [catalog.describe(i) for i in catalog.ids()]


@router.get("/flows/{flow_id}")
async def get_flow(flow_id: str, request: Request) -> Response:
    compiled = services(request).catalog.get(flow_id)
    if compiled is None:
        raise NotFound(f"flow {flow_id!r} not found")
    return Response(dump_flow(compiled.flow), media_type="application/json")


@router.put("/flows/{flow_id}")
async def put_flow(flow_id: str, request: Request) -> dict[str, Any]:
    """Validate (and migrate) the document, compile it, store it: live on success, and on
    any problem nothing changes."""
    svc = services(request)
    doc = await _body(request)
    if not isinstance(doc, dict):
        raise BadRequest("a flow document must be a JSON object")
    doc.setdefault("id", flow_id)
    if doc["id"] != flow_id:
        raise BadRequest(f"id: the document's id {doc['id']!r} differs from the URL's "
                         f"{flow_id!r}")
    loaded = load_flow(doc, svc.catalog.registry)
    svc.catalog.add(loaded.flow, "api")  # compiles: a build error leaves the old one live
    await FlowDocuments(svc.store.db).put(flow_id, dump_flow(loaded.flow))
    return {**svc.catalog.describe(flow_id), "notes": loaded.notes}


@router.delete("/flows/{flow_id}", status_code=204)
async def delete_flow(flow_id: str, request: Request) -> None:
    svc = services(request)
    compiled = svc.catalog.get(flow_id)
    if compiled is None:
        raise NotFound(f"flow {flow_id!r} not found")
    if compiled.source != "api":
        raise BadRequest(f"flow {flow_id!r} comes from {compiled.source.removeprefix('file:')}"
                         "; remove the file instead")
    await FlowDocuments(svc.store.db).delete(flow_id)
    svc.catalog.remove(flow_id)


@router.post("/flows/validate")
async def validate_flow(request: Request) -> dict[str, Any]:
    """Every problem of a document, with its path; `document` is the document migrated to
    the current schema version (as PUT would store it, before validation)."""
    doc = await _body(request)
    if not isinstance(doc, dict):
        return {"ok": False, "problems": [{"path": "", "message": "a flow document must be "
                                           "a JSON object", "choices": [], "code": "not_a_flow"}]}
    try:
        loaded, problems = check_flow(doc, services(request).catalog.registry)
        migrated = migrate(doc)
    except FlowLoadError as exc:
        return {"ok": False, "problems": [{"path": "", "message": str(exc), "choices": [],
                                           "code": "not_a_flow"}]}
    # the migrated document goes back too, so an importer can edit an old or broken flow
    return {"ok": not problems, "problems": [p.to_dict() for p in problems],
            "notes": loaded.notes if loaded else migrated.notes,
            "document": migrated.document}
