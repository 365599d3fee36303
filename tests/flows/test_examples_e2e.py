"""Every example flow, run end to end on the bundled model (no mocks).

Assertions are on state and structure (routes, stored messages), not on model wording,
except for one fact a 0.5B model gets right.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from flowloom.flows.checkpoint import open_checkpointer
from flowloom.flows.loader import examples_dir

pytestmark = pytest.mark.slow


def cli(home, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWLOOM_HOME": str(home)}
    env.pop("FLOWLOOM_MODEL_URL", None)  # find the running service as a user's shell would
    return subprocess.run([sys.executable, "-m", "flowloom.ui.cli", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_chat_answers_and_remembers_the_thread(model_home, running_model_service):
    chat = str(examples_dir() / "chat.json")
    first = cli(model_home, "run", chat, "--input", "What is the capital of France?",
                "--thread", "e2e-1", "--json")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert "paris" in out["output"].lower()
    second = cli(model_home, "run", chat, "--input", "Repeat my previous question exactly.",
                 "--thread", "e2e-1", "--stream")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip()
    assert "thread: e2e-1" in second.stderr

    async def stored() -> list:
        async with open_checkpointer(f"sqlite:///{model_home}/checkpoints.sqlite") as saver:
            saved = await saver.aget_tuple({"configurable": {"thread_id": "e2e-1"}})
            return saved.checkpoint["channel_values"]["messages"]

    import asyncio

    messages = asyncio.run(stored())
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, HumanMessage, AIMessage]
    assert messages[0].content == "What is the capital of France?"
    assert messages[3].content.strip()


@pytest.mark.parametrize(
    ("text", "allowed"),
    [("My invoice shows a double charge, I want a refund.", {"billing", "general"}),
     ("The app crashes with a segmentation fault when I start it.", {"technical", "general"})],
)
def test_triage_routes_and_answers(model_home, running_model_service, text, allowed):
    out = cli(model_home, "run", str(examples_dir() / "triage.json"), "--input", text, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["output"].strip()
    route_nodes = set(result["node_seconds"]) - {"classify"}
    assert len(route_nodes) == 1 and route_nodes <= {"technical", "billing", "general"}
    assert route_nodes <= allowed


def test_sql_analyst_answers_from_the_demo_shop(model_home, running_model_service):
    """Question -> checked SQL -> rows -> the answer in words with the table; the demo
    database is built in the data dir on first use and is unchanged afterwards."""
    import sqlite3

    from flowloom.tools.sql.demo_data import ensure_demo_db

    demo = ensure_demo_db(model_home)
    before = demo.read_bytes()
    out = cli(model_home, "run", str(examples_dir() / "sql_analyst.json"), "--input",
              "How many customers are there in each country?", "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)["output"]
    gold = sqlite3.connect(demo).execute(
        "SELECT country, COUNT(*) FROM customers GROUP BY country").fetchall()
    assert "```sql\nSELECT" in answer
    for country, count in gold:  # the table: one row per country with its count
        assert f"| {country} | {count} |" in answer, answer
    assert demo.read_bytes() == before


def test_analyst_agent_calls_sql_for_a_count(model_home, running_model_service):
    """The bundled model, through the agent's choose mode, sends an unambiguous count
    question to sql_query and answers with the database's number."""
    import sqlite3

    from flowloom.tools.sql.demo_data import ensure_demo_db

    demo = ensure_demo_db(model_home)
    orders = sqlite3.connect(demo).execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    out = cli(model_home, "run", str(examples_dir() / "analyst.json"), "--input",
              "How many orders are there?", "--json")
    assert out.returncode == 0, out.stderr
    assert str(orders) in json.loads(out.stdout)["output"]


def test_recommend_answers_fast_and_reranks_the_uncertain(model_home, running_model_service):
    """System 1 alone for films the model is sure of; the bundled LLM reranks a request
    with no history (uncertain): its films are the candidates', or System 1's after a
    counted fallback."""
    flow = str(examples_dir() / "recommend.json")
    sure = cli(model_home, "run", flow, "--input", "I loved Star Harbor and Star Harbor II",
               "--json")
    assert sure.returncode == 0, sure.stderr
    out = json.loads(sure.stdout)
    assert set(out["node_seconds"]) == {"recommend", "gate", "quick"}
    assert out["output"].startswith("Recommended for you:\n1. ")
    assert "Star Harbor III" in out["output"]  # the series' next part
    unsure = cli(model_home, "run", flow, "--input", "Suggest something to watch", "--json")
    assert unsure.returncode == 0, unsure.stderr
    out = json.loads(unsure.stdout)
    assert set(out["node_seconds"]) == {"recommend", "gate", "rerank"}
    listed = [line.split(". ", 1)[1] for line in out["output"].splitlines()
              if line[:1].isdigit() and ". " in line]
    assert len(listed) == 5 and len(set(listed)) == 5
    from flowloom.tools.rec import load_interactions

    catalogue = set(load_interactions("demo").titles)
    assert set(listed) <= catalogue  # never a film the model made up
