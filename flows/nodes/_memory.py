"""What `memory.put` and `memory.search` share: namespaces whose labels are templates, the
store the run was given, and how a found item is written to state.

A memory is an item `{"text": ...}` in the store LangGraph gives the running graph (on the
API server: its store items, owned by the key the run acts for, readable over `/store`),
under a namespace whose labels are templates, so one flow keeps one memory per user:
`["memories", "{{ user_id }}"]`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from langgraph.store.base import BaseStore, Item
from pydantic import Field

from flowloom.flows.errors import FlowRunError
from flowloom.flows.nodes._common import check_template, template_refs
from flowloom.flows.registry import StateRef
from flowloom.flows.templates import Template

__all__ = ["Namespace", "check_labels", "memory_dict", "namespace_field", "namespace_refs",
           "require_store"]


def namespace_field(description: str) -> Any:
    # a plain default (pydantic copies it per model), so the builder's form shows it
    return Field(["memories"], min_length=1, max_length=16, description=description)


def check_labels(labels: list[str]) -> list[str]:
    """Pydantic validator body: each label is a template; a literal one is non-empty and
    has no '.' (the store's label separator)."""
    for i, label in enumerate(labels):
        check_template(label)
        if "{" not in label and (not label or "." in label):
            raise ValueError(f"label {i} ({label!r}): namespace labels are non-empty and "
                             "contain no '.'")
    return labels


def namespace_refs(labels: list[str]) -> Iterator[StateRef]:
    for i, label in enumerate(labels):
        yield from template_refs(f"namespace[{i}]", label)


class Namespace:
    """A node's namespace labels, rendered per call; a label that renders empty or with a
    '.' fails the run, naming the node and the label."""

    def __init__(self, labels: list[str], node_id: str) -> None:
        self.labels = [Template(label) for label in labels]
        self.node_id = node_id

    def render(self, state: dict[str, Any]) -> tuple[str, ...]:
        out = []
        for i, label in enumerate(self.labels):
            text = label.render(state).strip()
            if not text or "." in text:
                raise FlowRunError(f"namespace[{i}] rendered {text!r}: namespace labels are "
                                   "non-empty and contain no '.'", node_id=self.node_id)
            out.append(text)
        return tuple(out)


def require_store(store: BaseStore | None, node_id: str) -> BaseStore:
    """The run's store; a FlowRunError naming the node when the graph was compiled without
    one (as `flowloom run` does)."""
    if store is None:
        raise FlowRunError("this node keeps memory in a store, and this run has none: serve "
                           "the flow (`flowloom serve`), whose runs get the server's store",
                           node_id=node_id)
    return store


def memory_dict(item: Item) -> dict[str, Any]:
    """A found item as state holds it: `text` (the value's, or the value as JSON), `key`,
    `namespace`, `score` (None without a query) and the whole `value`."""
    value = item.value
    text = value.get("text")
    return {"text": text if isinstance(text, str) else json.dumps(value, ensure_ascii=False),
            "key": item.key, "namespace": list(item.namespace),
            "score": getattr(item, "score", None), "value": value}
