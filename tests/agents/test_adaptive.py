"""`router.adaptive@1`: routing by entropy, margin or a field; the slow-path budget's exact
window guarantee, under threads too; overrides; records and counts; the compiled flow's
branches; and the burst simulation with its CLI."""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from flowloom.agents import NODE_TYPES
from flowloom.agents._budget import SlidingWindowBucket, window_size
from flowloom.agents.adaptive import (
    NODE_TYPE,
    Params,
    build,
    decision_counts,
    reset_buckets,
)
from flowloom.agents.adaptive_sim import SimulationError, simulate
from flowloom.flows.compiler import compile_flow
from flowloom.flows.format import Flow
from flowloom.flows.loader import load_flow
from flowloom.flows.registry import NodeContext, default_registry
from flowloom.flows.validate import validate_document, validate_params
from flowloom.ui.errors import UsageError
from flowloom.ui.route_sim_cli import add_route_sim

Node = Callable[..., dict[str, Any]]


@pytest.fixture(autouse=True)
def _fresh_buckets() -> None:
    reset_buckets()


def node(flow_id: str = "f", node_id: str = "gate", **params: Any) -> Node:
    params.setdefault("threshold", 0.5)
    flow = Flow.model_validate({"id": flow_id, "name": flow_id})
    return build(Params.model_validate(params), NodeContext(node_id, flow))


def run(fn: Node, state: dict[str, Any], metadata: dict[str, Any] | None = None
        ) -> dict[str, Any]:
    """The decision record (checked to agree with the label)."""
    out = fn(state, {"metadata": metadata or {}})
    assert out["route"] == out["route_decision"]["route"]
    return out["route_decision"]


def rec(entropy: float) -> dict[str, Any]:
    return {"recommendation": {"items": ["a", "b"], "entropy": entropy * 2.0,
                               "entropy_norm": entropy, "margin": 1 - entropy}}


def slow_windows_ok(flags: list[bool], burst: int, window: int) -> bool:
    return all(sum(flags[max(0, t - window + 1):t + 1]) <= burst for t in range(len(flags)))


# --- routing by each signal -------------------------------------------------------------

def test_entropy_signal_against_threshold() -> None:
    fn = node(budget=1, threshold=0.6)
    assert (run(fn, rec(0.9))["route"], run(fn, rec(0.9))["reason"]) == ("slow", "uncertain")
    confident = run(fn, rec(0.2))
    assert (confident["route"], confident["reason"]) == ("fast", "confident")
    assert confident["value"] == 0.2 and confident["threshold"] == 0.6
    assert confident["signal"] == "entropy" and confident["forced"] is False
    assert run(fn, rec(0.6))["route"] == "fast"  # uncertain only strictly above
    raw = node(budget=1, threshold=0.6, entropy_key="entropy")  # raw entropy: 0.4 * 2
    assert run(raw, rec(0.4))["route"] == "slow" and run(raw, rec(0.4))["value"] == 0.8


def test_margin_signal_is_uncertain_below_threshold() -> None:
    fn = node(signal="margin", budget=1, threshold=0.15)
    assert run(fn, {"recommendation": {"margin": 0.05}})["route"] == "slow"
    assert run(fn, {"recommendation": {"margin": 0.4}})["reason"] == "confident"
    assert run(fn, {"recommendation": {"margin": 0.15}})["route"] == "fast"
    keyed = node(signal="margin", margin_key="gap", budget=1, threshold=0.15)
    assert run(keyed, {"recommendation": {"gap": 0.01, "margin": 0.9}})["route"] == "slow"


def test_field_signal_above_or_below() -> None:
    above = node(signal="field", source="score", budget=1, threshold=3)
    assert run(above, {"score": 4})["route"] == "slow"
    assert run(above, {"score": 2.5})["route"] == "fast"
    below = node(signal="field", source="score", uncertain_when="below", budget=1,
                 threshold=3)
    assert run(below, {"score": 2.5})["route"] == "slow"
    assert run(below, {"score": 4})["route"] == "fast"


