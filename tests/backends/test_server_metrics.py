"""`GET /metrics` on real servers: request histograms by route template, runs by flow and
status, node latencies, router decisions and the gateway's model usage."""

from __future__ import annotations

import httpx
import pytest
from langgraph_sdk import get_client
from prometheus_client.parser import text_string_to_metric_families

from flowloom.backends.gateway import GatewayModels
from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.context import BuildContext
from tests.backends.test_gateway import make_gateway
from tests.backends.test_server_auth import make_key
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels


def _reply(messages) -> str:
    if "Classify" in str(messages[0].content):
        return "billing"
    if messages[-1].content == "boom":
        raise ValueError("the model exploded")
    return "fine"


def user(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of the exposition, by (name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def settings(tmp_path) -> ServerSettings:
    return ServerSettings(database=f"sqlite:///{tmp_path}/fl.sqlite", home=tmp_path)


async def test_metrics_count_runs_nodes_routes_and_requests(tmp_path):
    app = create_app(settings(tmp_path), ctx=BuildContext(models=ScriptedModels(_reply)))
    other = create_app(settings(tmp_path / "x"))  # a second app: its own registry, no clash
    assert other is not app
    for url in run_server(app):
        client = get_client(url=url, api_key=None)
        thread = (await client.threads.create())["thread_id"]
        for text in ("a", "b", "boom"):
            await client.runs.wait(thread, "chat", input=user(text), raise_error=False)
        await client.runs.wait(None, "triage", input=user("my invoice is wrong"))
        assert httpx.get(f"{url}/no/such/path").status_code == 404
        response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    assert value(found, "flowloom_runs_total", flow="chat", status="success") == 2
    assert value(found, "flowloom_runs_total", flow="chat", status="error") == 1
    assert value(found, "flowloom_runs_total", flow="triage", status="success") == 1
    assert value(found, "flowloom_run_duration_seconds_count", flow="chat",
                 status="success") == 2
    assert value(found, "flowloom_route_decisions_total", flow="triage", route="billing") == 1
    assert value(found, "flowloom_node_duration_seconds_count", flow="chat", node="answer") == 3
    assert value(found, "flowloom_node_duration_seconds_count", flow="triage",
                 node="classify") == 1

    wait = {"route": "/threads/{thread_id}/runs/wait", "method": "POST", "status": "200"}
    assert value(found, "flowloom_http_request_duration_seconds_count", **wait) == 3
    assert value(found, "flowloom_http_request_duration_seconds_bucket", **wait,
                 le="+Inf") == 3
    assert value(found, "flowloom_http_request_duration_seconds_count", route="/runs/wait",
                 method="POST", status="200") == 1
    assert value(found, "flowloom_http_request_duration_seconds_count", route="unmatched",
                 method="GET", status="404") == 1
    assert "flowloom_model_calls_total" in response.text  # described, no samples: no gateway
    assert not [k for k in found if k[0] == "flowloom_model_calls_total"]


async def test_metrics_show_model_usage_and_refused_requests(tmp_path, fake_openai):
    gateway = make_gateway(fake_openai, """
model_list:
  - model_name: local
    litellm_params: {model: openai/fake-chat, api_base: $OK, api_key: sk-test,
                     input_cost_per_token: 0.001, output_cost_per_token: 0.002}
router_settings: {num_retries: 0}
""")
    app = create_app(settings(tmp_path), ctx=BuildContext(models=GatewayModels(gateway)))
    _, key = await make_key(f"sqlite:///{tmp_path}/fl.sqlite", "user")
    _, admin = await make_key(f"sqlite:///{tmp_path}/fl.sqlite", "admin")
    for url in run_server(app):
        client = get_client(url=url, api_key=key)
        for _ in range(2):
            await client.runs.wait(None, "chat", input=user("hi"))
        assert httpx.get(f"{url}/metrics").status_code == 401  # a key is needed here too
        # every key's traffic: for admins (flowloom serve --metrics-role user opens it)
        assert httpx.get(f"{url}/metrics", headers={"x-api-key": key}).status_code == 403
        assert httpx.get(f"{url}/threads/x", headers={"x-api-key": "fl_no_pe"}).status_code \
            == 401
        found = samples(httpx.get(f"{url}/metrics", headers={"x-api-key": admin}).text)
    totals = gateway.usage_summary().by_model["local"]
    assert value(found, "flowloom_model_calls_total", model="local") == totals.calls == 2
    assert value(found, "flowloom_model_tokens_total", model="local",
                 type="prompt") == totals.prompt_tokens > 0
    assert value(found, "flowloom_model_cost_usd_total", model="local") == pytest.approx(
        totals.cost)
    assert value(found, "flowloom_http_request_duration_seconds_count",
                 route="/threads/{thread_id}", method="GET", status="401") == 1


async def test_openai_endpoint_requests_are_runs_in_metrics_and_history(tmp_path):
    """A chat completion runs the flow as the LangGraph API does: counted by flow and
    status, its nodes timed, and listed in the run history with its thread."""
    import openai

    app = create_app(settings(tmp_path), ctx=BuildContext(models=ScriptedModels(_reply)))
    for url in run_server(app):
        oai = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        done = await oai.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "a"}], user="t-openai")
        assert done.choices[0].message.content == "fine"
        stream = await oai.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "b"}], stream=True)
        assert "".join([c.choices[0].delta.content or "" async for c in stream
                        if c.choices]) == "fine"
        with pytest.raises(openai.InternalServerError):
            await oai.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "boom"}])
        found = samples(httpx.get(f"{url}/metrics").text)
        history = httpx.get(f"{url}/observe/runs", params={"flow_id": "chat"}).json()["runs"]
        await oai.close()
    assert value(found, "flowloom_runs_total", flow="chat", status="success") == 2
    assert value(found, "flowloom_runs_total", flow="chat", status="error") == 1
    assert value(found, "flowloom_node_duration_seconds_count", flow="chat", node="answer") == 3
    assert sorted(r["status"] for r in history) == ["error", "success", "success"]
    assert "t-openai" in {r["thread_id"] for r in history}


