"""The LangGraph API protocol, driven by the real langgraph-sdk client (async and sync)
against a real flowloom server on 127.0.0.1 (ephemeral port). Models are scripted here;
the end-to-end tests use the bundled model."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from flowloom.backends.server import ServerSettings, create_app
from flowloom.backends.server._http import http_protocol
from flowloom.backends.server.catalog import system_assistant_id
from flowloom.flows.context import BuildContext
from tests.fakes import ScriptedModels


def _reply(messages):
    text = str(messages[-1].content)
    if "Classify" in str(messages[0].content):
        return "billing"
    if text == "boom":
        raise ValueError("the model exploded")
    if text.startswith("slow"):
        time.sleep(0.5)
    return f"echo: {text}"


def run_server(app) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (ephemeral port) in a thread; yields its URL, then stops."""
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    # the protocol `flowloom serve` uses (httptools, writes of a loop turn sent together)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", http=http_protocol()))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("server-home")
    settings = ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home)
    yield from run_server(create_app(settings, ctx=BuildContext(models=ScriptedModels(_reply))))


@pytest.fixture
def client(server_url):
    return get_client(url=server_url, api_key=None)


def user(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


async def test_ok_info_and_system_assistants(client, server_url):
    assert httpx.get(f"{server_url}/ok").json() == {"ok": True}
    found = await client.assistants.search(graph_id="chat")
    assert len(found) == 1 and found[0]["metadata"]["created_by"] == "system"
    assert found[0]["assistant_id"] == system_assistant_id("chat")
    assistant = await client.assistants.get(found[0]["assistant_id"])
    assert assistant["graph_id"] == "chat"
    graph = await client.assistants.get_graph(assistant["assistant_id"])
    assert {n["id"] for n in graph["nodes"]} >= {"__start__", "answer", "__end__"}
    schemas = await client.assistants.get_schemas(assistant["assistant_id"])
    assert schemas["graph_id"] == "chat"
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.get("chat")  # ids are UUIDs; names work only for runs


async def test_user_assistants_are_versioned(client):
    created = await client.assistants.create("chat", config={"configurable": {"a": 1}},
                                             name="mine")
    updated = await client.assistants.update(created["assistant_id"], name="renamed")
    assert updated["version"] == 2 and updated["name"] == "renamed"
    versions = await client.assistants.get_versions(created["assistant_id"])
    assert [v["version"] for v in versions] == [2, 1]
    result = await client.runs.wait(None, created["assistant_id"], input=user("via mine"))
    assert result["messages"][-1]["content"] == "echo: via mine"
    await client.assistants.delete(created["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.get(created["assistant_id"])


async def test_stateless_wait_and_stream(client):
    result = await client.runs.wait(None, "chat", input=user("hi"))
    assert [m["type"] for m in result["messages"]] == ["human", "ai"]
    assert result["messages"][-1]["content"] == "echo: hi"
    events = [e async for e in client.runs.stream(None, "chat", input=user("yo"),
                                                  stream_mode=["values", "updates"])]
    assert events[0].event == "metadata" and "run_id" in events[0].data
    assert [e.event for e in events[1:]] == ["values", "updates", "values"]
    assert events[2].data["answer"]["messages"][0]["content"] == "echo: yo"


async def test_thread_memory_state_and_history(client):
    thread = await client.threads.create(metadata={"owner": "ada"})
    tid = thread["thread_id"]
    await client.runs.wait(tid, "chat", input=user("first"))
    second = await client.runs.wait(tid, "chat", input=user("second"))
    assert [m["content"] for m in second["messages"]] == [
        "first", "echo: first", "second", "echo: second"]
    state = await client.threads.get_state(tid)
    assert len(state["values"]["messages"]) == 4 and state["next"] == []
    assert state["checkpoint"]["thread_id"] == tid
    history = await client.threads.get_history(tid, limit=3)
    assert len(history) == 3
    old = await client.threads.get_state(tid, checkpoint_id=history[-1]["checkpoint"]
                                         ["checkpoint_id"])
    assert len(old["values"]["messages"]) < 4
    got = await client.threads.get(tid)
    assert got["status"] == "idle" and got["metadata"]["graph_id"] == "chat"
    assert len(got["values"]["messages"]) == 4
    found = await client.threads.search(metadata={"owner": "ada"})
    assert [t["thread_id"] for t in found] == [tid]


async def test_durability_exit_writes_one_checkpoint_per_run(client):
    default, exit_ = (await client.threads.create())["thread_id"], (
        await client.threads.create())["thread_id"]
    await client.runs.wait(default, "chat", input=user("hi"))
    answer = await client.runs.wait(exit_, "chat", input=user("hi"), durability="exit")
    assert [m["content"] for m in answer["messages"]] == ["hi", "echo: hi"]
    kept = len(await client.threads.get_history(default, limit=20))
    assert kept >= 3 and len(await client.threads.get_history(exit_, limit=20)) == 1
    state = await client.threads.get_state(exit_)
    assert len(state["values"]["messages"]) == 2
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.runs.wait(exit_, "chat", input=user("x"), durability="never")
    assert refused.value.response.status_code == 422


async def test_update_state_and_copy(client):
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "chat", input=user("one"))
    update = await client.threads.update_state(
        tid, {"messages": [{"role": "user", "content": "added"}]}, as_node="answer")
    assert update["checkpoint"]["thread_id"] == tid
    state = await client.threads.get_state(tid)
    assert state["values"]["messages"][-1]["content"] == "added"
    copy = await client.threads.copy(tid)
    copied = await client.threads.get_state(copy["thread_id"])
    assert [m["content"] for m in copied["values"]["messages"]] == [
        "one", "echo: one", "added"]


async def test_background_run_join_and_list(client):
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "chat", input=user("bg"))
    assert run["status"] in ("pending", "running")
    result = await client.runs.join(tid, run["run_id"])
    assert result["messages"][-1]["content"] == "echo: bg"
    got = await client.runs.get(tid, run["run_id"])
    assert got["status"] == "success"
    runs = await client.runs.list(tid)
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    events = [e async for e in client.runs.join_stream(tid, run["run_id"])]
    assert events[0].event == "metadata"


async def test_messages_tuple_stream(client):
    events = [e async for e in client.runs.stream(
        None, "chat", input=user("token by token"), stream_mode="messages-tuple")]
    chunks = [e.data[0]["content"] for e in events if e.event == "messages"]
    assert "".join(chunks) == "echo: token by token" and len(chunks) > 1
    assert events[1].data[1]["langgraph_node"] == "answer"


async def test_triage_routes_through_llm_label(client):
    result = await client.runs.wait(None, "triage", input=user("refund please"))
    assert result["route"] == "billing"


async def test_multitask_reject_enqueue_and_cancel(client):
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.create(tid, "chat", input=user("slow one"))
    with pytest.raises(ConflictError):
        await client.runs.create(tid, "chat", input=user("two"), multitask_strategy="reject")
    queued = await client.runs.create(tid, "chat", input=user("queued"),
                                      multitask_strategy="enqueue")
    await client.runs.join(tid, queued["run_id"])
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "success"
    state = await client.threads.get_state(tid)
    assert [m["content"] for m in state["values"]["messages"]][-1] == "echo: queued"
    slow = await client.runs.create(tid, "chat", input=user("slow cancel"))
    await asyncio.sleep(0.1)
    await client.runs.cancel(tid, slow["run_id"], wait=True)
    assert (await client.runs.get(tid, slow["run_id"]))["status"] == "interrupted"
    with pytest.raises(NotFoundError):
        await client.runs.cancel(tid, slow["run_id"])


async def test_run_errors_come_back_as_data(client):
    result = await client.runs.wait(None, "chat", input=user("boom"), raise_error=False)
    assert result == {"__error__": {"error": "ValueError", "message": "the model exploded"}}
    with pytest.raises(Exception, match="the model exploded"):
        await client.runs.wait(None, "chat", input=user("boom"))
    events = [e async for e in client.runs.stream(None, "chat", input=user("boom"))]
    assert events[-1].event == "error"
    assert events[-1].data == {"error": "ValueError", "message": "the model exploded"}
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "chat", input=user("boom"), raise_error=False)
    assert (await client.threads.get(tid))["status"] == "error"
    with pytest.raises(httpx.HTTPStatusError, match="does not declare") as info:
        await client.runs.wait(None, "chat", input={"nope": 1})
    assert info.value.response.status_code == 422