@pytest.mark.parametrize("state", [
    {}, {"recommendation": None}, {"recommendation": 0.9}, {"recommendation": {}},
    {"recommendation": {"entropy_norm": "high"}}, {"recommendation": {"entropy_norm": True}},
    {"recommendation": {"entropy_norm": float("nan")}},
    {"recommendation": {"entropy_norm": float("inf")}},
])
def test_missing_or_bad_signal_goes_fast(state: dict[str, Any]) -> None:
    record = run(node(budget=1), state)
    assert (record["route"], record["reason"], record["value"]) == ("fast", "no_signal", None)


def test_budget_zero_never_slow_and_one_has_no_limit() -> None:
    never = node(budget=0, burst=0)
    records = [run(never, rec(0.99)) for _ in range(50)]
    assert {(r["route"], r["reason"]) for r in records} == {("fast", "budget_exhausted")}
    assert records[0]["window"] is None and records[0]["bucket_level"] == 0
    unlimited = node(budget=1, burst=0)
    assert all(run(unlimited, rec(0.99))["route"] == "slow" for _ in range(500))


# --- the budget ---------------------------------------------------------------------------

def test_window_is_ceil_burst_over_budget_on_the_decimal() -> None:
    assert window_size(5, 0.05) == 100
    assert window_size(3, 0.1) == 30  # 3 / 0.1 is 30.000000000000004 in floats
    assert window_size(1, 0.3) == 4 and window_size(7, 0.07) == 100
    assert node(budget=0.3, burst=1)({**rec(0.9)}, {})["route_decision"]["window"] == 4


def test_budget_exhausted_reason_and_bucket_level() -> None:
    fn = node(budget=0.5, burst=2)  # window 4: two slow in any four requests
    records = [run(fn, rec(0.9)) for _ in range(9)]
    assert [r["route"][0] for r in records] == list("ssffssffs")
    assert [r["reason"] for r in records[:4]] == ["uncertain", "uncertain",
                                                  "budget_exhausted", "budget_exhausted"]
    assert [r["bucket_level"] for r in records[:5]] == [1, 0, 0, 0, 0]
    assert {r["window"] for r in records} == {4}
    # confident requests count in the window too: they let tokens come back
    fn = node(flow_id="g", budget=0.5, burst=1)  # window 2
    assert [run(fn, rec(e))["route"] for e in (0.9, 0.1, 0.9, 0.9)] == \
        ["slow", "fast", "slow", "fast"]


