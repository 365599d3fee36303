"""A tiny OpenAI-compatible HTTP server on 127.0.0.1 (port 0) for the gateway's tests.

One server answers under many path prefixes, each its own behaviour, so one
deployment's `api_base` picks what it gets. A prefix is a behaviour, optionally
`xN` (misbehave on the first N model requests, then answer normally), optionally
`.tag` (a name of its own, so a test's counts start at zero: see `FakeOpenAI.fresh`):

- `ok`: a canned chat completion (JSON or SSE stream) and embeddings;
- `fail`: HTTP 500 on everything (`/models` included);
- `tool`: a chat completion that calls the first tool offered;
- `status500`, `status502`, `status503`, ... : that HTTP status, with an OpenAI error body;
- `ratelimit2`: HTTP 429 with `Retry-After: 2`;
- `hang`: holds the request (until the client goes away, or `HANG_S`);
- `badjson3`: a stream whose 4th event (after 3 tokens) is not JSON; `badjson0` breaks
  before any token. Without `stream` the body is cut-off JSON;
- `drop3`: a stream whose connection drops after 3 tokens (`drop0`: before any);
- `slow2`: the `ok` answer, each token 2 s apart (a model that takes its time);
- `lag200`: the `ok` answer (chat or embeddings), 200 ms late.
- `cut`: the `ok` answer as a model honouring `stop` (cut before the first stop sequence)
  and `max_tokens` (a word is a token: the first N, finish_reason `length`);
- `tooluse`: with tools offered, calls the first one (`{"query": "weather"}`) unless the
  conversation ends with a tool result, answered `Tool said: <result>`; streams both.

`stream`, `tool` and the faults apply to chat completions and embeddings; a fault with
`xN` counts both. `status503x2.a` answers 503 twice, then like `ok`.

Every request is recorded in `FakeOpenAI.requests` as `(prefix, path, body)`, and its
arrival time in `FakeOpenAI.arrivals[prefix]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

REPLY = "Hello from the fake server"
EMBED_DIM = 4
HANG_S = 120.0  # how long `hang` holds a request whose client stays

_PREFIX = re.compile(
    r"(?P<kind>ok|fail|tooluse|tool|hang|status|ratelimit|badjson|drop|slow|lag|cut)(?P<arg>\d*)"
    r"(?:x(?P<times>\d+))?(?:\.(?P<tag>[\w-]+))?")


@dataclass(frozen=True)
class Behaviour:
    """What one prefix does, read from its name (see the module docstring)."""

    kind: str
    arg: int | None = None
    times: int | None = None  # misbehave this many times, then answer as `ok`; None: always

    @classmethod
    def parse(cls, prefix: str) -> Behaviour | None:
        match = _PREFIX.fullmatch(prefix)
        if match is None:
            return None
        kind, arg, times = match["kind"], match["arg"], match["times"]
        needs_arg = kind in ("status", "ratelimit", "badjson", "drop", "slow", "lag")
        if needs_arg != bool(arg):
            return None
        return cls(kind, int(arg) if arg else None, int(times) if times else None)


@dataclass
class FakeOpenAI:
    """Handle on the running fake server."""

    host: str
    port: int
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _tags: Iterator[int] = field(default_factory=itertools.count)

    def base(self, prefix: str = "ok") -> str:
        """The `api_base` of one behaviour (`ok`, `fail`, `status503x2.t1`, ...)."""
        return f"http://{self.host}:{self.port}/{prefix}/v1"

    def fresh(self, behaviour: str) -> str:
        """`behaviour` under a prefix no request has used yet (its counts start at 0)."""
        return f"{behaviour}.t{next(self._tags)}"

    def hits(self, prefix: str, path: str | None = None) -> int:
        """Requests to `prefix` (only those to `path`: `chat`, `embeddings`, `models`)."""
        return sum(1 for p, what, _ in self.requests
                   if p == prefix and (path is None or what == path))


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion(model: str, message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(7, len(REPLY.split())),
    }


def _tool_message(body: dict[str, Any]) -> dict[str, Any]:
    tool = body["tools"][0]["function"]["name"]
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": tool, "arguments": json.dumps({"query": "weather"})},
            }
        ],
    }


def _like_a_model(kind: str, model: str, body: dict[str, Any]) -> tuple[str | None,
                                                                        dict[str, Any] | None,
                                                                        str]:
    """`cut` and `tooluse`: (text, tool call, finish_reason) of the answer to `body`."""
    messages = body.get("messages") or [{}]
    if kind == "tooluse":
        last = messages[-1]
        if last.get("role") == "tool":
            return f"Tool said: {last.get('content')}", None, "stop"
        if body.get("tools"):
            call = _tool_message(body)["tool_calls"][0]
            return None, call, "tool_calls"
        return REPLY, None, "stop"
    text, finish = REPLY, "stop"
    for stop in body.get("stop") or []:
        text = text.split(stop, 1)[0]
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    if limit is not None and len(text.split(" ")) > limit:
        text, finish = " ".join(text.split(" ")[:limit]), "length"
    return text, None, finish


async def _sse_like_a_model(model: str, include_usage: bool, text: str | None,
                            call: dict[str, Any] | None, finish: str) -> AsyncIterator[bytes]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}

    def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()

    yield event({"role": "assistant", "content": ""})
    for i, word in enumerate((text or "").split(" ") if text else []):
        yield event({"content": (" " if i else "") + word})
    if call is not None:
        head = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        yield event({"tool_calls": [{"index": 0, **head}]})
        yield event({"tool_calls": [{"index": 0, "function": {
            "arguments": call["function"]["arguments"]}}]})
    yield event({}, finish)
    if include_usage:
        usage = {**base, "choices": [], "usage": _usage(7, len((text or "").split()))}
        yield f"data: {json.dumps(usage)}\n\n".encode()
    yield b"data: [DONE]\n\n"


class _Dropped(Exception):
    """Raised inside a response body: uvicorn then cuts the connection mid-body."""


class _NoDropTracebacks(logging.Filter):
    """Keeps uvicorn from logging a traceback for each connection dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None and not isinstance(exc, _Dropped):
            exc = exc.__cause__ or exc.__context__
        return exc is None