async def test_client_mistakes_are_4xx(client, server_url):
    # runs.wait streams its body, so the SDK raises httpx's error with our detail in it
    with pytest.raises(httpx.HTTPStatusError, match="graphs: (.*, )?chat, .*triage") as info:
        await client.runs.wait(None, "no-such-flow", input=user("x"))
    assert info.value.response.status_code == 404
    with pytest.raises(NotFoundError):
        await client.threads.get(str(uuid.uuid4()))
    with pytest.raises(httpx.HTTPStatusError, match="not found") as info:
        await client.runs.wait(str(uuid.uuid4()), "chat", input=user("x"))
    assert info.value.response.status_code == 404
    bad = httpx.post(f"{server_url}/runs/wait", content=b"{not json",
                     headers={"content-type": "application/json"})
    assert bad.status_code == 422 and "JSON" in bad.json()["detail"]
    bad = httpx.post(f"{server_url}/runs/wait", json={"input": {}})
    assert bad.status_code == 422 and "assistant_id" in bad.json()["detail"]
    bad = httpx.post(f"{server_url}/runs/wait", json={"assistant_id": "chat",
                                                        "stream_mode": "nope"})
    assert bad.status_code == 422 and "stream_mode" in bad.json()["detail"]


async def test_huge_offsets_are_422_not_500(client, server_url):
    """Found by schemathesis: an offset past SQLite's integers overflowed in the driver."""
    thread = (await client.threads.create())["thread_id"]
    huge = 2 ** 70
    bad = httpx.get(f"{server_url}/threads/{thread}/runs", params={"offset": huge})
    assert bad.status_code == 422 and "offset" in bad.text
    for path in ("/threads/search", "/assistants/search"):
        bad = httpx.post(f"{server_url}{path}", json={"offset": huge})
        assert bad.status_code == 422 and "offset" in bad.text, path
    ok = httpx.get(f"{server_url}/threads/{thread}/runs", params={"offset": 10 ** 9})
    assert ok.status_code == 200 and ok.json() == []


