"""The flow document: plain data, parsed from JSON, never code.

A flow declares its state fields, its nodes (a registered type name with a version and
that type's params), the edges between them, and — in a section of its own — where
each node sits on the builder's canvas, so that a diff of logic stays clean.

Example:
    >>> flow = Flow.model_validate({
    ...     "id": "echo", "name": "Echo",
    ...     "state": {"text": {"type": "string"}},
    ...     "nodes": [{"id": "say", "type": "state.set@1", "params": {"values": {"text": "hi"}}}],
    ...     "edges": [{"source": "START", "target": "say"}, {"source": "say", "target": "END"}],
    ... })
    >>> flow.node("say").type
    'state.set@1'
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

__all__ = [
    "END",
    "ID_PATTERN",
    "TYPE_PATTERN",
    "SCHEMA_VERSION",
    "START",
    "EdgeSpec",
    "Flow",
    "FlowIO",
    "Layout",
    "NodeSpec",
    "PROMPT_VERSION_PATTERN",
    "Position",
    "PromptAsset",
    "StateField",
    "dump_flow",
]

SCHEMA_VERSION = 1
START = "START"
END = "END"

StateType = Literal["string", "number", "integer", "boolean", "object", "array", "messages", "any"]
Reducer = Literal["replace", "add_messages", "append", "add", "merge"]

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"
TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*@[0-9]+$"
PROMPT_VERSION_PATTERN = r"^[a-z][a-z0-9_\-]{0,63}@[0-9]+$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StateField(_Model):
    """A declared state field. The reducer says how node updates combine with it."""

    type: StateType = Field("any", description="Value type of the field.")
    reducer: Reducer | None = Field(
        None,
        description="How updates merge: replace (default), add_messages (default for "
        "messages), append (lists), add (numbers), merge (objects).",
    )
    default: Any = Field(None, description="Initial value when a thread starts.")
    description: str | None = None

    def effective_reducer(self) -> Reducer:
        if self.reducer is not None:
            return self.reducer
        return "add_messages" if self.type == "messages" else "replace"


class NodeSpec(_Model):
    """One node: a registered type (`name@version`) and that type's params."""

    id: str = Field(
        ..., json_schema_extra={"pattern": ID_PATTERN}, description="Unique in the flow."
    )
    type: str = Field(
        ..., json_schema_extra={"pattern": TYPE_PATTERN}, description="Registered type: llm.chat@1"
    )
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(None, description="Display name in the builder.")


class EdgeSpec(_Model):
    """An edge. `condition` names the router output that takes it."""

    source: str = Field(..., description="Node id, or START.")
    target: str = Field(..., description="Node id, or END.")
    condition: str | None = Field(None, description="Router label that selects this edge.")


class FlowIO(_Model):
    """Which state fields carry a run's input and its answer.

    Left empty, a flow with a `messages` field takes the input as a user message and
    answers with the last AI message.
    """

    input: str | None = None
    output: str | None = None


class Position(_Model):
    x: float = 0.0
    y: float = 0.0


class Layout(_Model):
    """Canvas positions, kept apart from logic."""

    nodes: dict[str, Position] = Field(default_factory=dict)
    viewport: dict[str, float] | None = None


class PromptAsset(_Model):
    """One stored prompt version a flow carries, so that importing it is reproducible."""

    text: str = Field(..., description="The version's template text.")
    notes: str = Field("", description="The version's notes.")


class Flow(_Model):
    """A versioned flow document."""

    schema_version: Literal[1] = 1
    id: str = Field(..., json_schema_extra={"pattern": ID_PATTERN})
    name: str = Field(..., min_length=1, max_length=200)
    description: str = ""
    state: dict[str, StateField] = Field(default_factory=dict)
    nodes: list[NodeSpec] = Field(default_factory=list)
    edges: list[EdgeSpec] = Field(default_factory=list)
    io: FlowIO = Field(default_factory=FlowIO)
    recursion_limit: int = Field(25, ge=1, le=10_000)
    metadata: dict[str, Any] = Field(default_factory=dict)
    layout: Layout = Field(default_factory=Layout)
    prompts: dict[str, PromptAsset] = Field(
        default_factory=dict,
        json_schema_extra={"propertyNames": {"pattern": PROMPT_VERSION_PATTERN}},
        description="Stored prompt versions the nodes use, by `name@version` (written by "
        "export, so that an import brings them along).",
    )

    # set by validation (validate.py): the registry that checked the flow and each node's
    # parsed params, so that compiling it neither validates it again nor re-parses them
    _checked: tuple[Any, dict[str, Any]] | None = PrivateAttr(default=None)

    def node(self, node_id: str) -> NodeSpec:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    @property
    def input_field(self) -> str | None:
        return self.io.input or ("messages" if "messages" in self.state else None)

    @property
    def output_field(self) -> str | None:
        return self.io.output or ("messages" if "messages" in self.state else None)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _version_order(ref: str) -> tuple[str, int]:
    name, _, version = ref.rpartition("@")
    return name, int(version) if version.isdigit() else -1


def dump_flow(flow: Flow, *, indent: int | None = 2) -> str:
    """Serialize with a stable key order: document keys in schema order, params sorted,
    layout in node order, carried prompts by name and version; unset optional keys and an
    empty `prompts` are left out."""
    data = flow.model_dump(mode="json", exclude_none=True)
    for node in data["nodes"]:
        node["params"] = _sorted(node["params"])
    order = {nid: i for i, nid in enumerate(flow.node_ids())}
    data["layout"]["nodes"] = dict(
        sorted(data["layout"]["nodes"].items(), key=lambda kv: order.get(kv[0], len(order)))
    )
    data["metadata"] = _sorted(data["metadata"])
    if data["prompts"]:
        data["prompts"] = dict(sorted(data["prompts"].items(),
                                      key=lambda kv: _version_order(kv[0])))
    else:
        del data["prompts"]
    return json.dumps(data, indent=indent, ensure_ascii=False) + ("\n" if indent else "")
