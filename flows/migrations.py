"""Schema migrations: a registry of `migrate(v -> v+1)` functions over raw documents.

Loading an older document runs each step in order up to `SCHEMA_VERSION` and says so,
so flows saved by an older flowloom keep working after an upgrade.

Version 0 (flowloom's prototype format) kept nodes in an object keyed by id with
un-versioned types and canvas positions inline, edges as `[source, target, label?]`
lists, state as a list of names, and `version` instead of `schema_version`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowloom.flows.errors import FlowLoadError
from flowloom.flows.format import SCHEMA_VERSION

__all__ = ["MIGRATIONS", "Migrated", "document_version", "migrate"]

Document = dict[str, Any]
MIGRATIONS: dict[int, Callable[[Document], Document]] = {}


def _step(from_version: int) -> Callable[[Callable[[Document], Document]], Callable[..., Any]]:
    def register(fn: Callable[[Document], Document]) -> Callable[[Document], Document]:
        MIGRATIONS[from_version] = fn
        return fn

    return register


@dataclass(frozen=True)
class Migrated:
    document: Document
    from_version: int
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.from_version != SCHEMA_VERSION


def document_version(doc: Document) -> int:
    """The schema version a raw document claims (0 for the unversioned prototype)."""
    if "schema_version" in doc:
        version = doc["schema_version"]
    elif "version" in doc or isinstance(doc.get("nodes"), dict):
        version = doc.get("version", 0)
    else:
        version = SCHEMA_VERSION  # a current document that left the default out
    if isinstance(version, bool) or not isinstance(version, int):
        raise FlowLoadError(f"schema_version must be an integer, got {version!r}")
    return version


def migrate(doc: Document) -> Migrated:
    """Upgrade a raw document to the current schema version (a copy; input untouched)."""
    version = document_version(doc)
    if version > SCHEMA_VERSION:
        raise FlowLoadError(
            f"schema_version {version} is newer than this flowloom understands "
            f"({SCHEMA_VERSION}); upgrade flowloom"
        )
    if version < 0:
        raise FlowLoadError(f"schema_version must be >= 0, got {version}")
    out = copy.deepcopy(doc)
    notes = []
    for v in range(version, SCHEMA_VERSION):
        out = MIGRATIONS[v](out)
        notes.append(f"migrated from schema version {v} to {v + 1}")
    return Migrated(out, version, notes)


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_\-]+", "-", text).strip("-")[:64]
    return slug if slug and (slug[0].isalpha() or slug[0] == "_") else f"flow-{slug}"[:64]


@_step(0)
def _v0_to_v1(doc: Document) -> Document:
    nodes_in = doc.get("nodes") or {}
    nodes, positions = [], {}
    items = nodes_in.items() if isinstance(nodes_in, dict) else []
    for node_id, node in items:
        node = dict(node) if isinstance(node, dict) else {}
        node_type = str(node.get("type", ""))
        if node_type and "@" not in node_type:
            node_type += "@1"
        nodes.append({"id": node_id, "type": node_type, "params": node.get("params") or {}})
        pos = node.get("position")
        if isinstance(pos, list | tuple) and len(pos) == 2:
            positions[node_id] = {"x": pos[0], "y": pos[1]}
    edges = []
    for edge in doc.get("edges") or []:
        if isinstance(edge, list | tuple) and len(edge) in (2, 3):
            spec = {"source": edge[0], "target": edge[1]}
            if len(edge) == 3 and edge[2] is not None:
                spec["condition"] = edge[2]
            edges.append(spec)
        else:
            edges.append(edge)  # left for validation to report
    state_in = doc.get("state") or []
    state = (
        {name: ({"type": "messages"} if name == "messages" else {}) for name in state_in}
        if isinstance(state_in, list)
        else state_in
    )
    name = doc.get("name") or doc.get("id") or "Untitled flow"
    upgraded: Document = {
        "schema_version": 1,
        "id": doc.get("id") or _slug(str(name)),
        "name": name,
        "description": doc.get("description", ""),
        "state": state,
        "nodes": nodes,
        "edges": edges,
        "layout": {"nodes": positions},
    }
    if "recursion_limit" in doc:
        upgraded["recursion_limit"] = doc["recursion_limit"]
    return upgraded
