"""Causal queries in flows: datasets by name (datasets.yaml, or the shipped `demo`), the
`tool.causal` node, and the catalogue's `causal_query` tool in an agent (scripted model:
graph logic; the numbers come from the real fitted model)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowBuildError
from flowloom.flows.loader import load_flow
from flowloom.tools.causal_tool import demo_dir, resolve_dataset
from tests.agents.test_tools_agent import scripted


@pytest.fixture
def home(tmp_path):
    rng = np.random.default_rng(7)
    z = rng.normal(size=2000)
    x = 0.8 * z + rng.normal(size=2000)
    y = 2.0 * x + 1.5 * z + rng.normal(scale=0.5, size=2000)
    pd.DataFrame({"z": z, "x": x, "y": y}).to_csv(tmp_path / "toy.csv", index=False)
    (tmp_path / "datasets.yaml").write_text(
        "toy:\n  csv: toy.csv\n  graph: 'z -> x; z -> y; x -> y'\n")
    return tmp_path


def causal_flow(**params) -> dict:
    return {"schema_version": 1, "id": "causal_test", "name": "Causal test",
            "state": {"messages": {"type": "messages"}, "causal": {"type": "object"}},
            "nodes": [{"id": "q", "type": "tool.causal@1", "params": {
                "dataset": "toy", "kind": "effect", "treatment": "x", "outcome": "y",
                "value": 1.0, "baseline": 0.0, **params}}],
            "edges": [{"source": "START", "target": "q"}, {"source": "q", "target": "END"}]}


async def test_the_node_answers_with_numbers_and_a_reading(home):
    graph = compile_flow(load_flow(causal_flow()).flow, ctx=BuildContext(data_dir=home))
    out = await graph.ainvoke({"messages": [("user", "effect of x on y?")]})
    numbers = out["causal"]["numbers"]
    assert numbers["effect"] == pytest.approx(2.0, rel=0.05)
    assert out["messages"][-1].content == out["causal"]["reading"]


def test_datasets_are_names_and_errors_list_the_valid_ones(home):
    with pytest.raises(FlowBuildError, match="valid: demo, toy"):
        compile_flow(load_flow(causal_flow(dataset="nope")).flow,
                     ctx=BuildContext(data_dir=home))
    with pytest.raises(FlowBuildError, match="never a path"):
        compile_flow(load_flow(causal_flow(dataset="/etc/passwd")).flow,
                     ctx=BuildContext(data_dir=home))
    demo = resolve_dataset("demo", home)
    assert demo.csv == demo_dir() / "churn.csv" and "->" in demo.graph


async def test_an_unknown_column_is_a_run_error_naming_it(home):
    from flowloom.flows.errors import FlowRunError

    graph = compile_flow(load_flow(causal_flow(treatment="w")).flow,
                         ctx=BuildContext(data_dir=home))
    with pytest.raises(FlowRunError, match="'w'"):
        await graph.ainvoke({"messages": [("user", "?")]})


async def test_the_agent_fills_the_query_constrained_to_the_columns(home):
    doc = {"schema_version": 1, "id": "ca", "name": "Causal agent",
           "state": {"messages": {"type": "messages"}, "agent_steps": {"type": "array"}},
           "nodes": [{"id": "agent", "type": "agent.tools@1", "params": {
               "mode": "choose", "select": "model",
               "tools": [{"name": "causal_query", "config": {"dataset": "toy"}, "examples": [
                   {"request": "What does z do to y?",
                    "args": {"kind": "effect", "treatment": "z", "outcome": "y"}}]}]}}],
           "edges": [{"source": "START", "target": "agent"},
                     {"source": "agent", "target": "END"}]}
    schemas = []

    def agent(messages, turn):
        first = str(messages[0].content)
        if "Which tool should be used" in first:
            return "causal_query"
        if "Write the arguments for the tool causal_query" in first:
            assert "one of: x, y, z" in first
            # the worked example comes first, as an earlier turn
            assert [m.content for m in messages[1:3]] == [
                "What does z do to y?",
                '{"kind": "effect", "treatment": "z", "outcome": "y"}']
            return json.dumps({"kind": "effect", "treatment": "x", "outcome": "y",
                               "value": 1, "baseline": 0})
        assert "causal_query(" in first
        return "Raising x by one raises y by about 2."

    models = scripted(agent)
    from tests.agents.test_approval import on_generate

    on_generate(models, lambda kw: schemas.append(kw.get("response_format")))
    graph = compile_flow(load_flow(doc).flow, ctx=BuildContext(models=models,
                                                               data_dir=home))
    out = await graph.ainvoke({"messages": [("user", "What does x do to y?")]})
    [step] = out["agent_steps"]
    assert step["result"]["numbers"]["effect"] == pytest.approx(2.0, rel=0.05)
    forms = [f for f in schemas if f]
    assert forms[0]["json_schema"]["schema"]["properties"]["outcome"]["enum"] == ["x", "y",
                                                                                   "z"]


async def test_a_binary_treatments_guessed_levels_are_replaced_and_said(tmp_path):
    rng = np.random.default_rng(3)
    z = rng.normal(size=2000)
    t = (z + rng.normal(size=2000) > 0).astype(int)
    y = 1.5 * t + z + rng.normal(scale=0.3, size=2000)
    pd.DataFrame({"z": z, "t": t, "y": y}).to_csv(tmp_path / "bin.csv", index=False)
    (tmp_path / "datasets.yaml").write_text(
        "bin:\n  csv: bin.csv\n  graph: 'z -> t; z -> y; t -> y'\n")
    doc = causal_flow(dataset="bin", treatment="t", value=0.9, baseline=0.1)
    graph = compile_flow(load_flow(doc).flow, ctx=BuildContext(data_dir=tmp_path))
    out = await graph.ainvoke({"messages": [("user", "?")]})
    result = out["causal"]
    assert result["numbers"]["effect"] == pytest.approx(1.5, rel=0.05)  # 1 against 0
    assert "value 0.9 and baseline 0.1 was not used" in result["reading"]


def test_worked_examples_are_validated_against_the_tools_args():
    from flowloom.flows.errors import FlowValidationError

    doc = {"schema_version": 1, "id": "ca", "name": "Causal agent",
           "state": {"messages": {"type": "messages"}, "agent_steps": {"type": "array"}},
           "nodes": [{"id": "agent", "type": "agent.tools@1", "params": {"tools": [
               {"name": "causal_query", "examples": [
                   "a plain request",
                   {"request": "effect?", "args": {"kind": "guess", "outcome": "y"}}]}]}}],
           "edges": [{"source": "START", "target": "agent"},
                     {"source": "agent", "target": "END"}]}
    with pytest.raises(FlowValidationError, match=r"examples\[1\]\.args: kind"):
        load_flow(doc)


async def test_a_randomised_treatment_needs_no_adjustment():
    """price_increase in the demo is randomised (no backdoor path): the backdoor estimate
    is the plain regression, not a propensity model with no covariates (it raised)."""
    from flowloom.tools.causal import CausalQuery, load_table, parse_graph, run_query

    table = load_table(csv=demo_dir() / "churn.csv")
    graph = parse_graph((demo_dir() / "churn.graph").read_text())
    result = run_query(table, graph, CausalQuery(kind="effect", treatment="price_increase",
                                                 outcome="churn_score"))
    numbers = result["numbers"]
    assert numbers["effect"] == pytest.approx(0.095, rel=0.05)  # the README's truth
    assert numbers["backdoor_method"] == "backdoor.linear_regression"
    assert numbers["backdoor_effect"] == pytest.approx(0.095, rel=0.15)