async def _sse(model: str, include_usage: bool, *, fault: str | None = None,
               after: int = 0, pause: float = 0.0) -> AsyncIterator[bytes]:
    words = REPLY.split(" ")
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}
    first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    yield f"data: {json.dumps({**base, 'choices': [first]})}\n\n".encode()
    for i, word in enumerate(words):
        if fault is not None and i == after:
            if fault == "drop":
                raise _Dropped("the fake server drops the connection")
            yield b'data: {"id": "chatcmpl-fake", "choices": [{"delta": {"content": "oops\n\n'
            return
        if pause:
            await asyncio.sleep(pause)
        delta = {"content": (" " if i else "") + word}
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        yield f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()
    last = {"index": 0, "delta": {}, "finish_reason": "stop"}
    yield f"data: {json.dumps({**base, 'choices': [last]})}\n\n".encode()
    if include_usage:
        usage = {**base, "choices": [], "usage": _usage(7, len(words))}
        yield f"data: {json.dumps(usage)}\n\n".encode()
    yield b"data: [DONE]\n\n"


async def _cut(body: bytes, fault: str) -> AsyncIterator[bytes]:
    """Half of a JSON body, then (`drop`) the connection goes, or (`badjson`) it ends."""
    yield body[: len(body) // 2]
    if fault == "drop":
        raise _Dropped("the fake server drops the connection")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = "rate_limit_error" if status == 429 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}},
                        status_code=status, headers=headers)


async def _hang(request: Request) -> None:
    """Hold the request until its client goes away (or HANG_S passes)."""
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.05)


