"""Runs of a server that died: marked on restart (SQLite) or by a live peer (Postgres),
then resumed from their last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from flowloom.backends.server import ServerSettings, create_app
from flowloom.backends.server.db import open_database
from flowloom.backends.server.liveness import Liveness
from flowloom.backends.server.store import ServerStore
from flowloom.flows.context import BuildContext
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels

PG = "postgresql://postgres@127.0.0.1:5432/test"


class _HeldModel:
    """An OpenAI-compatible chat endpoint that holds requests until `release()`."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.seen = threading.Event()
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> dict:
            import asyncio

            body = await request.json()
            self.seen.set()
            while not self.released.is_set():
                await asyncio.sleep(0.05)
            return {"id": "c1", "object": "chat.completion", "created": 0,
                    "model": body["model"], "usage": {"prompt_tokens": 3,
                                                      "completion_tokens": 2,
                                                      "total_tokens": 5},
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": "resumed answer"}}]}

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.released.set()
        self.server.should_exit = True
        self.thread.join(10)


FLOW = {
    "schema_version": 1, "id": "two-step", "name": "Two steps",
    "state": {"messages": {"type": "messages"}, "note": {"type": "string"}},
    "nodes": [
        {"id": "prep", "type": "state.set@1", "params": {"values": {"note": "prepared"}}},
        {"id": "answer", "type": "llm.chat@1", "params": {"model": "held"}},
    ],
    "edges": [{"source": "START", "target": "prep"}, {"source": "prep", "target": "answer"},
              {"source": "answer", "target": "END"}],
}


def _start_server(home: Path, flows: Path, models: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "FLOWLOOM_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowloom.ui.cli", "serve", "--port", "0", "--flows",
         str(flows), "--models", str(models)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line.startswith("FLOWLOOM_SERVER_READY"):
        proc.kill()
        raise AssertionError(proc.stderr.read())
    return proc, line.split()[1]


def test_killed_server_run_is_marked_and_resumes_from_its_checkpoint(tmp_path):
    held = _HeldModel()
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "two-step.json").write_text(json.dumps(FLOW))
    models = tmp_path / "models.yaml"
    models.write_text(
        "model_list:\n  - model_name: held\n    litellm_params:\n      model: openai/held\n"
        f"      api_base: {held.url}\n      api_key: sk-test\n    model_info: {{mode: chat}}\n"
        "router_settings: {num_retries: 0, timeout: 60}\n")
    proc, url = _start_server(tmp_path, flows, models)
    try:
        tid = httpx.post(f"{url}/threads", json={}).json()["thread_id"]
        run = httpx.post(f"{url}/threads/{tid}/runs", json={
            "assistant_id": "two-step",
            "input": {"messages": [{"role": "user", "content": "hi"}]}}).json()
        assert held.seen.wait(30), "the run never reached the model"
        proc.send_signal(signal.SIGKILL)  # a crash: nothing gets to clean up
        proc.wait(10)

        proc, url = _start_server(tmp_path, flows, models)
        dead = httpx.get(f"{url}/threads/{tid}/runs/{run['run_id']}").json()
        assert dead["status"] == "error"
        assert httpx.get(f"{url}/threads/{tid}").json()["status"] == "error"
        state = httpx.get(f"{url}/threads/{tid}/state").json()
        assert state["next"] == ["answer"]  # `prep` finished and was checkpointed
        assert state["values"]["note"] == "prepared"

        held.release()
        done = httpx.post(f"{url}/threads/{tid}/runs/wait", json={
            "assistant_id": "two-step", "input": None}, timeout=60).json()
        assert [m["content"] for m in done["messages"]] == ["hi", "resumed answer"]
        state = httpx.get(f"{url}/threads/{tid}/state").json()
        assert state["next"] == []
        assert httpx.get(f"{url}/threads/{tid}").json()["status"] == "idle"
    finally:
        proc.kill()
        proc.wait(10)
        held.stop()


async def _seed(db, owner: str, heartbeat_age: float | None) -> tuple[str, str]:
    """A thread with a running run owned by `owner`, whose last heartbeat was
    `heartbeat_age` seconds ago (None: no server row at all)."""
    store = ServerStore(db)
    await db.execute(
        "CREATE TABLE IF NOT EXISTS fl_server_beats (owner TEXT PRIMARY KEY, "
        "host TEXT NOT NULL, pid INTEGER NOT NULL, started_at DOUBLE PRECISION NOT NULL, "
        "heartbeat_at DOUBLE PRECISION NOT NULL)")
    if heartbeat_age is not None:
        beat = time.time() - heartbeat_age
        await db.execute("INSERT INTO fl_server_beats (owner, host, pid, started_at, heartbeat_at) "
                         "VALUES (?, 'h', 1, ?, ?)", (owner, beat, beat))
    thread = await store.create_thread(None, {}, graph_id="chat")
    run_id = str(uuid.uuid4())
    await store.create_run(run_id, thread["thread_id"], "a", metadata={}, kwargs={},
                           multitask_strategy="enqueue", owner=owner)
    await db.execute("UPDATE fl_threads SET status = 'busy' WHERE thread_id = ?",
                     (thread["thread_id"],))
    return thread["thread_id"], run_id


async def _status(db, run_id: str) -> str:
    return (await db.fetchone("SELECT status FROM fl_runs WHERE run_id = ?", (run_id,)))["status"]


@pytest.mark.postgres
async def test_postgres_marks_only_the_runs_of_silent_servers():
    async with open_database(PG) as db:
        dead, live = f"dead-{uuid.uuid4()}", f"live-{uuid.uuid4()}"
        dead_thread, dead_run = await _seed(db, dead, heartbeat_age=120)
        _, live_run = await _seed(db, live, heartbeat_age=1)
        _, ownerless_run = await _seed(db, f"never-{uuid.uuid4()}", heartbeat_age=None)
        me = Liveness(db, f"me-{uuid.uuid4()}", interval=5, stale=30)
        assert await me.start() >= 2
        try:
            assert await _status(db, dead_run) == "error"
            assert await _status(db, ownerless_run) == "error"
            assert await _status(db, live_run) == "pending"  # its server is alive
            thread = await db.fetchone("SELECT status FROM fl_threads WHERE thread_id = ?",
                                       (dead_thread,))
            assert thread["status"] == "error"
            gone = await db.fetchone("SELECT owner FROM fl_server_beats WHERE owner = ?", (dead,))
            assert gone is None
        finally:
            await me.stop()
            await db.execute("DELETE FROM fl_server_beats WHERE owner = ?", (live,))
        assert await db.fetchone("SELECT owner FROM fl_server_beats WHERE owner = ?",
                                 (me.owner,)) is None


@pytest.mark.postgres
async def test_a_live_postgres_server_reaps_a_peer_that_stops_beating(tmp_path):
    import asyncio

    app = create_app(ServerSettings(database=PG, home=tmp_path, heartbeat_s=0.2,
                                    stale_after_s=1.0),
                     ctx=BuildContext(models=ScriptedModels(lambda m: "ok")))
    gen = run_server(app)
    base = next(gen)
    try:
        async with open_database(PG) as db:
            peer = f"peer-{uuid.uuid4()}"
            tid, run_id = await _seed(db, peer, heartbeat_age=0)  # alive... for now
            await asyncio.sleep(0.5)
            assert await _status(db, run_id) == "pending"
            deadline = time.monotonic() + 10  # the peer never beats again
            while await _status(db, run_id) != "error":
                assert time.monotonic() < deadline, "the silent peer's run was never marked"
                await asyncio.sleep(0.2)
        assert httpx.get(f"{base}/threads/{tid}").json()["status"] == "error"
    finally:
        next(gen, None)
