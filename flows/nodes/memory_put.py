"""`memory.put@1`: remember a text across threads, as the item `{"text": ...}` in the
run's store (see `_memory.py`).

Example params: `{"namespace": ["memories", "{{ user_id }}"], "text": "{{ last_message }}"}`
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from langgraph.store.base import BaseStore
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowloom.flows.nodes._common import check_template, template_refs
from flowloom.flows.nodes._memory import (
    Namespace,
    check_labels,
    namespace_field,
    namespace_refs,
    require_store,
)
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import Template

__all__ = ["NODE_TYPE", "Params", "build"]


class Params(BaseModel):
    """Remember `text` as the item `{"text": ...}` at `namespace`/`key` (replacing the item
    with that key)."""

    model_config = ConfigDict(extra="forbid")

    namespace: list[str] = namespace_field(
        'Namespace labels (templates over state fields), e.g. ["memories", "{{ user_id }}"].')
    key: str = Field("", description="Item key (template); empty: a new key each time.")
    text: str = Field("{{ last_message }}", description="What to remember (template).")
    index: bool = Field(True, description="Embed it, so that memory.search's `query` finds "
                                          "it by meaning.")
    ttl_minutes: float | None = Field(
        None, gt=0, description="Forget it this many minutes after it was last written or "
                                "read; empty: keep it.")

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: list[str]) -> list[str]:
        return check_labels(value)

    @field_validator("key", "text")
    @classmethod
    def _check(cls, value: str) -> str:
        return check_template(value)


def state_refs(params: Params) -> Iterator[StateRef]:
    yield from namespace_refs(params.namespace)
    yield from template_refs("key", params.key)
    yield from template_refs("text", params.text)


def build(params: Params, ctx: NodeContext) -> Any:
    namespace = Namespace(params.namespace, ctx.node_id)
    key = Template(params.key) if params.key else None
    text = Template(params.text)
    index = None if params.index else False
    ttl, node_id = params.ttl_minutes, ctx.node_id

    async def memory_put(state: dict[str, Any], *, store: BaseStore) -> dict[str, Any]:
        item_key = key.render(state).strip() if key is not None else ""
        await require_store(store, node_id).aput(
            namespace.render(state), item_key or str(uuid.uuid4()),
            {"text": text.render(state)}, index=index, ttl=ttl)
        return {}

    return memory_put


NODE_TYPE = NodeType(
    name="memory.put",
    version=1,
    params=Params,
    build=build,
    category="state",
    description="Remember a text across threads (long-term memory in the server's store).",
    state_refs=state_refs,
)
