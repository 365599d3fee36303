"""Lowering a validated `Flow` to a LangGraph `StateGraph`, and compiling it.

The compiler is a pure function of the flow, the registry and the build context: it
declares one state channel per state field (with its reducer), adds one LangGraph node per
flow node (the callable its type's `build` returns, with no wrapper of ours around it, so a
compiled flow costs what the same hand-written graph costs; the sync functions of `inline`
types run in place in async runs instead of in a worker thread), plain edges, and one
conditional edge per router.

Example:
    >>> graph = compile_flow(load_flow(examples_dir() / "chat.json").flow, ctx=ctx)
    >>> graph.invoke({"messages": [("user", "hi")]}, {"configurable": {"thread_id": "1"}})
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable
from functools import wraps
from typing import Annotated, Any

from langchain_core.messages import AnyMessage

# RunnableCallable: the runnable LangGraph itself makes of a node function, given both a
# sync and an async body (langgraph has no public constructor for that pair).
from langgraph._internal._runnable import RunnableCallable
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END as LG_END
from langgraph.graph import START as LG_START
from langgraph.graph import StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from 3.12

from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowBuildError, FlowValidationError
from flowloom.flows.format import END, START, Flow, StateField
from flowloom.flows.registry import NodeContext, NodeRegistry, default_registry
from flowloom.flows.validate import checked_params, validate_document

__all__ = ["build_graph", "compile_flow", "state_schema"]

_PY_TYPES: dict[str, Any] = {
    "string": str,
    "number": float,
    "integer": int,
    "boolean": bool,
    "object": dict[str, Any],
    "array": list[Any],
    "messages": list[AnyMessage],
    "any": Any,
}


def _append(left: list[Any] | None, right: Any) -> list[Any]:
    items = right if isinstance(right, list) else [right]
    return [*(left or []), *items]


def _add(left: Any, right: Any) -> Any:
    return right if left is None else left + right


def _merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


_REDUCERS: dict[str, Any] = {
    "add_messages": add_messages,
    "append": _append,
    "add": _add,
    "merge": _merge,
}


def _annotation(spec: StateField) -> Any:
    base = _PY_TYPES[spec.type]
    reducer = spec.effective_reducer()
    return base if reducer == "replace" else Annotated[base, _REDUCERS[reducer]]


def state_schema(flow: Flow) -> type:
    """A TypedDict with one key per declared state field, reducers as annotations."""
    fields = {name: _annotation(spec) for name, spec in flow.state.items()}
    safe = "".join(c if c.isalnum() else "_" for c in flow.id)
    return TypedDict(f"{safe}_State", fields, total=False)  # type: ignore[operator]


def _route_reader(key: str) -> Any:
    def read_route(state: dict[str, Any]) -> str:
        return state[key]

    return _in_place(read_route, name=None, trace=True)


def _in_place(fn: Callable[..., Any], *, name: str | None, trace: bool) -> Any:
    """`fn` (sync, never blocking) as a runnable whose async call runs it right there.

    LangGraph runs a sync callable in a worker thread under `ainvoke`/`astream`; for a
    function that only computes, the hop costs more than the call. Sync runs still call
    `fn` as LangGraph would.
    """
    if inspect.iscoroutinefunction(fn):
        return fn

    @wraps(fn)
    async def in_place(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return RunnableCallable(fn, in_place, name=name, trace=trace)


def _end(name: str) -> str:
    return {START: LG_START, END: LG_END}.get(name, name)


def build_graph(
    flow: Flow, *, registry: NodeRegistry | None = None, ctx: BuildContext | None = None
) -> StateGraph:
    """Lower `flow` to an uncompiled StateGraph (validating it first)."""
    registry = registry or default_registry()
    ctx = ctx or BuildContext()
    parsed = checked_params(flow, registry)
    if parsed is None:  # not validated by this registry yet (a flow built in code)
        checked, problems = validate_document(flow.model_dump(mode="json"), registry)
        if checked is None:
            raise FlowValidationError(problems, source=flow.id)
        parsed = checked_params(checked, registry) or {}
    graph: StateGraph = StateGraph(state_schema(flow))
    routers: dict[str, str] = {}
    for node in flow.nodes:
        node_type = registry.get(node.type)
        params = parsed[node.id]
        try:
            fn = node_type.build(params, NodeContext(node.id, flow, ctx))
        except FlowBuildError:
            raise
        except Exception as exc:  # a builder's bug or resource error, named by node
            raise FlowBuildError(f"cannot build {node.type}: {exc}", node_id=node.id) from exc
        if node_type.inline:
            fn = _in_place(fn, name=node.id, trace=False)
        graph.add_node(node.id, fn, metadata={"flowloom_type": node.type})
        if node_type.route_field is not None:
            routers[node.id] = node_type.route_field(params)
    conditional: dict[str, dict[Hashable, str]] = {}
    for edge in flow.edges:
        if edge.source in routers:
            conditional.setdefault(edge.source, {})[edge.condition or ""] = _end(edge.target)
        else:
            graph.add_edge(_end(edge.source), _end(edge.target))
    for source, path_map in conditional.items():
        graph.add_conditional_edges(source, _route_reader(routers[source]), path_map)
    return graph


def compile_flow(
    flow: Flow,
    *,
    registry: NodeRegistry | None = None,
    ctx: BuildContext | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    store: BaseStore | None = None,
    interrupt_before: list[str] | None = None,
    interrupt_after: list[str] | None = None,
) -> CompiledStateGraph:
    """Compile `flow` into a runnable LangGraph graph named after the flow id; `store` is
    the long-term memory its nodes get (`memory.put`, `memory.search`)."""
    graph = build_graph(flow, registry=registry, ctx=ctx)
    compiled = graph.compile(
        checkpointer=checkpointer,
        store=store,
        interrupt_before=interrupt_before,
        interrupt_after=interrupt_after,
        name=flow.id,
    )
    return compiled.with_config(recursion_limit=flow.recursion_limit)  # type: ignore[return-value]
