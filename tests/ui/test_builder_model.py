"""The builder's logic without Streamlit: canvas round trips, ids, renames, problems
pinned to nodes and edges, undo, forms from Params schemas, run traces."""

from __future__ import annotations

import copy
import json

import pytest
from streamlit_flow import StreamlitFlowEdge, StreamlitFlowNode

from flowloom.flows.format import Flow, dump_flow
from flowloom.flows.loader import examples_dir
from flowloom.flows.registry import default_registry
from flowloom.ui.app import builder_model as bm
from flowloom.ui.app._builder_forms import form_fields, model_options, parse_json
from flowloom.ui.app._builder_run import RunTrace, run_input

CATALOGUE = {t["type"]: t for t in default_registry().catalogue()}


def example(name: str) -> dict:
    return json.loads((examples_dir() / f"{name}.json").read_text())


def canvas_round_trip(doc: dict, **kwargs) -> dict:
    """What the browser sends back for an untouched canvas: the component's own dicts."""
    nodes, edges = bm.to_canvas(doc, **kwargs)
    flow_nodes = [StreamlitFlowNode(**copy.deepcopy(n)).asdict() for n in nodes]
    flow_edges = [StreamlitFlowEdge(**copy.deepcopy(e)).asdict() for e in edges]
    return bm.from_canvas(doc, flow_nodes, flow_edges)


@pytest.mark.parametrize("name", ["chat", "triage"])
def test_canvas_round_trip_keeps_the_document(name):
    doc = example(name)
    pinned = bm.pin_problems([{"path": "nodes[0].params.model", "message": "x"},
                              {"path": "edges[1].condition", "message": "y"}], doc)
    assert canvas_round_trip(doc, pinned=pinned, routers=["classify"]) == doc
    no_layout = {**copy.deepcopy(doc), "layout": {"nodes": {}}}
    assert canvas_round_trip(no_layout) == no_layout


def test_canvas_draws_ends_positions_conditions_and_problems():
    doc = example("triage")
    pinned = bm.pin_problems([{"path": "nodes[1].params.temperature", "message": "too hot"},
                              {"path": "edges[2].target", "message": "bad"}], doc)
    nodes, edges = bm.to_canvas(doc, pinned, routers=["classify"])
    by_id = {n["id"]: n for n in nodes}
    assert by_id["START"]["node_type"] == "input" and by_id["END"]["node_type"] == "output"
    assert not by_id["START"]["deletable"] and not by_id["END"]["draggable"]
    assert by_id["classify"]["pos"] == (doc["layout"]["nodes"]["classify"]["x"],
                                        doc["layout"]["nodes"]["classify"]["y"])
    assert "border" in by_id["technical"]["style"] and "⚠" in by_id["technical"]["data"][
        "content"]
    assert "border" not in by_id["billing"]["style"]
    labels = [e["label"] for e in edges]
    assert labels[1] == "technical" and labels[2] == "⚠ billing" and labels[0] == ""
    assert edges[2]["style"]["stroke"] == bm.ERROR_COLOR and not edges[1]["style"]


def test_canvas_moves_deletions_and_new_connections_reach_the_document():
    doc = example("chat")
    doc, new_id = bm.add_node(doc, CATALOGUE["router.condition@1"])
    nodes, edges = bm.to_canvas(doc)
    nodes = [StreamlitFlowNode(**n).asdict() for n in nodes]
    edges = [StreamlitFlowEdge(**e).asdict() for e in edges]
    for n in nodes:
        if n["id"] == "answer":
            n["position"] = {"x": 500.5, "y": 42}
    edges = [e for e in edges if e["target"] != "END"]  # deleted on the canvas
    edges.append({"id": "st-flow-edge_START-condition", "source": "START", "target": new_id})
    edges.append({"id": "st-flow-edge_END-x", "source": "END", "target": "answer"})  # refused
    out = bm.from_canvas(doc, nodes, edges)
    assert out["layout"]["nodes"]["answer"] == {"x": 500.5, "y": 42.0}
    assert out["edges"] == [{"source": "START", "target": "answer"},
                            {"source": "START", "target": new_id}]
    gone = bm.from_canvas(out, [n for n in nodes if n["id"] != "answer"], edges)
    assert [n["id"] for n in gone["nodes"]] == [new_id]
    assert "answer" not in gone["layout"]["nodes"]
    assert all("answer" not in (e["source"], e["target"]) for e in gone["edges"])


