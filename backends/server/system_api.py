"""`/ok`, `/info` and the node-type catalogue."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any, get_args

from fastapi import APIRouter, Request

from flowloom.backends.server.schemas import StreamModeName
from flowloom.backends.server.tenancy import access
from flowloom.flows.registry import default_registry

__all__ = ["router"]

router = APIRouter(tags=["system"])


@router.get("/ok", openapi_extra=access("open"))
async def ok(request: Request) -> dict[str, Any]:
    """Alive; with `model_service`, the state of the embedded model service this server
    started and keeps running (running, restarting, failed: see backends/model_watch.py)."""
    answer: dict[str, Any] = {"ok": True}
    watch = getattr(request.app.state, "flowloom_model_watch", None)
    if watch is not None and watch.state != "not started":
        answer["model_service"] = watch.status()
    return answer


# What /info says this server does not do: each is refused with a 422 naming it when a
# client asks for it, never accepted and dropped.
UNSUPPORTED = {
    "threads.ttl": "threads are kept until deleted (delete them, or threads.prune)",
    "runs.feedback_keys": "run feedback is a LangSmith feature",
    "runs.langsmith_tracer": "the server runs offline and sends no traces",
    "threads.stream.state_update": "join_stream's state_update mode",
    "embeddings.dimensions": "an embedding alias answers its model's own size",
}


@router.get("/info", openapi_extra=access("open"))
async def info(request: Request) -> dict[str, Any]:
    """What this server supports. `flags` as the reference server's (`crons`, `store`,
    `store_ttl`, `store_semantic_search`: the store's `query` ranks by meaning, an
    embedding alias is set); `flowloom` lists the stream modes and what is refused."""
    items = getattr(request.app.state, "flowloom_items", None)
    return {"version": "0.1.0", "server": "flowloom",
            "langgraph_py_version": _langgraph_version(),
            "flags": {"assistants": True, "crons": True, "langsmith": False,
                      "store": True, "store_ttl": True,
                      "store_semantic_search": items is not None and items.index is not None},
            "flowloom": {
                "stream_modes": list(get_args(StreamModeName)),
                "multitask_strategies": ["reject", "interrupt", "rollback", "enqueue"],
                "durability": ["sync", "async", "exit"],
                "openai": ["/v1/chat/completions", "/v1/responses", "/v1/embeddings",
                           "/v1/models"],
                "unsupported": UNSUPPORTED}}


def _langgraph_version() -> str:
    try:
        return version("langgraph")
    except PackageNotFoundError:  # pragma: no cover - langgraph is a dependency
        return "unknown"


@router.get("/node-types", openapi_extra=access("shared"))
async def node_types() -> list[dict[str, Any]]:
    return default_registry().catalogue()
