"""What a client's request asks of a flow's answering model call, and which nodes answer.

A flow's answer is its output field (`io.output`, else `messages`). The nodes that answer
are the last writers of that field: each node writing it from which no other writer can
be reached along the edges (one per branch; every writer when they form a loop). A
request's model parameters (`max_tokens`, `stop`, `temperature`, `response_format`,
`tools`, ...) go to those of them whose params take the parameter (a node type's
`Params.request_options()`, such as llm.chat's), through
`config["configurable"][REQUEST_KEY]` = {node id: parameters}; a parameter that no
answering node takes is refused, naming it, as OpenAI refuses one a model lacks.

Example:
    >>> options = AnswerOptions({"max_tokens": 5}, {"max_tokens": "max_completion_tokens"})
    >>> options.overrides(flow, registry)  # doctest: +SKIP
    {'answer': {'max_tokens': 5}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowloom.backends.server._openai_errors import OpenAIRequestError
from flowloom.flows.format import END, Flow
from flowloom.flows.nodes.llm import REQUEST_KEY
from flowloom.flows.registry import NodeRegistry

__all__ = ["REQUEST_KEY", "AnswerOptions", "Answerer", "answering_nodes"]


@dataclass(frozen=True)
class Answerer:
    """A node that writes a flow's answer, and the request parameters it takes."""

    node_id: str
    node_type: str
    options: frozenset[str]

    def describe(self) -> str:
        takes = (f"takes {', '.join(sorted(self.options))}" if self.options
                 else "takes no model parameters")
        return f"node '{self.node_id}' ({self.node_type}), which {takes}"


def _writers(flow: Flow, registry: NodeRegistry, field_name: str) -> dict[str, Answerer]:
    found: dict[str, Answerer] = {}
    for node in flow.nodes:
        node_type = registry.get(node.type)
        params = node_type.params.model_validate(node.params)
        refs = node_type.state_refs(params) if node_type.state_refs is not None else ()
        if any(ref.access == "write" and ref.field == field_name for ref in refs):
            options = getattr(params, "request_options", None)
            found[node.id] = Answerer(node.id, node.type,
                                      frozenset(options()) if callable(options) else frozenset())
    return found


def _reachable(flow: Flow, start: str) -> set[str]:
    """Nodes reachable from `start` by one edge or more."""
    nexts: dict[str, list[str]] = {}
    for edge in flow.edges:
        nexts.setdefault(edge.source, []).append(edge.target)
    seen: set[str] = set()
    todo = list(nexts.get(start, ()))
    while todo:
        node = todo.pop()
        if node in seen or node == END:
            continue
        seen.add(node)
        todo.extend(nexts.get(node, ()))
    return seen


def answering_nodes(flow: Flow, registry: NodeRegistry) -> list[Answerer]:
    """The nodes whose write of the output field is the flow's answer (see the module
    doc), in flow order; none when nothing writes it (or the flow has no output field)."""
    name = flow.output_field
    if name is None:
        return []
    writers = _writers(flow, registry, name)
    last = [w for node_id, w in writers.items()
            if not (_reachable(flow, node_id) & (set(writers) - {node_id}))]
    return last or list(writers.values())


@dataclass(frozen=True)
class AnswerOptions:
    """The model parameters a request sets (`values`, by their litellm names), and the
    request's own name for each (`params`, for errors: `max_output_tokens`, ...)."""

    values: dict[str, Any] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str:
        return self.params.get(name, name)

    def overrides(self, flow: Flow, registry: NodeRegistry,
                  answerers: list[Answerer] | None = None) -> dict[str, dict[str, Any]]:
        """{node id: parameters} for the answering nodes; raises `OpenAIRequestError` (400,
        the parameter named) for a parameter that none of them takes."""
        answerers = answering_nodes(flow, registry) if answerers is None else answerers
        out: dict[str, dict[str, Any]] = {}
        for name, value in self.values.items():
            takers = [a for a in answerers if name in a.options]
            if not takers:
                raise OpenAIRequestError(_refusal(flow, self.param(name), answerers),
                                         param=self.param(name), code="unsupported_parameter")
            for answerer in takers:
                out.setdefault(answerer.node_id, {})[name] = value
        return out

    def require_tools(self, flow: Flow, registry: NodeRegistry, *, param: str,
                      answerers: list[Answerer] | None = None) -> None:
        """Refuse a conversation carrying tool calls (`param` names where) when no
        answering node takes client tools."""
        answerers = answering_nodes(flow, registry) if answerers is None else answerers
        if not any("tools" in a.options for a in answerers):
            raise OpenAIRequestError(
                _refusal(flow, "tool calls and their results", answerers), param=param,
                code="unsupported_parameter")


def _refusal(flow: Flow, what: str, answerers: list[Answerer]) -> str:
    where = flow.output_field
    if not answerers:
        return (f"flow '{flow.id}' cannot honour {what}: no node writes its answer"
                + (f" field '{where}'" if where else ""))
    by = "; ".join(a.describe() for a in answerers)
    return (f"flow '{flow.id}' cannot honour {what}: its answer ('{where}') is written by "
            f"{by}")
