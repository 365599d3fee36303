"""Threads, runs and assistants as the LangGraph API shapes them, kept in the database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from flowloom.backends.server.db import Database, Statement
from flowloom.backends.server.errors import Conflict, NotFound

__all__ = ["FlowDocuments", "ServerStore", "now_iso"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _matches(metadata: dict[str, Any], wanted: dict[str, Any] | None) -> bool:
    return not wanted or all(metadata.get(k) == v for k, v in wanted.items())


def _run_insert(
    run_id: str, thread_id: str, assistant_id: str, *, metadata: dict[str, Any],
    kwargs: dict[str, Any], multitask_strategy: str, owner: str, status: str = "pending",
) -> tuple[dict[str, Any], Statement]:
    """A new run's row (as stored) and the statement that inserts it."""
    now = now_iso()
    row = {"run_id": run_id, "thread_id": thread_id, "assistant_id": assistant_id,
           "status": status, "metadata": json.dumps(metadata),
           "kwargs": json.dumps(kwargs, default=str), "multitask_strategy": multitask_strategy,
           "created_at": now, "updated_at": now, "owner": owner}
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
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- threads -------------------------------------------------------------------------

    async def create_thread(
        self, thread_id: str | None, metadata: dict[str, Any] | None, if_exists: str = "raise",
        graph_id: str | None = None,
    ) -> dict[str, Any]:
        thread_id = thread_id or str(uuid.uuid4())
        existing = await self.db.fetchone("SELECT * FROM fl_threads WHERE thread_id = ?",
                                          (thread_id,))
        if existing is not None:
            if if_exists == "do_nothing":
                return _thread(existing)
            raise Conflict(f"thread {thread_id} already exists")
        now = now_iso()
        meta = dict(metadata or {})
        if graph_id:
            meta.setdefault("graph_id", graph_id)
        await self.db.execute(
            "INSERT INTO fl_threads (thread_id, created_at, updated_at, state_updated_at, "
            "metadata, status, config, graph_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (thread_id, now, now, now, json.dumps(meta), "idle", "{}", graph_id),
        )
        return await self.get_thread(thread_id)

    async def get_thread(self, thread_id: str) -> dict[str, Any]:
        row = await self.db.fetchone("SELECT * FROM fl_threads WHERE thread_id = ?",
                                     (thread_id,))
        if row is None:
            raise NotFound(f"thread {thread_id} not found")
        return _thread(row)

    async def find_thread(self, thread_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchone("SELECT * FROM fl_threads WHERE thread_id = ?",
                                     (thread_id,))
        return None if row is None else _thread(row)

    async def thread_exists(self, thread_id: str) -> bool:
        row = await self.db.fetchone("SELECT thread_id FROM fl_threads WHERE thread_id = ?",
                                     (thread_id,))
        return row is not None

    async def update_thread(
        self, thread_id: str, *, status: str | None = None,
        metadata: dict[str, Any] | None = None, graph_id: str | None = None,
        state_changed: bool = False,
    ) -> None:
        thread = await self.get_thread(thread_id)
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
        limit: int = 10, offset: int = 0, ids: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        rows = await self.db.fetchall("SELECT * FROM fl_threads ORDER BY created_at DESC")
        out = [_thread(r) for r in rows]
        out = [t for t in out if _matches(t["metadata"], metadata)
               and (status is None or t["status"] == status)
               and (ids is None or t["thread_id"] in ids)]
        return out[offset:offset + limit]

    async def delete_thread(self, thread_id: str) -> None:
        if not await self.db.execute("DELETE FROM fl_threads WHERE thread_id = ?", (thread_id,)):
            raise NotFound(f"thread {thread_id} not found")
        await self.db.execute("DELETE FROM fl_runs WHERE thread_id = ?", (thread_id,))

    # -- runs ----------------------------------------------------------------------------

    async def create_run(
        self, run_id: str, thread_id: str, assistant_id: str, *, metadata: dict[str, Any],
        kwargs: dict[str, Any], multitask_strategy: str, owner: str,
    ) -> dict[str, Any]:
        row, statement = _run_insert(run_id, thread_id, assistant_id, metadata=metadata,
                                     kwargs=kwargs, multitask_strategy=multitask_strategy,
                                     owner=owner)
        await self.db.execute(*statement)
        return _run(row)

    async def start_run(
        self, run_id: str, thread_id: str, assistant_id: str, *, metadata: dict[str, Any],
        kwargs: dict[str, Any], multitask_strategy: str, owner: str, graph_id: str,
        thread: dict[str, Any] | None, create_thread: bool = False, status: str = "pending",
    ) -> dict[str, Any]:
        """One transaction for a new run: its row (`status`: pending, or running when it
        starts at once), and its thread marked busy for `graph_id` (`thread`: the thread as
        read before; `create_thread`: insert it, or leave an existing one as it is but
        busy)."""
        row, insert_run = _run_insert(run_id, thread_id, assistant_id, metadata=metadata,
                                      kwargs=kwargs, multitask_strategy=multitask_strategy,
                                      owner=owner, status=status)
        now = row["created_at"]
        statements: list[Statement] = []
        if create_thread:
            statements.append((
                "INSERT INTO fl_threads (thread_id, created_at, updated_at, state_updated_at, "
                "metadata, status, config, graph_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (thread_id) DO NOTHING",
                (thread_id, now, now, now, json.dumps({"graph_id": graph_id}), "busy", "{}",
                 graph_id)))
        statements.append(insert_run)
        if thread is not None and thread["metadata"].get("graph_id") == graph_id:
            statements.append((
                "UPDATE fl_threads SET status = ?, updated_at = ?, graph_id = ? "
                "WHERE thread_id = ?", ("busy", now, graph_id, thread_id)))
        elif thread is not None:
            meta = {**thread["metadata"], "graph_id": graph_id}
            statements.append((
                "UPDATE fl_threads SET status = ?, metadata = ?, updated_at = ?, graph_id = ? "
                "WHERE thread_id = ?", ("busy", json.dumps(meta), now, graph_id, thread_id)))
        elif create_thread:  # created by someone else in the meantime: busy, ours
            statements.append((
                "UPDATE fl_threads SET status = ?, updated_at = ?, graph_id = ? "
                "WHERE thread_id = ?", ("busy", now, graph_id, thread_id)))
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

    async def set_run_status(self, run_id: str, status: str) -> None:
        await self.db.execute("UPDATE fl_runs SET status = ?, updated_at = ? WHERE run_id = ?",
                              (status, now_iso(), run_id))

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

    async def create_assistant(self, body: dict[str, Any]) -> dict[str, Any]:
        now = now_iso()
        await self.db.execute(
            "INSERT INTO fl_assistants (assistant_id, graph_id, name, description, config, "
            "context, metadata, version, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            (body["assistant_id"], body["graph_id"], body["name"], body.get("description"),
             json.dumps(body.get("config") or {}), json.dumps(body.get("context") or {}),
             json.dumps(body.get("metadata") or {}), now, now),
        )
        created = await self.get_assistant(body["assistant_id"])
        await self._save_version(created)
        return created

    async def _save_version(self, assistant: dict[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO fl_assistant_versions (assistant_id, version, body) VALUES (?, ?, ?)",
            (assistant["assistant_id"], assistant["version"], json.dumps(assistant)))

    async def get_assistant(self, assistant_id: str) -> dict[str, Any]:
        row = await self.db.fetchone("SELECT * FROM fl_assistants WHERE assistant_id = ?",
                                     (assistant_id,))
        if row is None:
            raise NotFound(f"assistant {assistant_id} not found")
        return _assistant(row)

    async def find_assistant(self, assistant_id: str) -> dict[str, Any] | None:
        try:
            return await self.get_assistant(assistant_id)
        except NotFound:
            return None

    async def update_assistant(self, assistant_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        current = await self.get_assistant(assistant_id)
        merged = {**current, **{k: v for k, v in patch.items() if v is not None}}
        merged["version"] = current["version"] + 1
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

    async def delete_assistant(self, assistant_id: str) -> None:
        if not await self.db.execute("DELETE FROM fl_assistants WHERE assistant_id = ?",
                                     (assistant_id,)):
            raise NotFound(f"assistant {assistant_id} not found")
        await self.db.execute("DELETE FROM fl_assistant_versions WHERE assistant_id = ?",
                              (assistant_id,))

    async def list_assistants(self) -> list[dict[str, Any]]:
        rows = await self.db.fetchall("SELECT * FROM fl_assistants ORDER BY created_at")
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

    async def all(self) -> list[tuple[str, str]]:
        rows = await self.db.fetchall("SELECT flow_id, document FROM fl_flows ORDER BY flow_id")
        return [(r["flow_id"], r["document"]) for r in rows]

    async def delete(self, flow_id: str) -> bool:
        return bool(await self.db.execute("DELETE FROM fl_flows WHERE flow_id = ?", (flow_id,)))
