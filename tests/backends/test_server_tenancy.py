"""Tenancy: every key owns its threads, runs, assistants and observations.

Two user keys (A and B) and an admin key against a real server on 127.0.0.1 (SQLite, and
Postgres in a database of its own). Every route the OpenAPI document marks `owner` is
tried by B on A's things: it answers 404 (never 403, no existence oracle) and changes
nothing; A itself is answered; searches and counts list only the caller's own; admins see
all. A route without an `x-flowloom-access` rule, or an owned route without a probe here,
fails `test_every_route_states_its_access_rule`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from flowloom.backends.gateway import GatewayModels
from flowloom.backends.server import ServerSettings, create_app
from flowloom.backends.server.db import open_database
from flowloom.backends.server.keys import KeyStore
from flowloom.backends.server.tenancy import (
    ACCESS_KEY,
    LOCAL,
    Principal,
    scoped_thread_id,
)
from flowloom.flows.context import BuildContext
from flowloom.retrievers.search_node import public_source
from tests.backends.conftest import make_keys, own_pg_database
from tests.backends.test_gateway import make_gateway
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels

RULES = {"open", "shared", "owner", "admin", "user"}
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
HOLD = {"messages": [{"role": "user", "content": "hold"}]}
RELEASE = threading.Event()


def _reply(messages: Any) -> str:
    """Counts what the model saw; `hold` keeps the run going until RELEASE (at most 20 s):
    a live run to cancel, join and stream."""
    text = str(messages[-1].content)
    if "Classify" in str(messages[0].content):
        return "billing"
    if text == "hold":
        RELEASE.wait(20)
    return f"seen {len(messages)}: {text}"


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with own_pg_database("fl_tenancy") as url:
        yield url


@dataclass
class Tenants:
    url: str
    keys: dict[str, str]

    def http(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": self.keys[who]},
                            timeout=30)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                              marks=pytest.mark.postgres)])
async def tenants(request, tmp_path_factory) -> Iterator[Tenants]:
    home = tmp_path_factory.mktemp(f"tenancy-{request.param}")
    database = (f"sqlite:///{home}/fl.sqlite" if request.param == "sqlite"
                else request.getfixturevalue("pg_database"))
    keys = await make_keys(database)
    app = create_app(ServerSettings(database=database, home=home),
                     ctx=BuildContext(models=ScriptedModels(_reply), data_dir=home))
    for url in run_server(app):
        yield Tenants(url, keys)


@dataclass
class Owned:
    """What key A made: a thread with a finished run, a checkpoint, an assistant, and a
    run still going on a second thread."""

    thread: str
    run: str
    checkpoint: str
    assistant: str
    live_thread: str
    live_run: str
    cron: str = ""  # a cron on `thread` (its schedule fires on New Year's Day only)
    response: str = ""  # a stored /v1/responses response


def _setup_a(t: Tenants) -> Owned:
    RELEASE.clear()
    with t.http("a") as a:
        thread = a.post("/threads", json={"metadata": {"owner": "a"}}).json()["thread_id"]
        done = a.post(f"/threads/{thread}/runs/wait", json={"assistant_id": "chat",
                                                            "input": CHAT})
        assert done.status_code == 200, done.text
        run = a.get(f"/threads/{thread}/runs").json()[0]["run_id"]
        checkpoint = a.get(f"/threads/{thread}/state").json()["checkpoint"]["checkpoint_id"]
        assistant = a.post("/assistants", json={"graph_id": "chat", "name": "a's"}).json()
        stored = a.put("/store/items", json={"namespace": ["memories", thread], "key": "a",
                                             "value": {"text": "a's"}})
        assert stored.status_code == 204, stored.text
        cron = a.post(f"/threads/{thread}/runs/crons", json={
            "assistant_id": "chat", "schedule": "0 0 1 1 *", "input": CHAT}).json()["cron_id"]
        response = a.post("/v1/responses", json={"model": "chat", "input": "hi"})
        assert response.status_code == 200, response.text
        live_thread = a.post("/threads", json={}).json()["thread_id"]
        live = a.post(f"/threads/{live_thread}/runs", json={"assistant_id": "chat",
                                                            "input": HOLD}).json()
        deadline = time.time() + 10
        while a.get(f"/threads/{live_thread}/runs/{live['run_id']}").json()[
                "status"] != "running":
            assert time.time() < deadline, "the held run did not start"
            time.sleep(0.05)
    return Owned(thread, run, checkpoint, assistant["assistant_id"], live_thread,
                 live["run_id"], cron=cron, response=response.json()["id"])


def _snapshot(t: Tenants, o: Owned) -> dict[str, Any]:
    """Everything of A's that a probe could change, as A reads it."""
    with t.http("a") as a:
        thread = a.get(f"/threads/{o.thread}").json()
        return {
            "thread": {k: thread[k] for k in ("metadata", "values", "status")},
            "history": len(a.post(f"/threads/{o.thread}/history", json={"limit": 100}).json()),
            "runs": [(r["run_id"], r["status"]) for r in a.get(f"/threads/{o.thread}/runs")
                     .json()],
            "live": a.get(f"/threads/{o.live_thread}/runs/{o.live_run}").json()["status"],
            "assistant": a.get(f"/assistants/{o.assistant}").json(),
        }


