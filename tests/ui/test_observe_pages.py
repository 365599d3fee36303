"""The Runs page's node timeline and the Models page's plots, driven by Streamlit's AppTest
against real API servers on 127.0.0.1: the UI tests' server (scripted models) for runs,
and servers whose models go through the real LiteLLM gateway to a fake OpenAI-compatible
HTTP server (priced, or free like a local model) for the Models page."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from flowloom.backends.gateway import GatewayModels
from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.context import BuildContext
from flowloom.ui.app import models as models_page
from flowloom.ui.app._view_observe import LABEL_PX, timeline_frame, took
from flowloom.ui.client import API_URL_ENV, FlowloomClient
from tests.backends.conftest import fake_openai  # noqa: F401  (the fixture)
from tests.backends.test_gateway import make_gateway
from tests.backends.test_server_protocol import run_server
from tests.ui.test_pages import models_app, no_errors, runs_app, started

LONG = "extract_customer_information_from_the_ticket_and_normalise_it"


def chain(flow_id: str, names: list[str]) -> dict:
    """A flow of `names` (state.set nodes) then an llm.chat `answer`, one after another."""
    nodes = [{"id": n, "type": "state.set@1", "params": {"values": {"step": i}}}
             for i, n in enumerate(names)]
    nodes.append({"id": "answer", "type": "llm.chat@1", "params": {"system": "Answer."}})
    ids = [*names, "answer"]
    edges = [{"source": "START", "target": ids[0]},
             *({"source": a, "target": b} for a, b in zip(ids, ids[1:], strict=False)),
             {"source": ids[-1], "target": "END"}]
    return {"id": flow_id, "name": flow_id, "recursion_limit": 100,
            "state": {"messages": {"type": "messages"}, "step": {"type": "integer"}},
            "nodes": nodes, "edges": edges}


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def _timeline_spec(at: AppTest) -> dict:
    [spec] = [c for c in charts(at) if "layer" in c]
    return spec


def _run_and_open(ui_api, flow_id: str) -> tuple[AppTest, dict]:
    ui_api.wait_run(assistant_id=flow_id,
                    input={"messages": [{"role": "user", "content": "go"}]})
    at = started(runs_app)
    at.selectbox(key="runs_flow").select(flow_id).run()
    no_errors(at)
    run_id = at.selectbox(key="runs_run").value
    return at, ui_api.run_nodes(run_id)


def test_timeline_of_thirty_nodes_has_one_readable_row_each(ui_api):
    names = [f"step_{i:02d}" for i in range(27)] + [LONG, "x", "look_up_the_order_history"]
    ui_api.save_flow(chain("thirty", names))
    at, timeline = _run_and_open(ui_api, "thirty")
    assert timeline["status"] == "success" and len(timeline["nodes"]) == 31
    spec = _timeline_spec(at)
    assert spec["height"] == {"step": 22}  # rows keep their height: the chart grows
    y = spec["layer"][1]["encoding"]["y"]
    assert y["field"] == "label" and y["sort"] == {"field": "order", "op": "min",
                                                   "order": "ascending"}
    assert y["axis"]["labelLimit"] == LABEL_PX  # longer names are cut with "…"
    tooltip = [t["field"] for t in spec["layer"][0]["encoding"]["tooltip"]]
    assert tooltip[:2] == ["node", "node_type"]  # the full name, on the whole row
    frame = timeline_frame(timeline)
    assert frame["label"].tolist() == [*names, "answer"]  # execution order, one row each
    assert frame["order"].tolist() == list(range(31))


def test_timeline_of_two_nodes_and_a_node_that_ran_twice(ui_api):
    ui_api.save_flow(chain("two_steps", ["lookup"]))
    at, timeline = _run_and_open(ui_api, "two_steps")
    assert _timeline_spec(at)["height"] == {"step": 30}
    assert timeline_frame(timeline)["label"].tolist() == ["lookup", "answer"]
    frame = timeline_frame({"duration_ms": 90.0, "nodes": [
        {"seq": 0, "node": "agent", "start_ms": 0.0, "duration_ms": 10.0, "status": "ok"},
        {"seq": 1, "node": "tools", "start_ms": 11.0, "duration_ms": 20.0, "status": "ok"},
        {"seq": 2, "node": "agent", "start_ms": 32.0, "duration_ms": 5.0, "status": "ok"},
        {"seq": 3, "node": "inner", "start_ms": 40.0, "duration_ms": None, "depth": 2,
         "status": "running"}]})
    assert frame["row"].nunique() == 3 and frame["order"].tolist() == [0, 0, 1, 2]
    assert frame["label"].tolist() == ["agent", "agent", "tools", "· ↳ inner"]
    assert frame["end_ms"].tolist() == [10.0, 37.0, 31.0, 90.0]
    assert [took(ms) for ms in (0.42, 12.4, 1250.0, 125_000.0)] == [
        "0.4 ms", "12 ms", "1.2 s", "2 min 5 s"]


PRICED = """
model_list:
  - model_name: local
    litellm_params: {model: openai/fake-chat, api_base: $OK, api_key: sk-test,
                     input_cost_per_token: 0.001, output_cost_per_token: 0.002}
  - model_name: local-embed
    litellm_params: {model: openai/fake-embed, api_base: $OK, api_key: sk-test}
    model_info: {mode: embedding}
router_settings: {num_retries: 0}
"""
FREE = PRICED.replace("input_cost_per_token: 0.001, output_cost_per_token: 0.002",
                      "input_cost_per_token: 0, output_cost_per_token: 0")


@pytest.fixture(params=["priced", "free"])
def gateway_server(request, fake_openai, tmp_path, monkeypatch):  # noqa: F811
    gateway = make_gateway(fake_openai, PRICED if request.param == "priced" else FREE)
    settings = ServerSettings(database=f"sqlite:///{tmp_path}/fl.sqlite", home=tmp_path)
    app = create_app(settings, ctx=BuildContext(models=GatewayModels(gateway),
                                                data_dir=tmp_path))
    for url in run_server(app):
        monkeypatch.setenv(API_URL_ENV, url)
        client = FlowloomClient(url)
        for text in ("hi", "there"):
            client.wait_run(assistant_id="chat",
                            input={"messages": [{"role": "user", "content": text}]})
        yield request.param, client
        client.close()


def test_models_plots_use_24_hour_time_and_hide_an_all_zero_cost(gateway_server):
    kind, client = gateway_server
    calls = client.model_calls()["calls"]
    assert len(calls) == 2
    at = started(models_app)
    no_errors(at)
    specs = charts(at)
    latency = [s for s in specs if s.get("title") == "Latency per call"]
    assert latency and latency[0]["encoding"]["x"]["axis"]["format"] == "%H:%M:%S"
    cost = [s for s in specs if s.get("title") == "Cost per minute"]
    note = [c.value for c in at.caption if models_page.NO_COST_NOTE in c.value]
    if kind == "priced":
        assert all(c["cost"] > 0 for c in calls)
        assert cost and cost[0]["encoding"]["x"]["axis"]["format"] == "%H:%M"
        assert not note
    else:
        assert all(not c["cost"] for c in calls)
        assert not cost and note
