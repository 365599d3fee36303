"""`/flows`: save, read, export, delete and validate flow documents; saved flows go live at
once. A saved document that carries prompt versions (`prompts`, as export writes them)
adds them to the server's prompt store; `GET /flows/{id}/export` is the document with its
prompt refs pinned to versions and those versions carried.

Editors keep one document identity with entity tags: `GET /flows/{id}` sends an `ETag`;
`PUT` with `If-Match: <etag>` saves only over that version (412, with the current `etag`,
when the server's copy changed since it was read), and `If-None-Match: *` only a new id
(412 when the id exists: a "save as" never overwrites)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from flowloom.backends.server._state import services
from flowloom.backends.server.catalog import FlowCatalog
from flowloom.backends.server.errors import BadRequest, NotFound, PreconditionFailed
from flowloom.backends.server.store import FlowDocuments, ServerStore
from flowloom.backends.server.tenancy import Principal, access, caller
from flowloom.flows.errors import FlowError, FlowLoadError
from flowloom.flows.format import Flow, dump_flow
from flowloom.flows.loader import check_flow, load_flow
from flowloom.flows.migrations import migrate
from flowloom.flows.prompts import import_prompts, pin_prompts
from flowloom.flows.validate import node_facts

__all__ = ["load_saved_flows", "router"]

logger = logging.getLogger("flowloom.server")
# Flows are shared: every key reads and runs them, admins change them.
router = APIRouter(tags=["flows"])
SHARED = access("shared")
Caller = Annotated[Principal, Depends(caller)]


def _described(catalog: FlowCatalog, flow_id: str, who: Principal) -> dict[str, Any]:
    """A flow's listing; a user key sees an example file's name, not the server's path."""
    entry = catalog.describe(flow_id)
    source = str(entry["source"])
    if not who.admin and source.startswith("file:"):
        entry["source"] = "file:" + PurePath(source.removeprefix("file:")).name
    return entry


async def load_saved_flows(store: ServerStore, catalog: FlowCatalog) -> None:
    """Compile the flows saved in the database (a broken one is logged, not fatal)."""
    loaded = []
    for flow_id, document in await FlowDocuments(store.db).all():
        try:
            loaded.append((load_flow(json.loads(document), catalog.registry).flow, "api"))
        except (FlowError, ValueError) as exc:
            logger.error("saved flow %s could not be loaded: %s", flow_id, exc)
    catalog.add_many(loaded)  # together: a saved supervisor may run another saved flow


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}") from None


@router.get("/flows", openapi_extra=SHARED)
async def list_flows(request: Request, who: Caller) -> list[dict[str, Any]]:
    """Every flow, with `updated_at` (when it was saved through the API, or its file
    changed)."""
    svc = services(request)
    saved = await FlowDocuments(svc.store.db).updated()
    listed = []
    for flow_id in svc.catalog.ids():
        entry = _described(svc.catalog, flow_id, who)
        entry["updated_at"] = saved.get(flow_id) or _file_time(svc.catalog.describe(flow_id))
        listed.append(entry)
    return listed


def _file_time(entry: dict[str, Any]) -> str | None:
    source = str(entry["source"])
    if not source.startswith("file:"):
        return None
    try:
        mtime = Path(source.removeprefix("file:")).stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(mtime, UTC).isoformat()


@router.get("/flows/{flow_id}", openapi_extra=SHARED)
async def get_flow(flow_id: str, request: Request) -> Response:
    compiled = services(request).catalog.get(flow_id)
    if compiled is None:
        raise NotFound(f"flow {flow_id!r} not found")
    return Response(compiled.document, media_type="application/json",
                    headers={"ETag": compiled.etag})


@router.get("/flows/{flow_id}/export", openapi_extra=SHARED)
async def export_flow(flow_id: str, request: Request) -> Response:
    """The flow as a file to share: every prompt ref pinned to the version it resolves to
    now, and those versions carried in `prompts`, so importing it elsewhere is
    reproducible."""
    svc = services(request)
    compiled = svc.catalog.get(flow_id)
    if compiled is None:
        raise NotFound(f"flow {flow_id!r} not found")
    pinned = pin_prompts(compiled.flow.model_dump(mode="json"), svc.catalog.ctx.prompts,
                         registry=svc.catalog.registry)
    return Response(dump_flow(Flow.model_validate(pinned)), media_type="application/json")


