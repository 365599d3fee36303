"""Conformance: the LangGraph **Python SDK** (`langgraph-sdk`, its async `get_client` and
its sync `get_sync_client`) against a real `flowloom serve` subprocess (conftest.py: free
port, temporary FLOWLOOM_HOME, SQLite, the flows of flows/, a fake OpenAI-compatible
model for `conf_echo`, whose `slow N` is held N seconds so a run can be cancelled).

Most checks run once per client (`sdk` is parametrized "async" / "sync"): the sync client
is driven through the same calls, each one in a worker thread (`Sdk`), so one test body
checks both. Streams are read by `collect`, which consumes an async or a sync stream.
A few checks are raw HTTP (httpx), where the SDK has no call for them: response headers,
`/info`, a body field no SDK sends.

Flows (no model but conf_echo): conf_steps (first -> second), conf_count (an integer
field that adds, a messages field), conf_approve (human.approve), conf_badwrite (a node
write the reducer refuses: the thread's state cannot be read afterwards), conf_super (a
supervisor routing by substring to conf_approve or conf_steps, run as subgraphs).

Run: .venv/bin/python -m pytest tests/conformance/test_python_sdk.py -q
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest
from langgraph_sdk import get_client, get_sync_client

KINDS = ["async", "sync"]
STEP_S = 10.0  # the longest any one wait here may take (a status, a stream, a webhook)


# -- the clients ------------------------------------------------------------------------


class _Calls:
    """One resource of a client (`threads`, `runs`, ...): its methods, awaitable for
    either client (the sync client's run in a worker thread)."""

    def __init__(self, target: Any, kind: str) -> None:
        self._target, self._kind = target, kind

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)
        if self._kind == "async":
            return method

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call


class Sdk:
    """The async or the sync langgraph-sdk client behind one awaitable interface:
    `await sdk.threads.create(...)`; `sdk.client` is the real client."""

    def __init__(self, kind: str, client: Any) -> None:
        self.kind, self.client = kind, client

    def __getattr__(self, name: str) -> _Calls:
        return _Calls(getattr(self.client, name), self.kind)


@pytest.fixture(params=KINDS)
async def sdk(request: pytest.FixtureRequest, server: dict) -> AsyncIterator[Sdk]:
    if request.param == "async":
        client = get_client(url=server["url"], api_key=None)
        yield Sdk("async", client)
        await client.aclose()
    else:
        client = get_sync_client(url=server["url"], api_key=None)
        yield Sdk("sync", client)
        client.close()


@pytest.fixture
async def aclient(server: dict) -> AsyncIterator[Any]:
    client = get_client(url=server["url"], api_key=None)
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
def graphs(server: dict) -> dict[str, str]:
    """graph id -> its system assistant's id."""
    found = httpx.post(f"{server['url']}/assistants/search", timeout=30,
                       json={"metadata": {"created_by": "system"}, "limit": 100}).json()
    return {a["graph_id"]: a["assistant_id"] for a in found}


@pytest.fixture(autouse=True)
def _nothing_left_running(server: dict) -> Iterator[None]:
    """No slow run of one check outlives it (a failed check's included)."""
    yield
    httpx.post(f"{server['url']}/runs/cancel", json={"status": "all"}, timeout=30)


# -- helpers ----------------------------------------------------------------------------


def tag() -> str:
    """A metadata value no other check's threads have."""
    return uuid.uuid4().hex


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def last_message(values: dict[str, Any] | None) -> Any:
    messages = (values or {}).get("messages") or [{}]
    return messages[-1].get("content")


async def refused(call: Any, status: int = 422) -> str:
    """Await `call`; it must fail with HTTP `status`. Its response body."""
    with pytest.raises(httpx.HTTPStatusError) as info:
        await call
    response = info.value.response
    assert response.status_code == status, f"HTTP {response.status_code}: {response.text}"
    return response.text


async def run_status(sdk: Sdk, thread_id: str, run_id: str, wanted: tuple[str, ...],
                     timeout: float = STEP_S) -> dict[str, Any]:
    """The run once its status is one of `wanted` (polled)."""
    deadline = time.monotonic() + timeout
    while True:
        run = await sdk.runs.get(thread_id, run_id)
        if run["status"] in wanted:
            return run
        assert time.monotonic() < deadline, (
            f"run {run_id} never reached {'/'.join(wanted)}; status {run['status']}")
        await asyncio.sleep(0.05)


