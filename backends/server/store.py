"""Threads, runs and assistants as the LangGraph API shapes them, kept in the database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from flowloom.backends.server.db import Database, Statement
from flowloom.backends.server.errors import Conflict, NotFound
from flowloom.backends.server.tenancy import Principal

__all__ = ["FlowDocuments", "ServerStore", "now_iso"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


_THREAD_SORTS = ("thread_id", "status", "created_at", "updated_at", "state_updated_at")


def _visible(who: Principal | None, column: str = "owner_key") -> tuple[str, list[Any]]:
    """A WHERE clause's extra condition (and its parameters) keeping what `who` may see;
    nothing for admins and for the server's own lookups (`who` None)."""
    if who is None or who.sees_all:
        return "", []
    return f" AND {column} = ?", [who.key_id]


def _matches(metadata: dict[str, Any], wanted: dict[str, Any] | None) -> bool:
    return not wanted or all(metadata.get(k) == v for k, v in wanted.items())


def _run_insert(
    run_id: str, thread_id: str, assistant_id: str, *, metadata: dict[str, Any],
    kwargs: dict[str, Any], multitask_strategy: str, owner: str, status: str = "pending",
    owner_key: str | None = None,
) -> tuple[dict[str, Any], Statement]:
    """A new run's row (as stored) and the statement that inserts it. `owner` is the server
    process executing it; `owner_key` the API key it belongs to."""
    now = now_iso()
    row = {"run_id": run_id, "thread_id": thread_id, "assistant_id": assistant_id,
           "status": status, "metadata": json.dumps(metadata),
           "kwargs": json.dumps(kwargs, default=str), "multitask_strategy": multitask_strategy,
           "created_at": now, "updated_at": now, "owner": owner, "owner_key": owner_key}
    sql = (f"INSERT INTO fl_runs ({', '.join(row)}) "
           f"VALUES ({', '.join('?' for _ in row)})")
    return row, (sql, tuple(row.values()))


