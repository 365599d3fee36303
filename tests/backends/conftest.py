"""A tiny OpenAI-compatible HTTP server on 127.0.0.1 (port 0) for the gateway's tests.

One server answers under several path prefixes, each its own behaviour, so one
deployment's `api_base` picks what it gets:

- `/ok/v1`: a canned chat completion (JSON or SSE stream) and embeddings;
- `/fail/v1`: HTTP 500 on everything;
- `/tool/v1`: a chat completion that calls the first tool offered.

Every request is recorded in `FakeOpenAI.requests` as `(prefix, path, body)`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

REPLY = "Hello from the fake server"
EMBED_DIM = 4


@dataclass
class FakeOpenAI:
    """Handle on the running fake server."""

    host: str
    port: int
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def base(self, prefix: str = "ok") -> str:
        """The `api_base` of one behaviour (`ok`, `fail`, `tool`)."""
        return f"http://{self.host}:{self.port}/{prefix}/v1"

    def hits(self, prefix: str) -> int:
        return sum(1 for p, _, _ in self.requests if p == prefix)


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


async def _sse(model: str, include_usage: bool) -> AsyncIterator[bytes]:
    words = REPLY.split(" ")
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}
    first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    yield f"data: {json.dumps({**base, 'choices': [first]})}\n\n".encode()
    for i, word in enumerate(words):
        delta = {"content": (" " if i else "") + word}
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        yield f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()
    last = {"index": 0, "delta": {}, "finish_reason": "stop"}
    yield f"data: {json.dumps({**base, 'choices': [last]})}\n\n".encode()
    if include_usage:
        usage = {**base, "choices": [], "usage": _usage(7, len(words))}
        yield f"data: {json.dumps(usage)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def make_app(server: FakeOpenAI) -> FastAPI:
    app = FastAPI()

    def failing(prefix: str) -> JSONResponse | None:
        if prefix == "fail":
            error = {"message": "fake server told to fail", "type": "server_error"}
            return JSONResponse({"error": error}, status_code=500)
        return None

    @app.get("/{prefix}/v1/models")
    async def models(prefix: str) -> Any:
        server.requests.append((prefix, "models", {}))
        return failing(prefix) or {"object": "list", "data": [{"id": "fake", "object": "model"}]}

    @app.post("/{prefix}/v1/chat/completions")
    async def chat(prefix: str, request: Request) -> Any:
        body = await request.json()
        server.requests.append((prefix, "chat", body))
        if (failed := failing(prefix)) is not None:
            return failed
        model = body.get("model", "fake")
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_sse(model, include), media_type="text/event-stream")
        if prefix == "tool" and body.get("tools"):
            return _completion(model, _tool_message(body), "tool_calls")
        return _completion(model, {"role": "assistant", "content": REPLY}, "stop")

    @app.post("/{prefix}/v1/embeddings")
    async def embeddings(prefix: str, request: Request) -> Any:
        body = await request.json()
        server.requests.append((prefix, "embeddings", body))
        if (failed := failing(prefix)) is not None:
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


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    """The fake server, started once in a thread for the whole session."""
    server = FakeOpenAI(host="127.0.0.1", port=0)
    config = uvicorn.Config(make_app(server), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake OpenAI server did not start")
        time.sleep(0.01)
    server.port = uv.servers[0].sockets[0].getsockname()[1]
    yield server
    uv.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
