"""`/ok`, `/info` and the node-type catalogue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

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


@router.get("/info", openapi_extra=access("open"))
async def info() -> dict[str, Any]:
    return {"version": "0.1.0", "server": "flowloom",
            "flags": {"assistants": True, "crons": False, "langsmith": False}}


@router.get("/node-types", openapi_extra=access("shared"))
async def node_types() -> list[dict[str, Any]]:
    return default_registry().catalogue()
