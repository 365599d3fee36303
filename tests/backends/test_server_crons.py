"""Crons through langgraph-sdk's `client.crons`, against a real server on 127.0.0.1.

The scheduler reads a clock the tests move by hand (`ServerSettings.cron_clock`) and looks
at the database every few milliseconds (`cron_tick_s`), so an every-minute cron fires when
a test moves the clock a minute on, not a minute later. Runs are counted, never timed:
each check waits for the count it expects, then waits a little more and checks that
nothing else fired.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from flowloom.backends.server import ServerSettings, create_app
from flowloom.backends.server.crons import Cron, CronStore, Schedule, stamp
from flowloom.backends.server.db import open_database
from flowloom.backends.server.keys import KeyStore
from flowloom.flows.context import BuildContext
from tests.backends.conftest import own_pg_database
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels

TICK_S = 0.02
SETTLE_S = 0.4  # many scheduler passes: long enough for an extra fire to show
CRON_KEYS = {"cron_id", "assistant_id", "thread_id", "on_run_completed", "end_time",
             "schedule", "timezone", "created_at", "updated_at", "payload", "user_id",
             "next_run_date", "metadata", "enabled"}


class Clock:
    """The scheduler's time, moved by the test; starts 30 s past a minute."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 60) -> None:
        self.now += timedelta(seconds=seconds)


