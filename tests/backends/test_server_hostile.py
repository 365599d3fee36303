"""Hostile requests against a real server on 127.0.0.1: every one refused with a clear
4xx that names what and where, nothing stored, and the server answering the next
request."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from flowloom.backends.server import ServerSettings, create_app
from flowloom.backends.server._bodies import MAX_BODY_BYTES
from flowloom.flows.context import BuildContext
from flowloom.flows.limits import MAX_DEPTH
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels

LOOP = {
    "schema_version": 1, "id": "loop", "name": "Loop", "recursion_limit": 40,
    "state": {"n": {"type": "integer", "reducer": "add"}, "route": {"type": "string"}},
    "nodes": [
        {"id": "count", "type": "state.set@1", "params": {"values": {"n": 1}}},
        {"id": "again", "type": "router.condition@1", "params": {
            "field": "route", "mode": "equals", "default": "more",
            "routes": [{"label": "stop", "value": "stop"}]}},
    ],
    "edges": [{"source": "START", "target": "count"}, {"source": "count", "target": "again"},
              {"source": "again", "target": "count", "condition": "more"},
              {"source": "again", "target": "END", "condition": "stop"}],
}
BOMB = {
    "schema_version": 1, "id": "bomb", "name": "Bomb",
    "state": {"text": {"type": "string"}, "note": {"type": "string"}},
    "nodes": [{"id": "w", "type": "state.set@1",
               "params": {"templates": {"note": '{{ "A" * 200000000 }}'}}}],
    "edges": [{"source": "START", "target": "w"}, {"source": "w", "target": "END"}],
}


def _hold(messages) -> str:
    if "hold" in str(messages[-1].content):
        time.sleep(3)
    return "ok"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("hostile")
    settings = ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home,
                              run_timeout_s=1.0)
    yield from run_server(create_app(settings, ctx=BuildContext(
        models=ScriptedModels(_hold), data_dir=home)))


def test_a_template_bomb_validates_for_free_and_fails_its_run_clearly(server):
    started = time.monotonic()
    checked = httpx.post(f"{server}/flows/validate", json=BOMB, timeout=30)
    assert checked.status_code == 200 and checked.json()["ok"] is True
    assert httpx.put(f"{server}/flows/bomb", json=BOMB, timeout=30).status_code == 200
    assert time.monotonic() - started < 10  # was 10.6 s and 940 MB for validation alone
    done = httpx.post(f"{server}/runs/wait", json={"assistant_id": "bomb",
                                                   "input": {"text": "x"}}, timeout=30)
    assert done.status_code == 200
    error = done.json()["__error__"]
    assert "repetition would make 200,000,000" in error["message"]
    assert httpx.get(f"{server}/ok").status_code == 200


def test_a_run_may_lower_the_recursion_limit_never_raise_it(server):
    assert httpx.put(f"{server}/flows/loop", json=LOOP).status_code == 200
    raised = httpx.post(f"{server}/runs/wait", json={
        "assistant_id": "loop", "input": {}, "config": {"recursion_limit": 100000}})
    assert raised.status_code == 422
    assert "never raise it" in raised.json()["detail"] and "40" in raised.json()["detail"]
    for bad in (0, -1, "9", True):
        answer = httpx.post(f"{server}/runs/wait", json={
            "assistant_id": "loop", "input": {}, "config": {"recursion_limit": bad}})
        assert answer.status_code == 422, bad
    lowered = httpx.post(f"{server}/runs/wait", json={
        "assistant_id": "loop", "input": {}, "config": {"recursion_limit": 6}}).json()
    assert lowered["__error__"]["error"] == "GraphRecursionError"
    assert "6" in lowered["__error__"]["message"]
    default = httpx.post(f"{server}/runs/wait", json={"assistant_id": "loop", "input": {}})
    assert "40" in default.json()["__error__"]["message"]


def test_a_run_past_the_servers_time_limit_ends_as_timeout(server):
    thread = httpx.post(f"{server}/threads", json={}).json()["thread_id"]
    done = httpx.post(f"{server}/threads/{thread}/runs/wait", json={
        "assistant_id": "chat", "input": {"messages": [{"role": "user", "content": "hold"}]}},
        timeout=30).json()
    assert done["__error__"]["error"] == "RunTimeout"
    (run,) = httpx.get(f"{server}/threads/{thread}/runs").json()
    assert run["status"] == "timeout"
    assert httpx.get(f"{server}/threads/{thread}").json()["status"] == "error"


@pytest.mark.parametrize("text, why", [("a\x00b", "NUL character"),
                                       ("a\ud800b", "unpaired surrogate")])
def test_unstorable_text_is_refused_with_its_path(server, text, why):
    body = json.dumps({"assistant_id": "chat", "input": {"messages": [
        {"role": "user", "content": text}]}})  # ensure_ascii: the escapes travel as text
    answer = httpx.post(f"{server}/runs/wait", content=body,
                        headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("input.messages[0].content: contains")
    assert why in answer.json()["detail"]
    oai = httpx.post(f"{server}/v1/chat/completions", content=json.dumps({
        "model": "chat", "messages": [{"role": "user", "content": text}]}),
        headers={"content-type": "application/json"})
    assert oai.status_code == 400 and why in oai.json()["error"]["message"]
    put = httpx.put(f"{server}/flows/x", content=json.dumps({**LOOP, "id": "x",
                                                              "name": text}))
    assert put.status_code == 422 and put.json()["detail"].startswith("name: contains")
    assert httpx.get(f"{server}/flows/x").status_code == 404


def test_deep_and_huge_bodies_are_refused_naming_the_limit(server):
    deep = '{"assistant_id": "chat", "input": ' + "[" * 5000 + "]" * 5000 + "}"
    answer = httpx.post(f"{server}/runs/wait", content=deep,
                        headers={"content-type": "application/json"})
    assert answer.status_code == 422 and f"deeper than {MAX_DEPTH}" in answer.json()["detail"]
    shallow_but_past = {"input": {"a": None}}
    node = shallow_but_past["input"]
    for _ in range(MAX_DEPTH + 5):
        node["a"] = {"a": None}
        node = node["a"]
    answer = httpx.post(f"{server}/runs/wait", json={"assistant_id": "chat",
                                                     **shallow_but_past})
    assert answer.status_code == 422
    huge = httpx.post(f"{server}/flows/validate", content=b" " * (MAX_BODY_BYTES + 10),
                      headers={"content-type": "application/json"})
    assert huge.status_code == 413 and "larger than 32 MB" in huge.json()["detail"]
    assert httpx.get(f"{server}/ok").status_code == 200


@pytest.mark.parametrize("flow_id", ["bad%00id", "..x", "a%0A", "%F0%9F%98%80"])
def test_flow_ids_that_are_not_names_are_refused(server, flow_id):
    doc = {k: v for k, v in LOOP.items() if k != "id"}
    answer = httpx.put(f"{server}/flows/{flow_id}", json=doc)
    assert answer.status_code == 422, answer.text
    assert httpx.get(f"{server}/flows").status_code == 200


def test_a_large_invalid_flow_is_checked_quickly_and_answered_small(server):
    nodes = [{"id": f"n{i}", "type": "state.set@1", "params": {"values": {"x": i}}}
             for i in range(2000)]
    edges = [{"source": "START", "target": "n0"}] + [
        {"source": f"n{i}", "target": f"missing{i}"} for i in range(2000)]
    doc = {"schema_version": 1, "id": "big", "name": "Big", "nodes": nodes, "edges": edges,
           "state": {"x": {"type": "integer"}}}
    answer = httpx.post(f"{server}/flows/validate", json=doc, timeout=60)
    assert answer.status_code == 200 and not answer.json()["ok"]
    assert len(answer.content) < 2_000_000  # was 30 MB for a 225 KB request
