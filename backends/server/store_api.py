"""`/store`: LangGraph's store API, as langgraph-sdk's `client.store` calls it, over the
server's store items (items.py), each owned by the key that wrote it.

- `PUT /store/items` `{namespace, key, value, index?, ttl?}` → 204
- `GET /store/items?namespace=a.b&key=k[&refresh_ttl=false]` → the item, or 404
- `DELETE /store/items` `{namespace, key}` → 204 (also when there was nothing to delete)
- `POST /store/items/search` `{namespace_prefix?, filter?, limit?, offset?, query?,
  refresh_ttl?}` → `{items: [... with score]}`
- `POST /store/namespaces` `{prefix?, suffix?, max_depth?, limit?, offset?}` →
  `{namespaces: [[label, ...], ...]}`

An item that fails to embed (the gateway's embedding alias is down) is a 502 naming it;
nothing is written.

    >>> await client.store.put_item(["memories", "ada"], "tea", {"text": "likes tea"})
    >>> await client.store.search_items(["memories"], query="what does Ada drink?")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from flowloom.backends.server.db import Database
from flowloom.backends.server.errors import NotFound
from flowloom.backends.server.items import EmbeddingFailed, ItemStore, StoreIndex
from flowloom.backends.server.schemas import MAX_OFFSET
from flowloom.backends.server.tenancy import Principal, access, caller

__all__ = ["SWEEP_S", "attach", "router"]

logger = logging.getLogger("flowloom.server")
router = APIRouter(tags=["store"])
OWNED = access("owner")
Caller = Annotated[Principal, Depends(caller)]
SWEEP_S = 60.0  # how often expired items are deleted (reads never answer them anyway)


def _items(request: Request) -> ItemStore:
    return request.app.state.flowloom_items  # type: ignore[no-any-return]


Items = Annotated[ItemStore, Depends(_items)]


class _Body(BaseModel):
    # an option this server does not know is refused (422 naming it), never ignored
    model_config = ConfigDict(extra="forbid", strict=True)


class ItemPut(_Body):
    namespace: list[StrictStr]
    key: str = Field(..., min_length=1)
    value: dict[str, Any]
    index: Literal[False] | list[StrictStr] | None = Field(
        None, description="Fields to embed for semantic search (false: none; null: the "
                          "server's default fields).")
    ttl: float | None = Field(None, description="Minutes the item lives after its last "
                                                "write or read; null: for ever.")


class ItemDelete(_Body):
    namespace: list[StrictStr]
    key: str = Field(..., min_length=1)


class ItemSearch(_Body):
    namespace_prefix: list[StrictStr] = Field(default_factory=list)
    filter: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    query: str | None = None
    refresh_ttl: bool | None = None


class NamespaceSearch(_Body):
    prefix: list[StrictStr] | None = None
    suffix: list[StrictStr] | None = None
    max_depth: int | None = Field(None, ge=1)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


def _embedding_failed(exc: EmbeddingFailed) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=502)


@router.put("/store/items", status_code=204, openapi_extra=OWNED, response_model=None)
async def put_item(body: ItemPut, items: Items, who: Caller) -> Response:
    try:
        await items.put(who, body.namespace, body.key, body.value, index=body.index,
                        ttl=body.ttl)
    except EmbeddingFailed as exc:
        return _embedding_failed(exc)
    return Response(status_code=204)


@router.get("/store/items", openapi_extra=OWNED)
async def get_item(items: Items, who: Caller,
                   namespace: Annotated[str, Query(description="Labels joined by '.'")],
                   key: Annotated[str, Query(min_length=1)],
                   refresh_ttl: bool | None = None) -> dict[str, Any]:
    labels = namespace.split(".") if namespace else []
    item = await items.get(who, labels, key,
                           refresh_ttl=True if refresh_ttl is None else refresh_ttl)
    if item is None:
        raise NotFound(f"item {key!r} not found in namespace {namespace!r}")
    answer = item.dict()
    answer.pop("score", None)
    return answer


@router.delete("/store/items", status_code=204, openapi_extra=OWNED)
async def delete_item(body: ItemDelete, items: Items, who: Caller) -> None:
    await items.delete(who, body.namespace, body.key)


@router.post("/store/items/search", openapi_extra=OWNED, response_model=None)
async def search_items(body: ItemSearch, items: Items,
                       who: Caller) -> dict[str, Any] | JSONResponse:
    try:
        found = await items.search(
            who, body.namespace_prefix, query=body.query, filter=body.filter,
            limit=body.limit, offset=body.offset,
            refresh_ttl=True if body.refresh_ttl is None else body.refresh_ttl)
    except EmbeddingFailed as exc:
        return _embedding_failed(exc)
    return {"items": [item.dict() for item in found]}


@router.post("/store/namespaces", openapi_extra=OWNED)
async def list_namespaces(body: NamespaceSearch, items: Items,
                          who: Caller) -> dict[str, Any]:
    found = await items.list_namespaces(
        who, prefix=body.prefix or (), suffix=body.suffix or (), max_depth=body.max_depth,
        limit=body.limit, offset=body.offset)
    return {"namespaces": [list(ns) for ns in found]}


async def attach(app: FastAPI, stack: AsyncExitStack, db: Database, *, models: Any,
                 index: StoreIndex | None) -> ItemStore:
    """Serve the store items of `db` (called from the server's lifespan, before flows are
    compiled: they get the store too); expired items are swept every `SWEEP_S`."""
    items = ItemStore(db, models=models, index=index)
    await items.setup()
    app.state.flowloom_items = items

    async def sweep() -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                await items.sweep()
            except Exception:  # the database is away for now: the next pass retries
                logger.exception("store items: sweeping expired items failed")

    task = asyncio.create_task(sweep(), name="store-sweep")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)
    return items