def say(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def asked(models: ScriptedModels, text: str) -> int:
    """How many model calls answered `text` (each run of a cron with that input: one)."""
    return sum(1 for call in models.calls if str(call[-1].content) == text)


async def until(count: Callable[[], Awaitable[int] | int], expected: int,
                timeout: float = 20) -> None:
    """Wait for `count()` to reach `expected`, then check it stays there."""
    async def now() -> int:
        value = count()
        return await value if not isinstance(value, int) else value

    deadline = time.monotonic() + timeout
    while (seen := await now()) < expected:
        assert time.monotonic() < deadline, f"only {seen} of {expected} after {timeout} s"
        await asyncio.sleep(0.02)
    await asyncio.sleep(SETTLE_S)
    assert await now() == expected, "more fired than expected"


def _app(home: Path, clock: Clock, models: ScriptedModels, database: str | None = None):
    settings = ServerSettings(database=database or f"sqlite:///{home}/fl.sqlite", home=home,
                              cron_tick_s=TICK_S, cron_clock=clock)
    return create_app(settings, ctx=BuildContext(models=models, data_dir=home))


@dataclass
class Server:
    url: str
    clock: Clock
    models: ScriptedModels
    app: Any

    def client(self, key: str | None = None) -> Any:
        return get_client(url=self.url, api_key=key)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("crons")
    clock, models = Clock(), ScriptedModels(lambda m: f"ok: {m[-1].content}")
    app = _app(home, clock, models)
    for url in run_server(app):
        yield Server(url, clock, models, app)


async def test_sdk_create_search_count_update_delete(server: Server):
    client = server.client()
    thread = (await client.threads.create())["thread_id"]
    on_thread = await client.crons.create_for_thread(
        thread, "chat", schedule="*/5 * * * *", input=say("daily"),
        metadata={"team": "ops"}, multitask_strategy="enqueue", durability="exit")
    assert set(on_thread) == CRON_KEYS
    assert on_thread["thread_id"] == thread and on_thread["on_run_completed"] is None
    assert on_thread["next_run_date"].startswith("2030-01-01T00:05:00")
    assert on_thread["enabled"] is True and on_thread["metadata"] == {"team": "ops"}
    assert on_thread["payload"] == {"assistant_id": "chat", "input": say("daily"),
                                    "durability": "exit", "multitask_strategy": "enqueue"}
    stateless = await client.crons.create(
        "chat", schedule="0 9 * * *", timezone="America/New_York", input=say("report"),
        on_run_completed="keep", enabled=False,
        end_time=datetime(2031, 1, 1, tzinfo=UTC))
    assert stateless["thread_id"] is None and stateless["on_run_completed"] == "keep"
    assert stateless["timezone"] == "America/New_York"
    assert stateless["next_run_date"] is None  # disabled: not firing
    assert stateless["end_time"].startswith("2031-01-01T00:00:00")
    mine = {on_thread["cron_id"], stateless["cron_id"]}
    try:
        listed = await client.crons.search(limit=100)
        assert mine <= {c["cron_id"] for c in listed}
        by_thread = await client.crons.search(thread_id=thread)
        assert [c["cron_id"] for c in by_thread] == [on_thread["cron_id"]]
        assert await client.crons.count(thread_id=thread) == 1
        # a graph name finds the crons of its assistant, as a run's assistant_id does
        assert mine <= {c["cron_id"] for c in await client.crons.search(
            assistant_id="chat", limit=100)}
        assert [c["cron_id"] for c in await client.crons.search(
            metadata={"team": "ops"})] == [on_thread["cron_id"]]
        assert await client.crons.count(metadata={"team": "ops"}) == 1
        assert stateless["cron_id"] not in {c["cron_id"] for c in await client.crons.search(
            enabled=True, limit=100)}
        ordered = await client.crons.search(sort_by="next_run_date", sort_order="asc",
                                            limit=100)
        dates = [c["next_run_date"] for c in ordered if c["next_run_date"]]
        assert dates == sorted(dates) and ordered[-1]["next_run_date"] is None
        picked = await client.crons.search(thread_id=thread, select=["cron_id", "now"])
        assert picked == [{"cron_id": on_thread["cron_id"],
                           "now": stamp(server.clock())}]
        pages = [await client.crons.search(limit=1, offset=i, sort_by="created_at")
                 for i in (0, 1)]
        assert pages[0][0]["cron_id"] != pages[1][0]["cron_id"]

        moved = await client.crons.update(on_thread["cron_id"], schedule="0 * * * *",
                                          input=say("hourly"), metadata={"team": "dev"})
        assert moved["next_run_date"].startswith("2030-01-01T01:00:00")
        assert moved["payload"]["input"] == say("hourly") and moved["metadata"] == {
            "team": "dev"}
        assert moved["payload"]["durability"] == "exit"  # what was not given stays
        ends = await client.crons.update(on_thread["cron_id"],
                                         end_time=datetime(2030, 6, 1, tzinfo=UTC))
        assert ends["end_time"].startswith("2030-06-01")
        cleared = await client.crons.update(on_thread["cron_id"], end_time=None)
        assert cleared["end_time"] is None
        off = await client.crons.update(on_thread["cron_id"], enabled=False)
        assert off["enabled"] is False and off["next_run_date"] is None
        on = await client.crons.update(stateless["cron_id"], enabled=True,
                                       on_run_completed="delete")
        # 9:00 in New York is 14:00 UTC in January
        assert on["next_run_date"].startswith("2030-01-01T14:00:00")
        assert on["on_run_completed"] == "delete"
    finally:
        for cron_id in mine:
            await client.crons.delete(cron_id)
    assert not mine & {c["cron_id"] for c in await client.crons.search(limit=100)}
    with pytest.raises(NotFoundError):
        await client.crons.delete(on_thread["cron_id"])
    with pytest.raises(NotFoundError):
        await client.crons.update(on_thread["cron_id"], enabled=True)


@pytest.mark.parametrize(("body", "field"), [
    ({"schedule": "61 * * * *"}, "schedule"),
    ({"schedule": "every minute"}, "schedule"),
    ({"schedule": "* * * * * * *"}, "schedule"),  # a year field: not a LangGraph schedule
    ({"schedule": "0 0 30 2 *"}, "schedule"),  # February 30th never comes
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"end_time": "next tuesday"}, "end_time"),
    ({"end_time": "2030-01-01T00:00:45+00:00"}, "end_time"),  # before the first run
    ({"stream_mode": "everything"}, "stream_mode"),
    ({"input": {"nope": 1}}, "input"),
    ({"webhook": "http://10.1.2.3/hook"}, "webhook"),  # a private address not allowed
    ({"checkpoint_during": True, "durability": "sync"}, "checkpoint_during"),
    ({"on_run_completed": "archive"}, "on_run_completed"),
    ({"multitask_strategy": "whenever"}, "multitask_strategy"),
    ({"enabled": "yes"}, "enabled"),
    ({"retries": 3}, "retries"),  # an option this server does not know
])
def test_invalid_options_are_422_naming_the_field(server: Server, body, field):
    answer = httpx.post(f"{server.url}/runs/crons", json={
        "assistant_id": "chat", "schedule": "* * * * *", **body})
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"], answer.text


