"""Store items: LangGraph's long-term memory (`BaseStore`) kept in the server's database,
each item owned by the API key that wrote it.

One table, `fl_store_items`, in the server's SQLite file or Postgres database, holds
(owner, namespace, key) → a JSON object, its timestamps, an optional time to live
(minutes, counted from the last write or read) and the embeddings of its indexed fields.
Semantic search embeds the query through the gateway (`StoreIndex.embed`, `local-embed` by
default) and ranks the candidates by cosine similarity here, so neither database needs a
vector extension; it suits memory-sized collections (every candidate under the prefix is
scored).

Ownership, as for threads (tenancy.py): a user key's items are its own, and another key's
do not exist for it; a put by another key to the same namespace and key makes that key's
own item beside the first. Admins (and the local user of a server without keys) see every
key's items in searches and listings; their get and delete reach their own item, else the
newest other one. Items written without a key have no owner: once keys exist, those are
the admins'.

    >>> items = ItemStore(db, models=models)
    >>> await items.put(who, ("memories", "ada"), "tea", {"text": "likes green tea"})
    >>> [i.value for i in await items.search(who, ("memories",), query="drinks")]
    [{'text': 'likes green tea'}]
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from langgraph.store.base.embed import get_text_at_path

from flowloom.backends.server._item_match import (
    check_filter,
    check_namespace,
    check_ttl,
    matches,
    namespace_matches,
)
from flowloom.backends.server.db import Database, Statement
from flowloom.backends.server.errors import BadRequest, ServerError
from flowloom.backends.server.serde import to_jsonable
from flowloom.backends.server.tenancy import Principal, current_principal

__all__ = ["EmbeddingFailed", "ItemStore", "OwnedStore", "StoreIndex"]

logger = logging.getLogger("flowloom.server")

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS fl_store_items (
        owner_key TEXT NOT NULL, namespace TEXT NOT NULL, item_key TEXT NOT NULL,
        value TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        ttl_minutes DOUBLE PRECISION, expires_at TEXT, vectors TEXT,
        PRIMARY KEY (owner_key, namespace, item_key))""",
    "CREATE INDEX IF NOT EXISTS fl_store_items_ns ON fl_store_items (namespace, item_key)",
    "CREATE INDEX IF NOT EXISTS fl_store_items_expiry ON fl_store_items (expires_at)",
]
NO_OWNER = ""  # stored for items written without a key (a NULL would defeat the key)
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_COLUMNS = "owner_key, namespace, item_key, value, created_at, updated_at, ttl_minutes"


@dataclass(frozen=True)
class StoreIndex:
    """Semantic search over store items: the gateway alias that embeds them, and the
    fields of a value embedded when a put does not name its own (LangGraph's path syntax:
    `$` is the whole value, `text`, `notes[*].body`)."""

    embed: str = "local-embed"
    fields: tuple[str, ...] = ("$",)


class EmbeddingFailed(ServerError):
    """The gateway could not embed an item or a query (the API answers 502)."""


def _stamp(moment: datetime) -> str:
    # fixed width, so that stamps compare as strings in both databases
    return moment.isoformat(timespec="microseconds")


def _joined(namespace: Sequence[str]) -> str:
    return ".".join(namespace)


def _dumps(value: Mapping[str, Any]) -> str:
    try:
        return json.dumps(to_jsonable(dict(value)), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"value: not storable as JSON: {exc}") from None


def _cosine(query: Sequence[float], vectors: Sequence[Sequence[float]]) -> float | None:
    """The best cosine similarity of `query` to any of an item's vectors (None: none of
    them has its dimensions, such as vectors made by another embedding model)."""
    norm = sum(q * q for q in query) ** 0.5
    best: float | None = None
    for vector in vectors:
        if len(vector) != len(query):
            continue
        length = sum(v * v for v in vector) ** 0.5
        score = (sum(q * v for q, v in zip(query, vector, strict=True)) / (norm * length)
                 if norm and length else 0.0)
        best = score if best is None else max(best, score)
    return best


