"""The recommend flow (`flows/examples/recommend.json`) on the bundled model: every request
fast (System 1 only), routed by the adaptive router (uncertain ones to the LLM reranker,
within the flow's budget), and every request slow (all reranked), side by side on the
same requests: latency per request, model calls, and how reranks ended.

Requests: histories from the shipped demo's users (a user's films up to a random point,
1-8 of them, by id in the `history` field), one in ten empty ("suggest something"), in
a seeded order. Each mode runs the same list once, after one warm-up request per mode.
The forced modes use the same override the API server's `X-Flowloom-Route` header sets.

    $ LITELLM_LOCAL_MODEL_COST_MAP=True DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 nice -n 10 \\
      .venv/bin/python benchmarks/rec_router_bench.py --requests 40
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from flowloom.agents.adaptive import reset_buckets
from flowloom.agents.rec_answer import rerank_counts, reset_rerank_counts
from flowloom.backends.context import default_build_context
from flowloom.backends.server._usage import gateway_of
from flowloom.flows.compiler import compile_flow
from flowloom.flows.loader import examples_dir, load_flow
from flowloom.tools.rec import load_interactions

MODES = {"all fast": "force_fast", "routed": None, "all slow": "force_slow"}


def requests(n: int, seed: int) -> list[list[str]]:
    data = load_interactions("demo")
    rng = random.Random(seed)
    histories = [[data.items[code - 1] for code in seq] for seq in data.sequences]
    out: list[list[str]] = []
    for i in range(n):
        if i % 10 == 9:
            out.append([])
            continue
        seq = rng.choice(histories)
        end = rng.randint(1, min(8, len(seq)))
        start = max(0, end - rng.randint(1, 8))
        out.append(seq[start:end])
    return out


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def run_mode(graph: Any, override: str | None, histories: list[list[str]],
                   gateway: Any) -> dict[str, Any]:
    reset_buckets()
    reset_rerank_counts()
    config: dict[str, Any] = {"configurable": {"flowloom_route": override}} if override else {}
    await graph.ainvoke({"history": ["m001"], "messages": [("user", "warm up")]}, config)
    reset_buckets()
    reset_rerank_counts()
    calls_before = _calls(gateway)
    seconds: list[float] = []
    routes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    started = time.perf_counter()
    for history in histories:
        t0 = time.perf_counter()
        out = await graph.ainvoke({"history": history,
                                   "messages": [("user", "What should I watch next?")]},
                                  config)
        seconds.append(time.perf_counter() - t0)
        routes[out["route"]] += 1
        reasons[out["route_decision"]["reason"]] += 1
    total = time.perf_counter() - started
    return {"seconds": seconds, "routes": routes, "reasons": reasons, "total": total,
            "calls": _calls(gateway) - calls_before, "reranks": rerank_counts()}


def _calls(gateway: Any) -> int:
    if gateway is None:
        return 0
    return sum(t.calls for t in gateway.usage_summary().by_model.values())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", type=Path, default=None, help="models.yaml to use")
    args = parser.parse_args()

    ctx = default_build_context(models_config=args.models)
    t0 = time.perf_counter()
    graph = compile_flow(load_flow(examples_dir() / "recommend.json").flow, ctx=ctx)
    histories = requests(args.requests, args.seed)
    gateway = gateway_of(ctx)
    results = {}
    for name, override in MODES.items():
        results[name] = await run_mode(graph, override, histories, gateway)
        print(f"  ... {name}: {results[name]['total']:.1f} s", flush=True)
    setup = time.perf_counter() - t0

    n = len(histories)
    print(f"\nrecommend flow, {n} requests ({sum(1 for h in histories if not h)} with no "
          f"history), bundled model; budget 10% (at most 2 slow in every 20), entropy "
          f"threshold 0.8")
    head = (f"{'mode':10} {'slow':>6} {'share':>6} {'model calls':>12} {'p50 ms':>9} "
            f"{'p99 ms':>9} {'mean ms':>9} {'total s':>8} {'vs all slow':>12}  reranks")
    print(head)
    slow_total = results["all slow"]["total"]
    for name, r in results.items():
        s = [x * 1000 for x in r["seconds"]]
        share = r["routes"]["slow"] / n
        reranks = ", ".join(f"{k} {v}" for k, v in r["reranks"].items() if v)
        print(f"{name:10} {r['routes']['slow']:>6} {share:>6.0%} {r['calls']:>12} "
              f"{statistics.median(s):>9.1f} {_quantile(s, 0.99):>9.1f} "
              f"{statistics.fmean(s):>9.1f} {r['total']:>8.1f} "
              f"{r['total'] / slow_total:>11.3f}x  {reranks or '-'}")
    routed = results["routed"]
    print("routed decisions: " + ", ".join(f"{k} {v}" for k, v in
                                           sorted(routed["reasons"].items())))
    print(f"total wall {setup:.0f} s ({n} requests x 3 modes, warm-ups, the demo model "
          f"loaded or trained once)")


if __name__ == "__main__":
    asyncio.run(main())
