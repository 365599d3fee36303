"""Two servers sharing one Postgres database take turns on a thread: runs sent to both at
once all execute, one at a time (none lost, none run twice), and multitask strategies
that cannot reach a run on the other server say so instead of being ignored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client

from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.context import BuildContext
from tests.backends.conftest import own_pg_database
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels

pytestmark = pytest.mark.postgres


def _slow(messages) -> str:
    time.sleep(0.3)  # long enough for the runs sent to both servers to overlap
    return f"seen {len(messages)}"


@pytest.fixture
def database() -> Iterator[str]:
    with own_pg_database("fl_replicas") as url:
        yield url


async def test_runs_sent_to_two_servers_take_turns_on_a_thread(tmp_path, database):
    ctx = BuildContext(models=ScriptedModels(_slow))
    first = run_server(create_app(ServerSettings(database=database, home=tmp_path), ctx=ctx))
    second = run_server(create_app(ServerSettings(database=database, home=tmp_path), ctx=ctx))
    a, b = next(first), next(second)
    try:
        clients = [get_client(url=a, api_key=None), get_client(url=b, api_key=None)]
        thread = (await clients[0].threads.create())["thread_id"]

        async def say(i: int) -> dict:
            return await clients[i % 2].runs.wait(thread, "chat", input={
                "messages": [{"role": "user", "content": f"m{i}"}]})

        await asyncio.gather(*(say(i) for i in range(8)))
        state = await clients[1].threads.get_state(thread)
        messages = state["values"]["messages"]
        assert len(messages) == 16  # each run's question and answer, none lost
        assert sorted(m["content"] for m in messages if m["type"] == "human") == sorted(
            f"m{i}" for i in range(8))
        runs = httpx.get(f"{a}/threads/{thread}/runs", params={"limit": 100}).json()
        assert len(runs) == 8 and {r["status"] for r in runs} == {"success"}

        # a run executing on A: B refuses reject and interrupt, and queues enqueue
        started = await clients[0].runs.create(thread, "chat", input={
            "messages": [{"role": "user", "content": "long"}]})
        deadline = time.time() + 10
        while httpx.get(f"{a}/threads/{thread}/runs/{started['run_id']}").json()[
                "status"] != "running":
            assert time.time() < deadline
            await asyncio.sleep(0.02)
        body = {"assistant_id": "chat", "input": {"messages": [
            {"role": "user", "content": "next"}]}}
        rejected = httpx.post(f"{b}/threads/{thread}/runs",
                              json={**body, "multitask_strategy": "reject"})
        assert rejected.status_code == 409 and "busy" in rejected.json()["detail"]
        interrupt = httpx.post(f"{b}/threads/{thread}/runs",
                               json={**body, "multitask_strategy": "interrupt"})
        assert interrupt.status_code == 409 and "another server" in interrupt.json()["detail"]
        queued = await clients[1].runs.wait(thread, "chat", input=body["input"])
        assert len(queued["messages"]) == 20  # after "long", not beside it
    finally:
        for gen in (first, second):
            next(gen, None)


async def test_replicas_share_each_keys_rate_through_redis(tmp_path, database):
    from flowloom.backends.server.db import open_database
    from flowloom.backends.server.keys import KeyStore

    async with open_database(database) as db:
        store = KeyStore(db)
        await store.setup()
        _, key = await store.create("user", rpm=6)  # a burst of 1, then one per 10 s
    ctx = BuildContext(models=ScriptedModels(lambda m: "ok"))
    redis = "redis://127.0.0.1:6379/0"
    servers = [run_server(create_app(ServerSettings(database=database, home=tmp_path,
                                                    redis_url=redis), ctx=ctx))
               for _ in range(2)]
    a, b = (next(s) for s in servers)
    try:
        headers = {"x-api-key": key}
        assert httpx.get(f"{a}/flows", headers=headers).status_code == 200
        limited = httpx.get(f"{b}/flows", headers=headers)  # the other replica knows
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "6 requests per minute" in limited.json()["detail"]
    finally:
        for gen in servers:
            next(gen, None)


async def test_an_unreachable_redis_is_said_at_start(tmp_path, closed_port):
    from flowloom.backends.server.auth import Guard

    guard = Guard("127.0.0.1", redis_url=f"redis://127.0.0.1:{closed_port}/0")
    with pytest.raises(ConnectionError, match="Redis for rate limits does not answer"):
        await guard.limiter.check()  # type: ignore[union-attr]
    # and a request meanwhile is let through, not failed
    assert await guard.limiter.take("k", 6) == 0.0
