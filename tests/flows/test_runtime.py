"""Threads persist in SQLite and PostgreSQL; streaming yields tokens and node updates."""

from __future__ import annotations

import uuid

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from flowloom.flows.checkpoint import checkpointer_kind, open_checkpointer
from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowError, FlowRunError
from flowloom.flows.loader import examples_dir, load_flow
from flowloom.flows.runtime import FlowRunner, make_input
from tests.fakes import ScriptedModels

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _count_turns(messages) -> int:
    return sum(isinstance(m, HumanMessage) for m in messages)


def _chat_runner(saver) -> tuple[FlowRunner, ScriptedModels]:
    models = ScriptedModels(lambda msgs: f"turn {sum(m.type == 'human' for m in msgs)}")
    flow = load_flow(examples_dir() / "chat.json").flow
    return FlowRunner(flow, compile_flow(flow, ctx=BuildContext(models=models),
                                         checkpointer=saver)), models


async def _check_memory(saver) -> None:
    runner, models = _chat_runner(saver)
    thread = f"t-{uuid.uuid4()}"
    first = await runner.ainvoke("My name is Ada.", thread_id=thread)
    second = await runner.ainvoke("What is my name?", thread_id=thread)
    assert (first.output, second.output) == ("turn 1", "turn 2")
    # the model saw the first turn on the second call, and the thread stored all four
    assert [m.content for m in models.calls[-1][1:]] == [
        "My name is Ada.", "turn 1", "What is my name?"]
    state = await runner.graph.aget_state({"configurable": {"thread_id": thread}})
    messages = state.values["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, HumanMessage, AIMessage]
    other = await runner.ainvoke("Hi", thread_id=f"t-{uuid.uuid4()}")
    assert other.output == "turn 1"


async def test_sqlite_threads_remember(tmp_path):
    async with open_checkpointer(f"sqlite:///{tmp_path}/c.sqlite") as saver:
        await _check_memory(saver)
    # reopened from disk: the thread is still there
    async with open_checkpointer(f"sqlite:///{tmp_path}/c.sqlite") as saver:
        threads = {c.config["configurable"]["thread_id"] async for c in saver.alist(None)}
        assert len(threads) == 2


async def test_default_sqlite_lives_in_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLOOM_HOME", str(tmp_path))
    async with open_checkpointer() as saver:
        await _check_memory(saver)
    assert (tmp_path / "checkpoints.sqlite").exists()


@pytest.mark.postgres
async def test_postgres_threads_remember():
    async with open_checkpointer(PG_URL) as saver:
        await _check_memory(saver)


async def test_postgres_unreachable_is_a_clear_error():
    with pytest.raises(FlowError, match="cannot connect to PostgreSQL"):
        async with open_checkpointer("postgresql://postgres@127.0.0.1:1/test"):
            pass


def test_checkpointer_kinds():
    assert checkpointer_kind(None) == "sqlite"
    assert checkpointer_kind("postgres://x/y") == "postgres"
    with pytest.raises(FlowError, match="unsupported database URL"):
        checkpointer_kind("mysql://x")


async def test_stream_yields_tokens_updates_and_result():
    async with open_checkpointer("memory") as saver:
        runner, _ = _chat_runner(saver)
        events = [e async for e in runner.astream("hello there", thread_id="s1")]
    tokens = [e.text for e in events if e.kind == "token"]
    assert "".join(tokens) == "turn 1" and len(tokens) == 2
    assert [e.node for e in events if e.kind == "update"] == ["answer"]
    assert events[-1].kind == "done" and events[-1].result.node_seconds.keys() == {"answer"}


async def test_defaults_seed_new_threads_only(make_flow):
    doc = make_flow(
        state={"count": {"type": "integer", "reducer": "add", "default": 10},
               "text": {"type": "string"}},
        io={"input": "text"},
        nodes=[{"id": "inc", "type": "state.set@1", "params": {"values": {"count": 1}}}],
        edges=[{"source": "START", "target": "inc"}, {"source": "inc", "target": "END"}],
    )
    flow = load_flow(doc).flow
    async with open_checkpointer("memory") as saver:
        runner = FlowRunner(flow, compile_flow(flow, checkpointer=saver))
        assert (await runner.ainvoke("a", thread_id="x")).values["count"] == 11
        assert (await runner.ainvoke("b", thread_id="x")).values["count"] == 12


def test_make_input_rejects_undeclared_fields():
    flow = load_flow(examples_dir() / "chat.json").flow
    assert isinstance(make_input(flow, "hi")["messages"][0], HumanMessage)
    with pytest.raises(FlowRunError, match="does not declare: nope"):
        make_input(flow, {"nope": 1})


async def test_sqlite_saver_works_in_place_and_keeps_langgraphs_format(tmp_path):
    """The default SQLite checkpointer answers its async API on the caller's thread (no
    aiosqlite hop) and writes the tables langgraph's own SqliteSaver reads."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    from flowloom.flows._sqlite_saver import LoopSqliteSaver

    path = tmp_path / "c.sqlite"
    async with open_checkpointer(f"sqlite:///{path}") as saver:
        assert isinstance(saver, LoopSqliteSaver)
        assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        await _check_memory(saver)
        # consuming the history lazily while writing on the same thread must not deadlock
        async for item in saver.alist(None, limit=3):
            await saver.aput_writes(item.config, [("x", 1)], "task-1")
    with SqliteSaver.from_conn_string(str(path)) as plain:
        threads = {c.config["configurable"]["thread_id"] for c in plain.list(None)}
    assert len(threads) == 2