async def collect(sdk: Sdk, open_stream: Callable[[Any], Any], *,
                  until: Callable[[Any], bool] | None = None,
                  timeout: float = STEP_S) -> list[tuple[float, Any]]:
    """Every part of the stream `open_stream(client)` opens, with when it arrived
    (time.monotonic()), until it ends or `until(part)` is true."""
    parts: list[tuple[float, Any]] = []
    if sdk.kind == "async":
        async def read() -> None:
            stream = open_stream(sdk.client)
            if inspect.isawaitable(stream):  # threads.join_stream: a coroutine giving one
                stream = await stream
            try:
                async for part in stream:
                    parts.append((time.monotonic(), part))
                    if until is not None and until(part):
                        break
            finally:
                if hasattr(stream, "aclose"):
                    await stream.aclose()

        await asyncio.wait_for(read(), timeout)
        return parts

    def read_sync() -> None:
        stream = open_stream(sdk.client)
        try:
            for part in stream:
                parts.append((time.monotonic(), part))
                if until is not None and until(part):
                    break
                assert time.monotonic() < deadline, f"stream: nothing ended it in {timeout} s"
        finally:
            stream.close()

    deadline = time.monotonic() + timeout
    await asyncio.wait_for(asyncio.to_thread(read_sync), timeout + 5)
    return parts


def events(parts: list[tuple[float, Any]], name: str | None = None) -> list[Any]:
    """The parts' events' data (only those of event `name`, when given)."""
    return [p.data for _, p in parts if name is None or p.event == name]


