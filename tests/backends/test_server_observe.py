"""`/models*` and `/observe/*` on real servers: the gateway's routes, health and calls;
recent runs of every thread, per-node timelines and route decisions over time."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from langgraph_sdk import get_client

from flowloom.backends.gateway import GatewayModels
from flowloom.backends.server import ServerSettings, create_app, observe_api
from flowloom.backends.server.catalog import system_assistant_id
from flowloom.flows.context import BuildContext
from tests.backends.test_gateway import make_gateway
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels


def _reply(messages) -> str:
    text = str(messages[-1].content)
    if "Classify" in str(messages[0].content):
        return "technical" if "crash" in text else "billing"
    if text == "boom":
        raise ValueError("the model exploded")
    time.sleep(0.01)  # every node takes measurable time
    return f"re: {text}"


TWO_NODES = {
    "id": "two",
    "name": "Draft and polish",
    "state": {"messages": {"type": "messages"}},
    "nodes": [
        {"id": "draft", "type": "llm.chat@1", "params": {"system": "Draft an answer."}},
        {"id": "polish", "type": "llm.chat@1", "params": {"system": "Polish it."}},
    ],
    "edges": [{"source": "START", "target": "draft"}, {"source": "draft", "target": "polish"},
              {"source": "polish", "target": "END"}],
}


def user(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def settings(tmp_path) -> ServerSettings:
    return ServerSettings(database=f"sqlite:///{tmp_path}/fl.sqlite", home=tmp_path)


def get(url: str, path: str, **params) -> dict:
    response = httpx.get(f"{url}{path}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    home = tmp_path_factory.mktemp("observe")
    app = create_app(settings(home), ctx=BuildContext(models=ScriptedModels(_reply)))
    yield from run_server(app)


@pytest.fixture(scope="module")
def runs(scripted):
    """Runs made once for the module: a 2-node flow on a thread, a failing one, and three
    stateless router runs (whose fl_runs rows are deleted when they end)."""
    assert httpx.put(f"{scripted}/flows/two", json=TWO_NODES).status_code == 200

    async def make() -> dict:
        client = get_client(url=scripted, api_key=None)
        thread = (await client.threads.create())["thread_id"]
        ok = await client.runs.create(thread, "two", input=user("hello"))
        await client.runs.join(thread, ok["run_id"])
        bad = await client.runs.create(thread, "two", input=user("boom"))
        await client.runs.join(thread, bad["run_id"])
        for text in ("my invoice", "it crashed", "refund please"):
            await client.runs.wait(None, "triage", input=user(text))
        return {"thread": thread, "ok": ok["run_id"], "bad": bad["run_id"]}

    return asyncio.run(make())


def test_runs_list_spans_threads_and_stateless_runs(scripted, runs):
    listed = get(scripted, "/observe/runs")["runs"]
    assert len(listed) == 5
    created = [r["created_at"] for r in listed]
    assert created == sorted(created, reverse=True)  # newest first
    assert [r["flow_id"] for r in listed] == ["triage"] * 3 + ["two"] * 2
    by_id = {r["run_id"]: r for r in listed}
    ok, bad = by_id[runs["ok"]], by_id[runs["bad"]]
    assert ok["thread_id"] == runs["thread"] and ok["status"] == "success"
    assert ok["assistant_id"] == system_assistant_id("two")
    assert ok["duration_ms"] >= 20  # two nodes of >= 10 ms each
    assert ok["route"] is None and ok["routes"] == [] and ok["error"] is None
    assert bad["status"] == "error" and "the model exploded" in bad["error"]
    # stateless runs: their rows are gone from fl_runs, the observed ones remain
    assert [r["route"] for r in listed[:3]] == ["billing", "technical", "billing"]
    assert all(r["status"] == "success" and r["duration_ms"] > 0 for r in listed[:3])

    assert [r["run_id"] for r in get(scripted, "/observe/runs", flow_id="two")["runs"]] == [
        runs["bad"], runs["ok"]]
    assert [r["run_id"] for r in get(scripted, "/observe/runs", status="error")["runs"]] == [
        runs["bad"]]
    page = get(scripted, "/observe/runs", limit=2, offset=1)
    assert [r["run_id"] for r in page["runs"]] == [r["run_id"] for r in listed[1:3]]
    assert get(scripted, "/observe/runs", flow_id="nope")["runs"] == []
    refused = httpx.get(f"{scripted}/observe/runs", params={"status": "weird"})
    assert refused.status_code == 422 and "status" in refused.json()["detail"]
    assert httpx.get(f"{scripted}/observe/runs", params={"limit": 0}).status_code == 422


def test_node_timeline_in_execution_order(scripted, runs):
    timeline = get(scripted, f"/observe/runs/{runs['ok']}/nodes")
    assert timeline["flow_id"] == "two" and timeline["status"] == "success"
    assert not timeline["live"]
    nodes = timeline["nodes"]
    assert [n["node"] for n in nodes] == ["draft", "polish"]
    assert [n["node_type"] for n in nodes] == ["llm.chat@1"] * 2
    assert all(n["status"] == "ok" and n["error"] is None and n["depth"] == 0 for n in nodes)
    assert all(n["duration_ms"] >= 10 and n["start_ms"] >= 0 for n in nodes)
    draft, polish = nodes
    assert polish["start_ms"] >= draft["start_ms"] + draft["duration_ms"] - 0.5  # sequential
    assert polish["start_ms"] + polish["duration_ms"] <= timeline["duration_ms"] + 0.5

    failed = get(scripted, f"/observe/runs/{runs['bad']}/nodes")
    assert [(n["node"], n["status"]) for n in failed["nodes"]] == [("draft", "error")]
    assert "the model exploded" in failed["nodes"][0]["error"]

    missing = httpx.get(f"{scripted}/observe/runs/no-such-run/nodes")
    assert missing.status_code == 404 and "no-such-run" in missing.json()["detail"]


def test_router_decisions_are_recorded_and_bucketed(scripted, runs):
    triage = get(scripted, "/observe/runs", flow_id="triage")["runs"]
    oldest = get(scripted, f"/observe/runs/{triage[-1]['run_id']}/nodes")
    assert [n["node"] for n in oldest["nodes"]] == ["classify", "billing"]
    assert [n["node_type"] for n in oldest["nodes"]] == ["router.condition@1", "llm.chat@1"]
    assert [(r["node"], r["route"]) for r in oldest["routes"]] == [("classify", "billing")]
    assert abs(oldest["routes"][0]["at"] - time.time()) < 300

    routes = get(scripted, "/observe/routes", flow_id="triage", bucket_s=60)
    assert routes["routes"] == {"billing": 2, "technical": 1}
    assert sum(b["count"] for b in routes["buckets"]) == 3
    assert all(b["ts"] % 60 == 0 and b["start"].endswith("+00:00") for b in routes["buckets"])
    assert {b["route"] for b in routes["buckets"]} == {"billing", "technical"}
    assert get(scripted, "/observe/routes")["routes"] == {"billing": 2, "technical": 1}
    assert get(scripted, "/observe/routes", flow_id="two")["buckets"] == []
    refused = httpx.get(f"{scripted}/observe/routes", params={"bucket_s": 1,
                                                              "window_s": 86_400})
    assert refused.status_code == 422 and "buckets" in refused.json()["detail"]


def test_models_without_a_gateway(scripted):
    models = get(scripted, "/models")
    assert models["gateway"] is False and models["provider"] == "ScriptedModels"
    assert models["default_chat"] == "local"
    assert models["models"] == [{"alias": alias, "mode": None, "deployments": []}
                                for alias in ("local", "local-embed")]
    assert get(scripted, "/models/health")["deployments"] == []
    calls = get(scripted, "/models/calls")
    assert calls["calls"] == [] and calls["total"]["calls"] == 0


def test_openapi_lists_the_endpoints(scripted):
    paths = get(scripted, "/openapi.json")["paths"]
    for path in ("/models", "/models/health", "/models/calls", "/observe/runs",
                 "/observe/runs/{run_id}/nodes", "/observe/routes"):
        schema = paths[path]["get"]["responses"]["200"]["content"]["application/json"]
        assert "$ref" in schema["schema"], path


GATEWAY = """
model_list:
  - model_name: local
    litellm_params: {model: openai/fake-chat, api_base: $OK, api_key: sk-test-0123456789,
                     input_cost_per_token: 0.001, output_cost_per_token: 0.002}
  - model_name: local-embed
    litellm_params: {model: openai/fake-embed, api_base: $OK, api_key: sk-test}
    model_info: {mode: embedding}
  - model_name: backup
    litellm_params:
      model: deepseek/deepseek-chat
      api_base: "https://user:hunter2@example.invalid/v1?api-key=hunter2"
      api_key: os.environ/FLOWLOOM_TEST_UNSET_KEY
