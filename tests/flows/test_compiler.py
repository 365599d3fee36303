"""Compiling flows to LangGraph graphs: state reducers, edges, routers, limits."""

from __future__ import annotations

import pytest
from langgraph.errors import GraphRecursionError

from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowBuildError, FlowValidationError
from flowloom.flows.format import Flow
from flowloom.flows.loader import examples_dir, load_flow
from flowloom.flows.runtime import FlowRunner
from tests.fakes import ScriptedModels, last_text


def _compile(doc, models=None, **kw):
    flow = load_flow(doc).flow
    return flow, compile_flow(flow, ctx=BuildContext(models=models), **kw)


async def test_linear_pure_flow_and_append_reducer(make_flow):
    doc = make_flow(
        nodes=[{"id": n, "type": "state.set@1", "params": {"values": {"log": n}}}
               for n in ("a", "b", "c")],
        edges=[{"source": "START", "target": "a"}, {"source": "a", "target": "b"},
               {"source": "b", "target": "c"}, {"source": "c", "target": "END"}],
    )
    _, graph = _compile(doc)
    out = await graph.ainvoke({})
    assert out["log"] == ["a", "b", "c"]
    assert graph.name == "t"


async def test_rule_router_picks_branch(make_flow):
    doc = make_flow(
        nodes=[
            {"id": "r", "type": "router.condition@1",
             "params": {"mode": "contains", "routes": [{"label": "bill", "value": "invoice"}]}},
            {"id": "billing", "type": "state.set@1", "params": {"values": {"text": "billing"}}},
            {"id": "other", "type": "state.set@1", "params": {"values": {"text": "other"}}},
        ],
        edges=[{"source": "START", "target": "r"},
               {"source": "r", "target": "billing", "condition": "bill"},
               {"source": "r", "target": "other", "condition": "default"},
               {"source": "billing", "target": "END"}, {"source": "other", "target": "END"}],
    )
    _, graph = _compile(doc)
    out = await graph.ainvoke({"messages": [("user", "Where is my INVOICE?")]})
    assert (out["route"], out["text"]) == ("bill", "billing")
    out = await graph.ainvoke({"messages": [("user", "hello")]})
    assert (out["route"], out["text"]) == ("default", "other")


async def test_triage_example_routes_by_llm_label():
    replies = {"classify": "Billing.", "answer": "Refunds take 5 days."}
    models = ScriptedModels(
        lambda msgs: replies["classify"] if "Classify" in str(msgs[0].content)
        else replies["answer"]
    )
    flow, graph = _compile(examples_dir() / "triage.json", models)
    result = await FlowRunner(flow, graph).ainvoke("I was charged twice")
    assert result.values["route"] == "billing"
    assert result.output == "Refunds take 5 days."
    assert "billing specialist" in str(models.calls[-1][0].content)


async def test_llm_chat_prompt_template_writes_text_field(make_flow):
    models = ScriptedModels(lambda msgs: f"echo: {last_text(msgs)}")
    doc = make_flow(
        nodes=[{"id": "a", "type": "llm.chat@1",
                "params": {"prompt": "Say {{ text }}", "history": False, "output": "text"}}],
        edges=[{"source": "START", "target": "a"}, {"source": "a", "target": "END"}],
    )
    _, graph = _compile(doc, models)
    assert (await graph.ainvoke({"text": "hi"}))["text"] == "echo: Say hi"


async def test_recursion_limit_comes_from_flow(make_flow):
    doc = make_flow(
        recursion_limit=5,
        nodes=[
            {"id": "work", "type": "state.set@1", "params": {"values": {"log": "x"}}},
            {"id": "check", "type": "router.condition@1",
             "params": {"field": "text", "routes": [{"label": "stop", "value": "stop"}]}},
        ],
        edges=[{"source": "START", "target": "work"}, {"source": "work", "target": "check"},
               {"source": "check", "target": "work", "condition": "default"},
               {"source": "check", "target": "END", "condition": "stop"}],
    )
    _, graph = _compile(doc)
    with pytest.raises(GraphRecursionError):
        await graph.ainvoke({"text": "go"})
    assert (await graph.ainvoke({"text": "stop"}))["log"] == ["x"]


def test_build_errors_name_the_node(make_flow):
    doc = make_flow(
        nodes=[{"id": "a", "type": "llm.chat@1", "params": {"model": "gpt-5"}}],
        edges=[{"source": "START", "target": "a"}, {"source": "a", "target": "END"}],
    )
    with pytest.raises(FlowBuildError, match="node 'a': model 'gpt-5' is not in the gateway"):
        _compile(doc, ScriptedModels(["x"]))
    with pytest.raises(FlowBuildError, match="no model gateway"):
        _compile(doc)


def test_compile_refuses_invalid_flow():
    flow = Flow.model_validate({"id": "x", "name": "X",
                                "nodes": [{"id": "a", "type": "nope@1"}]})
    with pytest.raises(FlowValidationError, match="unknown node type"):
        compile_flow(flow)


async def test_inline_node_types_run_on_the_event_loop_thread(make_flow):
    """state.set and rule routers only compute: async runs call them in place (LangGraph
    would hand each call to a worker thread); sync runs still work."""
    import threading

    from flowloom.flows.nodes.state import Params as SetParams
    from flowloom.flows.registry import NodeRegistry, NodeType, default_registry

    seen: list[tuple[str, int]] = []

    def build(kind: str):
        def node_build(params, ctx):
            def record(state):
                seen.append((kind, threading.get_ident()))
                return {"log": kind}
            return record
        return node_build

    registry = NodeRegistry([*default_registry().types(),
                             NodeType("t.inline", 1, SetParams, build("inline"), "state",
                                      "test", inline=True),
                             NodeType("t.threaded", 1, SetParams, build("threaded"), "state",
                                      "test")])
    doc = make_flow(
        nodes=[{"id": "a", "type": "t.inline@1", "params": {}},
               {"id": "b", "type": "t.threaded@1", "params": {}},
               {"id": "r", "type": "router.condition@1",
                "params": {"field": "text", "mode": "contains",
                           "routes": [{"label": "x", "value": "x"}]}},
               {"id": "c", "type": "state.set@1", "params": {"values": {"log": "c"}}}],
        edges=[{"source": "START", "target": "a"}, {"source": "a", "target": "b"},
               {"source": "b", "target": "r"}, {"source": "r", "target": "c", "condition": "x"},
               {"source": "r", "target": "END", "condition": "default"},
               {"source": "c", "target": "END"}],
    )
    flow = load_flow(doc, registry).flow
    graph = compile_flow(flow, registry=registry, ctx=BuildContext())
    loop_thread = threading.get_ident()
    assert (await graph.ainvoke({"text": "x"}))["log"] == ["inline", "threaded", "c"]
    assert seen[0] == ("inline", loop_thread)
    assert seen[1][0] == "threaded" and seen[1][1] != loop_thread  # LangGraph's default
    seen.clear()
    assert graph.invoke({"text": "no"})["log"] == ["inline", "threaded"]
    assert [kind for kind, _ in seen] == ["inline", "threaded"]