def test_a_router_edge_drawn_on_the_canvas_takes_a_free_route_label():
    doc = example("triage")
    doc = bm.remove_edge(doc, 2)  # classify -> billing [billing]
    edges = [StreamlitFlowEdge(**e).asdict() for e in bm.to_canvas(doc)[1]]
    edges.append({"id": "new", "source": "classify", "target": "billing"})
    nodes = [StreamlitFlowNode(**n).asdict() for n in bm.to_canvas(doc)[0]]
    out = bm.from_canvas(doc, nodes, edges)
    assert out["edges"][-1] == {"source": "classify", "target": "billing",
                                "condition": "billing"}


def test_ids_are_unique_and_valid():
    doc = bm.new_document("f", "F")
    ids = []
    for _ in range(3):
        doc, node_id = bm.add_node(doc, CATALOGUE["llm.chat@1"])
        ids.append(node_id)
    assert ids == ["chat", "chat_2", "chat_3"]
    assert doc["nodes"][0]["params"] == {
        "model": "local", "system": "", "system_prompt": None, "prompt": "",
        "prompt_ref": None, "history": True, "temperature": 0.2, "max_tokens": 512,
        "streaming": True, "output": "messages", "context": "", "list_sources": True}
    assert bm.unique_id("9 lives!", []) == "n_9_lives"
    assert bm.unique_id("START", []) == "START_2"
    xs = [doc["layout"]["nodes"][i]["x"] for i in ids]
    assert xs == sorted(set(xs))  # each new node right of the last


def test_rename_updates_edges_and_layout_and_refuses_bad_ids():
    doc = example("triage")
    out = bm.rename_node(doc, "classify", "route_it")
    assert [n["id"] for n in out["nodes"]][0] == "route_it"
    assert [e["source"] for e in out["edges"]].count("route_it") == 3
    assert out["edges"][0] == {"source": "START", "target": "route_it"}
    assert list(out["layout"]["nodes"])[0] == "route_it"
    assert out["layout"]["nodes"]["route_it"] == doc["layout"]["nodes"]["classify"]
    assert doc["nodes"][0]["id"] == "classify"  # the input is untouched
    for bad in ("billing", "END", "has space", ""):
        with pytest.raises(bm.BuilderError):
            bm.rename_node(doc, "classify", bad)
    assert bm.rename_node(doc, "classify", "classify") == doc


def test_edges_are_checked_when_added_and_removed_with_their_nodes():
    doc = example("chat")
    with pytest.raises(bm.BuilderError, match="exists already"):
        bm.add_edge(doc, "START", "answer")
    with pytest.raises(bm.BuilderError, match="END cannot"):
        bm.add_edge(doc, "END", "answer")
    with pytest.raises(bm.BuilderError, match="'nope' is not a node; nodes are: answer"):
        bm.add_edge(doc, "answer", "nope")
    out = bm.remove_node(doc, "answer")
    assert out["nodes"] == [] and out["edges"] == [] and out["layout"]["nodes"] == {}
    assert bm.set_condition(doc, 1, "x")["edges"][1] == {"source": "answer", "target": "END",
                                                         "condition": "x"}
    assert bm.set_condition(bm.set_condition(doc, 1, "x"), 1, None) == doc


def test_problem_paths_map_to_nodes_and_edges():
    doc = example("triage")
    assert bm.locate("nodes[2].params.temperature", doc) == bm.Location(
        "node", node_id="billing", field="temperature")
    assert bm.locate("nodes[0]", doc) == bm.Location("node", node_id="classify")
    assert bm.locate("edges[1].target", doc) == bm.Location("edge", edge_index=1)
    assert bm.locate("layout.nodes.general", doc).node_id == "general"
    for flow_level in ("edges", "io.input", "", "nodes[99].id", "layout.nodes.ghost"):
        assert bm.locate(flow_level, doc).kind == "flow"
    pinned = bm.pin_problems([
        {"path": "nodes[2].params.temperature", "message": "a"},
        {"path": "edges[1].target", "message": "b"},
        {"path": "io.input", "message": "c"}], doc)
    assert list(pinned.nodes) == ["billing"] and list(pinned.edges) == [1]
    assert [p["message"] for p in pinned.flow] == ["c"] and pinned.count() == 3


def test_undo_is_bounded_and_skips_repeats():
    stack: list[dict] = []
    docs = [bm.new_document(f"f{i}", "F") for i in range(5)]
    for d in docs:
        bm.push_undo(stack, d, limit=3)
    bm.push_undo(stack, docs[-1], limit=3)
    assert [d["id"] for d in stack] == ["f2", "f3", "f4"]
    docs[-1]["name"] = "changed later"
    assert bm.pop_undo(stack)["name"] == "F"  # a copy was kept
    assert [bm.pop_undo(stack)["id"], bm.pop_undo(stack)["id"]] == ["f3", "f2"]
    assert bm.pop_undo(stack) is None


