"""Per-app services the route modules reach through `request.app.state.flowloom`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from flowloom.backends.server.catalog import CompiledFlow, FlowCatalog
from flowloom.backends.server.runs import RunManager
from flowloom.backends.server.serde import to_jsonable
from flowloom.backends.server.store import ServerStore

__all__ = ["Services", "services", "snapshot_dict", "system_assistant"]


@dataclass
class Services:
    store: ServerStore
    catalog: FlowCatalog
    runs: RunManager
    started_at: str = datetime.now(UTC).isoformat()


def services(request: Request) -> Services:
    return request.app.state.flowloom  # type: ignore[no-any-return]


def system_assistant(compiled: CompiledFlow, started_at: str) -> dict[str, Any]:
    flow = compiled.flow
    return {
        "assistant_id": compiled.assistant_id,
        "graph_id": flow.id,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "name": flow.id,
        "description": flow.description or None,
        "version": 1,
        "created_at": started_at,
        "updated_at": started_at,
    }


def _checkpoint(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    conf = config.get("configurable", {})
    return {"thread_id": conf.get("thread_id"), "checkpoint_ns": conf.get("checkpoint_ns", ""),
            "checkpoint_id": conf.get("checkpoint_id")}


def snapshot_dict(snapshot: Any) -> dict[str, Any]:
    """A LangGraph StateSnapshot in the API's ThreadState shape."""
    tasks = []
    for t in snapshot.tasks:
        # a subgraph's task: its own state (asked for with subgraphs=True), else where it is
        sub = t.state
        tasks.append({
            "id": t.id, "name": t.name, "path": to_jsonable(t.path),
            "error": str(t.error) if t.error else None, "interrupts": to_jsonable(t.interrupts),
            "checkpoint": _checkpoint(sub) if isinstance(sub, dict) else None,
            "state": snapshot_dict(sub) if sub is not None and not isinstance(sub, dict)
            else None,
            "result": to_jsonable(getattr(t, "result", None))})
    return {
        "values": to_jsonable(snapshot.values),
        "next": list(snapshot.next),
        "tasks": tasks,
        "metadata": to_jsonable(snapshot.metadata),
        "created_at": snapshot.created_at,
        "checkpoint": _checkpoint(snapshot.config),
        "parent_checkpoint": _checkpoint(snapshot.parent_config),
        "interrupts": to_jsonable(list(snapshot.interrupts)),
    }


EMPTY_STATE: dict[str, Any] = {
    "values": {}, "next": [], "tasks": [], "metadata": {}, "created_at": None,
    "checkpoint": None, "parent_checkpoint": None, "interrupts": [],
}
