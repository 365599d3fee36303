"""The store API (`/store/items`, `/store/namespaces`) as langgraph-sdk's `client.store`
uses it, against a real server on 127.0.0.1, on SQLite and on a Postgres database of its
own: items, filters, paging, semantic search through the gateway's embedding alias, TTL,
422s that name the field, ownership by key, and a flow that remembers across threads.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from flowloom.backends.server import ServerSettings, create_app
from flowloom.backends.server.db import open_database
from flowloom.backends.server.items import ItemStore, OwnedStore, StoreIndex
from flowloom.backends.server.tenancy import LOCAL, Principal, current_principal
from flowloom.flows.context import BuildContext
from tests.backends.conftest import make_keys, own_pg_database
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels

VOCAB = ("tea", "coffee", "dog", "cat", "green", "morning")


class WordModels(ScriptedModels):
    """Chat answers with the system prompt it was given (so a test reads what a flow's
    memory put there); embeddings are bags of VOCAB words: texts sharing words are near."""

    def __init__(self, aliases: Sequence[str] = ("local", "local-embed")) -> None:
        super().__init__(lambda messages: str(messages[0].content), aliases=aliases)
        self.embedded: list[str] = []

    async def aembed(self, alias: str, texts: Sequence[str], *,
                     input_type: str | None = None) -> list[list[float]]:
        self.embedded.extend(texts)
        return [[t.lower().count(word) + 0.01 for word in VOCAB] for t in texts]


class BrokenEmbedder(WordModels):
    async def aembed(self, alias: str, texts: Sequence[str], *,
                     input_type: str | None = None) -> list[list[float]]:
        raise ConnectionError("embedding server unreachable")


MEMO_FLOW = {
    "schema_version": 1, "id": "memo", "name": "Memo",
    "description": "Remembers what each user says, across threads.",
    "state": {"messages": {"type": "messages"}, "user_id": {"type": "string"},
              "memories": {"type": "array"}},
    "nodes": [
        {"id": "recall", "type": "memory.search@1",
         "params": {"namespace": ["memories", "{{ user_id }}"], "limit": 3}},
        {"id": "remember", "type": "memory.put@1",
         "params": {"namespace": ["memories", "{{ user_id }}"]}},
        {"id": "answer", "type": "llm.chat@1",
         "params": {"system": "Known:{% for m in memories %} [{{ m.text }}]{% endfor %}"}},
    ],
    "edges": [{"source": "START", "target": "recall"}, {"source": "recall", "target": "remember"},
              {"source": "remember", "target": "answer"}, {"source": "answer", "target": "END"}],
}


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with own_pg_database("fl_store") as url:
        yield url


@dataclass
class Served:
    url: str
    keys: dict[str, str]

    def sdk(self, who: str) -> Any:
        return get_client(url=self.url, api_key=self.keys[who])

    def http(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": self.keys[who]},
                            timeout=30)


def _flows_dir(home: Path) -> Path:
    flows = home / "flows"
    flows.mkdir()
    (flows / "memo.json").write_text(json.dumps(MEMO_FLOW))
    return flows


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                              marks=pytest.mark.postgres)])
async def served(request, tmp_path_factory) -> AsyncIterator[Served]:
    home = tmp_path_factory.mktemp(f"store-{request.param}")
    database = (f"sqlite:///{home}/fl.sqlite" if request.param == "sqlite"
                else request.getfixturevalue("pg_database"))
    keys = await make_keys(database)
    settings = ServerSettings(database=database, home=home, flows_dirs=(_flows_dir(home),))
    app = create_app(settings, ctx=BuildContext(models=WordModels(), data_dir=home))
    for url in run_server(app):
        yield Served(url, keys)


def _run() -> str:
    return uuid.uuid4().hex[:8]


# -- the SDK's calls ----------------------------------------------------------------------

async def test_put_get_update_delete(served: Served):
    a, ns = served.sdk("a"), ["conf", _run()]
    assert await a.store.put_item(ns, "k", {"text": "hello", "n": 1}) is None
    item = await a.store.get_item(ns, "k")
    assert set(item) == {"namespace", "key", "value", "created_at", "updated_at"}
    assert (item["namespace"], item["key"], item["value"]) == (ns, "k", {"text": "hello",
                                                                          "n": 1})
    await asyncio.sleep(0.01)
    await a.store.put_item(ns, "k", {"text": "bye"})
    again = await a.store.get_item(ns, "k")
    assert again["value"] == {"text": "bye"} and again["created_at"] == item["created_at"]
    assert again["updated_at"] > item["updated_at"]
    await a.store.delete_item(ns, "k")
    with pytest.raises(NotFoundError):
        await a.store.get_item(ns, "k")
    await a.store.delete_item(ns, "k")  # nothing left to delete: still a 204


async def test_search_filters_and_pages_newest_first(served: Served):
    a, run = served.sdk("a"), _run()
    for n in range(1, 6):
        await a.store.put_item(["docs", run, "all"], f"d{n}", {
            "n": n, "kind": "odd" if n % 2 else "even", "meta": {"tag": "x", "n": n}})
    await a.store.put_item(["docs", f"{run}x"], "sibling", {"n": 9})  # not under the prefix

    async def keys(**kw: Any) -> list[str]:
        found = (await a.store.search_items(["docs", run], **kw))["items"]
        assert all(item["score"] is None for item in found)
        return [item["key"] for item in found]

    assert await keys() == ["d5", "d4", "d3", "d2", "d1"]
    assert await keys(limit=2) == ["d5", "d4"]
    assert await keys(limit=2, offset=2) == ["d3", "d2"]
    assert await keys(filter={"kind": "odd"}) == ["d5", "d3", "d1"]
    assert await keys(filter={"kind": "odd"}, limit=1, offset=1) == ["d3"]
    assert await keys(filter={"n": {"$gte": 2, "$lt": 4}}) == ["d3", "d2"]
    assert await keys(filter={"n": {"$ne": 3}, "kind": "odd"}) == ["d5", "d1"]
    assert await keys(filter={"meta": {"tag": "x", "n": 4}}) == ["d4"]
    assert await keys(filter={"missing": 1}) == []
    with pytest.raises(UnprocessableEntityError, match="unknown operator"):
        await a.store.search_items(["docs", run], filter={"n": {"$in": [1, 2]}})
    everything = (await a.store.search_items(["docs"], limit=100))["items"]
    assert "sibling" in {i["key"] for i in everything}


async def test_query_ranks_by_meaning_through_the_embedding_alias(served: Served):
    a, ns = served.sdk("a"), ["memories", _run()]
    await a.store.put_item(ns, "tea", {"text": "I drink green tea"})
    await a.store.put_item(ns, "dog", {"text": "my dog barks"})
    await a.store.put_item(ns, "coffee", {"text": "coffee every morning"})
    await a.store.put_item(ns, "raw", {"text": "tea tea tea"}, index=False)
    await a.store.put_item(ns, "titled", {"title": "dog", "text": "tea"}, index=["title"])
    found = (await a.store.search_items(ns, query="which green tea?", limit=10))["items"]
    assert found[0]["key"] == "tea"
    scores = [i["score"] for i in found if i["score"] is not None]
    assert scores == sorted(scores, reverse=True) and len(scores) == 4
    assert found[-1]["key"] == "raw" and found[-1]["score"] is None  # never embedded
    dog = (await a.store.search_items(ns, query="a dog", limit=2))["items"]
    assert {i["key"] for i in dog} == {"dog", "titled"}  # "titled" embedded its title only
    second = (await a.store.search_items(ns, query="which green tea?", limit=1, offset=1))
    assert second["items"][0]["key"] == found[1]["key"]
    only = (await a.store.search_items(ns, query="morning", filter={"text": "my dog barks"}))
    assert [i["key"] for i in only["items"]] == ["dog"]


async def test_list_namespaces_prefix_suffix_depth_and_paging(served: Served):
    a, run = served.sdk("a"), _run()
    for ns in (["ns", run, "users", "ada", "prefs"], ["ns", run, "users", "bob", "prefs"],
               ["ns", run, "docs"]):
        await a.store.put_item(ns, "k", {"x": 1})

    async def listed(**kw: Any) -> list[list[str]]:
        return (await a.store.list_namespaces(**kw))["namespaces"]

    assert await listed(prefix=["ns", run]) == [
        ["ns", run, "docs"], ["ns", run, "users", "ada", "prefs"],
        ["ns", run, "users", "bob", "prefs"]]
    assert await listed(prefix=["ns", run, "users"], max_depth=3) == [["ns", run, "users"]]
    assert await listed(prefix=["ns", run], suffix=["prefs"], limit=1, offset=1) == [
        ["ns", run, "users", "bob", "prefs"]]
    assert await listed(prefix=["ns", "*", "users", "ada"]) == [
        ["ns", run, "users", "ada", "prefs"]]
    assert await listed(prefix=["ns", run], suffix=["*", "docs"]) == [["ns", run, "docs"]]


async def test_ttl_expires_items_and_reads_refresh_it(served: Served):
    a, ns = served.sdk("a"), ["ttl", _run()]
    await a.store.put_item(ns, "short", {"x": 1}, ttl=0.001)  # 60 ms
    await a.store.put_item(ns, "kept", {"x": 2}, ttl=0.05)  # 3 s
    await asyncio.sleep(0.3)
    with pytest.raises(NotFoundError):
        await a.store.get_item(ns, "short")
    assert [i["key"] for i in (await a.store.search_items(ns))["items"]] == ["kept"]
    await asyncio.sleep(1.7)
    await a.store.get_item(ns, "kept")  # read at 2 s: it now lives until 5 s
    await asyncio.sleep(1.5)
    found = (await a.store.search_items(ns, refresh_ttl=False))["items"]
    assert [i["key"] for i in found] == ["kept"]  # 3.5 s: alive only thanks to the read
    await asyncio.sleep(2.0)
    with pytest.raises(NotFoundError):
        await a.store.get_item(ns, "kept", refresh_ttl=False)


def test_bad_input_is_422_naming_the_field(served: Served):
    ns = ["bad", _run()]
    with served.http("a") as a:
        def refused(answer: httpx.Response, *words: str) -> None:
            assert answer.status_code == 422, answer.text
            for word in words:
                assert word in answer.json()["detail"], (word, answer.text)

        def put(**body: Any) -> httpx.Response:
            return a.put("/store/items", json={"namespace": ns, "key": "k", "value": {},
                                               **body})

        refused(put(namespace=["a.b"]), "namespace[0]", "'.'")
        refused(put(namespace=["ok", ""]), "namespace[1]", "empty")
        refused(put(namespace=[]), "namespace", "at least one label")
        refused(put(namespace=["langgraph"]), "namespace[0]", "reserved")
        refused(put(namespace=["a", 3]), "namespace")
        refused(put(value=[1, 2]), "value")
        refused(put(value="text"), "value")
        refused(put(key=""), "key")
        refused(put(ttl=0), "ttl")
        refused(put(ttl=-5), "ttl")
        refused(put(index=True), "index")
        refused(put(metadata={"x": 1}), "metadata")  # an option it does not know
        refused(a.get("/store/items", params={"namespace": "", "key": "k"}), "namespace")
        refused(a.get("/store/items", params={"namespace": "a..b", "key": "k"}),
                "namespace[1]")

        def search(**body: Any) -> httpx.Response:
            return a.post("/store/items/search", json={"namespace_prefix": ns, **body})

        refused(search(filter={"n": {"$in": [1]}}), "filter.n", "$in")
        refused(search(filter={"n": {"$gt": [1]}}), "filter.n.$gt")
        refused(search(filter={"$eq": 1}), "filter", "inside a field")
        refused(search(filter={"n": {"$gt": 1, "x": 2}}), "filter.n", "not both")
        refused(search(filter=[1]), "filter")
        refused(search(namespace_prefix=["a.b"]), "namespace_prefix[0]")
        refused(search(limit=0), "limit")
        refused(search(offset=-1), "offset")
        refused(search(query=5), "query")
        refused(a.post("/store/namespaces", json={"max_depth": 0}), "max_depth")
        refused(a.post("/store/namespaces", json={"prefix": ["x.y"]}), "prefix[0]")
        refused(a.post("/store/namespaces", json={"suffix": [""]}), "suffix[0]")
        refused(a.request("DELETE", "/store/items", json={"namespace": ["a.b"], "key": "k"}),
                "namespace[0]")


# -- ownership -----------------------------------------------------------------------------

def test_items_belong_to_the_key_that_wrote_them(served: Served):
    ns = ["shared", _run()]
    prefix = {"namespace_prefix": ns}
    with served.http("a") as a, served.http("b") as b, served.http("admin") as admin:
        def get(client: httpx.Client) -> httpx.Response:
            return client.get("/store/items", params={"namespace": ".".join(ns), "key": "k"})

        assert a.put("/store/items", json={"namespace": ns, "key": "k",
                                           "value": {"who": "a"}}).status_code == 204
        missing = get(b)
        assert missing.status_code == 404 and "not found" in missing.json()["detail"]
        assert b.post("/store/items/search", json=prefix).json() == {"items": []}
        assert b.post("/store/namespaces", json={"prefix": ns}).json() == {"namespaces": []}
        # B writing the same namespace and key makes B's own item; A's is untouched
        assert b.put("/store/items", json={"namespace": ns, "key": "k",
                                           "value": {"who": "b"}}).status_code == 204
        assert get(b).json()["value"] == {"who": "b"}
        assert get(a).json()["value"] == {"who": "a"}
        assert [i["value"] for i in a.post("/store/items/search", json=prefix).json()[
            "items"]] == [{"who": "a"}]
        # B deleting deletes B's own
        assert b.request("DELETE", "/store/items", json={"namespace": ns, "key": "k"}
                         ).status_code == 204
        assert get(b).status_code == 404 and get(a).json()["value"] == {"who": "a"}
        assert b.request("DELETE", "/store/items", json={"namespace": ns, "key": "k"}
                         ).status_code == 204  # A's is not B's to delete
        assert get(a).status_code == 200
        # admins see every key's items; their get reaches another key's when they have none
        b.put("/store/items", json={"namespace": ns, "key": "k2", "value": {"who": "b"}})
        every = admin.post("/store/items/search", json=prefix).json()["items"]
        assert sorted(i["value"]["who"] for i in every) == ["a", "b"]
        assert admin.post("/store/namespaces", json={"prefix": ns}).json()[
            "namespaces"] == [ns]
        assert get(admin).json()["value"] == {"who": "a"}
        admin.put("/store/items", json={"namespace": ns, "key": "k", "value": {"who": "ad"}})
        assert get(admin).json()["value"] == {"who": "ad"}  # its own first
        assert get(a).json()["value"] == {"who": "a"}


async def test_a_flow_remembers_across_threads_for_its_key_only(served: Served):
    a, b, admin = served.sdk("a"), served.sdk("b"), served.sdk("admin")

    async def say(client: Any, text: str, user_id: str = "ada") -> str:
        thread = await client.threads.create()  # a new thread each time
        result = await client.runs.wait(thread["thread_id"], "memo", input={
            "messages": [{"role": "user", "content": text}], "user_id": user_id})
        return str(result["messages"][-1]["content"])

    assert await say(a, "I drink green tea") == "Known:"
    await say(a, "my dog is called Rex")
    answer = await say(a, "which tea do I like?")
    assert answer.startswith("Known: [I drink green tea]"), answer
    assert "[my dog is called Rex]" in answer
    assert await say(a, "anything about tea?", user_id="bob") == "Known:"
    assert await say(b, "which tea do I like?") == "Known:"  # B has no memories of Ada
    mine = (await a.store.search_items(["memories", "ada"], limit=10))["items"]
    assert {i["value"]["text"] for i in mine} >= {"I drink green tea",
                                                  "my dog is called Rex"}
    theirs = (await b.store.search_items(["memories", "ada"], limit=10))["items"]
    assert [i["value"]["text"] for i in theirs] == ["which tea do I like?"]
    seen = (await admin.store.search_items(["memories"], limit=100))["items"]
    assert {"I drink green tea", "which tea do I like?"} <= {i["value"]["text"]
                                                            for i in seen}


# -- servers without keys, without an embedding alias, with a failing one -----------------

async def test_items_written_without_a_key_are_the_admins_once_keys_exist(tmp_path):
    database = f"sqlite:///{tmp_path}/fl.sqlite"
    ns = ["local", "notes"]

    def app() -> Any:
        return create_app(ServerSettings(database=database, home=tmp_path),
                          ctx=BuildContext(models=WordModels()))

    for url in run_server(app()):
        local = get_client(url=url, api_key=None)
        await local.store.put_item(ns, "k", {"text": "made before keys"})
        assert (await local.store.get_item(ns, "k"))["value"] == {"text": "made before keys"}
        assert httpx.get(f"{url}/info").json()["flags"]["store_semantic_search"] is True
    keys = await make_keys(database)
    for url in run_server(app()):
        t = Served(url, keys)
        with t.http("a") as a, t.http("admin") as admin:
            params = {"namespace": "local.notes", "key": "k"}
            assert a.get("/store/items", params=params).status_code == 404
            assert admin.get("/store/items", params=params).status_code == 200
            assert a.post("/store/items/search", json={}).json() == {"items": []}


def test_semantic_search_off_is_said_not_ignored(tmp_path):
    models = WordModels(aliases=("local",))  # no embedding alias
    app = create_app(ServerSettings(database=f"sqlite:///{tmp_path}/fl.sqlite",
                                    home=tmp_path), ctx=BuildContext(models=models))
    for url in run_server(app):
        assert httpx.get(f"{url}/info").json()["flags"]["store_semantic_search"] is False
        put = httpx.put(f"{url}/store/items", json={"namespace": ["n"], "key": "k",
                                                     "value": {"text": "tea"}})
        assert put.status_code == 204
        refused = httpx.post(f"{url}/store/items/search", json={"query": "tea"})
        assert refused.status_code == 422 and "semantic search is off" in refused.text
        indexed = httpx.put(f"{url}/store/items", json={
            "namespace": ["n"], "key": "k", "value": {"text": "tea"}, "index": ["text"]})
        assert indexed.status_code == 422 and "index" in indexed.json()["detail"]
        found = httpx.post(f"{url}/store/items/search", json={"filter": {"text": "tea"}})
        assert [i["key"] for i in found.json()["items"]] == ["k"]
    assert models.embedded == []


def test_an_embedding_failure_is_a_502_and_writes_nothing(tmp_path):
    app = create_app(ServerSettings(database=f"sqlite:///{tmp_path}/fl.sqlite",
                                    home=tmp_path), ctx=BuildContext(models=BrokenEmbedder()))
    for url in run_server(app):
        put = httpx.put(f"{url}/store/items", json={"namespace": ["n"], "key": "k",
                                                     "value": {"text": "tea"}})
        assert put.status_code == 502 and "local-embed" in put.json()["detail"]
        assert "unreachable" in put.json()["detail"]
        assert httpx.get(f"{url}/store/items", params={"namespace": "n", "key": "k"}
                         ).status_code == 404
        unindexed = httpx.put(f"{url}/store/items", json={
            "namespace": ["n"], "key": "k", "value": {"text": "tea"}, "index": False})
        assert unindexed.status_code == 204
        query = httpx.post(f"{url}/store/items/search", json={"query": "tea"})
        assert query.status_code == 502


# -- the store as LangGraph's BaseStore ------------------------------------------------------

async def test_owned_store_acts_for_the_current_principal_sync_and_async(tmp_path):
    async with open_database(f"sqlite:///{tmp_path}/fl.sqlite") as db:
        items = ItemStore(db, models=WordModels(), index=StoreIndex(fields=("text",)))
        await items.setup()
        store = OwnedStore(items)
        ada = Principal("ada-key", admin=False)
        token = current_principal.set(ada)
        try:
            await store.aput(("m",), "k", {"text": "green tea"})
            # a sync node runs in a worker thread: its ops go to the server's loop, as ada
            await asyncio.to_thread(store.put, ("m",), "k2", {"text": "coffee"})
            found = await asyncio.to_thread(store.search, ("m",), query="tea")
            assert [i.key for i in found][0] == "k"
            assert await asyncio.to_thread(store.list_namespaces) == [("m",)]
        finally:
            current_principal.reset(token)
        other = Principal("bob-key", admin=False)
        assert await OwnedStore(items, other).aget(("m",), "k") is None
        assert (await OwnedStore(items, LOCAL).aget(("m",), "k")) is not None
        with pytest.raises(RuntimeError, match="async"):
            store.get(("m",), "k")  # on the event loop's thread: would deadlock
        await store.adelete(("m",), "k")  # LOCAL (no principal set): reaches ada's item
        assert await OwnedStore(items, ada).aget(("m",), "k") is None


async def test_expired_items_are_swept(tmp_path):
    async with open_database(f"sqlite:///{tmp_path}/fl.sqlite") as db:
        items = ItemStore(db)
        await items.setup()
        await items.put(LOCAL, ("t",), "gone", {"x": 1}, ttl=0.0001)
        await items.put(LOCAL, ("t",), "kept", {"x": 1})
        time.sleep(0.05)
        assert await items.sweep() == 1
        rows = await db.fetchall("SELECT item_key FROM fl_store_items")
        assert [r["item_key"] for r in rows] == ["kept"]
