"""What an editor in a browser (the Builder's canvas app) needs of the server: one document
identity (entity tags, conditional saves), listings with what a start screen shows,
validation that says what each node reads, writes and branches to, one-click fixes, form
hints in the node catalogue, and CORS for a page on a loopback origin."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import httpx
import pytest

from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.context import BuildContext
from flowloom.flows.loader import examples_dir
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels

RAG = json.loads((examples_dir() / "rag_chat.json").read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("server-editing")
    settings = ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home,
                              cors_origins=("https://studio.example.com",))
    yield from run_server(create_app(settings, ctx=BuildContext(
        models=ScriptedModels(lambda m: "ok"), data_dir=home)))


def _doc(flow_id: str, name: str = "Mine") -> dict:
    return {**copy.deepcopy(RAG), "id": flow_id, "name": name}


def test_saves_are_conditional_on_the_version_read(server):
    first = httpx.put(f"{server}/flows/mine", json=_doc("mine"),
                      headers={"If-None-Match": "*"})
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    assert first.json()["etag"] == etag and first.json()["editable"] is True
    read = httpx.get(f"{server}/flows/mine")
    assert read.headers["etag"] == etag
    # "save as" an id that exists: refused, nothing written
    taken = httpx.put(f"{server}/flows/mine", json=_doc("mine", "Other"),
                      headers={"If-None-Match": "*"})
    assert taken.status_code == 412 and "already exists" in taken.json()["detail"]
    assert taken.json()["etag"] == etag
    assert httpx.get(f"{server}/flows/mine").json()["name"] == "Mine"
    # a save over the version read goes through and moves the tag
    second = httpx.put(f"{server}/flows/mine", json=_doc("mine", "Second"),
                       headers={"If-Match": etag})
    assert second.status_code == 200 and second.headers["etag"] != etag
    # another editor still holding the first version is told, not overwritten
    stale = httpx.put(f"{server}/flows/mine", json=_doc("mine", "Stale"),
                      headers={"If-Match": etag})
    assert stale.status_code == 412 and "changed on the server" in stale.json()["detail"]
    assert stale.json()["etag"] == second.headers["etag"]
    assert httpx.get(f"{server}/flows/mine").json()["name"] == "Second"
    gone = httpx.put(f"{server}/flows/nothere", json=_doc("nothere"),
                     headers={"If-Match": etag})
    assert gone.status_code == 412 and "no longer exists" in gone.json()["detail"]
    weak = httpx.put(f"{server}/flows/mine", json=_doc("mine"),
                     headers={"If-None-Match": '"abc"'})
    assert weak.status_code == 422 and "only *" in weak.json()["detail"]
    # unconditional saves still work as before
    assert httpx.put(f"{server}/flows/mine", json=_doc("mine")).status_code == 200


def test_listing_says_what_a_start_screen_shows(server):
    httpx.put(f"{server}/flows/listed", json=_doc("listed"))
    flows = {f["id"]: f for f in httpx.get(f"{server}/flows").json()}
    rag, mine = flows["rag_chat"], flows["listed"]
    assert rag["template"] is True and rag["editable"] is False and rag["node_count"] == 2
    assert rag["updated_at"] and rag["etag"] == httpx.get(
        f"{server}/flows/rag_chat").headers["etag"]
    assert mine["template"] is False and mine["editable"] is True and mine["updated_at"]


def test_validation_reports_each_nodes_routes_reads_and_writes(server):
    triage = json.loads((examples_dir() / "triage.json").read_text())
    checked = httpx.post(f"{server}/flows/validate", json=triage).json()
    assert checked["ok"] is True
    nodes = checked["nodes"]
    assert nodes["classify"]["routes"] == ["technical", "billing", "general"]
    assert nodes["classify"]["reads"] == ["messages"]
    assert nodes["classify"]["writes"] == [{"field": "route", "type": "string",
                                            "param": "output"}]
    assert nodes["technical"]["routes"] is None


def test_a_node_writing_an_undeclared_field_is_offered_the_declaration(server):
    doc = _doc("undeclared")
    del doc["state"]["documents"]
    checked = httpx.post(f"{server}/flows/validate", json=doc).json()
    (problem,) = [p for p in checked["problems"] if p["code"] == "undeclared_state_field"]
    assert problem["path"] == "nodes[0].params.output"
    assert problem["fix"] == {"declare": {"field": "documents", "type": "array"}}
    assert 'add it to `state` as {"type": "array"}' in problem["message"]
    assert "messages" not in problem["choices"]  # not "write messages instead"
    # the reader of the missing field is told to name a declared one
    reads = [p for p in checked["problems"] if p["path"] == "nodes[1].params.context"]
    assert reads and reads[0]["code"] == "unknown_state_field"
    doc["state"]["documents"] = {"type": problem["fix"]["declare"]["type"]}
    assert httpx.post(f"{server}/flows/validate", json=doc).json()["ok"] is True


def test_node_catalogue_marks_state_model_and_prompt_fields(server):
    types = {t["type"]: t["params_schema"]["properties"]
             for t in httpx.get(f"{server}/node-types").json()}
    chat = types["llm.chat@1"]
    assert chat["model"]["x-flowloom-choices"] == "models"
    assert chat["output"]["x-flowloom-state"] == "write"
    assert chat["context"]["x-flowloom-state"] == "read"
    assert chat["system_prompt"]["x-flowloom-choices"] == "prompts"
    assert types["retriever.search@1"]["kb"]["x-flowloom-choices"] == "knowledge_bases"
    assert types["router.condition@1"]["field"]["x-flowloom-state"] == "read"
    assert types["agent.tools@1"]["embed_model"]["x-flowloom-choices"] == "embedding_models"


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8501", "http://localhost:3000",
                                    "https://studio.example.com"])
def test_cors_lets_the_canvas_call_the_api(server, origin):
    preflight = httpx.options(f"{server}/flows/mine", headers={
        "Origin": origin, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "x-api-key, content-type, if-match"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "if-match" in allowed and "x-api-key" in allowed
    read = httpx.get(f"{server}/flows/rag_chat", headers={"Origin": origin})
    assert read.headers["access-control-allow-origin"] == origin
    assert "etag" in read.headers["access-control-expose-headers"].lower()


def test_cors_refuses_other_origins(server):
    preflight = httpx.options(f"{server}/flows", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in preflight.headers
    read = httpx.get(f"{server}/flows", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in read.headers


def test_cors_admits_the_ui_of_the_same_host_on_another_machine(server):
    """The UI opened as http://studio.lan:8501 calls the API as http://studio.lan:8123:
    same host, another port: allowed; a page of another host is not."""
    port = server.rsplit(":", 1)[1]
    same = httpx.options(f"{server}/flows", headers={
        "Host": f"studio.lan:{port}", "Origin": "http://studio.lan:8501",
        "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-api-key"})
    assert same.headers.get("access-control-allow-origin") == "http://studio.lan:8501"
    other = httpx.options(f"{server}/flows", headers={
        "Host": f"studio.lan:{port}", "Origin": "http://evil.lan:8501",
        "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in other.headers
