"""`GET /metrics`: Prometheus metrics of one server, in a registry of its own.

Series (all prefixed `flowloom_`):
- `http_request_duration_seconds{route,method,status}`: histogram by route template,
  until the response's last byte (a stream's whole length); rejected requests included.
- `runs_total{flow,status}`, `run_duration_seconds{flow,status}`: runs of the LangGraph
  API at their end (the OpenAI-compatible endpoint's flows are not runs there).
- `node_duration_seconds{flow,node}`: each node's execution, from a LangGraph callback.
- `route_decisions_total{flow,route}`: the state field `route` at each run's end.
- `adaptive_decisions_total{flow,node,route,reason}`: every `router.adaptive` decision in
  this process (uncertain, confident, budget_exhausted, forced_*, no_signal), and
  `rerank_total{outcome}`: how `rec.answer`'s LLM reranks ended (reranked or a fallback).
- `model_calls_total`, `model_errors_total`, `model_tokens_total{type}`,
  `model_cost_usd_total`, `model_call_seconds_total`, all `{model}`: the gateway's
  records, read at scrape time (absent when the models are not a gateway's).

    $ curl -s localhost:8123/metrics | grep flowloom_runs_total
    flowloom_runs_total{flow="chat",status="success"} 3.0
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from fastapi import FastAPI
from langchain_core.callbacks import BaseCallbackHandler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowloom.backends.server._state import Services
from flowloom.backends.server._usage import gateway_of
from flowloom.backends.server.runs import RunHandle

__all__ = ["MetricsMiddleware", "ServerMetrics", "install_metrics"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class _NodeTimer(BaseCallbackHandler):
    """Times a run's nodes: LangGraph runs each node as a chain named after the node."""

    run_inline = True  # no thread hop per callback

    def __init__(self, flow_id: str, histogram: Histogram) -> None:
        self.flow_id = flow_id
        self.histogram = histogram
        self._starts: dict[UUID, tuple[str, float]] = {}

    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
                       metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        node = (metadata or {}).get("langgraph_node")
        if node is not None and kwargs.get("name") == node:
            self._starts[run_id] = (str(node), time.perf_counter())

    def _end(self, run_id: UUID) -> None:
        started = self._starts.pop(run_id, None)
        if started is not None:
            node, at = started
            self.histogram.labels(self.flow_id, node).observe(time.perf_counter() - at)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)


class _ModelUsage(Collector):
    """The gateway's running totals per model alias, read at each scrape."""

    def __init__(self) -> None:
        self.services: Services | None = None

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily("flowloom_model_calls", "Model calls", labels=["model"])
        errors = CounterMetricFamily("flowloom_model_errors", "Failed model calls",
                                     labels=["model"])
        tokens = CounterMetricFamily("flowloom_model_tokens", "Tokens by type",
                                     labels=["model", "type"])
        cost = CounterMetricFamily("flowloom_model_cost_usd", "Cost of model calls in USD",
                                   labels=["model"])
        seconds = CounterMetricFamily("flowloom_model_call_seconds", "Time in model calls",
                                      labels=["model"])
        gateway = gateway_of(self.services.catalog.ctx) if self.services else None
        by_model = gateway.usage_summary().by_model if gateway is not None else {}
        for model, totals in sorted(by_model.items()):
            calls.add_metric([model], totals.calls)
            errors.add_metric([model], totals.errors)
            tokens.add_metric([model, "prompt"], totals.prompt_tokens)
            tokens.add_metric([model, "completion"], totals.completion_tokens)
            cost.add_metric([model], totals.cost)
            seconds.add_metric([model], totals.latency_ms / 1000)
        yield from (calls, errors, tokens, cost, seconds)