@pytest.mark.parametrize("seed", range(6))
def test_exact_sliding_window_guarantee_on_random_streams(seed: int) -> None:
    """Never more than `burst` slow in any `window` requests, and never a refusal that
    the guarantee did not need (the window ending there already held `burst`)."""
    rng = random.Random(seed)
    burst = rng.randint(1, 8)
    budget = rng.choice([0.01, 0.05, 0.1, 0.25, 0.3, 0.5, 0.9])
    window = math.ceil(burst / budget - 1e-9)
    fn = node(flow_id=f"p{seed}", budget=budget, burst=burst)
    slow: list[bool] = []
    for i in range(4000):
        density = 0.9 if (i // 300) % 3 == 1 else rng.choice([0.01, 0.1, 0.3])
        uncertain = rng.random() < density
        record = run(fn, rec(0.8 if uncertain else 0.2))
        assert record["window"] == window
        slow.append(record["route"] == "slow")
        if uncertain and record["route"] == "fast":
            assert record["reason"] == "budget_exhausted"
            assert sum(slow[max(0, i - window + 1):i]) == burst
        elif uncertain:
            assert record["reason"] == "uncertain"
        else:
            assert record["route"] == "fast"
    assert slow_windows_ok(slow, burst, window)
    assert max(sum(slow[t:t + window]) for t in range(len(slow))) == burst  # it is used


def test_bucket_guarantee_under_threads() -> None:
    bucket = SlidingWindowBucket(burst=3, window=40)
    takes: list[Any] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        mine = [bucket.take(want=rng.random() < 0.5) for _ in range(3000)]
        with lock:
            takes.extend(mine)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ordered = sorted(takes, key=lambda t: t.sequence)
    assert [t.sequence for t in ordered] == list(range(24_000))
    assert slow_windows_ok([t.granted for t in ordered], 3, 40)


def test_node_shared_by_threads_grants_exactly_the_budget() -> None:
    """Eight threads, one bucket (same flow and node, built twice as two runs would):
    all-uncertain traffic gets exactly `burst` per window, no more, no fewer."""
    fns = [node(budget=0.05, burst=5), node(budget=0.05, burst=5)]
    results: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        routes = [fns[k % 2](rec(0.9), {})["route"] for _ in range(1000)]
        with lock:
            results.extend(routes)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8000 and results.count("slow") == 5 * 80
    counts = decision_counts()
    assert counts[("f", "gate", "slow", "uncertain")] == 400
    assert counts[("f", "gate", "fast", "budget_exhausted")] == 7600


def test_buckets_are_per_flow_and_node() -> None:
    a, b = node(flow_id="a", budget=0.5, burst=1), node(flow_id="b", budget=0.5, burst=1)
    other = node(flow_id="a", node_id="other", budget=0.5, burst=1)
    assert [run(f, rec(0.9))["route"] for f in (a, b, other, a)] == ["slow"] * 3 + ["fast"]


# --- overrides ----------------------------------------------------------------------------

def test_overrides_from_run_metadata() -> None:
    fn = node(budget=0.25, burst=1)  # window 4
    forced = run(fn, rec(0.1), {"route_override": "slow"})
    assert (forced["route"], forced["reason"], forced["forced"]) == ("slow", "forced_slow", True)
    assert forced["bucket_level"] == 0  # it took the token ...
    assert run(fn, rec(0.9))["reason"] == "budget_exhausted"  # ... an uncertain one needed
    past = run(fn, rec(0.1), {"route_override": "FORCE_SLOW"})  # never refused
    assert (past["route"], past["forced"]) == ("slow", True) and "no token" in past["note"]
    fast = run(fn, rec(0.99), {"route_override": "force_fast"})
    assert (fast["route"], fast["reason"]) == ("fast", "forced_fast")
    bad = run(node(flow_id="x", budget=1), rec(0.99), {"route_override": "sideways"})
    assert (bad["route"], bad["reason"], bad["forced"]) == ("slow", "uncertain", False)
    assert "sideways" in bad["note"] and "force_slow" in bad["note"]


def test_overrides_from_a_state_field() -> None:
    fn = node(budget=1, override_field="mode")
    assert run(fn, {**rec(0.1), "mode": "slow"})["reason"] == "forced_slow"
    assert run(fn, {**rec(0.9), "mode": "fast"})["reason"] == "forced_fast"
    assert run(fn, {**rec(0.9), "mode": None})["reason"] == "uncertain"
    ignored = run(fn, {**rec(0.9), "mode": 3})
    assert ignored["reason"] == "uncertain" and "state field mode" in ignored["note"]
    both = run(fn, {**rec(0.9), "mode": "slow"}, {"route_override": "fast"})
    assert both["reason"] == "forced_fast"  # the run's metadata comes first
    fallback = run(fn, {**rec(0.1), "mode": "slow"}, {"route_override": "??"})
    assert fallback["reason"] == "forced_slow" and "'??'" in fallback["note"]
    unset = node(flow_id="y", budget=1)  # no override_field: the state is not read
    assert run(unset, {**rec(0.1), "mode": "slow"})["reason"] == "confident"


# --- params, catalogue, counts ------------------------------------------------------------

@pytest.mark.parametrize(("params", "path", "words"), [
    ({"budget": 1.5}, "params.budget", "less than or equal to 1"),
    ({"budget": -0.1}, "params.budget", "greater than or equal to 0"),
    ({"budget": 0.05, "burst": 0}, "params.burst", "burst must be at least 1"),
    ({"threshold": float("inf")}, "params.threshold", "finite"),
    ({"threshold": float("nan")}, "params.threshold", "finite"),
    ({"signal": "margin", "uncertain_when": "above"}, "params.uncertain_when", "below"),
    ({"signal": "vibes"}, "params.signal", "vibes"),
    ({"treshold": 0.5}, "params.treshold", "threshold"),
    ({"decision_field": "route"}, "params.decision_field", "must differ from output"),
])
def test_bad_params_name_the_field(params: dict[str, Any], path: str, words: str) -> None:
    _, problems = validate_params(NODE_TYPE, {"threshold": 0.5, **params}, "params")
    assert problems, params
    text = " ".join(f"{p.message} {' '.join(p.choices)}" for p in problems if p.path == path)
    assert words in text, [(p.path, p.message) for p in problems]


def test_threshold_is_required_and_edge_cases_are_valid() -> None:
    _, problems = validate_params(NODE_TYPE, {}, "params")
    assert [p.path for p in problems] == ["params.threshold"]
    for ok in ({"budget": 0, "burst": 0}, {"budget": 1, "burst": 0},
               {"signal": "margin", "uncertain_when": "below"}):
        assert validate_params(NODE_TYPE, {"threshold": 0.5, **ok}, "params")[1] == []


def test_registered_as_a_routing_type() -> None:
    assert NODE_TYPE in NODE_TYPES
    entry = default_registry().get("router.adaptive@1")
    assert entry.category == "routing" and entry.is_router and entry.inline
    assert list(entry.routes(Params(threshold=0.5))) == ["fast", "slow"]


def test_decision_counts_by_flow_node_route_reason() -> None:
    fn = node(budget=0.5, burst=1)
    for entropy in (0.9, 0.9, 0.1):
        run(fn, rec(entropy))
    run(fn, {}, {"route_override": "slow"})
    assert decision_counts() == {("f", "gate", "slow", "uncertain"): 1,
                                 ("f", "gate", "fast", "budget_exhausted"): 1,
                                 ("f", "gate", "fast", "confident"): 1,
                                 ("f", "gate", "slow", "forced_slow"): 1}
    reset_buckets()
    assert decision_counts() == {}


# --- in a compiled flow -------------------------------------------------------------------

def flow_doc(**params: Any) -> dict[str, Any]:
    return {
        "id": "adaptive", "name": "Adaptive",
        "state": {"recommendation": {"type": "object"}, "route": {"type": "string"},
                  "route_decision": {"type": "object"}, "answer": {"type": "string"},
                  "mode": {"type": "string"}},
        "nodes": [
            {"id": "gate", "type": "router.adaptive@1",
             "params": {"threshold": 0.5, "budget": 0.5, "burst": 1, **params}},
            {"id": "quick", "type": "state.set@1", "params": {"values": {"answer": "quick"}}},
            {"id": "think", "type": "state.set@1", "params": {"values": {"answer": "think"}}},
        ],
        "edges": [{"source": "START", "target": "gate"},
                  {"source": "gate", "target": "quick", "condition": "fast"},
                  {"source": "gate", "target": "think", "condition": "slow"},
                  {"source": "quick", "target": "END"}, {"source": "think", "target": "END"}],
    }


async def test_compiled_flow_takes_the_right_branch() -> None:
    graph = compile_flow(load_flow(flow_doc(override_field="mode")).flow)
    out = await graph.ainvoke(rec(0.9))
    assert (out["answer"], out["route_decision"]["reason"]) == ("think", "uncertain")
    out = await graph.ainvoke(rec(0.9))
    assert (out["answer"], out["route_decision"]["reason"]) == ("quick", "budget_exhausted")
    out = graph.invoke(rec(0.1), {"metadata": {"route_override": "slow"}})  # sync runs too
    assert (out["answer"], out["route_decision"]["forced"]) == ("think", True)
    out = await graph.ainvoke({**rec(0.9), "mode": "force_fast"})
    assert (out["answer"], out["route_decision"]["reason"]) == ("quick", "forced_fast")
    out = await graph.ainvoke({}, {"metadata": {"route_override": "bogus"}})
    assert (out["answer"], out["route_decision"]["reason"]) == ("quick", "no_signal")
    assert "bogus" in out["route_decision"]["note"]  # the async run saw the metadata
    # the API server's X-Flowloom-Route header arrives as configurable.flowloom_route
    out = await graph.ainvoke(rec(0.9), {"configurable": {"flowloom_route": "force_fast"},
                                         "metadata": {"route_override": "slow"}})
    assert (out["answer"], out["route_decision"]["reason"]) == ("quick", "forced_fast")
    assert decision_counts()[("adaptive", "gate", "slow", "uncertain")] == 1


def test_flow_validation_checks_routes_and_state_fields() -> None:
    doc = flow_doc(source="reco", override_field="nope", decision_field="why")
    doc["edges"] = [e for e in doc["edges"] if e.get("condition") != "slow"]
    doc["nodes"] = [n for n in doc["nodes"] if n["id"] != "think"]
    _, problems = validate_document(doc, default_registry())
    found = {(p.path, p.code) for p in problems}
    assert ("nodes[0]", "unhandled_route") in found  # 'slow' has no edge
    for param in ("source", "override_field"):  # read: name a declared field
        assert (f"nodes[0].params.{param}", "unknown_state_field") in found
    # written: declare it (the problem says how)
    assert ("nodes[0].params.decision_field", "undeclared_state_field") in found
    (declare,) = [p for p in problems if p.code == "undeclared_state_field"]
    assert declare.fix == {"declare": {"field": "why", "type": "object"}}


# --- the simulation and its command -------------------------------------------------------

def test_simulation_under_a_10x_burst_keeps_the_budget() -> None:
    result = simulate(3000, burst=10, budget=0.05, bucket_burst=5, seed=3)
    assert json.loads(json.dumps(result)) == result
    assert (result["completed"], result["dropped"]) == (3000, 0)
    assert result["window"] == result["measured_window"] == 100
    assert result["max_window_share"] <= 0.05 and result["within_budget"]
    assert result["max_window_slow"] == 5  # the burst uses the whole budget
    reasons = result["reasons"]
    assert sum(reasons.values()) == 3000
    assert reasons.get("uncertain", 0) + reasons["budget_exhausted"] == result["uncertain"]
    assert result["slow"] == reasons["uncertain"] and result["budget_exhausted"] > 0
    assert result["slow_share"] == result["slow"] / 3000
    assert result["burst_phase"] == [1200, 1800]
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert decision_counts() == {}  # the simulation's own flow leaves nothing behind
    again = simulate(3000, burst=10, budget=0.05, bucket_burst=5, seed=3)
    assert again["reasons"] == reasons
    calm = simulate(3000, burst=1, budget=0.05, bucket_burst=5, seed=3)
    assert calm["uncertain"] < result["uncertain"]


def test_simulation_edge_budgets_and_bad_input() -> None:
    assert simulate(300, burst=10, budget=0, bucket_burst=0)["slow"] == 0
    unlimited = simulate(300, burst=10, budget=1, base_uncertain=0.5)
    assert unlimited["slow"] == unlimited["uncertain"] > 0 and unlimited["window"] is None
    for kwargs, param in (({"requests": 0}, "requests"), ({"budget": 2.0}, "budget"),
                          ({"burst": -1.0}, "burst"), ({"bucket_burst": 0}, "bucket_burst"),
                          ({"threshold": 1.0}, "threshold")):
        args = {"requests": 10, "burst": 10.0, "budget": 0.05, **kwargs}
        with pytest.raises(SimulationError) as err:
            simulate(args.pop("requests"), args.pop("burst"), args.pop("budget"), **args)
        assert err.value.param == param


def test_route_sim_command() -> None:
    app = typer.Typer()
    add_route_sim(app)
    app.command("noop")(lambda: None)  # two commands, so route-sim is addressed by name
    runner = CliRunner()
    out = runner.invoke(app, ["route-sim", "--requests", "800", "--burst", "10",
                              "--budget", "0.05", "--bucket-burst", "2", "--seed", "1",
                              "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert result["requests"] == 800 and result["dropped"] == 0 and result["window"] == 40
    assert result["max_window_share"] <= 0.05 and result["seed"] == 1
    text = runner.invoke(app, ["route-sim", "--requests", "800", "--burst", "10",
                               "--budget", "0.05", "--bucket-burst", "2", "--seed", "1"])
    assert text.exit_code == 0 and "dropped 0" in text.output
    assert "at most 2 slow in every 40 requests" in text.output
    bad = runner.invoke(app, ["route-sim", "--requests", "10", "--burst", "10",
                              "--budget", "1.5"])
    assert isinstance(bad.exception, UsageError)
    assert str(bad.exception).startswith("--budget 1.5:") and "\n" not in str(bad.exception)