@router.put("/flows/{flow_id}", openapi_extra=SHARED)
async def put_flow(flow_id: str, request: Request, response: Response,
                   who: Caller) -> dict[str, Any]:
    """Validate (and migrate) the document, compile it, store it: live on success, and on
    any problem nothing changes. Prompt versions it carries are added to the prompt store
    (409 if the store has one of them with other text)."""
    svc = services(request)
    doc = await _body(request)
    if not isinstance(doc, dict):
        raise BadRequest("a flow document must be a JSON object")
    doc.setdefault("id", flow_id)
    if doc["id"] != flow_id:
        raise BadRequest(f"id: the document's id {doc['id']!r} differs from the URL's "
                         f"{flow_id!r}")
    # validating and compiling a large flow takes a while: off the event loop
    loaded = await asyncio.to_thread(load_flow, doc, svc.catalog.registry)
    prompts = svc.catalog.ctx.prompts
    import_prompts(loaded.flow, prompts, dry_run=True)  # a conflict refuses it before changes
    compiled = await asyncio.to_thread(svc.catalog.compile, loaded.flow, "api")
    # checked with no await before the catalog changes: no other save can come between
    _check_preconditions(svc.catalog.get(flow_id), flow_id, request.headers)
    svc.catalog.install(compiled)
    imported = import_prompts(loaded.flow, prompts)
    await FlowDocuments(svc.store.db).put(flow_id, compiled.document)
    notes = [*loaded.notes]
    if imported:
        notes.append(f"prompts added to the store: {', '.join(imported)}")
    response.headers["ETag"] = compiled.etag
    return {**_described(svc.catalog, flow_id, who), "notes": notes}


def _check_preconditions(current: Any, flow_id: str, headers: Any) -> None:
    """`If-Match` / `If-None-Match` of a save against the flow as it is now (RFC 9110)."""
    if_match, if_none = headers.get("if-match"), headers.get("if-none-match")
    etag = current.etag if current is not None else None
    if if_none is not None:
        if if_none.strip() != "*":
            raise BadRequest("If-None-Match: only * is supported (save only a new id)")
        if current is not None:
            raise PreconditionFailed(f"flow {flow_id!r} already exists: choose another id, "
                                     "or open it and save over it", etag=etag)
    if if_match is not None:
        wanted = [tag.strip() for tag in if_match.split(",")]
        if current is None:
            raise PreconditionFailed(f"flow {flow_id!r} no longer exists on the server "
                                     "(deleted since it was opened)", etag=None)
        if "*" not in wanted and etag not in wanted:
            raise PreconditionFailed(
                f"flow {flow_id!r} was changed on the server since it was opened: reload it, "
                "or save yours under another id", etag=etag)


@router.delete("/flows/{flow_id}", status_code=204, openapi_extra=SHARED)
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


@router.post("/flows/validate", openapi_extra=access("user"))
async def validate_flow(request: Request) -> dict[str, Any]:
    """Every problem of a document, with its path; `document` is the document migrated to
    the current schema version (as PUT would store it, before validation)."""
    doc = await _body(request)
    if not isinstance(doc, dict):
        return {"ok": False, "problems": [{"path": "", "message": "a flow document must be "
                                           "a JSON object", "choices": [], "code": "not_a_flow"}]}
    registry = services(request).catalog.registry
    try:  # off the event loop: a large document takes a while
        loaded, problems, migrated = await asyncio.to_thread(_validate, doc, registry)
    except FlowLoadError as exc:
        return {"ok": False, "problems": [{"path": "", "message": str(exc), "choices": [],
                                           "code": "not_a_flow"}]}
    # the migrated document goes back too, so an importer can edit an old or broken flow;
    # `nodes`: each node's branch labels and the state fields it reads and writes
    return {"ok": not problems, "problems": [p.to_dict() for p in problems],
            "notes": loaded.notes if loaded else migrated.notes,
            "document": migrated.document, "nodes": node_facts(migrated.document, registry)}


def _validate(doc: dict[str, Any], registry: Any) -> tuple[Any, list[Any], Any]:
    loaded, problems = check_flow(doc, registry)
    return loaded, problems, migrate(doc)
