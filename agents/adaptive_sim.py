"""A load simulation of `router.adaptive`: how its slow-path budget holds up when a burst
of uncertain requests arrives.

Each request runs through a real compiled flow (the router, and a `state.set` node on each
branch) with a seeded synthetic normalized entropy: `base_uncertain` of the requests are
uncertain (entropy above `threshold`), and in the burst phase, the middle 20% of the run,
`burst` times as many. The result says whether every request was answered and whether the
budget's guarantee held in every window.

Example:
    >>> result = simulate(10_000, burst=10, budget=0.05)
    >>> result["dropped"], result["max_window_share"] <= 0.05
    (0, True)
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import Counter, deque
from typing import Any

from flowloom.agents._budget import forget_flow, window_size
from flowloom.agents.adaptive import REASONS
from flowloom.flows.compiler import compile_flow
from flowloom.flows.format import Flow

__all__ = ["BURST_PHASE", "SimulationError", "simulate"]

BURST_PHASE = (0.4, 0.6)  # the burst's share of the run: its middle 20%
MAX_REQUESTS = 1_000_000
_NODE = "gate"


class SimulationError(ValueError):
    """A simulation parameter out of range; `param` names it."""

    def __init__(self, param: str, value: Any, message: str) -> None:
        self.param = param
        self.value = value
        self.message = message
        super().__init__(f"{param} {value!r}: {message}")


def _check(requests: int, burst: float, budget: float, bucket_burst: int,
           base_uncertain: float, threshold: float, window: int | None) -> None:
    def finite(value: Any) -> bool:
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and math.isfinite(value))

    if not isinstance(requests, int) or not 1 <= requests <= MAX_REQUESTS:
        raise SimulationError("requests", requests, f"give 1 to {MAX_REQUESTS:,}")
    if not finite(burst) or burst < 0:
        raise SimulationError("burst", burst, "give a multiplier >= 0 (10: ten times as "
                              "many uncertain requests in the burst)")
    if not finite(budget) or not 0 <= budget <= 1:
        raise SimulationError("budget", budget, "give a share from 0 to 1 (0.05: 5%)")
    if not isinstance(bucket_burst, int) or bucket_burst < (1 if 0 < budget < 1 else 0):
        raise SimulationError("bucket_burst", bucket_burst, "give at least 1 slow request "
                              "per window")
    if not finite(base_uncertain) or not 0 <= base_uncertain <= 1:
        raise SimulationError("base_uncertain", base_uncertain, "give a share from 0 to 1")
    if not finite(threshold) or not 0 < threshold < 1:
        raise SimulationError("threshold", threshold, "give a normalized entropy between 0 "
                              "and 1 (exclusive)")
    if window is not None and (not isinstance(window, int) or window < 1):
        raise SimulationError("window", window, "give at least 1 request")


def _flow(flow_id: str, threshold: float, budget: float, bucket_burst: int) -> Flow:
    return Flow.model_validate({
        "id": flow_id, "name": "Adaptive routing simulation",
        "state": {"recommendation": {"type": "object"}, "route": {"type": "string"},
                  "route_decision": {"type": "object"}, "answer": {"type": "string"}},
        "nodes": [
            {"id": _NODE, "type": "router.adaptive@1", "params": {
                "signal": "entropy", "source": "recommendation", "threshold": threshold,
                "budget": budget, "burst": bucket_burst}},
            {"id": "fast", "type": "state.set@1", "params": {"values": {"answer": "fast"}}},
            {"id": "slow", "type": "state.set@1", "params": {"values": {"answer": "slow"}}},
        ],
        "edges": [{"source": "START", "target": _NODE},
                  {"source": _NODE, "target": "fast", "condition": "fast"},
                  {"source": _NODE, "target": "slow", "condition": "slow"},
                  {"source": "fast", "target": "END"}, {"source": "slow", "target": "END"}],
    })


def _max_in_window(flags: list[bool], size: int) -> int:
    """The most True flags in any `size` consecutive ones (a shorter run: all of them)."""
    best = current = 0
    recent: deque[bool] = deque()
    for flag in flags:
        recent.append(flag)
        current += flag
        if len(recent) > size:
            current -= recent.popleft()
        best = max(best, current)
    return best


def _quantile_ms(seconds: list[float], q: float) -> float:
    ordered = sorted(seconds)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 4)


def simulate(requests: int, burst: float, budget: float, *, bucket_burst: int = 5,
             base_uncertain: float = 0.02, threshold: float = 0.5, seed: int = 0,
             window: int | None = None) -> dict[str, Any]:
    """Run `requests` requests through a compiled `router.adaptive` flow; return counts,
    the largest slow share of any `window` consecutive requests (default: the budget's
    window, ceil(bucket_burst / budget); the whole run for budget 0 or 1) and latency.
    Raises SimulationError for a parameter out of range."""
    _check(requests, burst, budget, bucket_burst, base_uncertain, threshold, window)
    budget_window = window_size(bucket_burst, budget) if 0 < budget < 1 else None
    measured = window or budget_window or requests
    flow_id = f"route_sim_{uuid.uuid4().hex[:12]}"  # a fresh bucket for this run only
    graph = compile_flow(_flow(flow_id, threshold, budget, bucket_burst))
    rng = random.Random(seed)
    start, end = (int(requests * share) for share in BURST_PHASE)
    uncertain = completed = 0
    slow_flags: list[bool] = []
    reasons: Counter[str] = Counter()
    seconds: list[float] = []
    first_error: str | None = None
    try:
        for i in range(requests):
            share = base_uncertain * (burst if start <= i < end else 1.0)
            is_uncertain = rng.random() < share
            uncertain += is_uncertain
            draw = 1.0 - rng.random()  # in (0, 1]
            entropy = threshold + (1 - threshold) * draw if is_uncertain \
                else threshold * (1 - draw)
            recommendation = {"items": [], "entropy": entropy, "entropy_norm": entropy,
                              "margin": 1 - entropy}
            began = time.perf_counter()
            try:
                out = graph.invoke({"recommendation": recommendation})
            except Exception as exc:  # counted as dropped: the run goes on
                first_error = first_error or f"request {i}: {type(exc).__name__}: {exc}"
                slow_flags.append(False)
                continue
            finally:
                seconds.append(time.perf_counter() - began)
            route = out.get("route")
            answered = route in ("fast", "slow") and out.get("answer") == route
            completed += answered
            slow_flags.append(answered and route == "slow")
            reasons[out.get("route_decision", {}).get("reason", "missing")] += 1
    finally:
        forget_flow(flow_id)
    slow = sum(slow_flags)
    max_slow = _max_in_window(slow_flags, measured)
    return {
        "requests": requests,
        "completed": completed,
        "dropped": requests - completed,
        "slow": slow,
        "slow_share": slow / requests,
        "uncertain": uncertain,
        "budget": budget,
        "bucket_burst": bucket_burst,
        "window": budget_window,
        "measured_window": measured,
        "max_window_slow": max_slow,
        "max_window_share": max_slow / measured,
        "within_budget": max_slow / measured <= budget,
        "reasons": {reason: reasons[reason] for reason in (*REASONS, *sorted(reasons))
                    if reason in reasons},
        "budget_exhausted": reasons["budget_exhausted"],
        "burst": burst,
        "burst_phase": [start, end],
        "base_uncertain": base_uncertain,
        "threshold": threshold,
        "seed": seed,
        "latency_ms": {"p50": _quantile_ms(seconds, 0.5), "p99": _quantile_ms(seconds, 0.99)},
        "first_error": first_error,
    }