class ItemStore:
    """Store items in the server's database, every call acting for a principal `who`."""

    def __init__(self, db: Database, *, models: Any = None,
                 index: StoreIndex | None = None) -> None:
        self.db = db
        self.models = models
        self.index = index
        self.loop: asyncio.AbstractEventLoop | None = None

    async def setup(self) -> None:
        """Create the table; semantic search is off (with a log line saying why) when the
        gateway lacks the index's embedding alias."""
        for statement in SCHEMA:
            await self.db.execute(statement)
        self.loop = asyncio.get_running_loop()
        if self.index is not None:
            aliases = self.models.aliases() if self.models is not None else []
            if self.index.embed not in aliases:
                logger.warning("store items: semantic search is off: the model gateway has "
                               "no embedding alias %r", self.index.embed)
                self.index = None

    # -- writes --------------------------------------------------------------------------

    async def put(self, who: Principal, namespace: Sequence[str], key: str,
                  value: Mapping[str, Any], *, index: Literal[False] | Sequence[str] | None
                  = None, ttl: float | None = None) -> None:
        """Create or replace `who`'s item at `namespace`/`key`. `index`: the fields to embed
        (None: the server's default ones; False: none); `ttl`: minutes it lives after its
        last write or read (None: for ever)."""
        labels = check_namespace(namespace, "namespace")
        if not isinstance(key, str) or not key:
            raise BadRequest("key: an item key is a non-empty string")
        if not isinstance(value, Mapping):
            raise BadRequest(f"value: an item's value is a JSON object, got "
                             f"{type(value).__name__}")
        ttl = check_ttl(ttl)
        document = _dumps(value)
        vectors = await self._embed_value(json.loads(document), index)
        now = datetime.now(UTC)
        expires = _stamp(now + timedelta(minutes=ttl)) if ttl is not None else None
        stamp = _stamp(now)
        await self.db.execute(
            f"INSERT INTO fl_store_items ({_COLUMNS}, expires_at, vectors) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner_key, namespace, item_key) "
            "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
            "ttl_minutes = excluded.ttl_minutes, expires_at = excluded.expires_at, "
            "vectors = excluded.vectors, created_at = CASE WHEN fl_store_items.expires_at "
            "IS NOT NULL AND fl_store_items.expires_at <= excluded.updated_at "
            "THEN excluded.created_at ELSE fl_store_items.created_at END",
            (who.key_id or NO_OWNER, _joined(labels), key, document, stamp, stamp, ttl,
             expires, None if vectors is None else json.dumps(vectors)))

    async def delete(self, who: Principal, namespace: Sequence[str], key: str) -> None:
        """Delete the item `get` would answer, if any (deleting nothing is no error)."""
        labels = check_namespace(namespace, "namespace")
        row = await self._find(who, labels, key, live=False)
        if row is not None:
            await self.db.execute("DELETE FROM fl_store_items WHERE owner_key = ? AND "
                                  "namespace = ? AND item_key = ?",
                                  (row["owner_key"], row["namespace"], key))

    async def sweep(self) -> int:
        """Delete expired items; how many."""
        return await self.db.execute("DELETE FROM fl_store_items WHERE expires_at IS NOT NULL "
                                     "AND expires_at <= ?", (_stamp(datetime.now(UTC)),))

    # -- reads ---------------------------------------------------------------------------

    async def get(self, who: Principal, namespace: Sequence[str], key: str, *,
                  refresh_ttl: bool = True) -> Item | None:
        """`who`'s item (an admin's own, else the newest of another key); None when none
        exists for `who`."""
        labels = check_namespace(namespace, "namespace")
        row = await self._find(who, labels, key, live=True)
        if row is None:
            return None
        if refresh_ttl:
            await self._refresh([row])
        return _item(row)

    async def search(self, who: Principal, namespace_prefix: Sequence[str] = (), *,
                     query: str | None = None, filter: Mapping[str, Any] | None = None,
                     limit: int = 10, offset: int = 0, refresh_ttl: bool = True
                     ) -> list[SearchItem]:
        """Items under `namespace_prefix` that `who` sees and that meet `filter`: newest
        first, or with `query` most similar first (each with its `score`; items stored
        unindexed follow, scoreless)."""
        prefix = check_namespace(namespace_prefix, "namespace_prefix", empty_ok=True)
        conditions = check_filter(filter) if filter else {}
        if query is not None and not isinstance(query, str):
            raise BadRequest("query: a search query is a string")
        if query and self.index is None:
            raise BadRequest("query: semantic search is off on this server (its model "
                             "gateway has no embedding alias for store items); search "
                             "with a filter instead")
        where, params = self._scope(who, prefix)
        sql = (f"SELECT {_COLUMNS}{', vectors' if query else ''} FROM fl_store_items "
               f"WHERE {where} ORDER BY updated_at DESC, namespace, item_key")
        page_in_sql = not conditions and not query
        if page_in_sql:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        rows = await self.db.fetchall(sql, params)
        if conditions:
            rows = [r for r in rows if matches(json.loads(r["value"]), conditions)]
        scores: list[float | None] = [None] * len(rows)
        if query:
            rows, scores = await self._rank(query, rows)
        if not page_in_sql:
            rows, scores = rows[offset:offset + limit], scores[offset:offset + limit]
        if refresh_ttl:
            await self._refresh(rows)
        return [_item(row, score) for row, score in zip(rows, scores, strict=True)]

    async def list_namespaces(self, who: Principal, *, prefix: Sequence[str] = (),
                              suffix: Sequence[str] = (), max_depth: int | None = None,
                              limit: int = 100, offset: int = 0) -> list[tuple[str, ...]]:
        """The namespaces holding items `who` sees, sorted, that start with `prefix` and end
        with `suffix` (`*` matches any one label), cut to `max_depth` labels."""
        prefix = check_namespace(prefix, "prefix", empty_ok=True, wildcards=True)
        suffix = check_namespace(suffix, "suffix", empty_ok=True, wildcards=True)
        if max_depth is not None and max_depth < 1:
            raise BadRequest(f"max_depth: at least 1, got {max_depth}")
        literal: list[str] = []
        for label in prefix:  # narrowed in SQL up to the first wildcard
            if label == "*":
                break
            literal.append(label)
        where, params = self._scope(who, tuple(literal))
        rows = await self.db.fetchall(
            f"SELECT DISTINCT namespace FROM fl_store_items WHERE {where}", params)
        found = {tuple(row["namespace"].split(".")) for row in rows}
        kept = {ns[:max_depth] if max_depth is not None else ns for ns in found
                if namespace_matches(ns, prefix, suffix)}
        return sorted(kept)[offset:offset + limit]

    # -- helpers -------------------------------------------------------------------------

    def _scope(self, who: Principal, prefix: tuple[str, ...]) -> tuple[str, list[Any]]:
        """WHERE clause (and parameters) of live items `who` sees under `prefix`."""
        where = _LIVE
        params: list[Any] = [_stamp(datetime.now(UTC))]
        if not who.sees_all:
            where += " AND owner_key = ?"
            params.append(who.key_id or NO_OWNER)
        if prefix:
            joined = _joined(prefix)
            where += " AND (namespace = ? OR substr(namespace, 1, CAST(? AS INTEGER)) = ?)"
            params += [joined, len(joined) + 1, joined + "."]
        return where, params

    async def _find(self, who: Principal, namespace: tuple[str, ...], key: str, *,
                    live: bool) -> dict[str, Any] | None:
        params: list[Any] = [_joined(namespace), key]
        sql = f"SELECT {_COLUMNS} FROM fl_store_items WHERE namespace = ? AND item_key = ?"
        if live:
            sql += f" AND {_LIVE}"
            params.append(_stamp(datetime.now(UTC)))
        mine = who.key_id or NO_OWNER
        if not who.sees_all:
            return await self.db.fetchone(f"{sql} AND owner_key = ?", [*params, mine])
        # an admin's own item first, else the newest of anyone's
        return await self.db.fetchone(
            f"{sql} ORDER BY CASE WHEN owner_key = ? THEN 0 ELSE 1 END, updated_at DESC "
            "LIMIT 1", [*params, mine])

    async def _refresh(self, rows: Iterable[dict[str, Any]]) -> None:
        """Restart the time to live of `rows` that have one (they were just read)."""
        now = datetime.now(UTC)
        statements: list[Statement] = [
            ("UPDATE fl_store_items SET expires_at = ? WHERE owner_key = ? AND namespace = ? "
             "AND item_key = ?", (_stamp(now + timedelta(minutes=row["ttl_minutes"])),
                                  row["owner_key"], row["namespace"], row["item_key"]))
            for row in rows if row["ttl_minutes"] is not None]
        if statements:
            await self.db.batch(statements)

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        assert self.index is not None
        try:
            vectors = await self.models.aembed(self.index.embed, texts)
        except Exception as exc:
            raise EmbeddingFailed(f"embedding with {self.index.embed!r} failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
        if len(vectors) != len(texts):
            raise EmbeddingFailed(f"embedding with {self.index.embed!r} answered "
                                  f"{len(vectors)} vectors for {len(texts)} texts")
        return [[float(x) for x in vector] for vector in vectors]

    async def _embed_value(self, value: dict[str, Any],
                           index: Literal[False] | Sequence[str] | None
                           ) -> list[list[float]] | None:
        if index is False:
            return None
        if index is not None and (isinstance(index, str) or not all(
                isinstance(path, str) and path for path in index)):
            raise BadRequest("index: false, or a list of field paths such as "
                             '["text", "notes[*].body"]')
        if self.index is None:
            if index:
                raise BadRequest("index: semantic search is off on this server (its model "
                                 "gateway has no embedding alias for store items); put "
                                 "without `index`, or with false")
            return None
        texts = [text for path in (index if index is not None else self.index.fields)
                 for text in get_text_at_path(value, path) if text]
        return await self._embed(texts) if texts else None

    async def _rank(self, query: str, rows: list[dict[str, Any]]
                    ) -> tuple[list[dict[str, Any]], list[float | None]]:
        [vector] = await self._embed([query])
        scored: list[tuple[float, int]] = []
        unscored: list[int] = []
        for i, row in enumerate(rows):
            score = _cosine(vector, json.loads(row["vectors"])) if row["vectors"] else None
            if score is None:
                unscored.append(i)
            else:
                scored.append((score, i))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        order = [i for _, i in scored] + unscored
        scores: list[float | None] = [s for s, _ in scored]
        return [rows[i] for i in order], scores + [None] * len(unscored)


def _item(row: Mapping[str, Any], score: float | None = None) -> SearchItem:
    return SearchItem(namespace=tuple(row["namespace"].split(".")), key=row["item_key"],
                      value=json.loads(row["value"]),
                      created_at=datetime.fromisoformat(row["created_at"]),
                      updated_at=datetime.fromisoformat(row["updated_at"]), score=score)


class OwnedStore(BaseStore):
    """The item store as LangGraph's `BaseStore`, acting for `who`, or (None) for the
    principal of the request or run in progress (`tenancy.current_principal`): what the
    server's graphs get, so a node's memory is the memory of the key that ran it.

        >>> graph = compile_flow(flow, store=OwnedStore(items))
    """

    supports_ttl = True

    def __init__(self, items: ItemStore, who: Principal | None = None) -> None:
        self.items = items
        self.who = who

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await self._run(list(ops), self.who or current_principal.get())

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """For sync nodes, which LangGraph runs in worker threads: the ops run on the
        server's event loop (where its database connection lives)."""
        loop = self.items.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            raise RuntimeError("the server's store is async: use aget, aput, asearch, "
                               "adelete and alist_namespaces on its event loop")
        who = self.who or current_principal.get()  # this thread's, not the loop's
        return asyncio.run_coroutine_threadsafe(self._run(list(ops), who), loop).result()

    async def _run(self, ops: list[Op], who: Principal) -> list[Result]:
        results: list[Result] = []
        for op in ops:
            results.append(await self._one(op, who))
        return results

    async def _one(self, op: Op, who: Principal) -> Result:
        items = self.items
        if isinstance(op, GetOp):
            return await items.get(who, op.namespace, op.key, refresh_ttl=op.refresh_ttl)
        if isinstance(op, SearchOp):
            return list(await items.search(
                who, op.namespace_prefix, query=op.query, filter=op.filter, limit=op.limit,
                offset=op.offset, refresh_ttl=op.refresh_ttl))
        if isinstance(op, PutOp):
            if op.value is None:
                await items.delete(who, op.namespace, op.key)
            else:
                await items.put(who, op.namespace, op.key, op.value, index=op.index,
                                ttl=op.ttl)
            return None
        if isinstance(op, ListNamespacesOp):
            paths: dict[str, tuple[str, ...]] = {}
            for condition in op.match_conditions or ():
                if condition.match_type in paths:
                    raise BadRequest(f"match_conditions: one {condition.match_type} "
                                     "condition at most")
                paths[condition.match_type] = tuple(condition.path)
            prefix, suffix = paths.get("prefix", ()), paths.get("suffix", ())
            return list(await items.list_namespaces(
                who, prefix=prefix, suffix=suffix, max_depth=op.max_depth, limit=op.limit,
                offset=op.offset))
        raise TypeError(f"unknown store operation {type(op).__name__}")
