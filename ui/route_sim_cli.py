"""`route-sim`: simulate `router.adaptive` under a burst of uncertain requests.

    $ flowloom rec route-sim --requests 10000 --burst 10 --budget 0.05
    $ flowloom rec route-sim --requests 10000 --burst 10 --budget 0.05 --bucket-burst 5 --json

The command is added to a typer group by `add_route_sim(app)`. A mistake in the input is
one line on stderr and exit 2 (a UsageError, as `flowloom`'s main turns it).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from flowloom.ui.errors import UsageError

__all__ = ["add_route_sim", "summary"]


def summary(result: dict[str, Any]) -> list[str]:
    """The simulation's result as lines for a person."""
    start, end = result["burst_phase"]
    budget = result["budget"]
    if result["window"] is not None:
        limit = (f"at most {result['bucket_burst']} slow in every {result['window']} "
                 f"requests ({budget:.2%})")
    else:
        limit = "never slow" if budget == 0 else "no limit"
    verdict = "ok" if result["within_budget"] else "OVER BUDGET"
    lines = [
        f"{result['requests']} requests, {result['burst']:g}x uncertain requests in "
        f"requests {start}-{max(start, end - 1)}",
        f"  completed {result['completed']} (dropped {result['dropped']})",
        f"  uncertain {result['uncertain']}; slow {result['slow']} "
        f"({result['slow_share']:.2%}); budget exhausted {result['budget_exhausted']}",
        f"  budget: {limit}",
        f"  most slow in any {result['measured_window']} requests: "
        f"{result['max_window_slow']} ({result['max_window_share']:.2%}) {verdict}",
        "  reasons: " + ", ".join(f"{k} {v}" for k, v in result["reasons"].items()),
        f"  time per request: p50 {result['latency_ms']['p50']:.3f} ms, "
        f"p99 {result['latency_ms']['p99']:.3f} ms",
    ]
    if result["first_error"]:
        lines.append(f"  first error: {result['first_error']}")
    return lines


def add_route_sim(app: typer.Typer) -> None:
    """Register the `route-sim` command on `app`."""

    @app.command("route-sim")
    def route_sim(
        requests: Annotated[int, typer.Option("--requests", help="Requests to send.")],
        burst: Annotated[float, typer.Option(
            "--burst", help="Uncertain requests are this many times as common in the "
                            "burst (the middle 20% of the run).")],
        budget: Annotated[float, typer.Option(
            "--budget", help="Most share of requests that may go slow (0.05: 5%).")],
        bucket_burst: Annotated[int, typer.Option(
            "--bucket-burst", help="Slow requests per window; the window is "
                                   "ceil(bucket-burst / budget) requests.")] = 5,
        threshold: Annotated[float, typer.Option(
            "--threshold", help="Entropy above which a request is uncertain (0-1).")] = 0.5,
        base_uncertain: Annotated[float, typer.Option(
            "--base-uncertain", help="Share of uncertain requests outside the burst.")]
        = 0.02,
        seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="The result as JSON.")] = False,
    ) -> None:
        """Send requests through a compiled adaptive router with a burst of uncertain
        ones; report slow share, the worst window against the budget, and latency."""
        from flowloom.agents.adaptive_sim import SimulationError, simulate

        try:
            result = simulate(requests, burst, budget, bucket_burst=bucket_burst,
                              base_uncertain=base_uncertain, threshold=threshold, seed=seed)
        except SimulationError as exc:
            option = "--" + exc.param.replace("_", "-")
            raise UsageError(f"{option} {exc.value!r}: {exc.message}") from None
        if as_json:
            typer.echo(json.dumps(result, ensure_ascii=False))
            return
        for line in summary(result):
            typer.echo(line)