class Recorder:
    """A tiny HTTP server on 127.0.0.1 (port 0) in a thread; keeps every POST's path and
    JSON body."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                size = int(self.headers.get("content-length") or 0)
                posts.append((self.path, json.loads(self.rfile.read(size) or b"null")))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    async def wait_for(self, path: str, timeout: float = STEP_S) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for got, body in self.posts:
                if got == path:
                    return body
            assert time.monotonic() < deadline, f"no POST to {path}; got {self.posts}"
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    hooks = Recorder()
    yield hooks
    hooks.stop()


# == 1. bad input is refused before anything is written ==================================


async def test_bad_input_refused_before_anything_is_written(sdk: Sdk) -> None:
    thread = await sdk.threads.create(metadata={"conf": tag()})
    tid = thread["thread_id"]
    first = await sdk.runs.wait(tid, "conf_count", input={"topic": "a"})
    assert first["count"] == 1 and first["note"] == "bumped: a", first
    before = await sdk.threads.get_state(tid)

    body = await refused(sdk.runs.wait(
        tid, "conf_count", input={"messages": [{"role": "bogus", "content": "x"}]}))
    assert "input.messages[0]" in body and "bogus" in body, body
    body = await refused(sdk.runs.wait(tid, "conf_count", input={"count": "3"}))
    assert "input.count" in body and "integer" in body, body
    body = await refused(sdk.runs.create(tid, "conf_count", input={"count": "3"}))
    assert "input.count" in body, body

    # still readable, listed, and as it was: no run, no checkpoint was written
    got = await sdk.threads.get(tid)
    assert got["status"] == "idle" and got["values"] == first, got
    listed = await sdk.threads.search(ids=[tid])
    assert [t["thread_id"] for t in listed] == [tid] and listed[0]["values"] == first
    after = await sdk.threads.get_state(tid)
    assert after["checkpoint"]["checkpoint_id"] == before["checkpoint"]["checkpoint_id"]
    assert after["values"] == before["values"]
    runs = await sdk.runs.list(tid)
    assert len(runs) == 1 and runs[0]["status"] == "success", runs
    again = await sdk.runs.wait(tid, "conf_count", input={"count": 5, "topic": "b"})
    assert again["count"] == 1 + 5 + 1, "a good run afterwards adds up as before"


async def test_thread_whose_state_cannot_be_read_is_still_listed(sdk: Sdk) -> None:
    marker = tag()
    thread = await sdk.threads.create(metadata={"conf": marker})
    tid = thread["thread_id"]
    failed = await sdk.runs.wait(tid, "conf_badwrite", input={"topic": "x"}, raise_error=False)
    assert failed["__error__"]["error"] == "TypeError", failed

    got = await sdk.threads.get(tid)
    assert got["status"] == "error" and got["values"] is None, got
    assert "cannot be read" in got["error"], got
    listed = await sdk.threads.search(metadata={"conf": marker})
    assert [t["thread_id"] for t in listed] == [tid], listed
    assert listed[0]["status"] == "error"
    broken = await sdk.threads.search(status="error", limit=1000)
    assert tid in [t["thread_id"] for t in broken]


# == 2. time travel ======================================================================


@pytest.mark.parametrize("how", ["wait", "create+join"])
async def test_time_travel_returns_the_new_head(sdk: Sdk, how: str) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    await sdk.runs.wait(tid, "conf_steps", input={"topic": "one"})
    await sdk.runs.wait(tid, "conf_steps", input={"topic": "two"})
    history = await sdk.threads.get_history(tid, limit=50)
    old_head = history[0]
    assert len(old_head["values"]["steps"]) == 4, old_head
    # the first run's checkpoint between its two steps: `second` still to run
    earlier = next(s for s in history
                   if s["next"] == ["second"] and s["values"].get("steps") == ["first"])
    cid = earlier["checkpoint"]["checkpoint_id"]

    if how == "wait":
        values = await sdk.runs.wait(tid, "conf_steps", input=None, checkpoint_id=cid)
    else:
        run = await sdk.runs.create(tid, "conf_steps", input=None, checkpoint_id=cid)
        values = await sdk.runs.join(tid, run["run_id"])
        assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "success"

    head = await sdk.threads.get_state(tid)
    assert values == head["values"], {"returned": values, "head": head["values"]}
    assert values != earlier["values"], "returned the earlier checkpoint's values"
    assert values == {"topic": "one", "steps": ["first", "second"], "result": "done: one"}, (
        "the run should go on from the earlier checkpoint (2 steps, not the old head's 4)")
    known = {s["checkpoint"]["checkpoint_id"] for s in history}
    assert head["checkpoint"]["checkpoint_id"] not in known, "no new head was written"
    everything = await sdk.threads.get_history(tid, limit=100)
    assert old_head["checkpoint"]["checkpoint_id"] in {
        s["checkpoint"]["checkpoint_id"] for s in everything}, "the old head is gone"


# == 3. options honoured =================================================================


async def test_webhook_is_called_with_the_run(sdk: Sdk, recorder: Recorder) -> None:
    path = f"/hook/{tag()}"
    tid = (await sdk.threads.create())["thread_id"]
    values = await sdk.runs.wait(tid, "conf_steps", input={"topic": "hooked"},
                                 webhook=recorder.url + path)
    assert values["result"] == "done: hooked"
    body = await recorder.wait_for(path)
    (run,) = await sdk.runs.list(tid)
    assert body["run_id"] == run["run_id"] and body["thread_id"] == tid, body
    assert body["status"] == "success", body
    assert body["values"] == values, body


async def test_after_seconds_starts_the_run_later(sdk: Sdk) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    started = time.monotonic()
    run = await sdk.runs.create(tid, "conf_steps", input={"topic": "later"}, after_seconds=1)
    assert run["status"] == "pending", run
    await asyncio.sleep(0.3)
    assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "pending"
    values = await sdk.runs.join(tid, run["run_id"])
    assert values["result"] == "done: later", values
    assert time.monotonic() - started >= 0.9, "the run did not wait its after_seconds"
    assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "success"


async def test_a_run_cancelled_while_pending_leaves_its_thread_as_it_was(sdk: Sdk) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    await sdk.runs.wait(tid, "conf_steps", input={"topic": "first"})
    before = await sdk.threads.get(tid)
    assert before["status"] == "idle"
    later = await sdk.runs.create(tid, "conf_steps", input={"topic": "later"},
                                  after_seconds=30)
    assert (await sdk.threads.get(tid))["status"] == "busy"
    await sdk.runs.cancel(tid, later["run_id"], wait=True)
    assert (await sdk.runs.get(tid, later["run_id"]))["status"] == "interrupted"
    after = await sdk.threads.get(tid)
    assert after["status"] == "idle", "a run that never started interrupted the thread"
    assert after["values"] == before["values"]
    # with a run going on, cancelling one queued behind it leaves the thread busy
    running = await _slow_run(sdk, tid)
    await run_status(sdk, tid, running["run_id"], ("running",))
    queued = await sdk.runs.create(tid, "conf_steps", input={"topic": "queued"},
                                   multitask_strategy="enqueue")
    await sdk.runs.cancel(tid, queued["run_id"], wait=True)
    assert (await sdk.threads.get(tid))["status"] == "busy"
    await sdk.runs.cancel(tid, running["run_id"], wait=True)
    assert (await sdk.threads.get(tid))["status"] == "interrupted"


async def _slow_run(sdk: Sdk, thread_id: str, **kwargs: Any) -> dict[str, Any]:
    return await sdk.runs.create(thread_id, "conf_echo", input=user("slow 30"), **kwargs)


async def test_cancel_many_by_status_pending_then_running(sdk: Sdk) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    running = await _slow_run(sdk, tid)
    queued = await _slow_run(sdk, tid, multitask_strategy="enqueue")
    await run_status(sdk, tid, running["run_id"], ("running",))
    assert (await sdk.runs.get(tid, queued["run_id"]))["status"] == "pending"

    await sdk.runs.cancel_many(status="pending")
    await run_status(sdk, tid, queued["run_id"], ("interrupted",))
    assert (await sdk.runs.get(tid, running["run_id"]))["status"] == "running", (
        "cancel_many(status='pending') cancelled a running run")

    await sdk.runs.cancel_many(status="running")
    await run_status(sdk, tid, running["run_id"], ("interrupted",))
    assert (await sdk.threads.get(tid))["status"] == "interrupted"


async def test_cancel_many_all_and_by_thread(sdk: Sdk) -> None:
    marker = tag()
    a = (await sdk.threads.create(metadata={"conf": marker}))["thread_id"]
    b = (await sdk.threads.create(metadata={"conf": marker}))["thread_id"]
    run_a = await _slow_run(sdk, a)
    run_b = await _slow_run(sdk, b)
    await run_status(sdk, a, run_a["run_id"], ("running",))
    await run_status(sdk, b, run_b["run_id"], ("running",))

    await sdk.runs.cancel_many(thread_id=a)
    await run_status(sdk, a, run_a["run_id"], ("interrupted",))
    assert (await sdk.runs.get(b, run_b["run_id"]))["status"] == "running", (
        "cancel_many(thread_id=a) cancelled another thread's run")

    queued = await _slow_run(sdk, b, multitask_strategy="enqueue")
    fresh = await _slow_run(sdk, a)
    await sdk.runs.cancel_many(status="all")
    for thread_id, run in ((b, run_b), (b, queued), (a, fresh)):
        await run_status(sdk, thread_id, run["run_id"], ("interrupted",))
    busy = await sdk.threads.search(metadata={"conf": marker}, status="busy")
    assert busy == [], [t["thread_id"] for t in busy]


async def test_create_thread_with_supersteps(sdk: Sdk) -> None:
    thread = await sdk.threads.create(graph_id="conf_steps", supersteps=[
        {"updates": [{"values": {"topic": "seeded"}, "as_node": "first"}]},
        {"updates": [{"values": {"steps": ["x"]}, "as_node": "first"}]},
    ])
    tid = thread["thread_id"]
    assert thread["values"] == {"topic": "seeded", "steps": ["x"]}, thread
    state = await sdk.threads.get_state(tid)
    assert state["values"] == thread["values"] and state["next"] == ["second"], state
    done = await sdk.runs.wait(tid, "conf_steps", input=None)
    assert done == {"topic": "seeded", "steps": ["x", "second"], "result": "done: seeded"}

    marker = tag()
    await refused(sdk.threads.create(metadata={"conf": marker}, graph_id="conf_steps",
                                     supersteps=[{"updates": [{"values": {"topic": "t"},
                                                               "as_node": "nope"}]}]))
    assert await sdk.threads.search(metadata={"conf": marker}) == [], (
        "a refused create left a thread")


async def test_search_sorts_as_asked(sdk: Sdk) -> None:
    marker = tag()
    made = []
    for i in range(3):
        made.append((await sdk.threads.create(metadata={"conf": marker, "i": i}))["thread_id"])
        await asyncio.sleep(0.01)

    async def ids(**kwargs: Any) -> list[str]:
        found = await sdk.threads.search(metadata={"conf": marker}, **kwargs)
        return [t["thread_id"] for t in found]

    assert await ids(sort_by="created_at", sort_order="asc") == made
    assert await ids(sort_by="created_at", sort_order="desc") == made[::-1]
    assert await ids(sort_by="thread_id", sort_order="asc") == sorted(made)
    assert await ids(sort_by="thread_id", sort_order="desc") == sorted(made, reverse=True)


async def test_search_values_filters_before_the_page(sdk: Sdk) -> None:
    marker, topic = tag(), f"wanted-{tag()}"
    wanted, others = [], []
    for kind, into in ((topic, wanted), ("other", others)):
        for _ in range(3):  # the wanted ones first: the newest three do not match
            tid = (await sdk.threads.create(metadata={"conf": marker}))["thread_id"]
            await sdk.runs.wait(tid, "conf_steps", input={"topic": kind})
            into.append(tid)
            await asyncio.sleep(0.01)
    newest = {"metadata": {"conf": marker}, "sort_by": "created_at", "sort_order": "desc"}
    page = await sdk.threads.search(**newest, limit=2)
    assert [t["thread_id"] for t in page] == others[:0:-1], "without values: the newest"
    first = await sdk.threads.search(**newest, values={"topic": topic}, limit=2)
    assert [t["thread_id"] for t in first] == wanted[:0:-1], (
        "values should filter before limit: the page should hold the two newest matches")
    rest = await sdk.threads.search(**newest, values={"topic": topic}, limit=2, offset=2)
    assert [t["thread_id"] for t in rest] == wanted[:1], rest
    assert await sdk.threads.search(values={"topic": f"{topic}-none"}) == []


async def test_search_extract(sdk: Sdk) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    await sdk.runs.wait(tid, "conf_steps", input={"topic": "x"})
    paths = {"result": "values.result", "first": "values.steps[0]",
             "last": "values.steps[-1]", "missing": "values.nope.deeper"}
    (found,) = await sdk.threads.search(ids=[tid], extract=paths)
    assert found["extracted"] == {"result": "done: x", "first": "first", "last": "second",
                                  "missing": None}, found.get("extracted")
    (slim,) = await sdk.threads.search(ids=[tid], extract={"r": "values.result"},
                                       select=["thread_id"])
    assert slim == {"thread_id": tid, "extracted": {"r": "done: x"}}, slim


async def test_runs_list_select(sdk: Sdk) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    for topic in ("a", "b"):
        await sdk.runs.wait(tid, "conf_steps", input={"topic": topic})
    whole = await sdk.runs.list(tid)
    slim = await sdk.runs.list(tid, select=["run_id", "status"])
    assert len(whole) == 2 and "assistant_id" in whole[0], whole
    assert all(set(r) == {"run_id", "status"} for r in slim), slim
    assert slim == [{"run_id": r["run_id"], "status": r["status"]} for r in whole]
    assert {r["status"] for r in slim} == {"success"}


async def test_unsupported_options_are_refused(sdk: Sdk) -> None:
    marker = tag()
    body = await refused(sdk.threads.create(metadata={"conf": marker}, ttl=5))
    assert "ttl" in body, body
    assert await sdk.threads.search(metadata={"conf": marker}) == [], "a thread was made"
    tid = (await sdk.threads.create(metadata={"conf": marker}))["thread_id"]
    body = await refused(sdk.threads.update(tid, metadata={"x": 1}, ttl=5))
    assert "ttl" in body, body
    assert "x" not in (await sdk.threads.get(tid))["metadata"], "the refused update was kept"
    body = await refused(collect(sdk, lambda c: c.runs.stream(
        tid, "conf_steps", input={"topic": "t"}, feedback_keys=["score"])))
    assert "feedback_keys" in body, body
    assert await sdk.runs.list(tid) == [], "a refused run was stored"


# == 4. schemas ==========================================================================


async def test_get_schemas(sdk: Sdk, graphs: dict[str, str]) -> None:
    schemas = await sdk.assistants.get_schemas(graphs["conf_count"])
    assert schemas["graph_id"] == "conf_count"
    fields = {"messages", "count", "topic", "note"}
    for key in ("input_schema", "output_schema", "state_schema"):
        schema = schemas[key]
        assert schema is not None, f"{key} is null"
        assert set(schema.get("properties", {})) == fields, (key, schema.get("properties"))
    count = schemas["state_schema"]["properties"]["count"]
    assert "integer" in json.dumps(count), count


async def test_get_subgraphs(sdk: Sdk, graphs: dict[str, str]) -> None:
    subgraphs = await sdk.assistants.get_subgraphs(graphs["conf_super"])
    assert list(subgraphs) == ["supervisor"], list(subgraphs)
    assert "route" in subgraphs["supervisor"]["state_schema"]["properties"]
    deep = await sdk.assistants.get_subgraphs(graphs["conf_super"], recurse=True)
    assert set(deep) == {"supervisor", "supervisor|approve", "supervisor|steps"}, list(deep)
    assert "steps" in deep["supervisor|steps"]["state_schema"]["properties"]
    assert await sdk.assistants.get_subgraphs(graphs["conf_steps"]) == {}


# == 5. thread status and metadata =======================================================


async def test_interrupt_before_leaves_the_thread_interrupted(sdk: Sdk) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    values = await sdk.runs.wait(tid, "conf_steps", input={"topic": "held"},
                                 interrupt_before=["second"])
    assert "result" not in values and values["steps"] == ["first"], values
    assert (await sdk.threads.get(tid))["status"] == "interrupted"
    assert (await sdk.threads.get_state(tid))["next"] == ["second"]
    done = await sdk.runs.wait(tid, "conf_steps", input=None)
    assert done["result"] == "done: held"
    assert (await sdk.threads.get(tid))["status"] == "idle"


async def test_cancelled_run_leaves_the_thread_interrupted(sdk: Sdk) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    run = await _slow_run(sdk, tid)
    await run_status(sdk, tid, run["run_id"], ("running",))
    assert (await sdk.threads.get(tid))["status"] == "busy"
    started = time.monotonic()
    await sdk.runs.cancel(tid, run["run_id"], wait=True)
    assert time.monotonic() - started < 5, "cancel waited for the slow model"
    assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    assert (await sdk.threads.get(tid))["status"] == "interrupted"


async def test_runs_stamp_assistant_id_into_thread_metadata(sdk: Sdk,
                                                           graphs: dict[str, str]) -> None:
    marker = tag()
    ran = (await sdk.threads.create(metadata={"conf": marker}))["thread_id"]
    idle = (await sdk.threads.create(metadata={"conf": marker}))["thread_id"]
    await sdk.runs.wait(ran, "conf_count", input={"topic": "t"})  # by graph id
    meta = (await sdk.threads.get(ran))["metadata"]
    assert meta["assistant_id"] == graphs["conf_count"], meta
    assert meta["graph_id"] == "conf_count" and meta["conf"] == marker, meta
    found = await sdk.threads.search(
        metadata={"conf": marker, "assistant_id": graphs["conf_count"]})
    assert [t["thread_id"] for t in found] == [ran], found
    assert "assistant_id" not in (await sdk.threads.get(idle))["metadata"]


async def test_chat_completions_thread_is_visible(sdk: Sdk, server: dict) -> None:
    name = f"conf-{sdk.kind}-{tag()}"
    chat = openai.OpenAI(base_url=f"{server['url']}/v1", api_key="unused", max_retries=0,
                         timeout=60)
    for text in ("hello", "again"):
        answer = await asyncio.to_thread(
            chat.chat.completions.create, model="conf_echo", user=name,
            messages=[{"role": "user", "content": text}])
        assert answer.choices[0].message.content == f"echo: {text}"
    # without API keys, the thread's id is the name the client gave as `user`
    thread = await sdk.threads.get(name)
    meta = thread["metadata"]
    assert (meta["source"], meta["name"], meta["graph_id"]) == ("openai", name, "conf_echo")
    contents = [m["content"] for m in thread["values"]["messages"]]
    assert contents == ["hello", "echo: hello", "again", "echo: again"], contents
    found = await sdk.threads.search(metadata={"name": name})
    assert [t["thread_id"] for t in found] == [name], found
    assert name in [t["thread_id"] for t in await sdk.threads.search(
        metadata={"source": "openai"}, limit=1000)]


# == 6. the rest of the API ==============================================================


async def test_prune(sdk: Sdk) -> None:
    keep = (await sdk.threads.create())["thread_id"]
    for topic in ("a", "b"):
        await sdk.runs.wait(keep, "conf_steps", input={"topic": topic})
    before = await sdk.threads.get_state(keep)
    assert len(await sdk.threads.get_history(keep, limit=100)) >= 8
    assert await sdk.threads.prune([keep], strategy="keep_latest") == {"pruned_count": 1}
    history = await sdk.threads.get_history(keep, limit=100)
    assert len(history) == 1 and history[0]["values"] == before["values"], history
    assert (await sdk.threads.get(keep))["values"] == before["values"]

    gone = [(await sdk.threads.create())["thread_id"] for _ in range(2)]
    await sdk.runs.wait(gone[0], "conf_steps", input={"topic": "c"})
    assert await sdk.threads.prune(gone, strategy="delete") == {"pruned_count": 2}
    for tid in gone:
        await refused(sdk.threads.get(tid), 404)
    assert await sdk.threads.search(ids=gone) == []


async def test_join_thread_stream_while_a_run_goes_on(sdk: Sdk) -> None:
    tid = (await sdk.threads.create())["thread_id"]

    def done(part: Any) -> bool:
        return part.event == "values" and last_message(part.data) == "echo: slow 1"

    following = asyncio.ensure_future(collect(
        sdk, lambda c: c.threads.join_stream(tid), until=done))
    await asyncio.sleep(0.3)  # connected before the run starts
    run = await sdk.runs.create(tid, "conf_echo", input=user("slow 1"))
    parts = await following
    metadata = events(parts, "metadata")
    assert any(m.get("run_id") == run["run_id"] for m in metadata), metadata
    values = [(at, p.data) for at, p in parts if p.event == "values"]
    assert len(values) >= 2, [p.event for _, p in parts]
    assert last_message(values[0][1]) == "slow 1", values[0]
    # the input's values came as the run started, a second before its answer
    assert values[-1][0] - values[0][0] >= 0.5, "the events came only once the run ended"


async def test_create_batch(sdk: Sdk) -> None:
    marker = tag()
    created = await sdk.runs.create_batch([
        {"assistant_id": "conf_steps", "input": {"topic": f"b{i}"}, "on_completion": "keep",
         "metadata": {"conf": marker, "i": i}} for i in range(2)])
    assert len(created) == 2 and created[0]["thread_id"] != created[1]["thread_id"], created
    assert [r["metadata"]["i"] for r in created] == [0, 1], created
    for i, run in enumerate(created):
        values = await sdk.runs.join(run["thread_id"], run["run_id"])
        assert values["result"] == f"done: b{i}", values

    before = await sdk.threads.count()
    body = await refused(sdk.runs.create_batch([
        {"assistant_id": "conf_steps", "input": {"topic": "fine"}, "on_completion": "keep"},
        {"assistant_id": "conf_steps", "input": {"topic": 7}, "on_completion": "keep"}]))
    assert "[1]" in body and "input.topic" in body, body
    assert await sdk.threads.count() == before, "a refused batch started a run"


async def test_set_latest(sdk: Sdk) -> None:
    made = await sdk.assistants.create(graph_id="conf_steps", name="v1",
                                       config={"configurable": {"v": 1}})
    aid = made["assistant_id"]
    v2 = await sdk.assistants.update(aid, name="v2", config={"configurable": {"v": 2}})
    assert v2["version"] == 2 and v2["name"] == "v2", v2
    back = await sdk.assistants.set_latest(aid, 1)
    assert back["version"] == 1 and back["name"] == "v1", back
    now = await sdk.assistants.get(aid)
    assert now["version"] == 1 and now["name"] == "v1"
    assert now["config"]["configurable"]["v"] == 1, now["config"]
    await refused(sdk.assistants.set_latest(aid, 9), 404)


async def test_stream_mode_events(sdk: Sdk) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    parts = await collect(sdk, lambda c: c.runs.stream(
        tid, "conf_steps", input={"topic": "ev"}, stream_mode="events"))
    assert parts[0][1].event == "metadata", parts[0]
    evs = events(parts, "events")
    assert {p.event for _, p in parts} == {"metadata", "events"}
    kinds = {e["event"] for e in evs}
    assert {"on_chain_start", "on_chain_end"} <= kinds, kinds
    started = [e["name"] for e in evs if e["event"] == "on_chain_start"]
    assert started[:1] == ["conf_steps"] and {"first", "second"} <= set(started), started
    final = [e for e in evs if e["event"] == "on_chain_end" and e["name"] == "conf_steps"]
    assert final[-1]["data"]["output"]["result"] == "done: ev", final
    body = await refused(collect(sdk, lambda c: c.runs.stream(
        tid, "conf_steps", input={"topic": "ev"}, stream_mode=["events", "values"])))
    assert "events" in body, body


async def test_get_state_with_subgraphs(sdk: Sdk) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    paused = await sdk.runs.wait(tid, "conf_super", input=user("please approve the refund"))
    assert "__interrupt__" in paused, paused
    assert (await sdk.threads.get(tid))["status"] == "interrupted"

    flat = await sdk.threads.get_state(tid)
    (task,) = flat["tasks"]
    assert task["name"] == "supervisor" and task["state"] is None, task
    assert task["checkpoint"]["checkpoint_ns"].startswith("supervisor:"), task["checkpoint"]

    deep = await sdk.threads.get_state(tid, subgraphs=True)
    (task,) = deep["tasks"]
    inner = task["state"]
    assert inner is not None, "subgraphs=True: the task should carry its subgraph's state"
    assert inner["values"]["route"] == "approve" and inner["next"] == ["approve"], inner
    (approve,) = inner["tasks"]
    assert approve["state"]["next"] == ["ask"], approve["state"]

    done = await sdk.runs.wait(tid, "conf_super", command={"resume": True})
    assert done["route"] == "approve" and done["note"] == "approved branch", done


async def test_pagination_header(aclient: Any, server: dict) -> None:
    url, marker = server["url"], tag()
    for _ in range(3):
        await aclient.threads.create(metadata={"conf": marker})
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        first = await http.post("/threads/search", json={"metadata": {"conf": marker},
                                                          "limit": 2})
        assert len(first.json()) == 2 and first.headers.get("x-pagination-next") == "2"
        last = await http.post("/threads/search", json={"metadata": {"conf": marker},
                                                         "limit": 2, "offset": 2})
        assert len(last.json()) == 1 and "x-pagination-next" not in last.headers
        some = await http.post("/assistants/search", json={"limit": 2})
        assert len(some.json()) == 2 and some.headers.get("x-pagination-next") == "2"
        every = await http.post("/assistants/search", json={"limit": 1000})
        assert len(every.json()) >= 6 and "x-pagination-next" not in every.headers


def test_info_flags(server: dict) -> None:
    info = httpx.get(f"{server['url']}/info", timeout=30).json()
    assert info["flags"]["crons"] is True and info["flags"]["store"] is True, info["flags"]
    unsupported = info["flowloom"]["unsupported"]
    assert {"threads.ttl", "runs.feedback_keys"} <= set(unsupported), unsupported
    assert all(isinstance(why, str) and why for why in unsupported.values())


async def test_store(sdk: Sdk) -> None:
    prefix = ["conf", sdk.kind, tag()]
    notes = [*prefix, "notes"]
    await sdk.store.put_item(notes, "k1", {"text": "hello", "n": 1})
    item = await sdk.store.get_item(notes, "k1")
    assert item["namespace"] == notes and item["key"] == "k1", item
    assert item["value"] == {"text": "hello", "n": 1}, item
    await sdk.store.put_item(notes, "k1", {"text": "hello again", "n": 2})
    assert (await sdk.store.get_item(notes, "k1"))["value"]["n"] == 2
    await sdk.store.put_item(notes, "k2", {"text": "other", "n": 5})
    await sdk.store.put_item([*prefix, "more"], "k3", {"n": 5})

    found = await sdk.store.search_items(prefix, limit=10)
    assert sorted(i["key"] for i in found["items"]) == ["k1", "k2", "k3"], found
    only = await sdk.store.search_items(notes, filter={"n": 5})
    assert [i["key"] for i in only["items"]] == ["k2"], only
    spaces = await sdk.store.list_namespaces(prefix=prefix)
    assert sorted(spaces["namespaces"]) == [[*prefix, "more"], notes], spaces

    await sdk.store.delete_item(notes, "k1")
    await refused(sdk.store.get_item(notes, "k1"), 404)
    left = await sdk.store.search_items(notes)
    assert [i["key"] for i in left["items"]] == ["k2"], left


async def test_crons(sdk: Sdk, graphs: dict[str, str]) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    cron = await sdk.crons.create_for_thread(tid, graphs["conf_steps"], schedule="0 0 1 1 *",
                                             input={"topic": "cron"})
    assert cron["thread_id"] == tid and cron["schedule"] == "0 0 1 1 *", cron
    assert cron["payload"]["input"] == {"topic": "cron"}, cron
    found = await sdk.crons.search(thread_id=tid)
    assert [c["cron_id"] for c in found] == [cron["cron_id"]], found
    assert await sdk.crons.count(thread_id=tid) == 1
    assert await sdk.crons.count(assistant_id=graphs["conf_steps"]) >= 1
    await sdk.crons.delete(cron["cron_id"])
    assert await sdk.crons.search(thread_id=tid) == []
    assert await sdk.crons.count(thread_id=tid) == 0


async def test_unknown_query_parameter_or_body_field_is_422(sdk: Sdk, server: dict) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    body = await refused(sdk.runs.list(tid, params={"bogus": "1"}))
    assert "bogus" in body, body
    body = await refused(sdk.threads.get_state(tid, params={"subgraph": "true"}))
    assert "subgraph" in body, body  # a typo of `subgraphs` is not silently ignored
    async with httpx.AsyncClient(base_url=server["url"], timeout=30) as http:
        answer = await http.get(f"/threads/{tid}/runs", params={"bogus": 1})
        assert answer.status_code == 422 and "bogus" in answer.text, answer.text
        answer = await http.post("/threads/search", json={"nope": 1})
        assert answer.status_code == 422 and "nope" in answer.text, answer.text
        answer = await http.post(f"/threads/{tid}/runs",
                                 json={"assistant_id": "conf_steps", "input": {},
                                       "no_such_option": True})
        assert answer.status_code == 422 and "no_such_option" in answer.text, answer.text
        # the OpenAI-compatible routes refuse it as OpenAI does a bad request: a 400
        answer = await http.get("/v1/models", params={"bogus": 1})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == "bogus", answer.text
    assert await sdk.runs.list(tid) == []


@pytest.mark.parametrize("cancel", [True, False])
async def test_join_cancel_on_disconnect(aclient: Any, cancel: bool) -> None:
    """`runs.join` with `cancel_on_disconnect` (the JS SDK always sends it; here by
    `params`): a client that leaves cancels the run, unless it is false."""
    sdk = Sdk("async", aclient)
    tid = (await aclient.threads.create())["thread_id"]
    run = await _slow_run(sdk, tid)
    await run_status(sdk, tid, run["run_id"], ("running",))
    joining = asyncio.ensure_future(aclient.runs.join(
        tid, run["run_id"], params={"cancel_on_disconnect": str(cancel).lower()}))
    await asyncio.sleep(0.3)
    assert not joining.done(), joining
    joining.cancel()  # the client leaves: its connection is closed
    with pytest.raises(asyncio.CancelledError):
        await joining
    if cancel:
        await run_status(sdk, tid, run["run_id"], ("interrupted",))
    else:
        await asyncio.sleep(1.0)  # the server looks every 0.5 s
        assert (await aclient.runs.get(tid, run["run_id"]))["status"] == "running"