def test_form_fields_from_params_schemas():
    chat = {f.name: f for f in form_fields(CATALOGUE["llm.chat@1"]["params_schema"])}
    assert chat["model"].widget == "model"
    assert chat["system"].widget == "textarea" and chat["output"].widget == "text"
    assert (chat["temperature"].widget, chat["temperature"].minimum,
            chat["temperature"].maximum) == ("number", 0.0, 2.0)
    assert (chat["max_tokens"].widget, chat["max_tokens"].minimum) == ("integer", 1)
    assert chat["history"].widget == "checkbox" and chat["history"].default is True
    router = {f.name: f for f in form_fields(CATALOGUE["router.condition@1"]["params_schema"])}
    assert router["mode"].widget == "select"
    assert router["mode"].options == ("equals", "contains", "regex", "llm")
    assert router["routes"].widget == "json" and router["routes"].required
    prompt = {f.name: f for f in form_fields(CATALOGUE["prompt.template@1"]["params_schema"])}
    assert prompt["template"].nullable and prompt["template"].widget == "textarea"
    hinted = form_fields({"properties": {
        "llm": {"type": "string", "json_schema_extra": {"widget": "model"}},
        "n": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
        "kind": {"anyOf": [{"const": "a"}, {"const": "b"}, {"type": "null"}]},
        "embed_model": {"type": "string"}}})
    assert [f.widget for f in hinted] == ["model", "integer", "select", "model"]
    assert (hinted[1].minimum, hinted[1].maximum) == (1, 9)
    assert hinted[2].options == (None, "a", "b")
    assert parse_json('[{"label": "x"}]') == ([{"label": "x"}], None)
    value, error = parse_json('{"a": ')
    assert value is None and error.startswith("not valid JSON") and "line 1" in error
    assert model_options(["local", "big"], "gone") == ["gone", "local", "big"]


def test_export_is_the_servers_dump():
    doc = example("triage")
    shuffled = {k: doc[k] for k in reversed(list(doc))}
    assert bm.canonical_json(shuffled) == dump_flow(Flow.model_validate(doc))
    assert json.loads(bm.canonical_json({"nodes": 3})) == {"nodes": 3}
    assert bm.is_editable(doc) and not bm.is_editable({"nodes": [1]})
    copied = bm.duplicate_document(doc, ["triage-copy"])
    assert copied["id"] == "triage-copy_2" and copied["nodes"] == doc["nodes"]


def test_run_input_and_trace():
    chat = example("chat")
    assert run_input(chat, "hi") == {"messages": [{"role": "user", "content": "hi"}]}
    plain = {"state": {"q": {"type": "string"}}, "io": {}}
    assert run_input(plain, "hi") == {"q": "hi"}
    assert run_input(plain, '{"q": 1}', as_json=True) == {"q": 1}
    with pytest.raises(ValueError, match="no input field"):
        run_input({"state": {}}, "hi")
    trace = RunTrace()
    trace.feed("metadata", {"run_id": "r1"}, at=10.0)
    trace.feed("debug", {"type": "task", "timestamp": "2025-01-01T00:00:00+00:00",
                         "payload": {"id": "t1", "name": "answer"}}, at=10.1)
    trace.feed("updates", {"answer": {"messages": ["x"]}}, at=10.4)
    trace.feed("debug", {"type": "task_result", "timestamp": "2025-01-01T00:00:00.250+00:00",
                         "payload": {"id": "t1", "name": "answer", "error": None,
                                     "result": [["messages", ["x"]]]}}, at=10.5)
    trace.feed("updates", {"other": {"a": 1}}, at=11.0)
    trace.feed("error", {"error": "ValueError", "message": "boom"}, at=11.5)
    assert trace.run_id == "r1"
    assert [(s.name, s.output) for s in trace.steps] == [
        ("answer", {"messages": ["x"]}), ("other", {"a": 1})]
    assert trace.steps[0].duration_ms == pytest.approx(250)
    assert trace.steps[1].duration_ms == pytest.approx(500)  # arrival gap
    assert trace.errors == ["ValueError: boom"]


def test_server_listed_params_get_a_server_widget():
    fields = {f.name: f for f in form_fields(CATALOGUE["retriever.search@1"]["params_schema"])}
    assert (fields["kb"].widget, fields["kb"].source) == ("server", "knowledge_bases")
    assert fields["mode"].widget == "select" and fields["top_k"].widget == "integer"
