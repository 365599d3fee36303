"""The agent examples end to end on the bundled model (no mocks): the support router
sends a shop-data question to the SQL flow and a flowloom question to the RAG flow (over
the `demo` knowledge base made from the shipped docs), each run as a subgraph; the
assertions are on routes, state and one fact the database holds."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import replace

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from flowloom.backends.context import default_build_context
from flowloom.flows.compiler import compile_flow
from flowloom.flows.loader import FolderFlows, examples_dir, load_flow
from flowloom.flows.runtime import FlowRunner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def router(model_home, running_model_service):
    from flowloom.backends.server.kbs_api import demo_corpus
    from flowloom.retrievers.errors import KnowledgeBaseExists
    from flowloom.retrievers.kb import close_knowledge_bases, knowledge_bases

    ctx = replace(default_build_context(home=model_home), flows=FolderFlows(examples_dir()))
    kbs = knowledge_bases(model_home, ctx.models)
    with contextlib.suppress(KnowledgeBaseExists):
        kbs.create("demo")
    await kbs.aingest("demo", sorted(demo_corpus().glob("*.md")))  # unchanged files: no-op
    flow = load_flow(examples_dir() / "support_router.json").flow
    yield FlowRunner(flow, compile_flow(flow, ctx=ctx, checkpointer=InMemorySaver()))
    # Milvus Lite lets one process open a file: later tests' servers (flowloom up) open it
    close_knowledge_bases(model_home)


async def test_a_data_question_goes_to_the_sql_flow(router, model_home):
    from flowloom.tools.sql.demo_data import ensure_demo_db

    orders = sqlite3.connect(ensure_demo_db(model_home)).execute(
        "SELECT COUNT(*) FROM orders").fetchone()[0]
    result = await router.ainvoke("How many orders are there?")
    assert result.values["route"] == "data"
    assert result.values["sql"]["rows"] == [[orders]]
    assert str(orders) in result.output


async def test_a_flowloom_question_goes_to_the_rag_flow(router):
    result = await router.ainvoke("How does flowloom validate a flow?")
    assert result.values["route"] == "docs"
    documents = result.values["documents"]
    # the multilingual e5 scores overview.md (which names validation) about as high as
    # flows.md's Validation section (tests/retrievers/test_kb.py): either may come first
    assert "flows.md" in [d["filename"] for d in documents[:2]]
    assert "Sources:" in result.output and "sql" not in result.values


async def test_the_causal_analyst_turns_a_question_into_an_effect_query(model_home,
                                                                         running_model_service):
    ctx = default_build_context(home=model_home)
    flow = load_flow(examples_dir() / "causal_analyst.json").flow
    runner = FlowRunner(flow, compile_flow(flow, ctx=ctx, checkpointer=InMemorySaver()))
    result = await runner.ainvoke("What is the effect of the loyalty discount on the churn "
                                  "score?")
    [step] = result.values["agent_steps"]
    assert step["tool"] == "causal_query"
    assert {k: step["args"].get(k) for k in ("kind", "treatment", "outcome")} == {
        "kind": "effect", "treatment": "discount", "outcome": "churn_score"}
    # the demo's true effect is -0.13 (tools/demo_data/causal/README.md)
    assert step["result"]["numbers"]["effect"] == pytest.approx(-0.13, rel=0.05)
    assert result.output.strip()
