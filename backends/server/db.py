"""A small async SQL layer over SQLite (default) or PostgreSQL (to scale out).

Queries use `?` placeholders; the Postgres driver gets them as `%s`. Rows come back as
dicts. JSON columns are TEXT, so one schema serves both databases.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from flowloom.flows.checkpoint import (
    POSTGRES_POOL,
    GroupCommit,
    checkpointer_kind,
    postgres_session,
)
from flowloom.flows.home import flowloom_home

__all__ = ["COLUMNS", "Database", "Statement", "open_database"]

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS fl_threads (
        thread_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        state_updated_at TEXT NOT NULL, metadata TEXT NOT NULL, status TEXT NOT NULL,
        config TEXT NOT NULL, graph_id TEXT, owner_key TEXT)""",
    """CREATE TABLE IF NOT EXISTS fl_runs (
        run_id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, assistant_id TEXT NOT NULL,
        status TEXT NOT NULL, metadata TEXT NOT NULL, kwargs TEXT NOT NULL,
        multitask_strategy TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        owner TEXT, owner_key TEXT)""",
    "CREATE INDEX IF NOT EXISTS fl_runs_thread ON fl_runs (thread_id, created_at)",
    """CREATE TABLE IF NOT EXISTS fl_assistants (
        assistant_id TEXT PRIMARY KEY, graph_id TEXT NOT NULL, name TEXT NOT NULL,
        description TEXT, config TEXT NOT NULL, context TEXT NOT NULL, metadata TEXT NOT NULL,
        version INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        owner_key TEXT)""",
    """CREATE TABLE IF NOT EXISTS fl_assistant_versions (
        assistant_id TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (assistant_id, version))""",
    """CREATE TABLE IF NOT EXISTS fl_flows (
        flow_id TEXT PRIMARY KEY, document TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    # crons (crons.py): times are fixed-width UTC ISO text; next_run_at NULL: not firing
    """CREATE TABLE IF NOT EXISTS fl_crons (
        cron_id TEXT PRIMARY KEY, assistant_id TEXT NOT NULL, thread_id TEXT,
        schedule TEXT NOT NULL, timezone TEXT, end_time TEXT, enabled INTEGER NOT NULL,
        on_run_completed TEXT, payload TEXT NOT NULL, metadata TEXT NOT NULL,
        next_run_at TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        owner_key TEXT)""",
    "CREATE INDEX IF NOT EXISTS fl_crons_due ON fl_crons (next_run_at)",
]
# Columns added after a table's first release: (table, column, type). `setup` adds those a
# database made by an older version lacks (rows made before have them NULL).
COLUMNS = [
    ("fl_threads", "owner_key", "TEXT"),  # the API key that owns it (tenancy.py)
    ("fl_runs", "owner_key", "TEXT"),
    ("fl_assistants", "owner_key", "TEXT"),
]
# Indexes over added columns (made once the columns exist).
INDEXES = [
    "CREATE INDEX IF NOT EXISTS fl_threads_owner ON fl_threads (owner_key, created_at)",
]


Statement = tuple[str, Sequence[Any]]


class Database:
    """`execute`, `fetchone`, `fetchall` over one connection (SQLite) or a pool (Postgres);
    `batch` runs several statements as one transaction (one commit)."""

    kind = "base"

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    async def batch(self, statements: Sequence[Statement]) -> list[int]:
        """Run `statements` in order, all or none; their row counts."""
        raise NotImplementedError

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def columns(self, table: str) -> set[str]:
        """The names of `table`'s columns."""
        raise NotImplementedError

    async def add_columns(self, columns: Sequence[tuple[str, str, str]]) -> None:
        """Add each `(table, column, type)` the table lacks (an older database's)."""
        for table, column, kind in columns:
            if column not in await self.columns(table):
                try:
                    await self.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                except Exception:
                    # another server sharing the database added it first
                    if column not in await self.columns(table):
                        raise

    async def batch_claiming(self, statements: Sequence[Statement], thread_id: str,
                             run_id: str) -> bool:
        """`batch`, whose statements insert `run_id` as running; False (and the run left
        pending) when another run of the thread is running on a server sharing the
        database. One server per SQLite file: its own lock orders its runs."""
        await self.batch(statements)
        return True

    async def claim_run(self, thread_id: str, run_id: str, owner: str, now: str) -> bool:
        """Mark `run_id` running if no other run of its thread is running, atomically for
        every server sharing the database; False when one is (its server executes it).
        One server per SQLite file: its own per-thread lock already orders its runs."""
        await self.execute("UPDATE fl_runs SET status = 'running', owner = ?, updated_at = ? "
                           "WHERE run_id = ?", (owner, now, run_id))
        return True

    async def setup(self) -> None:
        for statement in SCHEMA:
            await self.execute(statement)
        await self.add_columns(COLUMNS)
        for statement in INDEXES:
            await self.execute(statement)