def test_what_does_not_exist_is_404_and_thread_options_are_checked(server: Server):
    url = server.url
    cron = {"assistant_id": "chat", "schedule": "* * * * *"}
    missing = httpx.post(f"{url}/runs/crons", json={**cron, "assistant_id": "nobody"})
    assert missing.status_code == 404 and "nobody" in missing.json()["detail"]
    no_thread = httpx.post(f"{url}/threads/{uuid.uuid4()}/runs/crons", json=cron)
    assert no_thread.status_code == 404
    thread = httpx.post(f"{url}/threads", json={}).json()["thread_id"]
    keep = httpx.post(f"{url}/threads/{thread}/runs/crons",
                      json={**cron, "on_run_completed": "keep"})
    assert keep.status_code == 422 and "stateless" in keep.json()["detail"]
    made = httpx.post(f"{url}/threads/{thread}/runs/crons", json=cron).json()
    try:
        for patch, field in (({"on_run_completed": "keep"}, "on_run_completed"),
                             ({"end_time": "2029-01-01T00:00:00Z"}, "end_time"),
                             ({"schedule": "@never"}, "schedule"),
                             ({"assistant_id": "chat"}, "assistant_id")):
            answer = httpx.patch(f"{url}/runs/crons/{made['cron_id']}", json=patch)
            assert answer.status_code == 422 and field in answer.json()["detail"], answer.text
        assert httpx.patch(f"{url}/runs/crons/not-an-id", json={}).status_code == 422
    finally:
        httpx.delete(f"{url}/runs/crons/{made['cron_id']}")


async def test_thread_and_stateless_crons_fire_once_per_due_time(server: Server):
    client, models, clock = server.client(), server.models, server.clock
    tag = uuid.uuid4().hex[:6]
    thread = (await client.threads.create())["thread_id"]
    on_thread = await client.crons.create_for_thread(thread, "chat", schedule="* * * * *",
                                                     input=say(f"tick {tag}"))
    gone = await client.crons.create("chat", schedule="* * * * *", input=say(f"gone {tag}"))
    kept = await client.crons.create("chat", schedule="* * * * *", input=say(f"kept {tag}"),
                                     on_run_completed="keep")
    ending = await client.crons.create_for_thread(
        thread, "chat", schedule="* * * * *", input=say(f"ending {tag}"),
        end_time=clock() + timedelta(seconds=60))  # fires at 00:01, not at 00:02
    off = await client.crons.create("chat", schedule="* * * * *", input=say(f"off {tag}"),
                                    enabled=False)
    before = {t["thread_id"] for t in await client.threads.search(limit=1000)}
    try:
        for minute in (1, 2):
            clock.advance(60)
            await until(lambda: asked(models, f"gone {tag}"), minute)
            await until(lambda: asked(models, f"kept {tag}"), minute)
            await until(lambda: asked(models, f"tick {tag}"), minute)
            await until(lambda: asked(models, f"ending {tag}"), 1)  # its end came
            assert asked(models, f"off {tag}") == 0
        runs = await client.runs.list(thread, limit=100)
        assert len(runs) == 3 and {r["status"] for r in runs} == {"success"}
        assert sorted(r["metadata"]["cron_id"] for r in runs) == sorted(
            [on_thread["cron_id"]] * 2 + [ending["cron_id"]])
        state = await client.threads.get_state(thread)
        assert [m["content"] for m in state["values"]["messages"]].count(f"tick {tag}") == 2
        # each stateless run had a thread of its own: "keep" left both, "delete" none
        new = {t["thread_id"] for t in await client.threads.search(limit=1000)} - before
        assert len(new) == 2
        for kept_thread in new:
            (run,) = await client.runs.list(kept_thread)
            assert run["metadata"]["cron_id"] == kept["cron_id"]
        assert [c["next_run_date"] for c in await client.crons.search(
            thread_id=thread, limit=10) if c["cron_id"] == ending["cron_id"]] == [None]
    finally:
        for cron in (on_thread, gone, kept, ending, off):
            await client.crons.delete(cron["cron_id"])
    clock.advance(60)
    await asyncio.sleep(SETTLE_S)
    assert asked(models, f"tick {tag}") == 2  # deleted: no more fires


