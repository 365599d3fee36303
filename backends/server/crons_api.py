"""`/runs/crons` and `/threads/{id}/runs/crons`: runs on a schedule (crons.py), as
langgraph-sdk's `client.crons` calls them.

    >>> cron = await client.crons.create("chat", schedule="0 9 * * *", input={...})
    >>> await client.crons.update(cron["cron_id"], enabled=False)
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from flowloom.backends.server.crons import CronCount, CronCreate, CronPatch, Crons, CronSearch
from flowloom.backends.server.tenancy import Principal, access, caller

__all__ = ["router"]

router = APIRouter(tags=["crons"])
OWNED = access("owner")
Caller = Annotated[Principal, Depends(caller)]


def _crons(request: Request) -> Crons:
    return request.app.state.flowloom_crons  # type: ignore[no-any-return]


Service = Annotated[Crons, Depends(_crons)]


@router.post("/runs/crons", openapi_extra=OWNED)
async def create_cron(body: CronCreate, crons: Service, who: Caller) -> dict[str, Any]:
    """A stateless cron: each run on a new thread, deleted when the run ends unless
    `on_run_completed` is keep."""
    return (await crons.create(body, who)).api()


@router.post("/threads/{thread_id}/runs/crons", openapi_extra=OWNED)
async def create_thread_cron(thread_id: str, body: CronCreate, crons: Service,
                             who: Caller) -> dict[str, Any]:
    """A cron whose runs all run on `thread_id` (one of the caller's)."""
    return (await crons.create(body, who, thread_id)).api()


@router.post("/runs/crons/search", openapi_extra=OWNED)
async def search_crons(body: CronSearch, crons: Service, who: Caller) -> list[dict[str, Any]]:
    return await crons.search(body, who)


@router.post("/runs/crons/count", openapi_extra=OWNED)
async def count_crons(body: CronCount, crons: Service, who: Caller) -> int:
    return await crons.count(body, who)


@router.patch("/runs/crons/{cron_id}", openapi_extra=OWNED)
async def update_cron(cron_id: UUID, body: CronPatch, crons: Service,
                      who: Caller) -> dict[str, Any]:
    return (await crons.update(str(cron_id), body, who)).api()


@router.delete("/runs/crons/{cron_id}", status_code=204, openapi_extra=OWNED)
async def delete_cron(cron_id: UUID, crons: Service, who: Caller) -> Response:
    await crons.delete(str(cron_id), who)
    return Response(status_code=204)
