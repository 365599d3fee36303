"""The flowloom API server: every flow served over the LangGraph API protocol.

    $ flowloom serve --port 8123
    FLOWLOOM_SERVER_READY http://127.0.0.1:8123

langgraph-sdk works against it unchanged:
    >>> client = get_client(url="http://127.0.0.1:8123", api_key=None)
    >>> await client.runs.wait(None, "chat", input={"messages": [{"role": "user", ...}]})
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from flowloom.backends.model_watch import ModelServiceWatch
from flowloom.backends.server import (
    assistants_api,
    crons_api,
    flows_api,
    kbs_api,
    observe_api,
    prompts_api,
    runs_api,
    store_api,
    system_api,
    threads_api,
)
from flowloom.backends.server._bodies import BodyLimits
from flowloom.backends.server._http import http_protocol
from flowloom.backends.server._openapi import install_openapi
from flowloom.backends.server._query import refuse_unknown_query
from flowloom.backends.server._state import Services
from flowloom.backends.server.auth import install_auth
from flowloom.backends.server.catalog import FlowCatalog
from flowloom.backends.server.cron_scheduler import CronScheduler
from flowloom.backends.server.crons import Crons, CronStore, utc_now
from flowloom.backends.server.db import open_database
from flowloom.backends.server.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
    ServerError,
)
from flowloom.backends.server.flows_api import load_saved_flows
from flowloom.backends.server.items import OwnedStore, StoreIndex
from flowloom.backends.server.keys import KeyStore
from flowloom.backends.server.liveness import Liveness
from flowloom.backends.server.metrics import install_metrics
from flowloom.backends.server.runs import RunManager
from flowloom.backends.server.store import ServerStore
from flowloom.flows.checkpoint import open_checkpointer
from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowError, FlowValidationError
from flowloom.flows.home import flowloom_home
from flowloom.flows.loader import examples_dir
from flowloom.flows.prompts import PromptConflict, PromptStore
from flowloom.flows.registry import NodeRegistry

__all__ = ["READY_PREFIX", "ServerSettings", "create_app", "serve"]

logger = logging.getLogger("flowloom.server")
READY_PREFIX = "FLOWLOOM_SERVER_READY"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 0
    database: str | None = None  # None: SQLite files in the data dir
    home: Path | None = None
    models: Path | None = None
    flows_dirs: tuple[Path, ...] = field(default_factory=lambda: (examples_dir(),))
    # servers sharing Postgres: heartbeat period, and silence after which a peer is dead
    heartbeat_s: float = 5.0
    stale_after_s: float = 30.0
    # make the `demo` knowledge base from the shipped docs (the rag_chat example uses it)
    demo_kb: bool = False
    # who may read /metrics (every key's traffic) once keys exist: "admin" or "user"
    metrics_role: Literal["admin", "user"] = "admin"
    # browser origins allowed to call the API (CORS) besides any loopback origin (the UI
    # started by `flowloom up`): e.g. ("https://studio.example.com",)
    cors_origins: tuple[str, ...] = ()
    # Redis shared by servers behind one address: each API key's rate limit is counted
    # there, across them all (None: per server process)
    redis_url: str | None = None
    # a run's wall time once it executes (then it ends with status "timeout"); None: none
    run_timeout_s: float | None = 3600.0
    # crons: the longest the scheduler sleeps between looks at the database (a cron made
    # on another server fires at most this late), and its clock (tests move their own)
    cron_tick_s: float = 5.0
    cron_clock: Callable[[], datetime] = field(default=utc_now, compare=False)
    # semantic search over store items: the embedding alias and default fields (None: off)
    store_index: StoreIndex | None = field(default_factory=StoreIndex)


def _location(loc: Any) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            parts.append(f"body is not valid JSON: {err.get('ctx', {}).get('error', '')}")
        else:
            parts.append(f"{_location(err['loc'])}: {err['msg']}")
    return "; ".join(parts)


def _install_error_handlers(app: FastAPI) -> None:
    statuses = {NotFound: 404, Conflict: 409, BadRequest: 422}

    @app.exception_handler(ServerError)
    async def server_error(_: Request, exc: ServerError) -> JSONResponse:
        if isinstance(exc, PreconditionFailed):
            return JSONResponse({"detail": str(exc), "etag": exc.etag}, status_code=412)
        return JSONResponse({"detail": str(exc)}, status_code=statuses.get(type(exc), 400))

    @app.exception_handler(FlowValidationError)
    async def flow_invalid(_: Request, exc: FlowValidationError) -> JSONResponse:
        return JSONResponse({"detail": str(exc),
                             "problems": [p.to_dict() for p in exc.problems]}, status_code=422)

    @app.exception_handler(PromptConflict)
    async def prompt_conflict(_: Request, exc: PromptConflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(FlowError)
    async def flow_error(_: Request, exc: FlowError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"},
                            status_code=500)


LOOPBACK_ORIGINS = r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$"


_request_host: ContextVar[str | None] = ContextVar("flowloom_request_host", default=None)


class _SameHostCORS(CORSMiddleware):
    """CORS that also admits an origin on the host the request was sent to (any port):
    the UI and the API of one server, however a browser names that server."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = Headers(scope=scope).get("host", "") if scope["type"] == "http" else ""
        token = _request_host.set(urlsplit(f"//{host}").hostname if host else None)
        try:
            await super().__call__(scope, receive, send)
        finally:
            _request_host.reset(token)

    def is_allowed_origin(self, origin: str) -> bool:
        if super().is_allowed_origin(origin):
            return True
        host = _request_host.get()
        try:
            return host is not None and urlsplit(origin).hostname == host
        except ValueError:
            return False