Probe = Callable[[httpx.Client, Owned], httpx.Response]
RUN = {"assistant_id": "chat", "input": CHAT}

# Every owned route, as B would try it on A's things: (method, path) -> (probe, status B
# gets). Creating with an id A already holds is a conflict (the id is taken), not a 404.
PROBES: dict[tuple[str, str], tuple[Probe, int]] = {
    ("post", "/threads"): (lambda c, o: c.post("/threads", json={
        "thread_id": o.thread, "if_exists": "do_nothing"}), 409),
    ("post", "/threads/search"): (lambda c, o: c.post("/threads/search", json={
        "ids": [o.thread]}), 200),
    ("post", "/threads/count"): (lambda c, o: c.post("/threads/count", json={}), 200),
    ("get", "/threads/{thread_id}"): (lambda c, o: c.get(f"/threads/{o.thread}"), 404),
    ("patch", "/threads/{thread_id}"): (lambda c, o: c.patch(
        f"/threads/{o.thread}", json={"metadata": {"owner": "b"}}), 404),
    ("delete", "/threads/{thread_id}"): (lambda c, o: c.delete(f"/threads/{o.thread}"), 404),
    ("post", "/threads/{thread_id}/copy"): (lambda c, o: c.post(
        f"/threads/{o.thread}/copy"), 404),
    ("get", "/threads/{thread_id}/state"): (lambda c, o: c.get(
        f"/threads/{o.thread}/state"), 404),
    ("get", "/threads/{thread_id}/state/{checkpoint_id}"): (lambda c, o: c.get(
        f"/threads/{o.thread}/state/{o.checkpoint}"), 404),
    ("post", "/threads/{thread_id}/state/checkpoint"): (lambda c, o: c.post(
        f"/threads/{o.thread}/state/checkpoint",
        json={"checkpoint": {"checkpoint_id": o.checkpoint}}), 404),
    ("post", "/threads/{thread_id}/state"): (lambda c, o: c.post(
        f"/threads/{o.thread}/state", json={"values": {"messages": []}}), 404),
    ("post", "/threads/{thread_id}/history"): (lambda c, o: c.post(
        f"/threads/{o.thread}/history", json={}), 404),
    ("get", "/threads/{thread_id}/history"): (lambda c, o: c.get(
        f"/threads/{o.thread}/history"), 404),
    ("post", "/threads/{thread_id}/runs"): (lambda c, o: c.post(
        f"/threads/{o.thread}/runs", json=RUN), 404),
    ("post", "/threads/{thread_id}/runs/wait"): (lambda c, o: c.post(
        f"/threads/{o.thread}/runs/wait", json=RUN), 404),
    ("post", "/threads/{thread_id}/runs/stream"): (lambda c, o: c.post(
        f"/threads/{o.thread}/runs/stream", json=RUN), 404),
    ("get", "/threads/{thread_id}/runs"): (lambda c, o: c.get(
        f"/threads/{o.thread}/runs"), 404),
    ("get", "/threads/{thread_id}/runs/{run_id}"): (lambda c, o: c.get(
        f"/threads/{o.thread}/runs/{o.run}"), 404),
    ("delete", "/threads/{thread_id}/runs/{run_id}"): (lambda c, o: c.delete(
        f"/threads/{o.thread}/runs/{o.run}"), 404),
    ("get", "/threads/{thread_id}/runs/{run_id}/join"): (lambda c, o: c.get(
        f"/threads/{o.thread}/runs/{o.run}/join"), 404),
    ("get", "/threads/{thread_id}/runs/{run_id}/stream"): (lambda c, o: c.get(
        f"/threads/{o.live_thread}/runs/{o.live_run}/stream"), 404),
    ("post", "/threads/{thread_id}/runs/{run_id}/cancel"): (lambda c, o: c.post(
        f"/threads/{o.live_thread}/runs/{o.live_run}/cancel"), 404),
    ("post", "/runs/cancel"): (lambda c, o: c.post("/runs/cancel",
                                                   json={"run_ids": [o.live_run]}), 404),
    # stateless runs of A's assistant: the assistant does not exist for B
    ("post", "/runs"): (lambda c, o: c.post("/runs", json={**RUN,
                                                           "assistant_id": o.assistant}), 404),
    ("post", "/runs/wait"): (lambda c, o: c.post("/runs/wait", json={
        **RUN, "assistant_id": o.assistant}), 404),
    ("post", "/runs/stream"): (lambda c, o: c.post("/runs/stream", json={
        **RUN, "assistant_id": o.assistant}), 404),
    ("post", "/assistants"): (lambda c, o: c.post("/assistants", json={
        "graph_id": "chat", "assistant_id": o.assistant, "if_exists": "do_nothing"}), 409),
    ("post", "/assistants/{assistant_id}/latest"): (lambda c, o: c.post(
        f"/assistants/{o.assistant}/latest", json={"version": 1}), 404),
    ("get", "/assistants/{assistant_id}/subgraphs/{namespace}"): (lambda c, o: c.get(
        f"/assistants/{o.assistant}/subgraphs/any"), 404),
    ("post", "/threads/prune"): (lambda c, o: c.post("/threads/prune", json={
        "thread_ids": [o.thread], "strategy": "delete"}), 404),
    ("get", "/threads/{thread_id}/stream"): (lambda c, o: c.get(
        f"/threads/{o.live_thread}/stream"), 404),
    ("post", "/runs/batch"): (lambda c, o: c.post("/runs/batch", json=[
        RUN, {**RUN, "assistant_id": o.assistant}]), 404),
    ("post", "/assistants/search"): (lambda c, o: c.post("/assistants/search",
                                                         json={"graph_id": "chat"}), 200),
    ("post", "/assistants/count"): (lambda c, o: c.post("/assistants/count", json={}), 200),
    ("get", "/assistants/{assistant_id}"): (lambda c, o: c.get(
        f"/assistants/{o.assistant}"), 404),
    ("patch", "/assistants/{assistant_id}"): (lambda c, o: c.patch(
        f"/assistants/{o.assistant}", json={"name": "b's now"}), 404),
    ("delete", "/assistants/{assistant_id}"): (lambda c, o: c.delete(
        f"/assistants/{o.assistant}"), 404),
    ("post", "/assistants/{assistant_id}/versions"): (lambda c, o: c.post(
        f"/assistants/{o.assistant}/versions", json={}), 404),
    ("get", "/assistants/{assistant_id}/graph"): (lambda c, o: c.get(
        f"/assistants/{o.assistant}/graph"), 404),
    ("get", "/assistants/{assistant_id}/schemas"): (lambda c, o: c.get(
        f"/assistants/{o.assistant}/schemas"), 404),
    ("get", "/assistants/{assistant_id}/subgraphs"): (lambda c, o: c.get(
        f"/assistants/{o.assistant}/subgraphs"), 404),
    ("get", "/observe/runs"): (lambda c, o: c.get("/observe/runs"), 200),
    ("get", "/observe/runs/{run_id}/nodes"): (lambda c, o: c.get(
        f"/observe/runs/{o.run}/nodes"), 404),
    ("get", "/observe/routes"): (lambda c, o: c.get("/observe/routes"), 200),
    ("get", "/models/calls"): (lambda c, o: c.get("/models/calls"), 200),
    # /v1 threads are named within the key's space: B's "alice" is not A's (tested below)
    ("post", "/v1/chat/completions"): (lambda c, o: c.post("/v1/chat/completions", json={
        "model": "chat", "messages": [{"role": "user", "content": "x"}], "user": "alice"}),
        200),
    # /v1/responses: A's stored response does not exist for B (nor continuing it)
    ("post", "/v1/responses"): (lambda c, o: c.post("/v1/responses", json={
        "model": "chat", "input": "x", "previous_response_id": o.response}), 404),
    ("get", "/v1/responses/{response_id}"): (lambda c, o: c.get(
        f"/v1/responses/{o.response}"), 404),
    ("delete", "/v1/responses/{response_id}"): (lambda c, o: c.delete(
        f"/v1/responses/{o.response}"), 404),
    # store items: A's item (memories.<A's thread>/a) does not exist for B; B's put to that
    # namespace and key makes B's own item beside it, B's delete deletes B's own (204 even
    # when there is none); so the get comes first
    ("get", "/store/items"): (lambda c, o: c.get("/store/items", params={
        "namespace": f"memories.{o.thread}", "key": "a"}), 404),
    ("post", "/store/items/search"): (lambda c, o: c.post("/store/items/search", json={
        "namespace_prefix": ["memories", o.thread]}), 200),
    ("post", "/store/namespaces"): (lambda c, o: c.post("/store/namespaces", json={
        "prefix": ["memories", o.thread]}), 200),
    ("put", "/store/items"): (lambda c, o: c.put("/store/items", json={
        "namespace": ["memories", o.thread], "key": "a", "value": {"text": "b's"}}), 204),
    ("delete", "/store/items"): (lambda c, o: c.request("DELETE", "/store/items", json={
        "namespace": ["memories", o.thread], "key": "a"}), 204),
    # crons: A's cron, and the thread and assistant a new one would name, are not found
    ("post", "/runs/crons"): (lambda c, o: c.post("/runs/crons", json={
        "assistant_id": o.assistant, "schedule": "0 0 1 1 *"}), 404),
    ("post", "/threads/{thread_id}/runs/crons"): (lambda c, o: c.post(
        f"/threads/{o.thread}/runs/crons", json={"assistant_id": "chat",
                                                 "schedule": "0 0 1 1 *"}), 404),
    ("post", "/runs/crons/search"): (lambda c, o: c.post("/runs/crons/search", json={
        "thread_id": o.thread}), 200),
    ("post", "/runs/crons/count"): (lambda c, o: c.post("/runs/crons/count", json={}), 200),
    ("patch", "/runs/crons/{cron_id}"): (lambda c, o: c.patch(
        f"/runs/crons/{o.cron}", json={"enabled": False}), 404),
    ("delete", "/runs/crons/{cron_id}"): (lambda c, o: c.delete(f"/runs/crons/{o.cron}"),
                                          404),
}


