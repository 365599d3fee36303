"""`tool.sql@1` in compiled flows on the shipped demo database: graph logic with a scripted
model, and one end-to-end run with the bundled model through the real model service."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowBuildError, FlowValidationError
from flowloom.flows.loader import examples_dir, load_flow
from flowloom.flows.nodes import NODE_TYPES as FLOW_NODE_TYPES
from flowloom.flows.registry import NodeRegistry
from flowloom.flows.runtime import FlowRunner
from flowloom.tools import NODE_TYPES
from flowloom.tools.sql.demo_data import ensure_demo_db
from tests.fakes import ScriptedModels

REGISTRY = NodeRegistry([*FLOW_NODE_TYPES, *NODE_TYPES])


def sql_flow(**params: Any) -> dict[str, Any]:
    return {
        "schema_version": 1, "id": "sql_t", "name": "SQL test",
        "state": {"messages": {"type": "messages"}, "sql": {"type": "object"}},
        "nodes": [{"id": "ask", "type": "tool.sql@1", "params": {"output": "sql", **params}}],
        "edges": [{"source": "START", "target": "ask"}, {"source": "ask", "target": "END"}],
    }


def runner(doc: dict[str, Any], models: Any, home: Path) -> FlowRunner:
    flow = load_flow(doc, REGISTRY).flow
    graph = compile_flow(flow, registry=REGISTRY, ctx=BuildContext(models=models, data_dir=home))
    return FlowRunner(flow, graph)


async def test_flow_answers_with_rows_and_a_table(tmp_path: Path) -> None:
    fixed = ("```sql\nSELECT categories.name, COUNT(*) AS products FROM categories JOIN "
             "products ON products.category_id = categories.id GROUP BY categories.name\n```")
    models = ScriptedModels(["SELECT nme FROM categories", fixed])
    result = await runner(sql_flow(), models, tmp_path).ainvoke(
        "How many products are in each category?")
    sql = result.values["sql"]
    assert sql["attempts"] == 2 and sql["refused"] is None
    assert sql["columns"] == ["name", "products"] and len(sql["rows"]) == 8
    conn = sqlite3.connect(tmp_path / "demo.sqlite")  # built on first use in the data dir
    gold = conn.execute("SELECT c.name, COUNT(*) FROM categories c JOIN products p "
                        "ON p.category_id = c.id GROUP BY c.name").fetchall()
    assert sorted(map(tuple, sql["rows"])) == sorted(gold)
    answer = result.values["messages"][-1]
    assert isinstance(answer, AIMessage) and "| name | products |" in answer.text
    assert "```sql" in answer.text and result.output == answer.text
    # the refused first draft was fed back, naming the column it meant
    assert "categories.name" in str(models.calls[1][-1].content)


async def test_refusal_is_an_answer_not_a_crash(tmp_path: Path) -> None:
    models = ScriptedModels(lambda _m: "DROP TABLE orders")
    flow = runner(sql_flow(retries=1), models, tmp_path)
    assert not (tmp_path / "demo.sqlite").exists()  # compiling builds no database
    result = await flow.ainvoke("drop orders")
    assert result.values["sql"]["refused"] and result.values["sql"]["attempts"] == 2
    assert "could not answer" in result.output
    conn = sqlite3.connect(tmp_path / "demo.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM orders").fetchone() == (300,)


async def test_result_shows_in_the_chat_sql_panel(tmp_path: Path) -> None:
    from flowloom.ui.app._view_panels import sql_result

    models = ScriptedModels(["SELECT first_name FROM customers WHERE id < 3 ORDER BY id"])
    result = await runner(sql_flow(answer=False), models, tmp_path).ainvoke("first two")
    shown = sql_result(result.values)
    assert shown is not None and shown["columns"] == ["first_name"]
    assert len(shown["rows"]) == 2 and shown["sql"].startswith("SELECT")
    assert [m.type for m in result.values["messages"]] == ["human"]  # answer=False


def test_bad_params_and_names_are_reported(tmp_path: Path) -> None:
    with pytest.raises(FlowValidationError, match="max_rows"):
        load_flow(sql_flow(max_rows=0), REGISTRY)
    with pytest.raises(FlowValidationError, match="valid: database"):
        load_flow(sql_flow(databse="demo"), REGISTRY)
    with pytest.raises(FlowBuildError, match="valid: demo, shop"):
        (tmp_path / "connections.yaml").write_text("shop: sqlite:///nowhere.db\n")
        runner(sql_flow(database="nope"), ScriptedModels([]), tmp_path)
    with pytest.raises(FlowBuildError, match="not in the gateway config"):
        runner(sql_flow(model="gpt-9"), ScriptedModels([]), tmp_path)


async def test_named_connection_and_a_missing_file(tmp_path: Path) -> None:
    shop = ensure_demo_db(tmp_path / "elsewhere")
    (tmp_path / "connections.yaml").write_text(f"shop: sqlite:///{shop}\n"
                                               f"gone: sqlite:///{tmp_path}/gone.db\n")
    models = ScriptedModels(lambda _m: "SELECT COUNT(*) FROM suppliers")
    result = await runner(sql_flow(database="shop"), models, tmp_path).ainvoke("suppliers?")
    assert result.values["sql"]["rows"] == [[12]]
    assert not (tmp_path / "demo.sqlite").exists()
    from flowloom.flows.errors import FlowRunError

    with pytest.raises(FlowRunError, match="does not exist"):
        await runner(sql_flow(database="gone"), models, tmp_path).ainvoke("suppliers?")


def analyst(sentence: str) -> Any:
    """SQL for the query prompt; `sentence` for the prompt that asks for it in words."""
    def reply(messages: list[Any]) -> str:
        if "one short sentence" in str(messages[0].content):
            assert "| orders |" in str(messages[-1].content)  # the rows it is to state
            return sentence
        return "SELECT COUNT(*) AS orders FROM orders"
    return reply


@pytest.mark.parametrize(("sentence", "lead"), [
    ("There are 300 orders.", "There are 300 orders.\n\nRead orders"),
    # a sentence that leaves out the value is not trusted: the template says it
    ("There are many orders.", "The answer is **300** (orders). Read orders"),
    ("SELECT COUNT(*) FROM orders", "The answer is **300** (orders)."),
])
async def test_example_flow_loads_and_runs_scripted(tmp_path: Path, sentence: str,
                                                    lead: str) -> None:
    models = ScriptedModels(analyst(sentence))
    doc = examples_dir() / "sql_analyst.json"
    flow = load_flow(doc, REGISTRY).flow
    graph = compile_flow(flow, registry=REGISTRY,
                         ctx=BuildContext(models=models, data_dir=tmp_path))
    result = await FlowRunner(flow, graph).ainvoke("How many orders are there?")
    assert result.values["sql"]["rows"] == [[300]]
    assert result.output.startswith(lead) and "```sql\nSELECT" in result.output
    assert len(models.calls) == 2  # the query, then the sentence


@pytest.mark.slow
async def test_bundled_model_answers_an_easy_question(model_home: Path,
                                                      running_model_service: str) -> None:
    from flowloom.backends.context import default_build_context

    models = default_build_context(home=model_home).models
    doc = sql_flow()
    flow = load_flow(doc, REGISTRY).flow
    graph = compile_flow(flow, registry=REGISTRY,
                         ctx=BuildContext(models=models, data_dir=model_home))
    result = await FlowRunner(flow, graph).ainvoke("How many customers live in Norway?")
    sql = result.values["sql"]
    gold = sqlite3.connect(model_home / "demo.sqlite").execute(
        "SELECT COUNT(*) FROM customers WHERE country = 'Norway'").fetchall()
    assert sql["refused"] is None and sql["error"] is None, sql
    assert [tuple(r) for r in sql["rows"]] == gold, sql["sql"]
    assert str(gold[0][0]) in result.output


async def test_few_shot_examples_linking_and_timeout_params(tmp_path: Path) -> None:
    models = ScriptedModels(lambda _m: "SELECT COUNT(*) FROM suppliers",
                            aliases=("local", "local-embed"))
    examples = [{"question": "How many orders?", "sql": "SELECT COUNT(*) FROM orders"}]
    doc = sql_flow(examples=examples, link_tables=1, timeout_s=3, answer=False)
    result = await runner(doc, models, tmp_path).ainvoke("How many suppliers?")
    assert result.values["sql"]["rows"] == [[12]]
    sent = models.calls[0]
    assert [m.type for m in sent] == ["system", "human", "ai", "human"]
    assert str(sent[1].content) == "Question: How many orders?"
    # one table picked by similarity, plus its foreign-key neighbours: not all seven
    tables = str(sent[0].content).count("CREATE TABLE")
    assert 1 < tables < 7, sent[0].content


def test_linking_needs_an_embedding_model(tmp_path: Path) -> None:
    with pytest.raises(FlowBuildError, match="embed_model 'local-embed'"):
        runner(sql_flow(link_tables=2), ScriptedModels([], aliases=("local",)), tmp_path)
    with pytest.raises(FlowValidationError, match="examples"):
        load_flow(sql_flow(examples=[{"question": "q"}]), REGISTRY)