async def test_the_route_header_drives_the_adaptive_router_and_its_metrics(tmp_path):
    """The recommend example on a real server: X-Flowloom-Route: force_slow sends a request
    the model is sure of to the (scripted) reranker, force_fast keeps an uncertain one on
    System 1; /metrics counts both decisions and the rerank."""
    import json

    from flowloom.agents.adaptive import reset_buckets
    from flowloom.agents.rec_answer import reset_rerank_counts

    reset_buckets()
    reset_rerank_counts()
    rerank = json.dumps({"ranking": [2, 1], "explanation": "scripted"})
    app = create_app(settings(tmp_path), ctx=BuildContext(
        models=ScriptedModels(lambda _m: rerank), data_dir=tmp_path))
    sure = {"history": ["m001", "m002"], "messages": [{"role": "user", "content": "next?"}]}
    for url in run_server(app):
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            slow = await http.post("/runs/wait", json={"assistant_id": "recommend",
                                                       "input": sure},
                                   headers={"X-Flowloom-Route": "force_slow"})
            fast = await http.post("/runs/wait", json={"assistant_id": "recommend", "input": {
                "messages": [{"role": "user", "content": "suggest something"}]}},
                headers={"X-Flowloom-Route": "force_fast"})
            plain = await http.post("/runs/wait", json={"assistant_id": "recommend",
                                                        "input": sure})
            found = samples((await http.get("/metrics")).text)
    assert slow.status_code == fast.status_code == plain.status_code == 200
    assert slow.json()["route_decision"]["reason"] == "forced_slow"
    assert slow.json()["ranking"]["source"] == "llm"
    assert fast.json()["route_decision"]["reason"] == "forced_fast"
    assert fast.json()["recommendation"]["entropy_norm"] > 0.8  # uncertain, kept fast
    assert plain.json()["route_decision"]["reason"] == "confident"
    decisions = "flowloom_adaptive_decisions_total"
    assert value(found, decisions, flow="recommend", node="gate", route="slow",
                 reason="forced_slow") == 1
    assert value(found, decisions, flow="recommend", node="gate", route="fast",
                 reason="forced_fast") == 1
    assert value(found, decisions, flow="recommend", node="gate", route="fast",
                 reason="confident") == 1
    assert value(found, "flowloom_rerank_total", outcome="reranked") == 1
    reset_buckets()
    reset_rerank_counts()