CORS_HEADERS = ["x-api-key", "authorization", "content-type", "if-match", "if-none-match",
                "last-event-id", "x-flowloom-thread", "x-flowloom-route"]
CORS_EXPOSED = ["ETag", "Location", "Content-Location", "X-Flowloom-Thread", "Retry-After"]


def _install_cors(app: FastAPI, settings: ServerSettings) -> None:
    """Browsers may call the API from a loopback origin (the canvas app inside the UI on
    this machine), from another port of the host they reach the API by (the UI opened
    from another machine: `http://server:8501` calling `http://server:8123`), or from a
    configured origin; keys still apply (sent as headers, never as cookies)."""
    app.add_middleware(_SameHostCORS, allow_origins=list(settings.cors_origins),
                       allow_origin_regex=LOOPBACK_ORIGINS, allow_credentials=False,
                       allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                       allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSED, max_age=600)


def create_app(settings: ServerSettings | None = None, *,
               ctx: BuildContext | None = None,
               registry: NodeRegistry | None = None) -> FastAPI:
    """The ASGI app. `ctx` replaces the real model gateway (tests use a scripted one; one
    without a prompt store gets the data dir's); `registry` the node types (default: every
    installed one)."""
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            saver = await stack.enter_async_context(
                open_checkpointer(settings.database, home=settings.home))
            db = await stack.enter_async_context(
                open_database(settings.database, home=settings.home, checkpointer=saver))
            build_ctx = ctx
            if build_ctx is None:
                from flowloom.backends.context import default_build_context

                build_ctx = default_build_context(home=settings.home,
                                                  models_config=settings.models)
            if build_ctx.prompts is None:  # /prompts and flows' prompt refs need one
                build_ctx = replace(build_ctx, prompts=PromptStore(
                    (settings.home or flowloom_home()) / "prompts"))
            # store items (/store, and nodes' long-term memory) before flows compile
            items = await store_api.attach(app, stack, db, models=build_ctx.models,
                                           index=settings.store_index)
            catalog = FlowCatalog(saver, build_ctx, registry=registry,
                                  store=OwnedStore(items))
            for folder in settings.flows_dirs:
                catalog.load_dir(folder)
            store = ServerStore(db)
            await load_saved_flows(store, catalog)
            runs = RunManager(store, catalog, timeout_s=settings.run_timeout_s)
            # Runs left unfinished by a server that died are marked error (liveness.py)
            liveness = Liveness(db, runs.owner, interval=settings.heartbeat_s,
                                stale=settings.stale_after_s)
            await liveness.start()
            stack.push_async_callback(liveness.stop)
            app.state.flowloom = Services(store, catalog, runs)
            # a model service this process starts (on the first model call) is kept alive
            watch = ModelServiceWatch(settings.home or flowloom_home())
            watch.start()
            stack.push_async_callback(watch.stop)
            app.state.flowloom_model_watch = watch
            await guard.start(app.state.flowloom)
            # crons fire while the server runs (after the keys table exists: runs as keys)
            scheduler = CronScheduler(CronStore(db), runs, KeyStore(db),
                                      tick_s=settings.cron_tick_s, clock=settings.cron_clock)
            app.state.flowloom_crons = Crons(CronStore(db), runs, clock=settings.cron_clock,
                                             changed=scheduler.wake)
            app.state.flowloom_cron_scheduler = scheduler
            await scheduler.start()
            stack.push_async_callback(scheduler.stop)
            metrics.start(app.state.flowloom)
            await observe_api.attach(app, stack)  # node timelines, route decisions
            await kbs_api.attach(app, stack, home=settings.home or flowloom_home(),
                                 models=build_ctx.models, demo_kb=settings.demo_kb)
            try:
                yield
            finally:
                await scheduler.stop()  # no run started while runs shut down
                await runs.shutdown()

    app = FastAPI(title="flowloom", version="0.1.0", lifespan=lifespan,
                  description="Flows served over the LangGraph API protocol.")
    _install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(BodyLimits)  # innermost: bodies of admitted requests only
    guard = install_auth(app, settings)
    metrics = install_metrics(app)  # its timing wraps auth's refusals too
    app.state.flowloom_metrics = metrics
    _install_cors(app, settings)  # outermost: preflights need no key, refusals get headers
    # runs first: the routes every run request goes through are matched first (FastAPI
    # tries routes in order; no path of one module matches another module's)
    for module in (runs_api, system_api, flows_api, assistants_api, threads_api, crons_api):
        app.include_router(module.router)
    app.include_router(observe_api.router)  # /models, /observe/...
    app.include_router(kbs_api.router)  # /kbs
    app.include_router(prompts_api.router)  # /prompts
    app.include_router(store_api.router)  # /store
    try:
        from flowloom.backends.server.openai_compat import openai_router
    except ImportError:
        pass
    else:
        app.include_router(openai_router(lambda: app.state.flowloom.catalog,
                                         lambda: app.state.flowloom.runs))
    refuse_unknown_query(app)  # last: every route is in
    return app


def serve(settings: ServerSettings, *, ctx: BuildContext | None = None) -> None:
    """Run the server (foreground), announcing `FLOWLOOM_SERVER_READY <url>` on stdout."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, a response written in two parts
    # (headers, then a streamed body) waits ~40 ms on Nagle + delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((settings.host, settings.port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings, ctx=ctx), log_level="warning",
                            access_log=False, timeout_graceful_shutdown=5,
                            http=http_protocol())
    server = uvicorn.Server(config)

    original = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original(sockets=sockets)
        print(f"{READY_PREFIX} http://{settings.host}:{port}", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    server.run(sockets=[sock])
    sys.stdout.flush()
