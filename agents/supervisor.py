"""`agent.supervisor@1`: send each request to one of several flows, run as a subgraph.

The supervisor classifies the conversation's last message into one of its routes — by an
LLM choosing from the fixed label set, or by rules (substring or regex, first match
wins) — and runs that route's flow. Each route names a flow by id (an example, a saved
flow, another agent); the flows are compiled as LangGraph subgraphs of this node, so they
share the thread's checkpointer: a sub-flow's interrupt pauses the whole run and resumes
where it stopped, and its steps stream under the node's namespace.

State passes by name: a sub-flow reads the fields it shares with this flow (the
conversation, usually) and this flow keeps what the sub-flow writes to the fields it
declares too (its answer in `messages`, `documents`, `sql`, ...). The chosen label goes
to `output`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any, Literal, get_type_hints

from langgraph.graph import END as LG_END
from langgraph.graph import START as LG_START
from langgraph.graph import StateGraph
from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from 3.12

from flowloom.agents import router
from flowloom.flows.errors import FlowBuildError, FlowError
from flowloom.flows.format import ID_PATTERN
from flowloom.flows.nodes._common import repeated
from flowloom.flows.registry import NodeContext, NodeType, StateRef

__all__ = ["NODE_TYPE", "Params", "SupervisedRoute", "build"]

_STACK = "flowloom.supervisor.stack"  # BuildContext.extras key: the flows being built
# reducers whose update may be re-applied harmlessly (messages merge by id)
_SAFE_REDUCERS = ("replace", "add_messages", "merge")


class SupervisedRoute(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$",
                       description="Route name (what the classifier answers).")
    flow: str = Field(..., json_schema_extra={"pattern": ID_PATTERN,
                                              "x-flowloom-choices": "flows"},
                      description="Id of the flow that handles this route.")
    description: str = Field("", description="What belongs here (llm mode).")
    value: str | None = Field(None, description="Substring or regex (rule modes).")
    examples: list[str] = Field(default_factory=list,
                                description="Requests that belong here (embedding mode).")


class Params(BaseModel):
    """Route the request to one flow and run it."""

    model_config = ConfigDict(extra="forbid")

    routes: list[SupervisedRoute] = Field(..., min_length=1)
    mode: Literal["llm", "embedding", "contains", "regex"] = Field(
        "llm", description="llm: a model picks the label; embedding: the route whose "
                           "description or examples are most similar to the request "
                           "(embedding model, no chat-model call); contains / regex: first "
                           "route whose value matches.")
    default: str | None = Field(None, description="Label taken when nothing matches "
                                                  "(default: the first route).")
    field: str = Field("messages", description="State field classified.",
                       json_schema_extra={"x-flowloom-state": "read"})
    model: str = Field("local", description="Model alias (llm mode).",
                       json_schema_extra={"x-flowloom-choices": "models"})
    embed_model: str = Field("local-embed", description="Embedding model alias (embedding "
                                                        "mode).",
                             json_schema_extra={"x-flowloom-choices": "embedding_models"})
    instructions: str = Field("", description="Extra instructions for the classifier.")
    case_sensitive: bool = False
    output: str = Field("route", description="State field that records the route taken.",
                        json_schema_extra={"x-flowloom-state": "write"})

    @model_validator(mode="after")
    def _check(self) -> Params:
        labels = [r.label for r in self.routes]
        if dupes := repeated(labels):
            raise ValueError(f"route labels must be unique; repeated: {', '.join(dupes)}")
        if "classify" in labels:
            raise ValueError("'classify' is the supervisor's own step; name the route "
                             "otherwise")
        if self.default is not None and self.default not in labels:
            raise ValueError(f"default {self.default!r} is not a route; routes: "
                             f"{', '.join(labels)}")
        return self

    @property
    def default_label(self) -> str:
        return self.default or self.routes[0].label


def state_refs(params: Params) -> Iterator[StateRef]:
    yield StateRef("field", params.field)
    yield StateRef("output", params.output, "write", "string")


def flow_refs(params: Params) -> Iterable[str]:
    return [r.flow for r in params.routes]


def _semantic(params: Params, ctx: NodeContext) -> Any:
    from flowloom.agents._semantic import SemanticChoice
    from flowloom.flows.nodes._common import require_model

    chooser = SemanticChoice(require_model(ctx, params.embed_model), params.embed_model, {
        r.label: [t for t in (r.description, *r.examples) if t] or [r.label]
        for r in params.routes})
    field, output = params.field, params.output

    async def supervisor_embedding(state: dict[str, Any]) -> dict[str, Any]:
        text = router.field_text(state, field)
        if not text.strip():
            return {output: params.default_label}
        return {output: (await chooser.choose(text)).label}

    return supervisor_embedding


def _classifier(params: Params, ctx: NodeContext) -> Any:
    """router.condition's classifier over the routes other than the default."""
    if params.mode == "embedding":
        return _semantic(params, ctx)
    default = params.default_label
    others = [r for r in params.routes if r.label != default]
    described = next(r for r in params.routes if r.label == default).description
    if not others:  # one route: nothing to decide
        def only_route(state: dict[str, Any]) -> dict[str, Any]:
            return {params.output: default}
        return only_route
    rules = router.Params(
        field=params.field, mode=params.mode,
        routes=[router.Route(label=r.label, value=r.value, description=r.description)
                for r in others],
        default=default, default_description=described if params.mode == "llm" else "",
        case_sensitive=params.case_sensitive, model=params.model,
        instructions=params.instructions, output=params.output)
    return router.build(rules, ctx)