def _operations(app: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method, path, operation


def test_every_route_states_its_access_rule(tmp_path):
    app = create_app(ServerSettings(home=tmp_path),
                     ctx=BuildContext(models=ScriptedModels(_reply)))
    missing = [f"{m.upper()} {p}" for m, p, op in _operations(app)
               if op.get(ACCESS_KEY) not in RULES]
    assert not missing, f"routes without an {ACCESS_KEY} rule ({', '.join(RULES)}): {missing}"
    owned = {(m, p) for m, p, op in _operations(app) if op[ACCESS_KEY] == "owner"}
    assert owned == set(PROBES), (
        f"owned routes without a probe: {sorted(owned - set(PROBES))}; "
        f"probes of routes that are not owned: {sorted(set(PROBES) - owned)}")


def test_principals_and_scoped_thread_names():
    a, b = Principal("aaa", admin=False), Principal("bbb", admin=False)
    assert a.sees("aaa") and not a.sees("bbb") and not a.sees(None)
    assert LOCAL.sees(None) and LOCAL.sees("aaa") and Principal("ad", admin=True).sees("aaa")
    assert scoped_thread_id(a, "alice") != scoped_thread_id(b, "alice")
    assert scoped_thread_id(a, "alice") == scoped_thread_id(a, "alice")
    uuid.UUID(scoped_thread_id(a, "alice"))  # a thread id the LangGraph API accepts
    assert scoped_thread_id(LOCAL, "alice") == "alice"  # no key: as it always was


def test_public_sources_hide_the_servers_folders():
    assert public_source("/home/srv/.flowloom/kbs/uploads/docs/handbook.pdf") == "handbook.pdf"
    assert public_source("https://example.com/a.html") == "https://example.com/a.html"
    assert public_source("") == ""


async def test_another_user_key_gets_404_and_changes_nothing(tenants: Tenants):
    owned = _setup_a(tenants)
    before = _snapshot(tenants, owned)
    with tenants.http("b") as b:
        for (method, path), (probe, status) in PROBES.items():
            answer = probe(b, owned)
            assert answer.status_code == status, (method, path, answer.text)
            if status == 404:
                assert owned.thread not in answer.text or "not found" in answer.text
        # the 200s list nothing of A's
        assert b.post("/threads/search", json={"ids": [owned.thread]}).json() == []
        assert owned.thread not in b.post("/threads/search", json={"limit": 100}).text
        assert owned.assistant not in b.post("/assistants/search", json={}).text
        assert owned.run not in b.get("/observe/runs?limit=1000").text
    assert _snapshot(tenants, owned) == before, "a refused request changed A's things"
    assert before["live"] == "running"
    RELEASE.set()


async def test_owners_reach_their_own_and_admins_see_all(tenants: Tenants):
    owned = _setup_a(tenants)
    with tenants.http("b") as b:
        mine = b.post("/threads", json={}).json()["thread_id"]
        assert b.post(f"/threads/{mine}/runs/wait", json=RUN).status_code == 200
        assert b.post("/threads/count", json={}).json() == len(
            b.post("/threads/search", json={"limit": 1000}).json())
        assert {t["thread_id"] for t in b.post("/threads/search",
                                               json={"limit": 1000}).json()} >= {mine}
    with tenants.http("a") as a:
        for (method, path), (probe, _) in PROBES.items():
            if method == "delete" or path in (
                    "/threads", "/assistants",  # a create with an id A already has
                    "/threads/prune",  # deletes A's thread
                    "/threads/{thread_id}/stream",  # follows the held run
                    "/threads/{thread_id}/runs/{run_id}/stream",  # follows the held run
                    "/threads/{thread_id}/runs/{run_id}/cancel", "/runs/cancel"):
                continue
            answer = probe(a, owned)
            assert answer.status_code < 300, (method, path, answer.status_code, answer.text)
        with a.stream("GET", f"/threads/{owned.live_thread}/runs/{owned.live_run}/stream"
                      ) as stream:
            assert stream.status_code == 200
            assert next(stream.iter_lines()).startswith("id: ")  # its events so far
        cancelled = a.post("/runs/cancel?wait=true", json={"run_ids": [owned.live_run]})
        assert cancelled.status_code == 204
        assert a.get(f"/threads/{owned.live_thread}/runs/{owned.live_run}").json()[
            "status"] == "interrupted"
        RELEASE.set()
        listed = {t["thread_id"] for t in a.post("/threads/search",
                                                 json={"limit": 1000}).json()}
        assert owned.thread in listed and mine not in listed
        assert owned.run in a.get("/observe/runs?limit=1000").text
        assert a.get(f"/observe/runs/{owned.run}/nodes").json()["nodes"]
    with tenants.http("admin") as admin:
        assert admin.get(f"/threads/{owned.thread}").status_code == 200
        assert admin.get(f"/threads/{mine}").status_code == 200
        listed = {t["thread_id"] for t in admin.post("/threads/search",
                                                     json={"limit": 1000}).json()}
        assert {owned.thread, mine} <= listed
        assert admin.post("/threads/count", json={}).json() >= len(listed)
        assert admin.get(f"/assistants/{owned.assistant}").status_code == 200
        runs = admin.get("/observe/runs?limit=1000").text
        assert owned.run in runs
        # an admin acts on a user's thread (support work): a run, then delete
        assert admin.post(f"/threads/{mine}/runs/wait", json=RUN).status_code == 200
        assert admin.delete(f"/threads/{mine}").status_code == 204


async def test_openai_user_names_a_thread_within_the_keys_own_space(tenants: Tenants):
    def say(client: httpx.Client, text: str, **extra: Any) -> httpx.Response:
        return client.post("/v1/chat/completions", json={
            "model": "chat", "messages": [{"role": "user", "content": text}], **extra})

    name = f"alice-{uuid.uuid4().hex[:6]}"
    with tenants.http("a") as a, tenants.http("b") as b:
        def seen(answer: httpx.Response) -> int:  # how many messages the model was sent
            assert answer.status_code == 200, answer.text
            return int(answer.json()["choices"][0]["message"]["content"].split()[1][:-1])

        first = say(a, "my secret is 42", user=name)
        assert first.headers["x-flowloom-thread"] == name
        fresh = seen(first)
        # A's thread holds A's history: the question and the answer before this one
        assert seen(say(a, "what is my secret?", user=name)) == fresh + 2
        assert seen(say(b, "what is my secret?", user=name)) == fresh  # B's is a new one
        by_header = b.post("/v1/chat/completions", headers={"X-Flowloom-Thread": name}, json={
            "model": "chat", "messages": [{"role": "user", "content": "again"}]})
        assert seen(by_header) == fresh + 2  # B's own "alice", not A's
        # A's /v1 thread is a thread of A's: listed for A, not found for B
        a_key_id = tenants.keys["a"].split("_")[1]
        hidden = scoped_thread_id(Principal(a_key_id, admin=False), name)
        assert a.get(f"/threads/{hidden}").status_code == 200
        assert b.get(f"/threads/{hidden}/state").status_code == 404
        assert b.post("/threads", json={"thread_id": hidden}).status_code == 409
        assert b.post(f"/threads/{hidden}/runs/wait", json={
            **RUN, "if_not_exists": "create"}).status_code == 404


async def test_metrics_and_deployment_addresses_are_for_admins(tenants: Tenants):
    with tenants.http("b") as b, tenants.http("admin") as admin:
        refused = b.get("/metrics")
        assert refused.status_code == 403 and refused.json()["needed_role"] == "admin"
        assert admin.get("/metrics").status_code == 200
        flows = b.get("/flows").json()
        assert all(not f["source"].startswith("file:/") for f in flows), flows
        assert any(f["source"] == "file:chat.json" for f in flows)
        assert any(f["source"].startswith("file:/") for f in admin.get("/flows").json())


async def test_keys_revoked_or_missing_still_get_401(tenants: Tenants):
    assert httpx.get(f"{tenants.url}/threads/search").status_code in (401, 405)
    answer = httpx.post(f"{tenants.url}/threads/search", json={})
    assert answer.status_code == 401
    wrong = httpx.post(f"{tenants.url}/threads/search", json={},
                       headers={"x-api-key": tenants.keys["a"][:-3] + "xyz"})
    assert wrong.status_code == 401


PRICED = """
model_list:
  - model_name: local
    litellm_params: {model: openai/fake-chat, api_base: $OK, api_key: sk-test}
router_settings: {num_retries: 0}
"""


async def test_model_calls_are_scoped_and_addresses_hidden(tmp_path, fake_openai):
    database = f"sqlite:///{tmp_path}/fl.sqlite"
    keys = await make_keys(database)
    gateway = make_gateway(fake_openai, PRICED)
    app = create_app(ServerSettings(database=database, home=tmp_path),
                     ctx=BuildContext(models=GatewayModels(gateway)))
    for url in run_server(app):
        t = Tenants(url, keys)
        with t.http("a") as a, t.http("b") as b, t.http("admin") as admin:
            assert a.post("/runs/wait", json=RUN).status_code == 200
            assert a.post("/runs/wait", json=RUN).status_code == 200
            assert b.post("/runs/wait", json=RUN).status_code == 200
            mine, theirs = a.get("/models/calls").json(), b.get("/models/calls").json()
            every = admin.get("/models/calls").json()
            assert mine["total"]["calls"] == 2 and len(mine["calls"]) == 2
            assert theirs["total"]["calls"] == 1 and len(theirs["calls"]) == 1
            assert every["total"]["calls"] == 3
            shown = b.get("/models").json()["models"][0]["deployments"][0]
            assert shown["api_base"] is None and shown["missing_env"] == []
            full = admin.get("/models").json()["models"][0]["deployments"][0]
            assert full["api_base"].startswith("http://127.0.0.1")


async def test_threads_made_before_ownership_belong_to_admins(tmp_path):
    """A database from before this change (no owner columns): opening it adds them; its
    threads have no owner, so user keys don't see them and admins do."""
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("""CREATE TABLE fl_threads (
        thread_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        state_updated_at TEXT NOT NULL, metadata TEXT NOT NULL, status TEXT NOT NULL,
        config TEXT NOT NULL, graph_id TEXT)""")
    old = str(uuid.uuid4())
    conn.execute("INSERT INTO fl_threads VALUES (?, 'x', 'x', 'x', ?, 'idle', '{}', 'chat')",
                 (old, json.dumps({"graph_id": "chat"})))
    conn.commit()
    conn.close()
    database = f"sqlite:///{path}"
    # a server with no key: the one local user sees everything, and makes unowned threads
    app = create_app(ServerSettings(database=database, home=tmp_path),
                     ctx=BuildContext(models=ScriptedModels(_reply)))
    for url in run_server(app):
        assert httpx.get(f"{url}/threads/{old}").status_code == 200
        local = httpx.post(f"{url}/threads", json={}).json()["thread_id"]
    keys = await make_keys(database)
    for url in run_server(create_app(ServerSettings(database=database, home=tmp_path),
                                     ctx=BuildContext(models=ScriptedModels(_reply)))):
        t = Tenants(url, keys)
        with t.http("a") as a, t.http("admin") as admin:
            for thread in (old, local):
                assert a.get(f"/threads/{thread}").status_code == 404
                assert admin.get(f"/threads/{thread}").status_code == 200
            assert a.post("/threads/search", json={}).json() == []
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(fl_threads)")}
    assert "owner_key" in columns


async def test_metrics_can_be_opened_to_users(tmp_path):
    database = f"sqlite:///{tmp_path}/fl.sqlite"
    keys = await make_keys(database)
    settings = ServerSettings(database=database, home=tmp_path, metrics_role="user")
    for url in run_server(create_app(settings, ctx=BuildContext(models=ScriptedModels(_reply)))):
        with Tenants(url, keys).http("b") as b:
            assert b.get("/metrics").status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 401  # still a key's


NOTE_FLOW = {
    "schema_version": 1, "id": "note", "name": "Note",
    "state": {"text": {"type": "string"}, "note": {"type": "string"}},
    "nodes": [{"id": "write", "type": "state.set@1",
               "params": {"templates": {"note": "noted: {{ text }}"}}}],
    "edges": [{"source": "START", "target": "write"}, {"source": "write", "target": "END"}],
}


def test_flowloom_serve_with_cli_keys_keeps_tenants_apart(tmp_path):
    """The real command: keys made by `flowloom keys create`, `flowloom serve` in its own
    process, and a flow that needs no model."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "FLOWLOOM_HOME": str(tmp_path)}
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "note.json").write_text(json.dumps(NOTE_FLOW))

    def key(role: str) -> str:
        made = subprocess.run([sys.executable, "-m", "flowloom.ui.cli", "keys", "create",
                               "--role", role], capture_output=True, text=True, env=env,
                              timeout=120)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()

    keys = {"a": key("user"), "b": key("user"), "admin": key("admin")}
    proc = subprocess.Popen([sys.executable, "-m", "flowloom.ui.cli", "serve", "--port", "0",
                             "--flows", str(flows)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("FLOWLOOM_SERVER_READY"), proc.stderr.read()
        t = Tenants(line.split()[1], keys)
        with t.http("a") as a, t.http("b") as b, t.http("admin") as admin:
            thread = a.post("/threads", json={}).json()["thread_id"]
            done = a.post(f"/threads/{thread}/runs/wait",
                          json={"assistant_id": "note", "input": {"text": "mine"}})
            assert done.json()["note"] == "noted: mine"
            for path in (f"/threads/{thread}", f"/threads/{thread}/state",
                         f"/threads/{thread}/runs"):
                assert b.get(path).status_code == 404, path
                assert a.get(path).status_code == 200 and admin.get(path).status_code == 200
            overwrite = b.post(f"/threads/{thread}/state", json={"values": {"note": "b's"}})
            assert overwrite.status_code == 404
            assert b.post("/threads/count", json={}).json() == 0
            assert a.get(f"/threads/{thread}/state").json()["values"]["note"] == "noted: mine"
    finally:
        proc.terminate()
        proc.wait(20)


PRICED_COSTS = """
model_list:
  - model_name: local
    litellm_params: {model: openai/fake-chat, api_base: $OK, api_key: sk-test,
                     input_cost_per_token: 0.001, output_cost_per_token: 0.002}
router_settings: {num_retries: 0}
"""


async def test_each_key_is_charged_its_own_calls_even_side_by_side(tmp_path, fake_openai):
    import asyncio

    from langgraph_sdk import get_client

    database = f"sqlite:///{tmp_path}/fl.sqlite"
    keys = await make_keys(database)
    gateway = make_gateway(fake_openai, PRICED_COSTS)
    app = create_app(ServerSettings(database=database, home=tmp_path),
                     ctx=BuildContext(models=GatewayModels(gateway)))
    for url in run_server(app):
        a, b = get_client(url=url, api_key=keys["a"]), get_client(url=url, api_key=keys["b"])
        await asyncio.gather(*(a.runs.wait(None, "chat", input=CHAT) for _ in range(3)),
                             b.runs.wait(None, "chat", input=CHAT))
    one_call = gateway.usage_summary().total.cost / 4
    async with open_database(database) as db:
        spent = {k.name: k.spent_usd for k in await KeyStore(db).list()}
    assert spent["a"] == pytest.approx(3 * one_call) and spent["b"] == pytest.approx(one_call)
    assert spent["admin"] == 0
