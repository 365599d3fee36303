"""Flow management over HTTP, interrupts and resume, and the server as users start it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid

import httpx
import pytest
from langgraph.types import interrupt
from langgraph_sdk import get_client
from pydantic import BaseModel

from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.context import BuildContext
from flowloom.flows.loader import examples_dir
from flowloom.flows.registry import NodeRegistry, NodeType, default_registry
from tests.backends.test_server_protocol import run_server, user
from tests.fakes import ScriptedModels


class AskParams(BaseModel):
    question: str = "Approve?"


def _build_ask(params: AskParams, ctx):
    def ask(state):
        answer = interrupt({"question": params.question})
        return {"route": str(answer)}

    return ask


ASK = NodeType("test.ask", 1, AskParams, _build_ask, "state", "Ask a human (test only).")

APPROVAL = {
    "schema_version": 1, "id": "approval", "name": "Approval",
    "state": {"messages": {"type": "messages"}, "route": {"type": "string"}},
    "nodes": [{"id": "ask", "type": "test.ask@1", "params": {}}],
    "edges": [{"source": "START", "target": "ask"}, {"source": "ask", "target": "END"}],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("server-flows")
    registry = NodeRegistry([*default_registry().types(), ASK])
    app = create_app(ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home),
                     ctx=BuildContext(models=ScriptedModels(lambda m: "ok")), registry=registry)
    yield from run_server(app)


def test_put_get_list_delete_flow(server):
    chat = json.loads((examples_dir() / "chat.json").read_text())
    mine = {**copy.deepcopy(chat), "id": "mine", "name": "Mine"}
    put = httpx.put(f"{server}/flows/mine", json=mine)
    assert put.status_code == 200, put.text
    assert "mine" in [f["id"] for f in httpx.get(f"{server}/flows").json()]
    assert httpx.get(f"{server}/flows/mine").json()["name"] == "Mine"
    # hot: runnable at once, and its system assistant exists
    result = httpx.post(f"{server}/runs/wait", json={"assistant_id": "mine",
                                                     "input": user("hi")}).json()
    assert result["messages"][-1]["content"] == "ok"
    assistants = httpx.post(f"{server}/assistants/search", json={"graph_id": "mine"}).json()
    assert len(assistants) == 1
    assert httpx.delete(f"{server}/flows/mine").status_code == 204
    assert httpx.get(f"{server}/flows/mine").status_code == 404
    assert httpx.delete(f"{server}/flows/chat").status_code == 422  # a file's flow


def test_bad_flows_are_refused_with_paths_and_nothing_changes(server):
    bad = {"id": "bad", "name": "Bad", "nodes": [{"id": "a", "type": "llm.chatt@1"}],
           "edges": [{"source": "START", "target": "a"}, {"source": "a", "target": "END"}]}
    put = httpx.put(f"{server}/flows/bad", json=bad)
    assert put.status_code == 422
    assert put.json()["problems"][0]["path"] == "nodes[0].type"
    assert httpx.get(f"{server}/flows/bad").status_code == 404
    check = httpx.post(f"{server}/flows/validate", json=bad).json()
    assert check["ok"] is False and check["problems"][0]["choices"][0] == "llm.chat@1"
    assert httpx.post(f"{server}/flows/validate", json=[1]).json()["ok"] is False
    garbled = httpx.put(f"{server}/flows/x", content=b"{oops",
                        headers={"content-type": "application/json"})
    assert garbled.status_code == 422 and "not valid JSON" in garbled.json()["detail"]
    other = httpx.put(f"{server}/flows/x", json={**bad, "id": "y"})
    assert other.status_code == 422 and "differs" in other.json()["detail"]
    assert httpx.get(f"{server}/node-types").json()[0]["params_schema"]


async def test_interrupt_and_resume(server):
    assert httpx.put(f"{server}/flows/approval", json=APPROVAL).status_code == 200
    client = get_client(url=server, api_key=None)
    tid = (await client.threads.create())["thread_id"]
    paused = await client.runs.wait(tid, "approval", input={"route": "start"})
    assert paused["__interrupt__"][0]["value"] == {"question": "Approve?"}
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    state = await client.threads.get_state(tid)
    assert state["next"] == ["ask"] and state["interrupts"][0]["value"]["question"]
    done = await client.runs.wait(tid, "approval", command={"resume": "yes"})
    assert done["route"] == "yes" and "__interrupt__" not in done
    assert (await client.threads.get(tid))["status"] == "idle"


def test_flowloom_serve_command(tmp_path):
    env = {**os.environ, "FLOWLOOM_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "flowloom.ui.cli", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("FLOWLOOM_SERVER_READY http://127.0.0.1:"), proc.stderr.read()
        url = line.split()[1]
        assert httpx.get(f"{url}/ok").json() == {"ok": True}
        assert {f["id"] for f in httpx.get(f"{url}/flows").json()} >= {"chat", "triage"}
        spec = httpx.get(f"{url}/openapi.json").json()
        assert "/threads/{thread_id}/runs/wait" in spec["paths"]
    finally:
        proc.terminate()
        proc.wait(20)
    assert (tmp_path / "server.sqlite").exists()


@pytest.mark.postgres
async def test_two_servers_share_postgres(tmp_path):
    url = "postgresql://postgres@127.0.0.1:5432/test"
    ctx = BuildContext(models=ScriptedModels(lambda m: f"seen {len(m)}"))
    first = run_server(create_app(ServerSettings(database=url, home=tmp_path), ctx=ctx))
    second = run_server(create_app(ServerSettings(database=url, home=tmp_path), ctx=ctx))
    a, b = next(first), next(second)
    try:
        tid = str(uuid.uuid4())
        one = get_client(url=a, api_key=None)
        two = get_client(url=b, api_key=None)
        await one.threads.create(thread_id=tid)
        await one.runs.wait(tid, "chat", input=user("hello"))
        result = await two.runs.wait(tid, "chat", input=user("again"))
        assert [m["content"] for m in result["messages"]] == [
            "hello", "seen 2", "again", "seen 4"]
        assert (await two.threads.get(tid))["metadata"]["graph_id"] == "chat"
    finally:
        for gen in (first, second):
            next(gen, None)


async def test_runs_left_by_a_dead_server_are_marked_on_restart(tmp_path):
    from flowloom.backends.server.db import open_database
    from flowloom.backends.server.store import ServerStore

    url = f"sqlite:///{tmp_path}/fl.sqlite"
    async with open_database(url) as db:
        store = ServerStore(db)
        thread = await store.create_thread(None, {}, graph_id="chat")
        await store.create_run("r-dead", thread["thread_id"], "a", metadata={}, kwargs={},
                               multitask_strategy="enqueue", owner="gone")
    app = create_app(ServerSettings(database=url, home=tmp_path),
                     ctx=BuildContext(models=ScriptedModels(lambda m: "ok")))
    gen = run_server(app)
    base = next(gen)
    try:
        run = httpx.get(f"{base}/threads/{thread['thread_id']}/runs/r-dead").json()
        assert run["status"] == "error"
    finally:
        next(gen, None)


def test_validate_returns_the_migrated_document(server):
    """The builder's import edits what validate gives back: an old (v0) document comes
    back migrated to the current schema, problems and all."""
    v0 = {"id": "old", "name": "Old", "version": 0, "state": ["messages"],
          "nodes": {"a": {"type": "llm.chat", "params": {"temperature": 9},
                          "position": [10, 20]}},
          "edges": [["START", "a"], ["a", "END"]]}
    check = httpx.post(f"{server}/flows/validate", json=v0).json()
    assert check["ok"] is False
    assert [p["path"] for p in check["problems"]] == ["nodes[0].params.temperature"]
    doc = check["document"]
    assert doc["schema_version"] == 1 and doc["nodes"][0]["type"] == "llm.chat@1"
    assert doc["layout"]["nodes"] == {"a": {"x": 10, "y": 20}}
    assert doc["edges"][0] == {"source": "START", "target": "a"}
    assert check["notes"] == ["migrated from schema version 0 to 1"]
    current = json.loads((examples_dir() / "chat.json").read_text())
    same = httpx.post(f"{server}/flows/validate", json=current).json()
    assert same["ok"] is True and same["document"] == current