async def test_a_deleted_threads_cron_goes_with_it(server: Server):
    client, clock = server.client(), server.clock
    thread = (await client.threads.create())["thread_id"]
    cron = await client.crons.create_for_thread(thread, "chat", schedule="* * * * *",
                                                input=say("orphan"))
    await client.threads.delete(thread)
    clock.advance(60)

    async def left() -> int:
        return len([c for c in await client.crons.search(limit=1000)
                    if c["cron_id"] == cron["cron_id"]])

    deadline = time.monotonic() + 10
    while await left():
        assert time.monotonic() < deadline, "the cron of a deleted thread is still there"
        await asyncio.sleep(0.05)


async def test_crons_survive_a_restart_and_run_a_missed_fire_once(tmp_path):
    clock, models = Clock(), ScriptedModels(lambda m: "ok")
    first = run_server(_app(tmp_path, clock, models))
    client = get_client(url=next(first), api_key=None)
    thread = (await client.threads.create())["thread_id"]
    cron = await client.crons.create_for_thread(thread, "chat", schedule="* * * * *",
                                                input=say("missed"), metadata={"k": 1})
    next(first, None)  # the server stops; five due times pass while none runs
    clock.advance(5 * 60)
    second = run_server(_app(tmp_path, clock, models))
    client = get_client(url=next(second), api_key=None)
    try:
        await until(lambda: asked(models, "missed"), 1)  # once, not five times
        (kept,) = await client.crons.search(thread_id=thread)
        assert {k: kept[k] for k in ("schedule", "payload", "metadata", "enabled")} == {
            k: cron[k] for k in ("schedule", "payload", "metadata", "enabled")}
        assert kept["next_run_date"].startswith("2030-01-01T00:06:00")  # on from now
        clock.advance(60)
        await until(lambda: asked(models, "missed"), 2)
        assert len(await client.runs.list(thread)) == 2
    finally:
        next(second, None)


async def _keys(database: str, *specs: tuple[str, str, float | None]) -> dict[str, str]:
    async with open_database(database) as db:
        store = KeyStore(db)
        await store.setup()
        return {name: (await store.create(role, name=name, budget_usd=budget))[1]
                for name, role, budget in specs}


async def test_a_cron_is_its_keys_and_runs_as_that_key(tmp_path):
    database = f"sqlite:///{tmp_path}/fl.sqlite"
    keys = await _keys(database, ("a", "user", None), ("b", "user", None),
                       ("admin", "admin", None), ("broke", "user", 0.0),
                       ("gone", "user", None))
    clock, models = Clock(), ScriptedModels(lambda m: "ok")
    for url in run_server(_app(tmp_path, clock, models, database)):
        server = Server(url, clock, models, None)
        a, b, admin = (server.client(keys[k]) for k in ("a", "b", "admin"))
        thread = (await a.threads.create())["thread_id"]
        cron = await a.crons.create_for_thread(thread, "chat", schedule="* * * * *",
                                               input=say("as a"))
        kept = await a.crons.create("chat", schedule="* * * * *", input=say("a keeps"),
                                    on_run_completed="keep")
        assert cron["user_id"] == keys["a"].split("_")[1]
        # B: A's crons do not exist
        assert await b.crons.search() == [] and await b.crons.count() == 0
        with pytest.raises(NotFoundError):
            await b.crons.update(cron["cron_id"], enabled=False)
        with pytest.raises(NotFoundError):
            await b.crons.delete(cron["cron_id"])
        with pytest.raises(NotFoundError):
            await b.crons.create_for_thread(thread, "chat", schedule="* * * * *")
        assert (await a.crons.search(thread_id=thread))[0]["enabled"] is True
        # the admin sees every key's
        assert {cron["cron_id"], kept["cron_id"]} <= {
            c["cron_id"] for c in await admin.crons.search(limit=100)}
        broke = await server.client(keys["broke"]).crons.create(
            "chat", schedule="* * * * *", input=say("no budget"))
        gone = await server.client(keys["gone"]).crons.create(
            "chat", schedule="* * * * *", input=say("revoked"))
        async with open_database(database) as db:
            await KeyStore(db).revoke(keys["gone"].split("_")[1])
        clock.advance(60)
        await until(lambda: asked(models, "as a"), 1)
        await until(lambda: asked(models, "a keeps"), 1)
        # the runs are A's: on A's thread, and the kept stateless thread is A's too
        (run,) = await a.runs.list(thread)
        assert run["metadata"]["cron_id"] == cron["cron_id"]
        mine = {t["thread_id"] for t in await a.threads.search(limit=100)}
        assert len(mine) == 2 and thread in mine
        assert await b.threads.search(limit=100) == []
        assert asked(models, "no budget") == 0 and asked(models, "revoked") == 0
        (disabled,) = [c for c in await admin.crons.search(limit=100)
                       if c["cron_id"] == gone["cron_id"]]
        assert disabled["enabled"] is False  # a revoked key's cron stops for good
        (skipped,) = [c for c in await admin.crons.search(limit=100)
                      if c["cron_id"] == broke["cron_id"]]
        assert skipped["enabled"] is True and skipped["next_run_date"].startswith(
            "2030-01-01T00:02:00")
        await admin.crons.delete(cron["cron_id"])  # an admin may delete anyone's
        assert await a.crons.count() == 1


