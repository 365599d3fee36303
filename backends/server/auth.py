"""API keys, roles, rate limits and budgets, enforced by one ASGI middleware.

Policy:
- Auth is on when the server binds a non-loopback host, or when any unrevoked key exists
  (checked per request, cached `CACHE_S`, so a key created while the server runs turns it
  on, and a revoked key stops working, within that time).
- The key comes in `x-api-key` (langgraph-sdk) or `Authorization: Bearer` (openai client).
- Roles: `admin` may do everything; `user` everything but changing flows (PUT, DELETE,
  PATCH under /flows/), prompts (writes under /prompts) and knowledge bases (writes
  under /kbs but search), and reading `/metrics` (unless `metrics_role` is user).
  `/ok`, `/info`, `/openapi.json` and the docs stay open.
- Ownership: each admitted request acts as a `Principal` (`tenancy.current_principal`);
  a user key reaches only the threads, runs and assistants it made (tenancy.py).
- Rate: a token bucket per key and server process, `rpm` per minute with a burst of
  rpm/6 (`burst_for`); past it, 429 with `Retry-After`.
- Budget: a key is charged what the gateway spent on calls made for it (each call carries
  its key) while its flow-running requests and runs are in flight (`SpendMeter`), so other
  keys' traffic is never charged to it; once spent >= budget, flow-running requests get 402,
  not 429, because clients (openai, langgraph-sdk) retry 429s and a budget does not refill.

    >>> app = create_app(ServerSettings(host="0.0.0.0"))  # doctest: +SKIP
    >>> # every request but /ok, /info and the docs now needs a key:
    >>> get_client(url=url, api_key="fl_...")  # doctest: +SKIP
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from flowloom.backends.gateway.records import call_owner
from flowloom.backends.server._limits import RateLimiter, RedisRateLimiter, SpendMeter
from flowloom.backends.server._state import Services
from flowloom.backends.server._usage import total_cost
from flowloom.backends.server.errors import (
    AuthError,
    BudgetExhausted,
    Forbidden,
    RateLimited,
    Unauthenticated,
)
from flowloom.backends.server.keys import ApiKey, KeyStore, Role, key_id_of
from flowloom.backends.server.runs import RunHandle
from flowloom.backends.server.tenancy import LOCAL, Principal, current_principal

if TYPE_CHECKING:
    from flowloom.backends.server.app import ServerSettings

__all__ = [
    "CACHE_S",
    "OPEN_PATHS",
    "AuthMiddleware",
    "Guard",
    "auth_required",
    "install_auth",
    "is_loopback",
    "required_role",
    "runs_flow",
]

logger = logging.getLogger("flowloom.server")

CACHE_S = 2.0
OPEN_PATHS = frozenset({"/ok", "/info", "/openapi.json", "/docs", "/docs/oauth2-redirect",
                        "/redoc"})
_RUNS_FLOW = re.compile(r"^(/threads/[^/]+)?/runs(/wait|/stream|/batch)?$|^/v1/chat/completions$")


def is_loopback(host: str) -> bool:
    """Whether binding `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # "", "0.0.0.0"-like names and hostnames: assume reachable


def auth_required(host: str, active_keys: int) -> bool:
    """Keys are required off loopback always, and on loopback once a key exists."""
    return not is_loopback(host) or active_keys > 0


def required_role(method: str, path: str, *, metrics_role: Role = "admin") -> Role | None:
    """The role a request needs; None for the open endpoints. Changing flows (any write
    under /flows but validation), prompts or knowledge bases needs admin, and so does
    reading `/metrics` (every key's traffic) unless `metrics_role` is user."""
    if path in OPEN_PATHS:
        return None
    if path == "/metrics":
        return metrics_role
    changes_flows = (path == "/flows" or path.startswith("/flows/")) and method not in (
        "GET", "HEAD", "OPTIONS")
    if changes_flows and not (method == "POST" and path == "/flows/validate"):
        return "admin"
    if (path == "/prompts" or path.startswith("/prompts/")) and method not in (
            "GET", "HEAD", "OPTIONS"):
        return "admin"  # a new version changes what `name@latest` means to every flow
    # knowledge bases: creating, uploading to and deleting them is admin work; search
    # (what flows and chat do) and reading are for users
    changes_kbs = (path == "/kbs" or path.startswith("/kbs/")) and method not in (
        "GET", "HEAD", "OPTIONS")
    if changes_kbs and not (method == "POST" and path.endswith("/search")):
        return "admin"
    return "user"


def runs_flow(method: str, path: str) -> bool:
    """Whether the request starts a flow run (these are metered and budget-checked)."""
    return method == "POST" and _RUNS_FLOW.match(path) is not None


def _presented_key(headers: Mapping[str, str]) -> str | None:
    if key := headers.get("x-api-key"):
        return key.strip()
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Guard:
    """The policy, over one server's key store: `admit` a request or raise an AuthError.

    Also a RunObserver: a run is metered against the key whose request started it.
    """

    def __init__(self, host: str, *, cache_s: float | None = None,
                 metrics_role: Role = "admin", redis_url: str | None = None) -> None:
        self.host = host
        self.metrics_role = metrics_role
        self.cache_s = CACHE_S if cache_s is None else cache_s
        # with Redis, servers sharing it share each key's rate
        self.limiter: RateLimiter | RedisRateLimiter = (
            RedisRateLimiter(redis_url) if redis_url else RateLimiter())
        self.meter = SpendMeter(lambda key: 0.0)
        self._store: KeyStore | None = None
        self._active: tuple[float, int] = (-math.inf, 0)
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}
        self._runs: dict[str, str] = {}  # run id -> key id

    async def start(self, services: Services) -> None:
        """Set up the keys table and hook into runs; called from the app's lifespan."""
        self._store = KeyStore(services.store.db)
        await self._store.setup()
        if isinstance(self.limiter, RedisRateLimiter):
            await self.limiter.check()
        self.meter = SpendMeter(lambda key: total_cost(services.catalog.ctx, key))
        services.runs.observers.append(self)
        if not is_loopback(self.host) and not await self._store.active_count():
            logger.warning("listening on %s with no API key: every request will be refused "
                           "until one is made with `flowloom keys create --role admin`",
                           self.host)

    @property
    def store(self) -> KeyStore:
        if self._store is None:
            raise RuntimeError("Guard.start() was not called (the app's lifespan did not run)")
        return self._store

    async def required(self) -> bool:
        at, count = self._active
        if time.monotonic() - at > self.cache_s:
            count = await self.store.active_count()
            self._active = (time.monotonic(), count)
        return auth_required(self.host, count)

    async def _key(self, key_id: str) -> ApiKey | None:
        at, key = self._keys.get(key_id, (-math.inf, None))
        if time.monotonic() - at > self.cache_s:
            key = await self.store.get(key_id)
            self._keys[key_id] = (time.monotonic(), key)
        return key

    async def admit(self, method: str, path: str, headers: Mapping[str, str]) -> ApiKey | None:
        """The request's key (None when auth is off or the path is open), or an AuthError."""
        needed = required_role(method, path, metrics_role=self.metrics_role)
        if needed is None or not await self.required():
            return None
        presented = _presented_key(headers)
        if presented is None:
            if not await self.store.active_count():
                raise Unauthenticated(
                    f"this server listens on {self.host!r}, so it needs an API key, and none "
                    "exists yet: create one with `flowloom keys create --role admin`")
            raise Unauthenticated("an API key is required: send it as `x-api-key: KEY` or "
                                  "`Authorization: Bearer KEY`")
        key_id = key_id_of(presented)
        key = await self._key(key_id) if key_id else None
        if key is None or not key.matches(presented):
            raise Unauthenticated("invalid API key")
        if not key.active:
            raise Unauthenticated(f"API key {key.key_id} was revoked at {key.revoked_at}")
        if needed == "admin" and key.role != "admin":
            raise Forbidden(f"{method} {path} needs role admin; key {key.key_id} has role "
                            f"{key.role}", needed_role=needed)
        if key.rpm is not None and (wait := await self.limiter.take(key.key_id, key.rpm)) > 0:
            retry = math.ceil(wait)
            raise RateLimited(f"rate limit of {key.rpm} requests per minute for key "
                              f"{key.key_id} reached; retry in {retry} s",
                              retry_after_s=retry)
        if runs_flow(method, path) and key.budget_usd is not None:
            spent = key.spent_usd + self.meter.pending(key.key_id)
            if spent >= key.budget_usd:
                raise BudgetExhausted(
                    f"key {key.key_id} has spent ${spent:.6f} of its ${key.budget_usd:.6f} "
                    "model budget; an admin can create a key with a new budget")
        return key

    def enter(self, key_id: str) -> None:
        self.meter.enter(key_id)

    async def leave(self, key_id: str) -> None:
        cost = self.meter.leave(key_id)
        if cost <= 0:
            return
        await self.store.charge(key_id, cost)
        at, key = self._keys.get(key_id, (-math.inf, None))
        if key is not None:
            self._keys[key_id] = (at, replace(key, spent_usd=key.spent_usd + cost))

    async def run_started(self, handle: RunHandle, config: dict[str, Any]) -> None:
        # the run's task inherited its request's context
        key_id = current_principal.get().key_id
        if key_id is not None:
            self._runs[handle.run_id] = key_id
            self.enter(key_id)

    async def run_finished(self, handle: RunHandle, status: str) -> None:
        key_id = self._runs.pop(handle.run_id, None)
        if key_id is not None:
            await self.leave(key_id)


def _refusal(exc: AuthError) -> JSONResponse:
    body = {"detail": str(exc)}
    if isinstance(exc, Unauthenticated):
        return JSONResponse(body, 401, {"WWW-Authenticate": 'Bearer realm="flowloom"'})
    if isinstance(exc, Forbidden):
        return JSONResponse({**body, "needed_role": exc.needed_role}, 403)
    if isinstance(exc, RateLimited):
        return JSONResponse(body, 429, {"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, BudgetExhausted):
        return JSONResponse(body, 402)
    return JSONResponse(body, 403)


class AuthMiddleware:
    """Admits or refuses each HTTP request through the Guard; meters flow-running ones."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        try:
            key = await self.guard.admit(method, path, Headers(scope=scope))
        except AuthError as exc:
            await _refusal(exc)(scope, receive, send)
            return
        if key is None:  # auth off (or an open path): the one local user
            token = current_principal.set(LOCAL)
            try:
                await self.app(scope, receive, send)
            finally:
                current_principal.reset(token)
            return
        token = current_principal.set(Principal(key.key_id, admin=key.role == "admin"))
        calls_token = call_owner.set(key.key_id)  # its model calls are recorded as its own
        metered = runs_flow(method, path)
        if metered:
            self.guard.enter(key.key_id)
        try:
            await self.app(scope, receive, send)
        finally:
            call_owner.reset(calls_token)
            current_principal.reset(token)
            if metered:
                await self.guard.leave(key.key_id)


def install_auth(app: FastAPI, settings: ServerSettings) -> Guard:
    """Add the auth middleware to `app`; the lifespan must `await guard.start(services)`."""
    guard = Guard(settings.host, metrics_role=settings.metrics_role,
                  redis_url=settings.redis_url)
    app.add_middleware(AuthMiddleware, guard=guard)
    return guard