def build(params: Params, ctx: NodeContext) -> Any:
    from flowloom.flows.compiler import compile_flow, state_schema

    source = ctx.build.flows
    if source is None:
        raise FlowBuildError("agent.supervisor runs other flows, but none are available to "
                             "this build (no flow source configured)", node_id=ctx.node_id)
    if params.mode in ("contains", "regex"):
        for i, route in enumerate(params.routes):
            if route.value is None and route.label != params.default_label:
                raise FlowBuildError(f"routes[{i}] ({route.label}) needs a 'value' in "
                                     f"{params.mode} mode", node_id=ctx.node_id)
    stack: tuple[str, ...] = (*ctx.build.extras.get(_STACK, ()), ctx.flow.id)
    sub_ctx = replace(ctx.build, extras={**ctx.build.extras, _STACK: stack})
    subgraphs: dict[str, Any] = {}
    shared: set[str] = set()
    for i, route in enumerate(params.routes):
        where = f"routes[{i}].flow"
        if route.flow in stack:
            raise FlowBuildError(f"{where}: flow {route.flow!r} would run itself: "
                                 f"{' → '.join((*stack, route.flow))}", node_id=ctx.node_id)
        try:
            sub = source.get_flow(route.flow)
        except FlowError as exc:
            raise FlowBuildError(f"{where}: flow {route.flow!r} is invalid: {exc}",
                                 node_id=ctx.node_id) from None
        if sub is None:
            known = [f for f in source.flow_ids() if f not in stack]
            raise FlowBuildError(f"{where}: no flow {route.flow!r}; flows: "
                                 f"{', '.join(known) or 'none'}", node_id=ctx.node_id)
        try:  # no checkpointer of its own: it checkpoints on the thread's, as a subgraph
            subgraphs[route.label] = compile_flow(sub, ctx=sub_ctx)
        except FlowError as exc:
            raise FlowBuildError(f"{where} ({route.flow}): {exc}", node_id=ctx.node_id) \
                from None
        shared |= {name for name in sub.state if name in ctx.flow.state}
    schema = state_schema(ctx.flow)
    hints = get_type_hints(schema, include_extras=True)
    kept = {params.output} | {
        name for name in shared
        if ctx.flow.state[name].effective_reducer() in _SAFE_REDUCERS}
    out_schema = TypedDict(f"{schema.__name__}_{ctx.node_id}_out",  # type: ignore[misc]
                           {k: hints[k] for k in sorted(kept) if k in hints}, total=False)
    graph: StateGraph = StateGraph(schema, output_schema=out_schema)
    graph.add_node("classify", _classifier(params, ctx))
    for label, sub_graph in subgraphs.items():
        graph.add_node(label, sub_graph)
        graph.add_edge(label, LG_END)
    graph.add_edge(LG_START, "classify")
    output = params.output
    graph.add_conditional_edges("classify", lambda state: state[output],
                                {label: label for label in subgraphs})
    return graph.compile(name=ctx.node_id)


NODE_TYPE = NodeType(
    name="agent.supervisor",
    version=1,
    params=Params,
    build=build,
    category="agents",
    description="Send each request to one of several flows (by LLM classification over a "
                "fixed label set, or by rules) and run it as a subgraph.",
    state_refs=state_refs,
    flow_refs=flow_refs,
)
