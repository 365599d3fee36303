"""`memory.search@1`: recall memories (see `_memory.py`) into a state field, the most
similar to a query first, or the newest.

The field gets `[{"text", "key", "namespace", "score", "value"}, ...]`; a prompt reads it
(`{% for m in memories %}- {{ m.text }}{% endfor %}`), or `llm.chat`'s `context` gives the
memories to the model as numbered sources.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langgraph.store.base import BaseStore
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowloom.flows.nodes._common import check_template, template_refs
from flowloom.flows.nodes._memory import (
    Namespace,
    check_labels,
    memory_dict,
    namespace_field,
    namespace_refs,
    require_store,
)
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import Template

__all__ = ["NODE_TYPE", "Params", "build"]


class Params(BaseModel):
    """Find memories under `namespace` (a prefix): the most similar to `query` first, or
    the newest without one; they are written to `output`."""

    model_config = ConfigDict(extra="forbid")

    namespace: list[str] = namespace_field(
        "Namespace prefix (labels are templates over state fields).")
    query: str = Field("{{ last_message }}",
                       description="Search by meaning (template); empty: the newest.")
    filter: dict[str, Any] = Field(
        {},
        description='Conditions on the stored values, e.g. {"kind": "preference"}.')
    limit: int = Field(5, ge=1, le=100, description="At most this many memories.")
    output: str = Field("memories", description="State field that receives the memories.",
                        json_schema_extra={"x-flowloom-state": "write"})

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: list[str]) -> list[str]:
        return check_labels(value)

    @field_validator("query")
    @classmethod
    def _check(cls, value: str) -> str:
        return check_template(value)


def state_refs(params: Params) -> Iterator[StateRef]:
    yield from namespace_refs(params.namespace)
    yield from template_refs("query", params.query)
    yield StateRef("output", params.output, "write", "array")


def build(params: Params, ctx: NodeContext) -> Any:
    namespace = Namespace(params.namespace, ctx.node_id)
    query = Template(params.query) if params.query else None
    conditions = dict(params.filter) or None
    limit, output, node_id = params.limit, params.output, ctx.node_id

    async def memory_search(state: dict[str, Any], *, store: BaseStore) -> dict[str, Any]:
        text = query.render(state).strip() if query is not None else ""
        found = await require_store(store, node_id).asearch(
            namespace.render(state), query=text or None, filter=conditions, limit=limit)
        return {output: [memory_dict(item) for item in found]}

    return memory_search


NODE_TYPE = NodeType(
    name="memory.search",
    version=1,
    params=Params,
    build=build,
    category="state",
    description="Recall memories by meaning (or the newest) into a state field.",
    state_refs=state_refs,
)