def test_sync_client(server_url):
    sync = get_sync_client(url=server_url, api_key=None)
    thread = sync.threads.create()
    result = sync.runs.wait(thread["thread_id"], "chat", input=user("sync"))
    assert result["messages"][-1]["content"] == "echo: sync"
    parts = list(sync.runs.stream(thread["thread_id"], "chat", input=user("s2"),
                                  stream_mode="updates"))
    assert [p.event for p in parts] == ["metadata", "updates"]
    sync.threads.delete(thread["thread_id"])
    with pytest.raises(NotFoundError):
        sync.threads.get(thread["thread_id"])


async def test_route_override_header_reaches_the_run_config(server_url):
    headers = {"X-Flowloom-Route": "force_slow"}
    async with httpx.AsyncClient(base_url=server_url) as http:
        tid = (await http.post("/threads", json={})).json()["thread_id"]
        run = (await http.post(f"/threads/{tid}/runs", json={
            "assistant_id": "chat", "input": user("x")}, headers=headers)).json()
        assert run["kwargs"]["config"]["configurable"]["flowloom_route"] == "force_slow"
        bad = await http.post("/runs/wait", json={"assistant_id": "chat"},
                              headers={"X-Flowloom-Route": "sideways"})
        assert bad.status_code == 422 and "force_fast, force_slow" in bad.json()["detail"]


async def test_join_stream_resumes_after_last_event_id(client, server_url):
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "chat", input=user("resume me"),
                                   stream_mode=["values", "updates"])
    await client.runs.join(tid, run["run_id"])
    url = f"{server_url}/threads/{tid}/runs/{run['run_id']}/stream"
    full = httpx.get(url).text
    ids = [line.split(": ")[1] for line in full.splitlines() if line.startswith("id: ")]
    assert ids == ["1", "2", "3", "4"]
    rest = httpx.get(url, headers={"Last-Event-ID": "2"}).text
    events = [line.split(": ")[1] for line in rest.splitlines() if line.startswith("event: ")]
    assert events == ["updates", "values"]
    sdk_events = [e.event async for e in client.runs.join_stream(
        tid, run["run_id"], last_event_id="3")]
    assert sdk_events == ["values"]


async def test_rollback_restores_the_state_before_the_run(client):
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "chat", input=user("keep me"))
    before = await client.threads.get_state(tid)
    slow = await client.runs.create(tid, "chat", input=user("slow and rolled back"))
    await asyncio.sleep(0.2)  # the run has written its input checkpoint by now
    await client.runs.cancel(tid, slow["run_id"], wait=True, action="rollback")
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, slow["run_id"])
    after = await client.threads.get_state(tid)
    assert after["values"] == before["values"]
    result = await client.runs.wait(tid, "chat", input=user("next"))
    assert [m["content"] for m in result["messages"]] == [
        "keep me", "echo: keep me", "next", "echo: next"]


async def test_interrupt_strategy_cancels_running_and_queued_runs(client):
    tid = (await client.threads.create())["thread_id"]
    running = await client.runs.create(tid, "chat", input=user("slow first"))
    queued = await client.runs.create(tid, "chat", input=user("queued"))
    await asyncio.sleep(0.1)
    newer = await client.runs.create(tid, "chat", input=user("second"),
                                     multitask_strategy="interrupt")
    await client.runs.join(tid, newer["run_id"])
    assert (await client.runs.get(tid, running["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(tid, queued["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(tid, newer["run_id"]))["status"] == "success"


@pytest.mark.parametrize("on_disconnect", ["cancel", "continue"])
async def test_stream_client_leaving(client, server_url, on_disconnect):
    """A client that drops a run's stream: with on_disconnect=cancel the run is cancelled,
    otherwise it runs to the end."""
    tid = (await client.threads.create())["thread_id"]
    with httpx.stream("POST", f"{server_url}/threads/{tid}/runs/stream", json={
            "assistant_id": "chat", "input": user("slow one"), "stream_mode": ["values"],
            "on_disconnect": on_disconnect}, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert (next(lines), next(lines)) == ("id: 1", "event: metadata")
    deadline = time.time() + 10
    runs = await client.runs.list(tid)
    while runs[0]["status"] in ("pending", "running"):
        assert time.time() < deadline, runs
        await asyncio.sleep(0.05)
        runs = await client.runs.list(tid)
    expected = "interrupted" if on_disconnect == "cancel" else "success"
    assert runs[0]["status"] == expected
