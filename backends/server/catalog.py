"""The server's flows: every flow compiled once, on the shared checkpointer, by id.

Flows come from directories of flow files (the examples by default) and from flows saved
through the API; saving a flow recompiles it, so a saved flow is live at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowError
from flowloom.flows.format import Flow, dump_flow
from flowloom.flows.loader import load_flow
from flowloom.flows.registry import NodeRegistry, default_registry
from flowloom.flows.runtime import FlowRunner

__all__ = ["ASSISTANT_NAMESPACE", "CompiledFlow", "FlowCatalog", "system_assistant_id"]

logger = logging.getLogger("flowloom.server")

# UUIDv5 namespace of flowloom's system assistants: one per flow, id derived from its id.
ASSISTANT_NAMESPACE = uuid.UUID("8c5a6d0e-3f0b-5b7e-9a52-6f1c0d2a4b11")


def system_assistant_id(flow_id: str) -> str:
    return str(uuid.uuid5(ASSISTANT_NAMESPACE, flow_id))


@dataclass(frozen=True)
class CompiledFlow:
    """A flow, its compiled graph (checkpointed) and a runner for it."""

    flow: Flow
    graph: CompiledStateGraph
    runner: FlowRunner
    source: str  # "file:<path>" or "api"

    @property
    def id(self) -> str:
        return self.flow.id

    @property
    def assistant_id(self) -> str:
        return system_assistant_id(self.flow.id)

    @cached_property
    def document(self) -> str:
        """The flow as JSON, as `GET /flows/{id}` sends it."""
        return dump_flow(self.flow)

    @cached_property
    def etag(self) -> str:
        """An HTTP entity tag of `document`: it changes whenever the flow does."""
        return '"' + hashlib.sha256(self.document.encode()).hexdigest()[:20] + '"'


class FlowCatalog:
    """Flows by id, compiled against one checkpointer and one build context; with a
    `store`, their nodes get it (long-term memory across threads)."""

    def __init__(
        self,
        checkpointer: BaseCheckpointSaver,
        ctx: BuildContext,
        *,
        registry: NodeRegistry | None = None,
        store: BaseStore | None = None,
    ) -> None:
        self.checkpointer = checkpointer
        self.store = store
        self.ctx = ctx
        self.registry = registry or default_registry()
        self._flows: dict[str, CompiledFlow] = {}
        self._pending: dict[str, Flow] = {}  # flows being loaded, readable before compiled
        self._lock = asyncio.Lock()

    # -- FlowSource: what a supervisor's routes compose --------------------------------

    def flow_ids(self) -> list[str]:
        return sorted({*self._flows, *self._pending})

    def get_flow(self, flow_id: str) -> Flow | None:
        if flow_id in self._pending:
            return self._pending[flow_id]
        compiled = self._flows.get(flow_id)
        return None if compiled is None else compiled.flow

    def compile(self, flow: Flow, source: str) -> CompiledFlow:
        graph = compile_flow(flow, registry=self.registry, ctx=replace(self.ctx, flows=self),
                             checkpointer=self.checkpointer, store=self.store)
        return CompiledFlow(flow, graph, FlowRunner(flow, graph), source)

    def add(self, flow: Flow, source: str) -> CompiledFlow:
        """Compile and (re)place `flow`; raises flow errors, leaving the old one live.

        Flows that run it (a supervisor's routes) are rebuilt with the new version; one
        that no longer builds keeps its old graph."""
        return self.install(self.compile(flow, source))

    def install(self, compiled: CompiledFlow) -> CompiledFlow:
        """Serve a compiled flow (in place of one with its id), rebuilding the flows that
        run it; `compile` can run in a worker thread first."""
        flow = compiled.flow
        self._flows[flow.id] = compiled
        for dependent in self.dependents(flow.id):
            with contextlib.suppress(FlowError):
                self._flows[dependent.id] = self.compile(dependent.flow, dependent.source)
        return compiled

    def dependents(self, flow_id: str) -> list[CompiledFlow]:
        """Flows with a node that runs `flow_id`, directly or through another flow."""
        found: list[CompiledFlow] = []
        frontier = [flow_id]
        while frontier:
            target = frontier.pop()
            for compiled in self._flows.values():
                if compiled in found or compiled.id == flow_id:
                    continue
                if target in self._flow_refs(compiled.flow):
                    found.append(compiled)
                    frontier.append(compiled.id)
        return found

    def _flow_refs(self, flow: Flow) -> set[str]:
        refs: set[str] = set()
        for node in flow.nodes:
            node_type = self.registry.get(node.type)
            if node_type.flow_refs is not None:
                refs |= set(node_type.flow_refs(node_type.params.model_validate(node.params)))
        return refs

    def load_dir(self, folder: Path) -> list[str]:
        """Add every `*.json` flow in `folder` (see `add_many`); returns the ids added."""
        loaded = []
        for path in sorted(folder.glob("*.json")):
            try:
                loaded.append((load_flow(path, self.registry).flow, f"file:{path}"))
            except FlowError as exc:
                logger.error("flow file %s is not served: %s", path, exc)
        return self.add_many(loaded)

    def add_many(self, flows: list[tuple[Flow, str]]) -> list[str]:
        """Add `(flow, source)` pairs; returns the ids added. All are readable before any
        is compiled, so one may run another of them. A flow that cannot be built (a model
        the gateway lacks, ...) is logged and left out; the others are served."""
        self._pending = {flow.id: flow for flow, _ in flows}
        added = []
        try:
            for flow, source in flows:
                try:
                    added.append(self.add(flow, source).id)
                except FlowError as exc:
                    logger.error("flow %s (%s) is not served: %s", flow.id, source, exc)
        finally:
            self._pending = {}
        return added

    def remove(self, flow_id: str) -> bool:
        return self._flows.pop(flow_id, None) is not None

    def get(self, flow_id: str) -> CompiledFlow | None:
        return self._flows.get(flow_id)

    def by_assistant(self, assistant_id: str) -> CompiledFlow | None:
        """A flow by its id (graph name) or its system assistant's UUID."""
        if assistant_id in self._flows:
            return self._flows[assistant_id]
        for compiled in self._flows.values():
            if compiled.assistant_id == assistant_id:
                return compiled
        return None

    def ids(self) -> list[str]:
        return sorted(self._flows)

    def all(self) -> list[CompiledFlow]:
        return [self._flows[i] for i in self.ids()]

    def describe(self, flow_id: str) -> dict[str, Any]:
        """A flow's listing: id, name, description, where it comes from (`file:<path>` or
        `api`), its entity tag and node count; a flow saved through the API is `editable`,
        one from a file (the shipped examples) a `template` to save under a new id."""
        compiled = self._flows[flow_id]
        return {"id": compiled.id, "name": compiled.flow.name,
                "description": compiled.flow.description, "source": compiled.source,
                "etag": compiled.etag, "node_count": len(compiled.flow.nodes),
                "editable": compiled.source == "api",
                "template": compiled.source.startswith("file:")}