def _thread(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "thread_id": row["thread_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "state_updated_at": row["state_updated_at"],
        "metadata": json.loads(row["metadata"]),
        "status": row["status"],
        "config": json.loads(row["config"]),
        "values": None,
        "interrupts": {},
    }


def _run(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": row["run_id"],
        "thread_id": row["thread_id"],
        "assistant_id": row["assistant_id"],
        "status": row["status"],
        "metadata": json.loads(row["metadata"]),
        "kwargs": json.loads(row["kwargs"]),
        "multitask_strategy": row["multitask_strategy"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _assistant(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "assistant_id": row["assistant_id"],
        "graph_id": row["graph_id"],
        "name": row["name"],
        "description": row["description"],
        "config": json.loads(row["config"]),
        "context": json.loads(row["context"]),
        "metadata": json.loads(row["metadata"]),
        "version": row["version"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


class ServerStore:
    """Threads, runs and assistants. Methods taking `who` act within what that principal
    may see (tenancy.py): another key's rows are not found. `who` None is the server's own
    unscoped access."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- threads -------------------------------------------------------------------------

    async def create_thread(
        self, thread_id: str | None, metadata: dict[str, Any] | None, if_exists: str = "raise",
        graph_id: str | None = None, *, who: Principal | None = None,
    ) -> dict[str, Any]:
        """A new thread owned by `who`. An existing id is a Conflict, or with `if_exists`
        do_nothing the existing thread, if `who` may see it (another key's thread is never
        returned: its id stays taken, a Conflict)."""
        thread_id = thread_id or str(uuid.uuid4())
        existing = await self.db.fetchone("SELECT * FROM fl_threads WHERE thread_id = ?",
                                          (thread_id,))
        if existing is not None:
            if if_exists == "do_nothing" and (who is None or who.sees(existing["owner_key"])):
                return _thread(existing)
            raise Conflict(f"thread {thread_id} already exists")
        now = now_iso()
        meta = dict(metadata or {})
        if graph_id:
            meta.setdefault("graph_id", graph_id)
        await self.db.execute(
            "INSERT INTO fl_threads (thread_id, created_at, updated_at, state_updated_at, "
            "metadata, status, config, graph_id, owner_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (thread_id, now, now, now, json.dumps(meta), "idle", "{}", graph_id,
             who.owner if who is not None else None),
        )
        return await self.get_thread(thread_id)

    async def get_thread(self, thread_id: str, who: Principal | None = None) -> dict[str, Any]:
        thread = await self.find_thread(thread_id, who)
        if thread is None:
            raise NotFound(f"thread {thread_id} not found")
        return thread

    async def find_thread(self, thread_id: str, who: Principal | None = None
                          ) -> dict[str, Any] | None:
        extra, params = _visible(who)
        row = await self.db.fetchone(f"SELECT * FROM fl_threads WHERE thread_id = ?{extra}",
                                     (thread_id, *params))
        return None if row is None else _thread(row)

    async def thread_owner(self, thread_id: str) -> tuple[bool, str | None]:
        """Whether the thread exists, and the key that owns it."""
        row = await self.db.fetchone("SELECT owner_key FROM fl_threads WHERE thread_id = ?",
                                     (thread_id,))
        return (False, None) if row is None else (True, row["owner_key"])

    async def claim_thread(self, thread_id: str, who: Principal, graph_id: str,
                           metadata: dict[str, Any]) -> bool:
        """Make sure `thread_id` exists as `who`'s thread (made with `metadata` if new);
        False when it is another key's."""
        exists, owner = await self.thread_owner(thread_id)
        if not exists:
            now = now_iso()
            await self.db.execute(
                "INSERT INTO fl_threads (thread_id, created_at, updated_at, state_updated_at, "
                "metadata, status, config, graph_id, owner_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (thread_id) DO NOTHING",
                (thread_id, now, now, now, json.dumps({**metadata, "graph_id": graph_id}),
                 "idle", "{}", graph_id, who.owner))
            exists, owner = await self.thread_owner(thread_id)  # a racing request's insert
        return exists and (owner == who.owner or who.sees(owner))

    async def thread_exists(self, thread_id: str) -> bool:
        row = await self.db.fetchone("SELECT thread_id FROM fl_threads WHERE thread_id = ?",
                                     (thread_id,))
        return row is not None

    async def update_thread(
        self, thread_id: str, *, status: str | None = None,
        metadata: dict[str, Any] | None = None, graph_id: str | None = None,
        state_changed: bool = False, who: Principal | None = None,
    ) -> None:
        thread = await self.get_thread(thread_id, who)
        meta = {**thread["metadata"], **(metadata or {})}
        if graph_id:
            meta["graph_id"] = graph_id
        now = now_iso()
        await self.db.execute(
            "UPDATE fl_threads SET status = ?, metadata = ?, updated_at = ?, "
            "state_updated_at = ?, graph_id = COALESCE(?, graph_id) WHERE thread_id = ?",
            (status or thread["status"], json.dumps(meta), now,
             now if state_changed else thread["state_updated_at"], graph_id, thread_id),
        )

    async def search_threads(
        self, *, metadata: dict[str, Any] | None = None, status: str | None = None,
        limit: int | None = 10, offset: int = 0, ids: list[str] | None = None,
        who: Principal | None = None, sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> list[dict[str, Any]]:
        """Threads `who` may see, filtered, sorted (`sort_by` one of _THREAD_SORTS, newest
        created first by default), `limit` of them from `offset` (None: all)."""
        where, params = self._thread_filter(status, ids, who)
        column = sort_by if sort_by in _THREAD_SORTS else "created_at"
        order = "ASC" if sort_order == "asc" else "DESC"
        rows = await self.db.fetchall(
            f"SELECT * FROM fl_threads WHERE {where} ORDER BY {column} {order}, thread_id "
            f"{order}", params)
        out = [t for t in map(_thread, rows) if _matches(t["metadata"], metadata)]
        return out[offset:] if limit is None else out[offset:offset + limit]

    async def count_threads(self, *, metadata: dict[str, Any] | None = None,
                            status: str | None = None, ids: list[str] | None = None,
                            who: Principal | None = None) -> int:
        where, params = self._thread_filter(status, ids, who)
        if not metadata:
            row = await self.db.fetchone(
                f"SELECT COUNT(*) AS n FROM fl_threads WHERE {where}", params)
            return int(row["n"]) if row else 0
        rows = await self.db.fetchall(f"SELECT metadata FROM fl_threads WHERE {where}", params)
        return sum(1 for r in rows if _matches(json.loads(r["metadata"]), metadata))

    @staticmethod
    def _thread_filter(status: str | None, ids: list[str] | None,
                       who: Principal | None) -> tuple[str, list[Any]]:
        extra, params = _visible(who)
        where = f"1 = 1{extra}"
        if status is not None:
            where += " AND status = ?"
            params.append(status)
        if ids is not None:
            if not ids:
                return "1 = 0", []
            where += f" AND thread_id IN ({', '.join('?' for _ in ids)})"
            params += list(ids)
        return where, params

    async def delete_thread(self, thread_id: str, who: Principal | None = None) -> None:
        extra, params = _visible(who)
        if not await self.db.execute(f"DELETE FROM fl_threads WHERE thread_id = ?{extra}",
                                     (thread_id, *params)):
            raise NotFound(f"thread {thread_id} not found")
        await self.db.execute("DELETE FROM fl_runs WHERE thread_id = ?", (thread_id,))

    # -- runs ----------------------------------------------------------------------------

    async def create_run(
        self, run_id: str, thread_id: str, assistant_id: str, *, metadata: dict[str, Any],
        kwargs: dict[str, Any], multitask_strategy: str, owner: str,
        owner_key: str | None = None,
    ) -> dict[str, Any]:
        row, statement = _run_insert(run_id, thread_id, assistant_id, metadata=metadata,
                                     kwargs=kwargs, multitask_strategy=multitask_strategy,
                                     owner=owner, owner_key=owner_key)
        await self.db.execute(*statement)
        return _run(row)

    async def start_run(
        self, run_id: str, thread_id: str, assistant_id: str, *, metadata: dict[str, Any],
        kwargs: dict[str, Any], multitask_strategy: str, owner: str, graph_id: str,
        thread: dict[str, Any] | None, create_thread: bool = False, status: str = "pending",
        owner_key: str | None = None, claim: bool = False,
    ) -> dict[str, Any]:
        """One transaction for a new run: its row (`status`: pending, or running when it
        starts at once), and its thread marked busy for `graph_id` (`thread`: the thread as
        read before; `create_thread`: insert it, or leave an existing one as it is but
        busy; `owner_key`: the API key the run, and a thread it creates, belong to).
        `claim`: a running run is stored pending instead when another run of its thread
        runs on a server sharing the database (the returned row says which)."""
        row, insert_run = _run_insert(run_id, thread_id, assistant_id, metadata=metadata,
                                      kwargs=kwargs, multitask_strategy=multitask_strategy,
                                      owner=owner, status=status, owner_key=owner_key)
        now = row["created_at"]
        statements: list[Statement] = []
        if create_thread:
            statements.append((
                "INSERT INTO fl_threads (thread_id, created_at, updated_at, state_updated_at, "
                "metadata, status, config, graph_id, owner_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (thread_id) DO NOTHING",
                (thread_id, now, now, now,
                 json.dumps({"graph_id": graph_id, "assistant_id": assistant_id}), "busy",
                 "{}", graph_id, owner_key)))
        statements.append(insert_run)
        stamp = {"graph_id": graph_id, "assistant_id": assistant_id}  # as the reference does
        if thread is not None and all(thread["metadata"].get(k) == v for k, v in stamp.items()):
            statements.append((
                "UPDATE fl_threads SET status = ?, updated_at = ?, graph_id = ? "
                "WHERE thread_id = ?", ("busy", now, graph_id, thread_id)))
        elif thread is not None:
            meta = {**thread["metadata"], **stamp}
            statements.append((
                "UPDATE fl_threads SET status = ?, metadata = ?, updated_at = ?, graph_id = ? "
                "WHERE thread_id = ?", ("busy", json.dumps(meta), now, graph_id, thread_id)))
        elif create_thread:  # created by someone else in the meantime: busy, ours
            statements.append((
                "UPDATE fl_threads SET status = ?, updated_at = ?, graph_id = ? "
                "WHERE thread_id = ?", ("busy", now, graph_id, thread_id)))
        if claim and status == "running":
            if not await self.db.batch_claiming(statements, thread_id, run_id):
                row["status"] = "pending"
        else:
            await self.db.batch(statements)
        return _run(row)

    async def finish_run(self, thread_id: str, run_id: str, *, status: str,
                         thread_status: str, delete_run: bool = False,
                         delete_thread: bool = False) -> None:
        """One transaction at a run's end: its status (or its row gone), and its thread's
        status (or the thread and its runs gone)."""
        now = now_iso()
        if delete_thread:
            statements: list[Statement] = [
                ("DELETE FROM fl_threads WHERE thread_id = ?", (thread_id,)),
                ("DELETE FROM fl_runs WHERE thread_id = ?", (thread_id,))]
        else:
            statements = [
                ("DELETE FROM fl_runs WHERE run_id = ? AND thread_id = ?", (run_id, thread_id))
                if delete_run else
                ("UPDATE fl_runs SET status = ?, updated_at = ? WHERE run_id = ?",
                 (status, now, run_id)),
                ("UPDATE fl_threads SET status = ?, updated_at = ?, state_updated_at = ? "
                 "WHERE thread_id = ?", (thread_status, now, now, thread_id))]
        await self.db.batch(statements)

    async def claim_run(self, thread_id: str, run_id: str, owner: str) -> bool:
        """Start executing `run_id` unless another run of its thread is running (on any
        server sharing the database)."""
        return await self.db.claim_run(thread_id, run_id, owner, now_iso())

    async def set_run_status(self, run_id: str, status: str) -> None:
        await self.db.execute("UPDATE fl_runs SET status = ?, updated_at = ? WHERE run_id = ?",
                              (status, now_iso(), run_id))

    async def find_run(self, run_id: str, who: Principal | None = None
                       ) -> dict[str, Any] | None:
        """A run by id alone, if `who` may see it (its thread's owner decides)."""
        extra, params = _visible(who, "t.owner_key")
        row = await self.db.fetchone(
            "SELECT r.* FROM fl_runs r JOIN fl_threads t ON t.thread_id = r.thread_id "
            f"WHERE r.run_id = ?{extra}", (run_id, *params))
        return None if row is None else _run(row)

    async def get_run(self, thread_id: str, run_id: str) -> dict[str, Any]:
        row = await self.db.fetchone(
            "SELECT * FROM fl_runs WHERE run_id = ? AND thread_id = ?", (run_id, thread_id))
        if row is None:
            raise NotFound(f"run {run_id} not found on thread {thread_id}")
        return _run(row)

    async def list_runs(self, thread_id: str, *, limit: int = 10, offset: int = 0,
                        status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM fl_runs WHERE thread_id = ?"
        params: list[Any] = [thread_id]
        if status:
            sql += " AND status = ?"
            params.append(status)
        sql += " ORDER BY created_at DESC LIMIT ? OFFSET ?"
        return [_run(r) for r in await self.db.fetchall(sql, [*params, limit, offset])]

    async def active_runs(self, thread_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT * FROM fl_runs WHERE thread_id = ? AND status IN ('pending', 'running') "
            "ORDER BY created_at", (thread_id,))
        return [_run(r) for r in rows]

    async def runs_to_cancel(self, who: Principal | None, *, status: str | None = None,
                             thread_id: str | None = None) -> list[dict[str, Any]]:
        """The pending and/or running runs `who` may see: with `status` ("pending",
        "running", "all") on every thread, else on `thread_id`."""
        wanted = ("pending", "running") if status in (None, "all") else (status,)
        extra, params = _visible(who, "t.owner_key")
        sql = ("SELECT r.* FROM fl_runs r JOIN fl_threads t ON t.thread_id = r.thread_id "
               f"WHERE r.status IN ({', '.join('?' for _ in wanted)}){extra}")
        args: list[Any] = [*wanted, *params]
        if thread_id is not None:
            sql += " AND r.thread_id = ?"
            args.append(thread_id)
        return [_run(r) for r in await self.db.fetchall(sql + " ORDER BY r.created_at", args)]

    async def delete_run(self, thread_id: str, run_id: str) -> None:
        if not await self.db.execute("DELETE FROM fl_runs WHERE run_id = ? AND thread_id = ?",
                                     (run_id, thread_id)):
            raise NotFound(f"run {run_id} not found on thread {thread_id}")

    async def mark_orphaned_runs(self, owner: str) -> int:
        """Runs left pending/running by a server that is gone: marked `error`."""
        return await self.db.execute(
            "UPDATE fl_runs SET status = 'error', updated_at = ? WHERE status IN "
            "('pending', 'running') AND (owner IS NULL OR owner != ?)", (now_iso(), owner))

    # -- assistants (user-created; system ones come from the flow catalog) ------------------

    async def create_assistant(self, body: dict[str, Any],
                               who: Principal | None = None) -> dict[str, Any]:
        now = now_iso()
        await self.db.execute(
            "INSERT INTO fl_assistants (assistant_id, graph_id, name, description, config, "
            "context, metadata, version, created_at, updated_at, owner_key) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
            (body["assistant_id"], body["graph_id"], body["name"], body.get("description"),
             json.dumps(body.get("config") or {}), json.dumps(body.get("context") or {}),
             json.dumps(body.get("metadata") or {}), now, now,
             who.owner if who is not None else None),
        )
        created = await self.get_assistant(body["assistant_id"])
        await self._save_version(created)
        return created

    async def _save_version(self, assistant: dict[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO fl_assistant_versions (assistant_id, version, body) VALUES (?, ?, ?)",
            (assistant["assistant_id"], assistant["version"], json.dumps(assistant)))

    async def get_assistant(self, assistant_id: str,
                            who: Principal | None = None) -> dict[str, Any]:
        extra, params = _visible(who)
        row = await self.db.fetchone(
            f"SELECT * FROM fl_assistants WHERE assistant_id = ?{extra}",
            (assistant_id, *params))
        if row is None:
            raise NotFound(f"assistant {assistant_id} not found")
        return _assistant(row)

    async def find_assistant(self, assistant_id: str,
                             who: Principal | None = None) -> dict[str, Any] | None:
        try:
            return await self.get_assistant(assistant_id, who)
        except NotFound:
            return None

    async def assistant_exists(self, assistant_id: str) -> bool:
        row = await self.db.fetchone(
            "SELECT assistant_id FROM fl_assistants WHERE assistant_id = ?", (assistant_id,))
        return row is not None

    async def update_assistant(self, assistant_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        current = await self.get_assistant(assistant_id)
        merged = {**current, **{k: v for k, v in patch.items() if v is not None}}
        newest = await self.db.fetchone(
            "SELECT MAX(version) AS v FROM fl_assistant_versions WHERE assistant_id = ?",
            (assistant_id,))
        merged["version"] = max(current["version"], (newest or {}).get("v") or 0) + 1
        await self.db.execute(
            "UPDATE fl_assistants SET graph_id = ?, name = ?, description = ?, config = ?, "
            "context = ?, metadata = ?, version = ?, updated_at = ? WHERE assistant_id = ?",
            (merged["graph_id"], merged["name"], merged["description"],
             json.dumps(merged["config"]), json.dumps(merged["context"]),
             json.dumps(merged["metadata"]), merged["version"], now_iso(), assistant_id),
        )
        updated = await self.get_assistant(assistant_id)
        await self._save_version(updated)
        return updated

    async def assistant_versions(self, assistant_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT body FROM fl_assistant_versions WHERE assistant_id = ? ORDER BY version DESC",
            (assistant_id,))
        return [json.loads(r["body"]) for r in rows]

    async def set_latest_version(self, assistant_id: str, version: int) -> dict[str, Any]:
        """Make an earlier (or later) saved version the assistant's current one."""
        row = await self.db.fetchone(
            "SELECT body FROM fl_assistant_versions WHERE assistant_id = ? AND version = ?",
            (assistant_id, version))
        if row is None:
            raise NotFound(f"assistant {assistant_id} has no version {version}")
        saved = json.loads(row["body"])
        await self.db.execute(
            "UPDATE fl_assistants SET graph_id = ?, name = ?, description = ?, config = ?, "
            "context = ?, metadata = ?, version = ?, updated_at = ? WHERE assistant_id = ?",
            (saved["graph_id"], saved["name"], saved.get("description"),
             json.dumps(saved.get("config") or {}), json.dumps(saved.get("context") or {}),
             json.dumps(saved.get("metadata") or {}), version, now_iso(), assistant_id))
        return await self.get_assistant(assistant_id)

    async def delete_assistant(self, assistant_id: str) -> None:
        if not await self.db.execute("DELETE FROM fl_assistants WHERE assistant_id = ?",
                                     (assistant_id,)):
            raise NotFound(f"assistant {assistant_id} not found")
        await self.db.execute("DELETE FROM fl_assistant_versions WHERE assistant_id = ?",
                              (assistant_id,))

    async def list_assistants(self, who: Principal | None = None) -> list[dict[str, Any]]:
        extra, params = _visible(who)
        rows = await self.db.fetchall(
            f"SELECT * FROM fl_assistants WHERE 1 = 1{extra} ORDER BY created_at", params)
        return [_assistant(r) for r in rows]


class FlowDocuments:
    """Flows saved through the API (their JSON documents), by id."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, flow_id: str, document: str) -> None:
        now = now_iso()
        if await self.db.execute("UPDATE fl_flows SET document = ?, updated_at = ? "
                                 "WHERE flow_id = ?", (document, now, flow_id)):
            return
        await self.db.execute("INSERT INTO fl_flows (flow_id, document, updated_at) "
                              "VALUES (?, ?, ?)", (flow_id, document, now))

    async def updated(self) -> dict[str, str]:
        """When each saved flow was last saved, by id."""
        rows = await self.db.fetchall("SELECT flow_id, updated_at FROM fl_flows")
        return {r["flow_id"]: r["updated_at"] for r in rows}

    async def all(self) -> list[tuple[str, str]]:
        rows = await self.db.fetchall("SELECT flow_id, document FROM fl_flows ORDER BY flow_id")
        return [(r["flow_id"], r["document"]) for r in rows]

    async def delete(self, flow_id: str) -> bool:
        return bool(await self.db.execute("DELETE FROM fl_flows WHERE flow_id = ?", (flow_id,)))