class _Sqlite(Database):
    """One sqlite3 connection used in place on the event loop's thread: a statement on a
    WAL database without fsync takes microseconds, less than a hop to a worker thread.

    Commits are grouped: each batch runs in a savepoint of the connection's open
    transaction (all or none, as before), then waits for one commit scheduled for the end
    of the event loop's current pass, shared by every batch of that pass. A commit is
    most of a small write's cost. A call still returns only once its batch is committed.
    """

    kind = "sqlite"

    def __init__(self, conn: sqlite3.Connection, group: GroupCommit | None = None) -> None:
        self.conn = conn
        self.group = group or GroupCommit(conn)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return (await self.batch([(sql, params)]))[0]

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.group.lock:
            return _fetchall(self.conn, sql, tuple(params))

    async def batch(self, statements: Sequence[Statement]) -> list[int]:
        with self.group.lock:
            counts = _batch(self.conn, [(sql, tuple(p)) for sql, p in statements])
        await self.group.commit()
        return counts

    async def columns(self, table: str) -> set[str]:
        return {row["name"] for row in await self.fetchall(f"PRAGMA table_info({table})")}


def _fetchall(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]
              ) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    try:
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _batch(conn: sqlite3.Connection, statements: list[tuple[str, tuple[Any, ...]]]
           ) -> list[int]:
    """Run `statements` in a savepoint of the open transaction (begun if none is):
    all of them or, on an error, none. Committing is the caller's."""
    if not conn.in_transaction:
        conn.execute("BEGIN")
    conn.execute("SAVEPOINT fl_batch")
    counts = []
    try:
        for sql, params in statements:
            counts.append(conn.execute(sql, params).rowcount)
    except BaseException:
        conn.execute("ROLLBACK TO fl_batch")
        conn.execute("RELEASE fl_batch")
        raise
    conn.execute("RELEASE fl_batch")
    return counts


class _Postgres(Database):
    kind = "postgres"

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(sql.replace("?", "%s"), tuple(params))
            return int(cursor.rowcount)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(sql.replace("?", "%s"), tuple(params))
            names = [d.name for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]

    async def columns(self, table: str) -> set[str]:
        rows = await self.fetchall(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_schema = current_schema()", (table,))
        return {row["column_name"] for row in rows}

    async def claim_run(self, thread_id: str, run_id: str, owner: str, now: str) -> bool:
        # one transaction, serialised per thread across servers by an advisory lock held
        # until it commits: check that no other run of the thread runs, then take it
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (thread_id,))
            busy = await (await conn.execute(
                "SELECT 1 FROM fl_runs WHERE thread_id = %s AND status = 'running' "
                "AND run_id <> %s LIMIT 1", (thread_id, run_id))).fetchone()
            if busy is not None:
                return False
            await conn.execute("UPDATE fl_runs SET status = 'running', owner = %s, "
                               "updated_at = %s WHERE run_id = %s", (owner, now, run_id))
            return True

    async def batch_claiming(self, statements: Sequence[Statement], thread_id: str,
                             run_id: str) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (thread_id,))
            busy = await (await conn.execute(
                "SELECT 1 FROM fl_runs WHERE thread_id = %s AND status = 'running' "
                "AND run_id <> %s LIMIT 1", (thread_id, run_id))).fetchone()
            for sql, params in statements:
                await conn.execute(sql.replace("?", "%s"), tuple(params))
            if busy is not None:
                await conn.execute("UPDATE fl_runs SET status = 'pending' WHERE run_id = %s",
                                   (run_id,))
            return busy is None

    async def batch(self, statements: Sequence[Statement]) -> list[int]:
        async with self.pool.connection() as conn, conn.transaction():
            counts = []
            for sql, params in statements:
                cursor = await conn.execute(sql.replace("?", "%s"), tuple(params))
                counts.append(int(cursor.rowcount))
            return counts


@asynccontextmanager
async def open_database(url: str | None, *, home: Path | None = None,
                        checkpointer: Any = None) -> AsyncIterator[Database]:
    """The server's database: `url` as for checkpoints (None: SQLite in the data dir).

    `checkpointer`: the one opened for the same `url`. When both are one SQLite file they
    share its connection (and its group commits): two connections to one file on the
    event loop's thread would wait on each other's write lock."""
    kind = checkpointer_kind(url)
    group = getattr(checkpointer, "group", None)
    db: Database
    if kind == "sqlite" and url is not None and isinstance(group, GroupCommit):
        db = _Sqlite(group.conn, group)
        await db.setup()
        yield db
        return
    if kind == "postgres":
        from psycopg_pool import AsyncConnectionPool

        conninfo = str(url).replace("postgresql+psycopg://", "postgresql://")
        async with AsyncConnectionPool(conninfo, min_size=1, max_size=POSTGRES_POOL,
                                       open=False,
                                       kwargs=postgres_session(autocommit=True)) as pool:
            db = _Postgres(pool)
            await db.setup()
            yield db
        return
    if kind == "memory":
        path = ":memory:"
    elif url is None:
        path = str((home or flowloom_home()) / "server.sqlite")
    else:
        path = url.removeprefix("sqlite:///").removeprefix("sqlite://").removeprefix("sqlite:")
    conn = sqlite3.connect(path, check_same_thread=False)
    db = _Sqlite(conn)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: no fsync per commit (the database stays consistent; a power cut
        # may lose the last commits of run bookkeeping, never corrupt it)
        conn.execute("PRAGMA synchronous=NORMAL")
        await db.setup()
        yield db
    finally:
        db.group.flush()  # a group whose commit had not come round yet
        conn.close()