router_settings: {num_retries: 0, fallbacks: [{backup: [local]}]}
"""


async def test_models_routes_health_and_calls_of_a_gateway(tmp_path, fake_openai,
                                                           monkeypatch):
    monkeypatch.delenv("FLOWLOOM_TEST_UNSET_KEY", raising=False)
    gateway = make_gateway(fake_openai, GATEWAY)
    app = create_app(settings(tmp_path), ctx=BuildContext(models=GatewayModels(gateway)))
    for url in run_server(app):
        models = get(url, "/models")
        assert get(url, "/models/calls")["calls"] == []
        client = get_client(url=url, api_key=None)
        for text in ("hi", "there"):
            await client.runs.wait(None, "chat", input=user(text))
        calls = get(url, "/models/calls", model="local")
        last = get(url, "/models/calls", limit=1)
        health = get(url, "/models/health", timeout=2)
        refused = httpx.get(f"{url}/models/calls", params={"model": "nope"})
        timeline = get(url, "/observe/runs", flow_id="chat")["runs"]

    assert models["gateway"] is True and models["provider"] == "GatewayModels"
    assert models["default_chat"] == "local" and models["default_embedding"] == "local-embed"
    assert models["fallbacks"] == [{"backup": ["local"]}]
    by_alias = {m["alias"]: m for m in models["models"]}
    assert list(by_alias) == ["local", "local-embed", "backup"]
    assert by_alias["local-embed"]["mode"] == "embedding"
    local = by_alias["local"]["deployments"]
    assert local == [{"id": "local#0", "model": "openai/fake-chat", "provider": "openai",
                      "api_base": fake_openai.base("ok"), "has_api_key": True,
                      "embedded": False, "active": True, "missing_env": [],
                      "refused": None}]
    backup = by_alias["backup"]["deployments"][0]
    assert backup["provider"] == "deepseek" and backup["active"] is False
    assert backup["missing_env"] == ["FLOWLOOM_TEST_UNSET_KEY"]
    assert "hunter2" not in str(models)
    assert backup["api_base"] == "https://***@example.invalid/v1?api-key=***"

    assert [c["model"] for c in calls["calls"]] == ["local", "local"]
    assert all(c["ok"] and c["error"] is None and c["latency_ms"] > 0 for c in calls["calls"])
    assert all(c["deployment"] == "local#0" and c["prompt_tokens"] == 7
               for c in calls["calls"])
    assert calls["calls"][0]["at"] <= calls["calls"][1]["at"]  # newest last
    assert all(c["cost"] > 0 for c in calls["calls"])
    totals = calls["totals"]["local"]
    assert totals["calls"] == 2 and totals["errors"] == 0
    assert totals["cost"] == pytest.approx(sum(c["cost"] for c in calls["calls"]))
    assert list(calls["totals"]) == ["local"]
    assert len(last["calls"]) == 1 and last["calls"][0]["at"] == calls["calls"][1]["at"]
    assert refused.status_code == 422 and "nope" in refused.json()["detail"]

    status = {(h["alias"], h["status"]) for h in health["deployments"]}
    assert status == {("local", "ok"), ("local-embed", "ok"), ("backup", "skipped")}
    assert "hunter2" not in str(health)
    assert [r["status"] for r in timeline] == ["success", "success"]


async def test_retention_keeps_the_newest_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(observe_api, "KEEP_RUNS", 2)
    monkeypatch.setattr(observe_api, "PRUNE_EVERY", 1)
    app = create_app(settings(tmp_path), ctx=BuildContext(models=ScriptedModels(_reply)))
    for url in run_server(app):
        client = get_client(url=url, api_key=None)
        thread = (await client.threads.create())["thread_id"]
        for text in ("a", "b", "c", "d"):
            await client.runs.wait(thread, "chat", input=user(text))
        listed = get(url, "/observe/runs")["runs"]
        timelines = [get(url, f"/observe/runs/{r['run_id']}/nodes") for r in listed]
    assert [r["status"] for r in listed] == ["success"] * 4  # fl_runs keeps them all
    # the recorder keeps the newest two: the older ones lost their timings
    assert [r["duration_ms"] is not None for r in listed] == [True, True, False, False]
    assert [[n["node"] for n in t["nodes"]] for t in timelines] == [["answer"], ["answer"],
                                                                    [], []]
    assert [t["status"] for t in timelines] == ["success"] * 4
