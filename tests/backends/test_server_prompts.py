"""`/prompts` and prompts carried by flows, against real servers on 127.0.0.1: versions
pushed and read, flows that name them, exported pinned and imported elsewhere."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from flowloom.backends.server import ServerSettings, create_app
from flowloom.backends.server import auth as auth_module
from flowloom.backends.server.auth import required_role
from flowloom.flows.context import BuildContext
from tests.backends.test_server_auth import make_key
from tests.backends.test_server_protocol import run_server, user
from tests.fakes import ScriptedModels


def _echo_system(messages) -> str:
    """The reply names the system prompt the model was given."""
    return f"system was: {messages[0].content}"


def _app(home):
    settings = ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home)
    return create_app(settings, ctx=BuildContext(models=ScriptedModels(_echo_system)))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from run_server(_app(tmp_path_factory.mktemp("server-prompts")))


FLOW = {
    "schema_version": 1, "id": "persona", "name": "Persona",
    "state": {"messages": {"type": "messages"}, "tone": {"type": "string"}},
    "nodes": [{"id": "answer", "type": "llm.chat@1",
               "params": {"system_prompt": "persona@latest"}}],
    "edges": [{"source": "START", "target": "answer"}, {"source": "answer", "target": "END"}],
}


def _answer(url: str, flow_id: str) -> str:
    result = httpx.post(f"{url}/runs/wait", json={"assistant_id": flow_id,
                                                  "input": {**user("hi"), "tone": "kind"}})
    result = result.json()
    return result["messages"][-1]["content"]


def test_push_list_and_read_versions(server):
    assert httpx.get(f"{server}/prompts").json() == []
    first = httpx.post(f"{server}/prompts/greet", json={"text": "Hello {{ name }}",
                                                        "notes": "first"})
    assert first.status_code == 201, first.text
    assert {k: first.json()[k] for k in ("ref", "version", "variables", "notes")} == {
        "ref": "greet@1", "version": 1, "variables": ["name"], "notes": "first"}
    assert httpx.post(f"{server}/prompts/greet", json={"text": "Hi"}).json()["ref"] == "greet@2"

    listed = httpx.get(f"{server}/prompts").json()
    assert [(p["name"], p["latest"]["ref"], p["versions"]) for p in listed] == [
        ("greet", "greet@2", [1, 2])]
    versions = httpx.get(f"{server}/prompts/greet").json()
    assert [v["ref"] for v in versions["versions"]] == ["greet@1", "greet@2"]
    assert "text" not in versions["versions"][0]
    one = httpx.get(f"{server}/prompts/greet/1").json()
    assert (one["text"], one["created_at"][:2]) == ("Hello {{ name }}", "20")
    assert httpx.get(f"{server}/prompts/greet/latest").json()["text"] == "Hi"


@pytest.mark.parametrize(("method", "path", "body", "status", "says"), [
    ("get", "/prompts/nope", None, 404, "no prompt named 'nope'; prompts: "),
    ("get", "/prompts/nope/1", None, 404, "no prompt named 'nope'"),
    ("get", "/prompts/greet/999", None, 404, "prompt 'greet' has no version 999; versions: 1"),
    ("get", "/prompts/greet/first", None, 422, "version must be a number or 'latest'"),
    ("get", "/prompts/Greet", None, 422, "prompt name 'Greet': use 1-64 lower-case"),
    ("post", "/prompts/Greet", {"text": "x"}, 422, "prompt name 'Greet'"),
    ("post", "/prompts/greet", {"text": "{{ oops"}, 422, "template syntax error at line 1"),
    ("post", "/prompts/greet", {"text": ""}, 422, "text: String should have at least 1"),
    ("post", "/prompts/greet", {"text": "x", "tags": []}, 422, "tags: Extra inputs"),
])
def test_client_mistakes_are_4xx_with_what_is_valid(server, method, path, body, status, says):
    if httpx.get(f"{server}/prompts/greet").status_code == 404:  # when run alone
        httpx.post(f"{server}/prompts/greet", json={"text": "one"})
    response = httpx.request(method.upper(), f"{server}{path}", json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]


def test_flows_name_prompts_and_carry_them_on_export(server, tmp_path_factory):
    httpx.post(f"{server}/prompts/persona", json={"text": "Be {{ tone }}."})
    put = httpx.put(f"{server}/flows/persona", json=FLOW)
    assert put.status_code == 200, put.text
    assert _answer(server, "persona") == "system was: Be kind."
    assert httpx.get(f"{server}/flows/persona").json()["nodes"][0]["params"] == {
        "system_prompt": "persona@latest"}  # stored as saved: `latest` stays live

    httpx.post(f"{server}/prompts/persona", json={"text": "Be {{ tone }} and brief."})
    exported = httpx.get(f"{server}/flows/persona/export")
    assert exported.status_code == 200, exported.text
    doc = exported.json()
    assert doc["nodes"][0]["params"] == {"system_prompt": "persona@2"}
    assert doc["prompts"] == {"persona@2": {"text": "Be {{ tone }} and brief.", "notes": ""}}
    assert httpx.get(f"{server}/flows/nope/export").status_code == 404

    # another server, with an empty store: the import brings the version along
    for other in run_server(_app(tmp_path_factory.mktemp("server-prompts-b"))):
        put = httpx.put(f"{other}/flows/persona", json=doc)
        assert put.status_code == 200, put.text
        assert put.json()["notes"] == ["prompts added to the store: persona@2"]
        assert httpx.get(f"{other}/prompts/persona").json()["versions"][0]["ref"] == "persona@2"
        assert _answer(other, "persona") == "system was: Be kind and brief."
        assert httpx.get(f"{other}/flows/persona/export").json() == doc
        assert httpx.put(f"{other}/flows/persona", json=doc).json()["notes"] == []


def test_an_import_that_conflicts_changes_nothing(tmp_path):
    doc = {**FLOW, "id": "carried", "nodes": [
        {"id": "answer", "type": "llm.chat@1", "params": {"system_prompt": "persona@1"}}],
        "prompts": {"persona@1": {"text": "Be {{ tone }}."}, "extra@1": {"text": "x"}}}
    for url in run_server(_app(tmp_path)):
        httpx.post(f"{url}/prompts/persona", json={"text": "Something else"})
        put = httpx.put(f"{url}/flows/carried", json=doc)
        assert put.status_code == 409, put.text
        detail = put.json()["detail"]
        assert "prompt persona@1" in detail and "history of 'persona' differs" in detail
        assert httpx.get(f"{url}/flows/carried").status_code == 404
        assert httpx.get(f"{url}/prompts/extra").status_code == 404  # nothing half written
        bad = {**doc, "prompts": {"persona@latest": {"text": "x"}}}
        refused = httpx.put(f"{url}/flows/carried", json=bad)
        assert refused.status_code == 422
        assert refused.json()["problems"][0]["path"] == "prompts.persona@latest"


def test_prompt_writes_need_the_admin_role(tmp_path, monkeypatch):
    assert required_role("POST", "/prompts/greet") == "admin"
    assert required_role("GET", "/prompts/greet/latest") == "user"
    assert required_role("GET", "/flows/x/export") == "user"
    monkeypatch.setattr(auth_module, "CACHE_S", 0.1)
    database = f"sqlite:///{tmp_path}/fl.sqlite"
    for url in run_server(_app(tmp_path)):
        assert httpx.get(f"{url}/prompts").status_code == 200  # no key yet: open
        _, admin_key = asyncio.run(make_key(database, "admin"))
        _, user_key = asyncio.run(make_key(database, "user"))
        time.sleep(0.2)  # past the server's key cache
        as_user = {"x-api-key": user_key}
        refused = httpx.post(f"{url}/prompts/greet", json={"text": "hi"}, headers=as_user)
        assert refused.status_code == 403 and refused.json()["needed_role"] == "admin"
        assert httpx.get(f"{url}/prompts", headers=as_user).json() == []
        made = httpx.post(f"{url}/prompts/greet", json={"text": "hi"},
                          headers={"x-api-key": admin_key})
        assert made.status_code == 201 and made.json()["ref"] == "greet@1"
        assert httpx.get(f"{url}/prompts/greet/1", headers=as_user).json()["text"] == "hi"
