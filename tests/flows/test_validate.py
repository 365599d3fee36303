"""Validation reports every problem at once, each with its JSON path and valid choices."""

from __future__ import annotations

import pytest

from flowloom.flows.errors import FlowLoadError, FlowValidationError
from flowloom.flows.loader import check_flow, load_flow


def problems_of(doc):
    loaded, problems = check_flow(doc)
    assert loaded is None
    return {p.path: p for p in problems}


def test_valid_linear_flow(make_flow):
    doc = make_flow(
        nodes=[{"id": "a", "type": "state.set@1", "params": {"values": {"text": "x"}}}],
        edges=[{"source": "START", "target": "a"}, {"source": "a", "target": "END"}],
    )
    loaded, problems = check_flow(doc)
    assert problems == []
    assert loaded is not None and loaded.flow.node_ids() == ["a"]


def test_unknown_type_bad_params_dangling_edge_all_reported(make_flow):
    doc = make_flow(
        nodes=[
            {"id": "a", "type": "llm.chatt@1", "params": {}},
            {"id": "b", "type": "llm.chat@1", "params": {"temperature": 9, "tokens": 3}},
            {"id": "c", "type": "llm.chat@7", "params": {}},
        ],
        edges=[{"source": "START", "target": "a"}, {"source": "a", "target": "retreive"},
               {"source": "b", "target": "END"}],
    )
    found = problems_of(doc)
    assert "unknown node type 'llm.chatt@1'" in found["nodes[0].type"].message
    assert found["nodes[0].type"].choices[0] == "llm.chat@1"
    assert "less than or equal to 2" in found["nodes[1].params.temperature"].message
    assert found["nodes[1].params.tokens"].choices == ("max_tokens",)
    assert "has no version 7" in found["nodes[2].type"].message
    assert found["nodes[2].type"].choices == ("llm.chat@1",)
    assert "'retreive' is not a node" in found["edges[1].target"].message
    assert "END" in found["edges[1].target"].choices


def test_literal_choices_and_duplicate_ids(make_flow):
    doc = make_flow(
        nodes=[
            {"id": "r", "type": "router.condition@1",
             "params": {"mode": "equal", "routes": [{"label": "x", "value": "1"}]}},
            {"id": "r", "type": "state.set@1", "params": {}},
        ],
        edges=[{"source": "START", "target": "r"}],
    )
    found = problems_of(doc)
    assert found["nodes[0].params.mode"].choices == ("equals", "contains", "regex", "llm")
    assert "duplicate node id 'r'" in found["nodes[1].id"].message


def test_graph_problems(make_flow):
    doc = make_flow(
        nodes=[
            {"id": "r", "type": "router.condition@1",
             "params": {"routes": [{"label": "x", "value": "1"}, {"label": "y", "value": "2"}]}},
            {"id": "lonely", "type": "state.set@1", "params": {}},
            {"id": "loop1", "type": "state.set@1", "params": {}},
            {"id": "loop2", "type": "state.set@1", "params": {}},
            {"id": "sink", "type": "state.set@1", "params": {}},
        ],
        edges=[
            {"source": "START", "target": "r"},
            {"source": "r", "target": "loop1", "condition": "x"},
            {"source": "r", "target": "sink", "condition": "z"},
            {"source": "r", "target": "END", "condition": "default"},
            {"source": "loop1", "target": "loop2"},
            {"source": "loop2", "target": "loop1"},
        ],
    )
    _, problems = check_flow(doc)
    text = [str(p) for p in problems]
    assert any(t.startswith("edges[2].condition: router 'r' never returns 'z'") for t in text)
    assert any("can return 'y' but no edge has that condition" in t for t in text)
    assert any("cycle loop1 -> loop2 -> loop1 has no conditional exit" in t for t in text)
    assert any(t == "nodes[1]: node 'lonely' is not reachable from START" for t in text)
    assert any(t == "nodes[4]: no path from node 'sink' to END" for t in text)


def test_cycle_with_router_exit_is_fine(make_flow):
    doc = make_flow(
        nodes=[
            {"id": "work", "type": "state.set@1", "params": {"values": {"log": "step"}}},
            {"id": "check", "type": "router.condition@1",
             "params": {"field": "text", "routes": [{"label": "again", "value": "more"}]}},
        ],
        edges=[
            {"source": "START", "target": "work"},
            {"source": "work", "target": "check"},
            {"source": "check", "target": "work", "condition": "again"},
            {"source": "check", "target": "END", "condition": "default"},
        ],
    )
    assert check_flow(doc)[1] == []


def test_state_fields_and_templates_are_checked(make_flow):
    doc = make_flow(
        nodes=[
            {"id": "a", "type": "llm.chat@1", "params": {"prompt": "Q: {{ qestion }}"}},
            {"id": "b", "type": "state.set@1", "params": {"templates": {"text": "{{ oops"}}},
        ],
        edges=[{"source": "START", "target": "a"}, {"source": "a", "target": "b"},
               {"source": "b", "target": "END"}],
        io={"input": "nope"},
    )
    found = problems_of(doc)
    assert "reads state field 'qestion'" in found["nodes[0].params.prompt"].message
    assert "template syntax error" in found["nodes[1].params.templates"].message
    assert "messages" in found["io.input"].choices


def test_conditions_only_on_router_edges_and_start_needed(make_flow):
    doc = make_flow(
        nodes=[{"id": "a", "type": "state.set@1", "params": {}}],
        edges=[{"source": "a", "target": "END", "condition": "yes"}],
    )
    found = problems_of(doc)
    assert "is not a router" in found["edges[0].condition"].message
    assert "no edge leaves START" in found["edges"].message


def test_structural_errors_have_paths(make_flow):
    doc = make_flow(nodes=[{"id": "a"}], edges=[{"source": "START"}], recursion_limit=0)
    found = problems_of(doc)
    assert found["nodes[0].type"].message == "required field is missing"
    assert found["edges[0].target"].message == "required field is missing"
    assert "recursion_limit" in found


def test_load_flow_raises_with_every_problem(make_flow):
    doc = make_flow(nodes=[{"id": "a", "type": "nope@1"}], edges=[])
    with pytest.raises(FlowValidationError) as info:
        load_flow(doc)
    assert len(info.value.problems) == 2
    assert "nodes[0].type" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"nodes": [', "not valid JSON"),
        ("[1, 2]", "top level is a JSON array"),
        ('{"hello": 1}', "not a flow document"),
    ],
)
def test_not_a_flow(tmp_path, text, message):
    path = tmp_path / "f.json"
    path.write_text(text)
    with pytest.raises(FlowLoadError, match=message):
        load_flow(path)