# -- two servers sharing one Postgres database ----------------------------------------------


@pytest.fixture
def pg_database() -> Iterator[str]:
    with own_pg_database("fl_crons") as url:
        yield url


@pytest.mark.postgres
async def test_claims_let_one_of_two_servers_take_each_fire(pg_database):
    now = datetime(2030, 1, 1, 0, 1, tzinfo=UTC)
    async with open_database(pg_database) as one, open_database(pg_database) as two:
        first, second = CronStore(one), CronStore(two)
        for i in range(20):
            await first.insert(Cron(
                cron_id=str(uuid.uuid4()), assistant_id="a", thread_id=None,
                schedule="* * * * *", timezone=None, end_time=None, enabled=True,
                on_run_completed="delete", payload={}, metadata={"i": i},
                next_run_at=stamp(now), created_at="", updated_at="", owner_key=None))
        # both servers read the same due fires, then both try to claim each
        seen_one, seen_two = [sorted(await store.due(now), key=lambda c: c.cron_id)
                              for store in (first, second)]
        assert len(seen_one) == len(seen_two) == 20
        following = Schedule("* * * * *").next_after(now)
        won = await asyncio.gather(*(store.claim(cron, following) for pair in zip(
            seen_one, seen_two, strict=True) for store, cron in zip(
            (first, second), pair, strict=True)))
        assert sum(won) == 20 and all(a != b for a, b in zip(won[::2], won[1::2],
                                                               strict=True))
        assert await first.due(now) == []


@pytest.mark.postgres
async def test_two_servers_on_one_postgres_fire_each_due_run_once(tmp_path, pg_database):
    clock, models = Clock(), ScriptedModels(lambda m: "ok")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    apps = [_app(tmp_path / name, clock, models, pg_database) for name in ("a", "b")]
    servers = [run_server(app) for app in apps]
    urls = [next(s) for s in servers]
    try:
        clients = [get_client(url=u, api_key=None) for u in urls]
        threads, texts = [], []
        for i in range(6):  # made on either server: both fire all of them
            client = clients[i % 2]
            text = f"fire {i}"
            texts.append(text)
            if i < 3:
                thread = (await client.threads.create())["thread_id"]
                threads.append(thread)
                await client.crons.create_for_thread(thread, "chat", schedule="* * * * *",
                                                     input=say(text))
            else:
                await client.crons.create("chat", schedule="* * * * *", input=say(text))
        for minute in (1, 2, 3):
            clock.advance(60)
            for text in texts:
                await until(lambda text=text: asked(models, text), minute)
        for thread in threads:
            runs = await clients[1].runs.list(thread, limit=100)
            assert len(runs) == 3 and {r["status"] for r in runs} == {"success"}
        stats = [app.state.flowloom_cron_scheduler.stats for app in apps]
        assert sum(s.fired for s in stats) == 18 and sum(s.skipped for s in stats) == 0
    finally:
        for s in servers:
            next(s, None)
