"""What the UI's Models and Runs pages read: the gateway's routes, health and recent calls;
recent runs across all threads, each run's per-node timeline and its routers' decisions.

- `GET /models`, `GET /models/health`, `GET /models/calls`: the model gateway behind the
  server's build context (a context without a gateway, e.g. scripted test models, lists
  its aliases with no deployments).
- `GET /observe/runs`, `GET /observe/runs/{run_id}/nodes`, `GET /observe/routes`: recorded
  by `RunRecorder`, a RunObserver that times each node with a LangChain callback and keeps
  what router nodes wrote to their `output` field. It writes nothing while a run executes:
  at the run's end its records are queued, and a background task writes every queued run
  in one multi-row INSERT per table (the run's caller is not kept waiting for the write;
  reads here wait for pending writes first). Only the newest `keep` runs are kept.

Everything here is scoped as threads are (tenancy.py): a user key sees its own runs,
route decisions and model calls only, and no deployment's address (`api_base`) or the
names of the secrets it needs; admins see everything.

    $ curl -s localhost:8123/observe/runs/$RUN/nodes | jq -c '.nodes[]'
    {"seq":0,"node":"classify","type":"router.condition@1","start_ms":0.4,"duration_ms":812.3,...}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from langchain_core.callbacks import BaseCallbackHandler
from pydantic import BaseModel, Field

from flowloom.backends.gateway.health import probe_deployments
from flowloom.backends.gateway.routes import plan_deployments
from flowloom.backends.server._state import Services, services
from flowloom.backends.server._usage import gateway_of
from flowloom.backends.server.catalog import CompiledFlow, system_assistant_id
from flowloom.backends.server.db import Database
from flowloom.backends.server.errors import BadRequest, NotFound
from flowloom.backends.server.runs import RunHandle
from flowloom.backends.server.tenancy import Principal, access, caller

__all__ = ["KEEP_RUNS", "RunRecorder", "attach", "router"]

logger = logging.getLogger("flowloom.server")

router = APIRouter(tags=["observe"])
Caller = Annotated[Principal, Depends(caller)]
OWNED = access("owner")

KEEP_RUNS = 10_000
PRUNE_EVERY = 500  # finished runs between two retention passes (and one at start)
ROWS_PER_INSERT = 100  # keeps a statement well under SQLite's bound-parameter limit

SCHEMA = [
    # One row per finished run (stateless runs too, whose fl_runs row is deleted at the end).
    """CREATE TABLE IF NOT EXISTS fl_run_obs (
        run_id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, assistant_id TEXT NOT NULL,
        flow_id TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
        started_at TEXT, ended_at TEXT NOT NULL, started_ms BIGINT NOT NULL,
        duration_ms DOUBLE PRECISION, routes TEXT NOT NULL, error TEXT, owner_key TEXT)""",
    "CREATE INDEX IF NOT EXISTS fl_run_obs_started ON fl_run_obs (started_ms)",
    "CREATE INDEX IF NOT EXISTS fl_run_obs_created ON fl_run_obs (created_at)",
    """CREATE TABLE IF NOT EXISTS fl_run_nodes (
        run_id TEXT NOT NULL, seq INTEGER NOT NULL, node TEXT NOT NULL, node_type TEXT,
        depth INTEGER NOT NULL, start_ms DOUBLE PRECISION NOT NULL,
        duration_ms DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, error TEXT,
        PRIMARY KEY (run_id, seq))""",
    """CREATE TABLE IF NOT EXISTS fl_run_routes (
        run_id TEXT NOT NULL, seq INTEGER NOT NULL, flow_id TEXT NOT NULL, node TEXT,
        route TEXT NOT NULL, at_ms BIGINT NOT NULL, owner_key TEXT,
        PRIMARY KEY (run_id, seq))""",
    "CREATE INDEX IF NOT EXISTS fl_run_routes_at ON fl_run_routes (at_ms)",
    "CREATE INDEX IF NOT EXISTS fl_run_routes_flow ON fl_run_routes (flow_id, at_ms)",
]
COLUMNS = [("fl_run_obs", "owner_key", "TEXT"), ("fl_run_routes", "owner_key", "TEXT")]


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- recording ---------------------------------------------------------------------------


@dataclass
class _Node:
    seq: int
    node: str
    node_type: str | None
    depth: int
    start: float  # perf_counter
    end: float | None = None
    status: str = "running"
    error: str | None = None


@dataclass
class _Trace:
    """What one executing run has recorded so far."""

    routers: dict[str, str]  # router node -> the state field it writes its decision to
    started: float = field(default_factory=time.perf_counter)
    started_epoch: float = field(default_factory=time.time)
    nodes: list[_Node] = field(default_factory=list)
    open: dict[UUID, _Node] = field(default_factory=dict)
    routes: list[dict[str, Any]] = field(default_factory=list)


def _decision(outputs: Any, output_field: str) -> str | None:
    update = outputs if isinstance(outputs, dict) else getattr(outputs, "update", None)
    value = update.get(output_field) if isinstance(update, dict) else None
    return value if isinstance(value, str) and value else None


class _NodeRecorder(BaseCallbackHandler):
    """Times a run's nodes (LangGraph runs each node as a chain named after the node) and
    keeps what its router nodes decide."""

    run_inline = True  # no thread hop per callback

    def __init__(self, trace: _Trace, node_seconds: Any = None, flow_id: str = "") -> None:
        self.trace = trace
        # the metrics' node histogram, fed here: one callback handler a run, not two
        self.node_seconds, self.flow_id = node_seconds, flow_id

    def _observe(self, record: _Node) -> None:
        if self.node_seconds is not None and record.end is not None:
            self.node_seconds.labels(self.flow_id, record.node).observe(
                record.end - record.start)

    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
                       metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        meta = metadata or {}
        node = meta.get("langgraph_node")
        if node is None or kwargs.get("name") != node:
            return
        namespace = meta.get("langgraph_checkpoint_ns")
        depth = namespace.count("|") if isinstance(namespace, str) else 0
        node_type = meta.get("flowloom_type")
        record = _Node(len(self.trace.nodes), str(node),
                       node_type if isinstance(node_type, str) else None, depth,
                       time.perf_counter())
        self.trace.nodes.append(record)
        self.trace.open[run_id] = record

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        record = self.trace.open.pop(run_id, None)
        if record is None:
            return
        record.end, record.status = time.perf_counter(), "ok"
        self._observe(record)
        output_field = self.trace.routers.get(record.node) if record.depth == 0 else None
        if output_field is not None and (route := _decision(outputs, output_field)):
            self.trace.routes.append({"node": record.node, "route": route, "at": time.time()})

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        record = self.trace.open.pop(run_id, None)
        if record is None:
            return
        record.end = time.perf_counter()
        self._observe(record)
        if type(error).__name__ in ("GraphInterrupt", "NodeInterrupt"):
            record.status = "interrupted"
        else:
            record.status = "error"
            record.error = _short(f"{type(error).__name__}: {error}".rstrip(": "))


def _router_fields(compiled: CompiledFlow, registry: Any) -> dict[str, str]:
    fields: dict[str, str] = {}
    for node in compiled.flow.nodes:
        try:
            node_type = registry.get(node.type)
            if node_type.route_field is not None:
                fields[node.id] = node_type.route_field(
                    node_type.params.model_validate(node.params))
        except Exception:  # noqa: S112 - a flow that compiled validates; never fail a run
            continue
    return fields


class RunRecorder:
    """A RunObserver keeping each run's node timeline and route decisions in the database."""

    def __init__(self, db: Database, svc: Services, *, keep: int = KEEP_RUNS) -> None:
        self.db = db
        self.services = svc
        self.keep = keep
        self._traces: dict[str, _Trace] = {}
        self._routers: dict[str, tuple[CompiledFlow, dict[str, str]]] = {}
        self._queue: list[tuple[list[Any], list[list[Any]], list[list[Any]]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._since_prune = 0
        self.node_seconds: Any = None  # a Histogram (flow, node) fed as nodes end, if set

    async def setup(self) -> None:
        for statement in SCHEMA:
            await self.db.execute(statement)
        await self.db.add_columns(COLUMNS)
        await self.prune()

    # -- RunObserver -------------------------------------------------------------------------

    def _routers_of(self, compiled: CompiledFlow) -> dict[str, str]:
        cached = self._routers.get(compiled.id)
        if cached is None or cached[0] is not compiled:  # a saved flow replaces its compile
            cached = (compiled, _router_fields(compiled, self.services.catalog.registry))
            self._routers[compiled.id] = cached
        return cached[1]

    async def run_started(self, handle: RunHandle, config: dict[str, Any]) -> None:
        trace = _Trace(self._routers_of(handle.flow))
        callbacks = config.get("callbacks")
        if callbacks is None or isinstance(callbacks, list):
            config["callbacks"] = [*(callbacks or []), _NodeRecorder(
                trace, self.node_seconds, handle.flow.id)]
            self._traces[handle.run_id] = trace

    async def run_finished(self, handle: RunHandle, status: str) -> None:
        trace = self._traces.pop(handle.run_id, None)
        now, now_epoch = time.perf_counter(), time.time()
        run = handle.run
        routes = list(trace.routes) if trace else []
        result = handle.result if isinstance(handle.result, dict) else {}
        # a flow without registered router nodes may still set `route` (as metrics counts)
        if (not routes and trace is not None and not trace.routers
                and isinstance(route := result.get("route"), str) and route):
            routes.append({"node": None, "route": route, "at": now_epoch})
        error = result.get("__error__")
        error_text = (_short(f"{error.get('error')}: {error.get('message')}")
                      if isinstance(error, dict) else None)
        started_epoch = trace.started_epoch if trace else now_epoch
        started = trace.started if trace else now
        run_row = [
            handle.run_id, handle.thread_id, str(run.get("assistant_id") or ""),
            handle.flow.id, status, str(run.get("created_at") or _iso(now_epoch)),
            _iso(trace.started_epoch) if trace else None, _iso(now_epoch),
            int(started_epoch * 1000),
            (now - trace.started) * 1000 if trace else None,
            json.dumps(routes), error_text, handle.owner_key,
        ]
        node_rows: list[list[Any]] = []
        for record in trace.nodes if trace else ():
            node_status = record.status
            if record.end is None:  # never ended: the run was cancelled or failed around it
                node_status = "interrupted" if status == "interrupted" else "error"
            end = record.end if record.end is not None else now
            offset = record.start - started
            node_rows.append([handle.run_id, record.seq, record.node, record.node_type,
                              record.depth, offset * 1000,
                              max(0.0, (end - record.start) * 1000), node_status,
                              record.error])
        route_rows = [[handle.run_id, i, handle.flow.id, r["node"], r["route"],
                       int(r["at"] * 1000), handle.owner_key] for i, r in enumerate(routes)]
        self._queue.append((run_row, node_rows, route_rows))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    # -- writing -----------------------------------------------------------------------------

    async def _insert(self, table: str, columns: Sequence[str], rows: list[list[Any]]) -> None:
        one = "(" + ", ".join("?" * len(columns)) + ")"
        for i in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[i:i + ROWS_PER_INSERT]
            await self.db.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES "  # noqa: S608 - constants
                + ", ".join([one] * len(chunk)),
                [value for row in chunk for value in row])

    async def _write(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await self._insert("fl_run_obs", (
                    "run_id", "thread_id", "assistant_id", "flow_id", "status", "created_at",
                    "started_at", "ended_at", "started_ms", "duration_ms", "routes", "error",
                    "owner_key"),
                    [run_row for run_row, _, _ in batch])
                await self._insert("fl_run_nodes", (
                    "run_id", "seq", "node", "node_type", "depth", "start_ms", "duration_ms",
                    "status", "error"), [row for _, nodes, _ in batch for row in nodes])
                await self._insert("fl_run_routes", (
                    "run_id", "seq", "flow_id", "node", "route", "at_ms", "owner_key"),
                    [row for _, _, routes in batch for row in routes])
            except Exception:  # observing must never break the server
                logger.exception("could not record %d runs' timelines", len(batch))
            self._since_prune += len(batch)
            if self._since_prune >= PRUNE_EVERY:  # read here: tests lower it
                await self.prune()

    async def flush(self) -> None:
        """Wait until every finished run's records are written."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def prune(self) -> None:
        """Forget all but the newest `keep` runs (an indexed lookup, three indexed deletes)."""
        self._since_prune = 0
        try:
            row = await self.db.fetchone(
                "SELECT started_ms FROM fl_run_obs ORDER BY started_ms DESC LIMIT 1 OFFSET ?",
                (self.keep,))
            if row is None:
                return
            cutoff = row["started_ms"]
            old = "SELECT run_id FROM fl_run_obs WHERE started_ms <= ?"
            for table in ("fl_run_nodes", "fl_run_routes"):
                await self.db.execute(
                    f"DELETE FROM {table} WHERE run_id IN ({old})", (cutoff,))  # noqa: S608
            await self.db.execute("DELETE FROM fl_run_obs WHERE started_ms <= ?", (cutoff,))
        except Exception:
            logger.exception("could not prune run timelines")

    # -- reading (live runs) -----------------------------------------------------------------

    def live(self, run_id: str) -> _Trace | None:
        return self._traces.get(run_id)


async def attach(app: FastAPI, stack: AsyncExitStack) -> RunRecorder:
    """Create the tables, observe the app's runs; pending writes are flushed at shutdown.
    Call in the lifespan once `app.state.flowloom` is set."""
    svc: Services = app.state.flowloom
    recorder = RunRecorder(svc.store.db, svc, keep=KEEP_RUNS)
    await recorder.setup()
    metrics = getattr(app.state, "flowloom_metrics", None)
    if metrics is not None:  # its node timings come from the recorder's handler
        recorder.node_seconds = metrics.nodes
        metrics.time_nodes = False
    svc.runs.observers.append(recorder)
    stack.push_async_callback(recorder.flush)
    app.state.flowloom_recorder = recorder
    return recorder


def _recorder(request: Request) -> RunRecorder:
    recorder = getattr(request.app.state, "flowloom_recorder", None)
    if recorder is None:
        raise NotFound("run observation is not enabled on this server")
    return recorder  # type: ignore[no-any-return]


# -- models ------------------------------------------------------------------------------


class Deployment(BaseModel):
    id: str = Field(description="Deployment id (`alias#n` unless set in the models file).")
    model: str = Field(description="LiteLLM model string, e.g. `openai/gpt-4o-mini`.")
    provider: str
    api_base: str | None = Field(description="Endpoint, credentials and query values removed.")
    has_api_key: bool
    embedded: bool = Field(description="Served by flowloom's bundled model service.")
    active: bool = Field(description="In the router (every `os.environ/` secret it names is set).")
    missing_env: list[str]
    refused: str | None = Field(None, description="Why its address is not allowed "
                                "(FLOWLOOM_ALLOW_HOSTS); admins only.")


class ModelAlias(BaseModel):
    alias: str
    mode: str | None = Field(description="chat, embedding, ... (None: not known)")
    deployments: list[Deployment]


class ModelsResponse(BaseModel):
    gateway: bool = Field(description="Whether models go through the LiteLLM gateway.")
    provider: str = Field(description="The build context's model provider class.")
    default_chat: str | None
    default_embedding: str | None
    fallbacks: list[dict[str, list[str]]]
    models: list[ModelAlias]


class Health(BaseModel):
    alias: str
    deployment: str
    api_base: str | None
    status: Literal["ok", "error", "skipped", "unchecked"]
    latency_ms: float | None
    error: str | None


class HealthResponse(BaseModel):
    gateway: bool
    checked_at: str
    deployments: list[Health]


class Call(BaseModel):
    at: float = Field(description="End of the call, seconds since the epoch.")
    time: str
    model: str = Field(description="The alias asked for.")
    deployment: str | None = Field(description="The deployment that answered (a fallback "
                                   "names another alias's).")
    kind: str
    latency_ms: float
    ttft_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    ok: bool
    error: str | None


class Totals(BaseModel):
    calls: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_ms: float
    mean_latency_ms: float


class CallsResponse(BaseModel):
    gateway: bool
    calls: list[Call] = Field(description="Newest last.")
    totals: dict[str, Totals] = Field(description="Per alias, since the server started.")
    total: Totals


def _provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "openai"


def redact_url(url: str | None) -> str | None:
    """`url` without user info and with query values masked (keys may hide in either)."""
    if not url or url.startswith("os.environ/"):
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "***"
    netloc = f"***@{host}" if "@" in parts.netloc else parts.netloc
    query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _default_chat(svc: Services, aliases: list[str], modes: dict[str, str | None]) -> str | None:
    wanted = None
    with contextlib.suppress(Exception):  # what an llm.chat node uses when it names no model
        wanted = svc.catalog.registry.get("llm.chat@1").params.model_fields["model"].default
    if wanted in aliases:
        return str(wanted)
    return next((a for a in aliases if modes.get(a) in ("chat", None)), None)


def _default_embedding(aliases: list[str], modes: dict[str, str | None]) -> str | None:
    embedding = [a for a in aliases if modes.get(a) == "embedding"]
    return "local-embed" if "local-embed" in embedding else next(iter(embedding), None)


@router.get("/models", response_model=ModelsResponse, summary="The gateway's model routes",
            openapi_extra=access("shared"))
async def list_models(request: Request, who: Caller) -> ModelsResponse:
    """Every alias and its deployments; to a user key without their addresses and the
    names of the secrets they need (admins see those)."""
    svc = services(request)
    models = svc.catalog.ctx.models
    gateway = gateway_of(svc.catalog.ctx)
    provider = type(models).__name__ if models is not None else "none"
    if gateway is None:
        aliases = list(models.aliases()) if models is not None else []
        return ModelsResponse(
            gateway=False, provider=provider,
            default_chat=_default_chat(svc, aliases, {}), default_embedding=None,
            fallbacks=[], models=[ModelAlias(alias=a, mode=None, deployments=[])
                                  for a in aliases])
    out: list[ModelAlias] = []
    modes: dict[str, str | None] = {}
    for alias, routes in gateway.routes().items():
        modes[alias] = routes[0].mode if routes else None
        out.append(ModelAlias(alias=alias, mode=modes[alias], deployments=[
            Deployment(id=r.id, model=r.model, provider=_provider_of(r.model),
                       api_base=redact_url(r.api_base) if who.admin else None,
                       has_api_key=r.api_key is not None, embedded=r.embedded, active=r.active,
                       missing_env=list(r.missing_env) if who.admin else [],
                       refused=r.refused if who.admin else None)
            for r in routes]))
    aliases = [m.alias for m in out]
    return ModelsResponse(
        gateway=True, provider=provider, default_chat=_default_chat(svc, aliases, modes),
        default_embedding=_default_embedding(aliases, modes),
        fallbacks=list(gateway.config.router_settings.fallbacks or []), models=out)


@router.get("/models/health", response_model=HealthResponse,
            summary="Probe each deployment (`GET {api_base}/models`)",
            openapi_extra=access("shared"))
async def models_health(
    request: Request,
    who: Caller,
    timeout: Annotated[float, Query(gt=0, le=10, description="Seconds per probe.")] = 2.0,
) -> HealthResponse:
    gateway = gateway_of(services(request).catalog.ctx)
    checked_at = _iso(time.time())
    if gateway is None:
        return HealthResponse(gateway=False, checked_at=checked_at, deployments=[])
    results = await probe_deployments(plan_deployments(gateway.config), timeout=timeout)
    return HealthResponse(gateway=True, checked_at=checked_at, deployments=[
        Health(alias=h.alias, deployment=h.deployment,
               api_base=redact_url(h.api_base) if who.admin else None, status=h.status,
               latency_ms=h.latency_ms, error=h.error if who.admin else _status_only(h.error))
        for h in results])


def _status_only(error: str | None) -> str | None:
    """A probe's error without the address it names (what a user key is told)."""
    return None if error is None else "unreachable or refused"


def _totals(t: Any) -> Totals:
    return Totals(calls=t.calls, errors=t.errors, prompt_tokens=t.prompt_tokens,
                  completion_tokens=t.completion_tokens, cost=t.cost, latency_ms=t.latency_ms,
                  mean_latency_ms=t.mean_latency_ms)


@router.get("/models/calls", response_model=CallsResponse,
            summary="Recent model calls (newest last) and totals per model",
            openapi_extra=OWNED)
async def model_calls(
    request: Request,
    who: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    model: Annotated[str | None, Query(description="Only calls for this alias.")] = None,
) -> CallsResponse:
    gateway = gateway_of(services(request).catalog.ctx)
    if gateway is None:
        empty = Totals(calls=0, errors=0, prompt_tokens=0, completion_tokens=0, cost=0.0,
                       latency_ms=0.0, mean_latency_ms=0.0)
        return CallsResponse(gateway=False, calls=[], totals={}, total=empty)
    if model is not None and model not in gateway.aliases():
        raise BadRequest(f"model {model!r} is not configured; models: "
                         f"{', '.join(gateway.aliases())}")
    # a user key sees the calls its own requests made; admins every call
    scope = {"owner": who.key_id, "every_owner": who.sees_all}
    records = gateway.recent_calls(**scope)
    if model is not None:
        records = [r for r in records if r.model == model]
    summary = gateway.usage_summary(**scope)
    by_model = summary.by_model if model is None else {
        k: v for k, v in summary.by_model.items() if k == model}
    return CallsResponse(
        gateway=True,
        calls=[Call(at=r.at, time=_iso(r.at), model=r.model, deployment=r.deployment,
                    kind=r.kind, latency_ms=r.latency_ms, ttft_ms=r.ttft_ms,
                    prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
                    cost=r.cost, ok=r.ok, error=r.error) for r in records[-limit:]],
        totals={k: _totals(v) for k, v in sorted(by_model.items())},
        total=_totals(summary.total))


# -- runs --------------------------------------------------------------------------------


class RouteDecision(BaseModel):
    node: str | None = Field(description="The router node (None: read from the result).")
    route: str
    at: float = Field(description="Seconds since the epoch.")


class RunSummary(BaseModel):
    run_id: str
    thread_id: str
    flow_id: str | None = Field(description="The graph id (None: the flow is gone).")
    assistant_id: str
    status: str
    created_at: str
    updated_at: str
    started_at: str | None = Field(description="When it began executing (after its queue).")
    duration_ms: float | None = Field(description="Execution time, queueing excluded; None "
                                      "while it runs.")
    route: str | None = Field(description="The last route decision, if any.")
    routes: list[RouteDecision]
    error: str | None


class RunsResponse(BaseModel):
    runs: list[RunSummary] = Field(description="Newest first.")
    limit: int
    offset: int


class NodeSpan(BaseModel):
    seq: int = Field(description="Start order.")
    node: str
    node_type: str | None
    depth: int = Field(description="0 for the flow's own nodes, more inside subgraphs.")
    start_ms: float = Field(description="Offset from the run's start.")
    duration_ms: float | None = Field(description="None while it runs.")
    status: Literal["ok", "error", "interrupted", "running"]
    error: str | None


class NodeTimeline(BaseModel):
    run_id: str
    flow_id: str | None
    status: str
    duration_ms: float | None
    live: bool = Field(description="The run is executing; spans so far.")
    nodes: list[NodeSpan]
    routes: list[RouteDecision]


class RouteBucket(BaseModel):
    start: str = Field(description="Bucket start (ISO 8601, UTC).")
    ts: float = Field(description="Bucket start, seconds since the epoch.")
    route: str
    count: int


class RoutesResponse(BaseModel):
    flow_id: str | None
    bucket_s: int
    since: float
    routes: dict[str, int] = Field(description="Decisions per route over the window.")
    buckets: list[RouteBucket] = Field(description="Oldest first.")


_RUN_COLUMNS = ("run_id, thread_id, assistant_id, status, created_at, updated_at, "
                "flow_id, started_at, duration_ms, routes, error")


def _flow_of(svc: Services, assistant_id: str, stored: str | None) -> str | None:
    if stored:
        return stored
    compiled = svc.catalog.by_assistant(assistant_id)
    return compiled.id if compiled is not None else None


def _routes(text: str | None) -> list[RouteDecision]:
    try:
        items = json.loads(text) if text else []
    except ValueError:
        return []
    return [RouteDecision(**item) for item in items if isinstance(item, dict)]


@router.get("/observe/runs", response_model=RunsResponse,
            summary="Recent runs of every thread and flow, newest first", openapi_extra=OWNED)
async def observe_runs(
    request: Request,
    who: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    flow_id: Annotated[str | None, Query(description="Only this flow's runs.")] = None,
    status: Annotated[Literal["pending", "running", "success", "error", "timeout",
                              "interrupted"] | None, Query()] = None,
) -> RunsResponse:
    svc = services(request)
    await _recorder(request).flush()
    live_where, done_where = [], []
    live_params: list[Any] = []
    done_params: list[Any] = []
    if flow_id is not None:
        live_where.append("(o.flow_id = ? OR r.assistant_id = ?)")
        live_params += [flow_id, system_assistant_id(flow_id)]
        done_where.append("o.flow_id = ?")
        done_params.append(flow_id)
    if status is not None:
        live_where.append("r.status = ?")
        live_params.append(status)
        done_where.append("o.status = ?")
        done_params.append(status)
    if not who.sees_all:
        live_where.append("r.owner_key = ?")
        live_params.append(who.key_id)
        done_where.append("o.owner_key = ?")
        done_params.append(who.key_id)
    # fl_runs holds the live runs and kept threads' runs; fl_run_obs also the stateless
    # runs whose fl_runs row was deleted when they ended
    sql = (
        "SELECT r.run_id, r.thread_id, r.assistant_id, r.status, r.created_at, r.updated_at, "
        "o.flow_id, o.started_at, o.duration_ms, o.routes, o.error "
        "FROM fl_runs r LEFT JOIN fl_run_obs o ON o.run_id = r.run_id"
        + (" WHERE " + " AND ".join(live_where) if live_where else "")
        + " UNION ALL "
        "SELECT o.run_id, o.thread_id, o.assistant_id, o.status, o.created_at, "
        "o.ended_at AS updated_at, o.flow_id, o.started_at, o.duration_ms, o.routes, o.error "
        "FROM fl_run_obs o WHERE NOT EXISTS (SELECT 1 FROM fl_runs r WHERE r.run_id = o.run_id)"
        + "".join(f" AND {w}" for w in done_where)
        + " ORDER BY created_at DESC, run_id LIMIT ? OFFSET ?"
    )
    rows = await svc.store.db.fetchall(sql, [*live_params, *done_params, limit, offset])
    runs = []
    for row in rows:
        routes = _routes(row["routes"])
        runs.append(RunSummary(
            run_id=row["run_id"], thread_id=row["thread_id"],
            flow_id=_flow_of(svc, row["assistant_id"], row["flow_id"]),
            assistant_id=row["assistant_id"], status=row["status"],
            created_at=row["created_at"], updated_at=row["updated_at"],
            started_at=row["started_at"], duration_ms=row["duration_ms"],
            route=routes[-1].route if routes else None, routes=routes, error=row["error"]))
    return RunsResponse(runs=runs, limit=limit, offset=offset)


@router.get("/observe/runs/{run_id}/nodes", response_model=NodeTimeline,
            summary="A run's nodes in execution order, with start offsets and durations",
            openapi_extra=OWNED)
async def run_nodes(request: Request, run_id: str, who: Caller) -> NodeTimeline:
    svc = services(request)
    recorder = _recorder(request)
    trace = recorder.live(run_id)
    handle = svc.runs.handle(run_id)
    missing = NotFound(f"run {run_id} not found (or older than the newest "
                       f"{recorder.keep} recorded runs)")
    if (trace is not None and handle is not None and not handle.finished.is_set()
            and who.sees(handle.owner_key)):
        return NodeTimeline(
            run_id=run_id, flow_id=handle.flow.id, status="running",
            duration_ms=None, live=True, routes=[RouteDecision(**r) for r in trace.routes],
            nodes=[NodeSpan(seq=n.seq, node=n.node, node_type=n.node_type, depth=n.depth,
                            start_ms=(n.start - trace.started) * 1000,
                            duration_ms=None if n.end is None else (n.end - n.start) * 1000,
                            status=n.status,  # type: ignore[arg-type]
                            error=n.error) for n in list(trace.nodes)])
    await recorder.flush()
    db = svc.store.db
    run = await db.fetchone("SELECT flow_id, status, duration_ms, routes, owner_key "
                            "FROM fl_run_obs WHERE run_id = ?", (run_id,))
    if run is not None and not who.sees(run["owner_key"]):
        raise missing
    if run is None:
        pending = await db.fetchone(
            "SELECT assistant_id, status, owner_key FROM fl_runs WHERE run_id = ?", (run_id,))
        if pending is None or not who.sees(pending["owner_key"]):
            raise missing
        return NodeTimeline(run_id=run_id, flow_id=_flow_of(svc, pending["assistant_id"], None),
                            status=pending["status"], duration_ms=None, live=False, nodes=[],
                            routes=[])
    rows = await db.fetchall(
        "SELECT seq, node, node_type, depth, start_ms, duration_ms, status, error "
        "FROM fl_run_nodes WHERE run_id = ? ORDER BY start_ms, seq", (run_id,))
    return NodeTimeline(run_id=run_id, flow_id=run["flow_id"], status=run["status"],
                        duration_ms=run["duration_ms"], live=False,
                        routes=_routes(run["routes"]), nodes=[NodeSpan(**row) for row in rows])


@router.get("/observe/routes", response_model=RoutesResponse,
            summary="Router decisions over time, counted per route and time bucket",
            openapi_extra=OWNED)
async def observe_routes(
    request: Request,
    who: Caller,
    flow_id: Annotated[str | None, Query(description="Only this flow's decisions.")] = None,
    bucket_s: Annotated[int, Query(ge=1, le=86_400, description="Bucket width.")] = 60,
    window_s: Annotated[int, Query(ge=1, le=90 * 86_400,
                                   description="How far back to look.")] = 86_400,
) -> RoutesResponse:
    if window_s / bucket_s > 10_000:
        raise BadRequest(f"window_s / bucket_s = {window_s // bucket_s} buckets; at most "
                         "10000: widen bucket_s or narrow window_s")
    svc = services(request)
    await _recorder(request).flush()
    since = time.time() - window_s
    bucket_ms = bucket_s * 1000
    sql = "SELECT at_ms / ? AS bucket, route, COUNT(*) AS n FROM fl_run_routes WHERE at_ms >= ?"
    params: list[Any] = [bucket_ms, int(since * 1000)]
    if flow_id is not None:
        sql += " AND flow_id = ?"
        params.append(flow_id)
    if not who.sees_all:
        sql += " AND owner_key = ?"
        params.append(who.key_id)
    rows = await svc.store.db.fetchall(sql + " GROUP BY 1, 2 ORDER BY 1, 2", params)
    buckets: list[RouteBucket] = []
    totals: dict[str, int] = {}
    for row in rows:
        ts = int(row["bucket"]) * bucket_s
        count = int(row["n"])
        buckets.append(RouteBucket(start=_iso(ts), ts=ts, route=row["route"], count=count))
        totals[row["route"]] = totals.get(row["route"], 0) + count
    return RoutesResponse(flow_id=flow_id, bucket_s=bucket_s, since=since,
                          routes=dict(sorted(totals.items())), buckets=buckets)