def make_app(server: FakeOpenAI) -> FastAPI:
    app = FastAPI()

    def record(prefix: str, path: str, body: dict[str, Any]) -> int:
        """Count the request; returns how many model requests `prefix` had before it."""
        before = sum(1 for p, what, _ in server.requests if p == prefix and what != "models")
        server.requests.append((prefix, path, body))
        server.arrivals[prefix].append(time.monotonic())
        return before

    async def fault(prefix: str, seen: int, request: Request) -> Response | None:
        """The error answer `prefix` gives now, or None to answer (perhaps broken)."""
        behaviour = Behaviour.parse(prefix)
        if behaviour is None:
            return _error(404, f"the fake server has no behaviour {prefix!r}")
        if behaviour.times is not None and seen >= behaviour.times:
            return None
        if behaviour.kind == "fail":
            return _error(500, "fake server told to fail")
        if behaviour.kind == "status":
            status = behaviour.arg or 500
            return _error(status, f"fake server answers {status}")
        if behaviour.kind == "ratelimit":
            return _error(429, "fake server says slow down",
                          headers={"Retry-After": str(behaviour.arg)})
        if behaviour.kind == "hang":
            await _hang(request)
            return _error(504, "the fake server held the request")
        if behaviour.kind == "lag":
            await asyncio.sleep((behaviour.arg or 0) / 1000)
        return None

    def broken(prefix: str, seen: int) -> tuple[str | None, int, float]:
        """(stream fault, tokens before it, pause between tokens) for this request."""
        behaviour = Behaviour.parse(prefix)
        if behaviour is None or (behaviour.times is not None and seen >= behaviour.times):
            return None, 0, 0.0
        if behaviour.kind in ("badjson", "drop"):
            return behaviour.kind, behaviour.arg or 0, 0.0
        if behaviour.kind == "slow":
            return None, 0, float(behaviour.arg or 0)
        return None, 0, 0.0

    @app.get("/{prefix}/v1/models")
    async def models(prefix: str) -> Any:
        record(prefix, "models", {})
        if prefix == "fail" or Behaviour.parse(prefix) is None:
            return _error(500 if prefix == "fail" else 404, "fake server told to fail")
        return {"object": "list", "data": [{"id": "fake", "object": "model"}]}

    @app.post("/{prefix}/v1/chat/completions")
    async def chat(prefix: str, request: Request) -> Any:
        body = await request.json()
        seen = record(prefix, "chat", body)
        if (failed := await fault(prefix, seen, request)) is not None:
            return failed
        model = body.get("model", "fake")
        behaviour = Behaviour.parse(prefix)
        if behaviour is not None and behaviour.kind in ("cut", "tooluse"):
            text, call, finish = _like_a_model(behaviour.kind, model, body)
            if body.get("stream"):
                include = bool((body.get("stream_options") or {}).get("include_usage"))
                return StreamingResponse(_sse_like_a_model(model, include, text, call, finish),
                                         media_type="text/event-stream")
            message = {"role": "assistant", "content": text}
            if call is not None:
                message["tool_calls"] = [call]
            return _completion(model, message, finish)
        stream_fault, after, pause = broken(prefix, seen)
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            events = _sse(model, include, fault=stream_fault, after=after, pause=pause)
            return StreamingResponse(events, media_type="text/event-stream")
        if pause:
            await asyncio.sleep(pause * len(REPLY.split()))
        if prefix.startswith("tool") and body.get("tools"):
            return _completion(model, _tool_message(body), "tool_calls")
        answer = _completion(model, {"role": "assistant", "content": REPLY}, "stop")
        if stream_fault is not None:
            data = json.dumps(answer).encode()
            return StreamingResponse(_cut(data, stream_fault), media_type="application/json")
        return answer

    @app.post("/{prefix}/v1/embeddings")
    async def embeddings(prefix: str, request: Request) -> Any:
        body = await request.json()
        seen = record(prefix, "embeddings", body)
        if (failed := await fault(prefix, seen, request)) is not None:
            return failed
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i,
             "embedding": [float(len(t)), float(i), 0.5, 1.0][:EMBED_DIM]}
            for i, t in enumerate(texts)
        ]
        tokens = sum(len(str(t).split()) for t in texts)
        return {"object": "list", "data": data, "model": body.get("model", "fake"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    return app


def _start(server: FakeOpenAI) -> tuple[uvicorn.Server, threading.Thread]:
    logging.getLogger("uvicorn.error").addFilter(_NoDropTracebacks())
    config = uvicorn.Config(make_app(server), host="127.0.0.1", port=0, log_level="critical",
                            lifespan="off", timeout_graceful_shutdown=1)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake OpenAI server did not start")
        time.sleep(0.01)
    server.port = uv.servers[0].sockets[0].getsockname()[1]
    return uv, thread


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    """The fake server, started once in a thread for the whole session."""
    server = FakeOpenAI(host="127.0.0.1", port=0)
    uv, thread = _start(server)
    yield server
    uv.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- databases and keys of a test's own ---------------------------------------------------

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def own_pg_database(prefix: str) -> Iterator[str]:
    """A Postgres database of the caller's own (keys or crons in the shared `test` database
    would reach every other test using it), dropped at the end; skips the test when
    PostgreSQL is not reachable on 127.0.0.1:5432."""
    psycopg = pytest.importorskip("psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}")
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


async def make_keys(database: str) -> dict[str, str]:
    """Keys `a` and `b` (role user) and `admin` in `database`: name -> secret."""
    from flowloom.backends.server.db import open_database
    from flowloom.backends.server.keys import KeyStore

    async with open_database(database) as db:
        store = KeyStore(db)
        await store.setup()
        keys = {}
        for name, role in (("a", "user"), ("b", "user"), ("admin", "admin")):
            _, keys[name] = await store.create(role, name=name)
        return keys
