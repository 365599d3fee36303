"""`agent.supervisor@1`: picks a route (rules, or a scripted LLM) and runs that route's
flow as a subgraph: its answer lands in the conversation, the fields both flows declare
come back, an interrupt inside a sub-flow pauses the whole run and resumes there, and the
build errors name the route and the flows there are."""

from __future__ import annotations

import uuid

import pytest
from langgraph.types import Command

from flowloom.flows.checkpoint import open_checkpointer
from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowBuildError
from flowloom.flows.format import Flow
from flowloom.flows.loader import load_flow
from tests.fakes import ScriptedModels


def sub_flow(flow_id: str, reply_tag: str, *, approve: bool = False) -> dict:
    nodes = [{"id": "answer", "type": "llm.chat@1",
              "params": {"system": f"You are the {reply_tag} desk."}},
             {"id": "mark", "type": "state.set@1",
              "params": {"values": {"desk": reply_tag, "private": "x"}}}]
    edges = [{"source": "START", "target": "answer"}, {"source": "answer", "target": "mark"},
             {"source": "mark", "target": "END"}]
    if approve:
        nodes.append({"id": "check", "type": "human.approve@1", "params": {}})
        edges = [{"source": "START", "target": "check"},
                 {"source": "check", "target": "answer", "condition": "approved"},
                 {"source": "check", "target": "END", "condition": "rejected"},
                 *edges[1:]]
    return {"schema_version": 1, "id": flow_id, "name": flow_id,
            "state": {"messages": {"type": "messages"}, "desk": {"type": "string"},
                      "private": {"type": "string"}, "approval": {"type": "string"}},
            "nodes": nodes, "edges": edges}


def supervisor_flow(**params) -> dict:
    return {"schema_version": 1, "id": "front", "name": "Front desk",
            "state": {"messages": {"type": "messages"}, "route": {"type": "string"},
                      "desk": {"type": "string"}},
            "nodes": [{"id": "sup", "type": "agent.supervisor@1", "params": {
                "mode": "contains",
                "routes": [{"label": "orders", "flow": "orders_desk", "value": "order"},
                           {"label": "general", "flow": "general_desk"}],
                "default": "general", **params}}],
            "edges": [{"source": "START", "target": "sup"},
                      {"source": "sup", "target": "END"}]}


class Flows:
    def __init__(self, *docs: dict) -> None:
        self.flows = {d["id"]: load_flow(d).flow for d in docs}

    def flow_ids(self) -> list[str]:
        return sorted(self.flows)

    def get_flow(self, flow_id: str) -> Flow | None:
        return self.flows.get(flow_id)


def desk_models() -> ScriptedModels:
    def reply(messages):
        system = str(messages[0].content)
        if "Classify" in system:  # the llm-mode classifier
            return "orders" if "parcel" in str(messages[-1].content) else "general"
        return system.split("the ")[1].split(" desk")[0] + " here"
    return ScriptedModels(reply)


def build(doc: dict, flows: Flows, models: ScriptedModels | None = None, saver=None):
    ctx = BuildContext(models=models or desk_models(), flows=flows)
    return compile_flow(load_flow(doc).flow, ctx=ctx, checkpointer=saver)


DESKS = Flows(sub_flow("orders_desk", "orders"), sub_flow("general_desk", "general"))


@pytest.mark.parametrize(("text", "route"), [("Where is my order?", "orders"),
                                             ("Hello there", "general")])
async def test_rules_route_to_a_flow_whose_answer_and_shared_fields_come_back(text, route):
    out = await build(supervisor_flow(), DESKS).ainvoke({"messages": [("user", text)]})
    assert out["route"] == route and out["desk"] == route
    assert [m.type for m in out["messages"]] == ["human", "ai"]
    assert out["messages"][-1].content == f"{route} here"
    assert "private" not in out  # declared by the sub-flow only


async def test_llm_mode_classifies_into_the_fixed_labels():
    doc = supervisor_flow(mode="llm", routes=[
        {"label": "orders", "flow": "orders_desk", "description": "parcels and orders"},
        {"label": "general", "flow": "general_desk", "description": "small talk"}])
    models = desk_models()
    out = await build(doc, DESKS, models).ainvoke(
        {"messages": [("user", "my parcel is late")]})
    assert out["route"] == "orders" and out["messages"][-1].content == "orders here"
    prompt = str(models.calls[0][0].content)
    assert "- orders: parcels and orders" in prompt
    assert "- general: small talk; or anything else" in prompt


async def test_an_interrupt_in_a_sub_flow_pauses_the_run_and_resumes_there(tmp_path):
    flows = Flows(sub_flow("orders_desk", "orders", approve=True),
                  sub_flow("general_desk", "general"))
    async with open_checkpointer(f"sqlite:///{tmp_path / 't.db'}") as saver:
        graph = build(supervisor_flow(), flows, saver=saver)
        config = {"configurable": {"thread_id": str(uuid.uuid4())}}
        out = await graph.ainvoke({"messages": [("user", "order 5 please")]}, config)
        [pending] = out["__interrupt__"]
        assert pending.value["kind"] == "approval"
        out = await graph.ainvoke(Command(resume=True), config)
        assert out["messages"][-1].content == "orders here" and out["route"] == "orders"
        # a second turn on the same thread goes through the supervisor again
        out = await graph.ainvoke({"messages": [("user", "thanks")]}, config)
        assert out["route"] == "general" and len(out["messages"]) == 4


def test_a_missing_flow_names_the_route_and_lists_the_flows():
    doc = supervisor_flow(routes=[{"label": "orders", "flow": "nowhere", "value": "o"},
                                  {"label": "general", "flow": "general_desk"}])
    with pytest.raises(FlowBuildError, match=r"routes\[0\]\.flow: no flow 'nowhere'; "
                                             r"flows: general_desk, orders_desk"):
        build(doc, DESKS)


def test_a_flow_that_would_run_itself_is_refused():
    loop = supervisor_flow(routes=[{"label": "again", "flow": "front", "value": "x"},
                                   {"label": "general", "flow": "general_desk"}])
    flows = Flows(loop, sub_flow("general_desk", "general"))
    with pytest.raises(FlowBuildError, match="front → front"):
        build(loop, flows)


def test_without_a_flow_source_the_build_says_so():
    with pytest.raises(FlowBuildError, match="no flow source"):
        compile_flow(load_flow(supervisor_flow()).flow,
                     ctx=BuildContext(models=desk_models()))


def test_rule_modes_need_values_and_labels_are_checked():
    doc = supervisor_flow(routes=[{"label": "orders", "flow": "orders_desk"},
                                  {"label": "general", "flow": "general_desk"}])
    with pytest.raises(FlowBuildError, match=r"routes\[0\] \(orders\) needs a 'value'"):
        build(doc, DESKS)
    with pytest.raises(Exception, match="default 'other' is not a route"):
        load_flow(supervisor_flow(default="other"))