class _Routing(Collector):
    """The adaptive routers' decisions and the reranks' outcomes, read at each scrape."""

    def collect(self) -> Iterator[Metric]:
        from flowloom.agents.adaptive import decision_counts
        from flowloom.agents.rec_answer import rerank_counts

        decisions = CounterMetricFamily(
            "flowloom_adaptive_decisions", "router.adaptive decisions",
            labels=["flow", "node", "route", "reason"])
        for (flow, node, route, reason), count in sorted(decision_counts().items()):
            decisions.add_metric([flow, node, route, reason], count)
        reranks = CounterMetricFamily("flowloom_rerank", "rec.answer reranks by outcome",
                                      labels=["outcome"])
        for outcome, count in rerank_counts().items():
            reranks.add_metric([outcome], count)
        yield from (decisions, reranks)


class ServerMetrics:
    """One app's metrics; a RunObserver of its RunManager once `start`ed."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "flowloom_http_request_duration_seconds", "HTTP requests by route template",
            ["route", "method", "status"], buckets=BUCKETS, registry=self.registry)
        self.runs = Counter("flowloom_runs", "Finished runs", ["flow", "status"],
                            registry=self.registry)
        self.run_seconds = Histogram("flowloom_run_duration_seconds", "Run execution time",
                                     ["flow", "status"], buckets=BUCKETS,
                                     registry=self.registry)
        self.nodes = Histogram("flowloom_node_duration_seconds", "Node execution time",
                               ["flow", "node"], buckets=BUCKETS, registry=self.registry)
        self.routes = Counter("flowloom_route_decisions", "The `route` state field at run end",
                              ["flow", "route"], registry=self.registry)
        self._models = _ModelUsage()
        self.registry.register(self._models)
        self.registry.register(_Routing())
        self._started: dict[str, float] = {}
        # node timings by a callback handler of its own; off when the run recorder
        # (observe_api) feeds `nodes` from the handler it adds anyway
        self.time_nodes = True

    def start(self, services: Services) -> None:
        """Observe the server's runs and models; called from the app's lifespan."""
        self._models.services = services
        services.runs.observers.append(self)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def run_started(self, handle: RunHandle, config: dict[str, Any]) -> None:
        self._started[handle.run_id] = time.perf_counter()
        callbacks = config.get("callbacks")
        if self.time_nodes and (callbacks is None or isinstance(callbacks, list)):
            config["callbacks"] = [*(callbacks or []), _NodeTimer(handle.flow.id, self.nodes)]

    async def run_finished(self, handle: RunHandle, status: str) -> None:
        flow = handle.flow.id
        self.runs.labels(flow, status).inc()
        started = self._started.pop(handle.run_id, None)
        if started is not None:
            self.run_seconds.labels(flow, status).observe(time.perf_counter() - started)
        result = handle.result if isinstance(handle.result, dict) else {}
        route = result.get("route")
        if isinstance(route, str) and route:
            self.routes.labels(flow, route).inc()


class _Templates:
    """Route templates of requests refused before routing (by auth), matched against the
    app's top-level routes and its OpenAPI paths; unknown paths share one label."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def of(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None and isinstance(getattr(route, "path", None), str):
            return str(route.path)
        if self._compiled is None:
            paths = [p for r in self.app.routes if isinstance(p := getattr(r, "path", None), str)]
            paths += list(self.app.openapi().get("paths", {}))
            self._compiled = [(compile_path(p)[0], p) for p in dict.fromkeys(paths)]
        path = scope["path"]
        return next((t for regex, t in self._compiled if regex.match(path)), "unmatched")


class MetricsMiddleware:
    """Times each HTTP request; installed last so it also sees what auth refuses."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, templates: _Templates) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = self.templates.of(scope)
            self.metrics.requests.labels(route, scope["method"], str(status)).observe(
                time.perf_counter() - start)


def install_metrics(app: FastAPI) -> ServerMetrics:
    """Add `GET /metrics` and the timing middleware (call after every other middleware);
    the lifespan must call `metrics.start(services)`."""
    metrics = ServerMetrics()

    async def scrape(_: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware, metrics=metrics, templates=_Templates(app))
    return metrics
