"""Checkpointers for threads: SQLite under the data dir by default, Postgres by URL.

Example:
    >>> async with open_checkpointer("postgresql://127.0.0.1:5432/test") as saver:
    ...     graph = compile_flow(flow, ctx=ctx, checkpointer=saver)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from flowloom.flows._group_commit import GroupCommit
from flowloom.flows.errors import FlowError
from flowloom.flows.home import flowloom_home

__all__ = ["POSTGRES_POOL", "GroupCommit", "checkpointer_kind", "open_checkpointer",
           "postgres_session"]


POSTGRES_POOL = 16  # connections per server process, for checkpoints (and as many for runs)
SYNC_COMMIT_ENV = "FLOWLOOM_PG_SYNCHRONOUS_COMMIT"


def postgres_session(**kwargs: Any) -> dict[str, Any]:
    """psycopg connection kwargs for flowloom's Postgres connections. Commits don't wait
    for the WAL flush (`synchronous_commit=off`), as flowloom's SQLite runs with
    `synchronous=NORMAL`: a crash of the database server may lose the last commits, never
    corrupt anything. `FLOWLOOM_PG_SYNCHRONOUS_COMMIT=on` makes every commit durable."""
    mode = os.environ.get(SYNC_COMMIT_ENV, "off")
    if mode not in ("on", "off", "local", "remote_write", "remote_apply"):
        raise FlowError(f"{SYNC_COMMIT_ENV}={mode!r}: use on, off, local, remote_write or "
                        "remote_apply")
    return {**kwargs, "options": f"-c synchronous_commit={mode}"}


def checkpointer_kind(url: str | None) -> str:
    """'sqlite', 'postgres' or 'memory' for a database URL (None: SQLite in the data dir)."""
    if url is None or url.startswith("sqlite:") or url.endswith((".sqlite", ".db")):
        return "sqlite"
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return "postgres"
    if url == "memory":
        return "memory"
    raise FlowError(
        f"unsupported database URL {url!r}: use sqlite:///PATH, postgresql://... or memory"
    )


def _sqlite_path(url: str | None, home: Path | None) -> Path:
    if url is None:
        return (home or flowloom_home()) / "checkpoints.sqlite"
    path = url.removeprefix("sqlite:///").removeprefix("sqlite://").removeprefix("sqlite:")
    return Path(path).expanduser()


@asynccontextmanager
async def open_checkpointer(
    url: str | None = None, *, home: Path | None = None
) -> AsyncIterator[BaseCheckpointSaver]:
    """Open (and set up) the checkpointer for `url`; closed on exit."""
    kind = checkpointer_kind(url)
    if kind == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
    elif kind == "sqlite":
        from flowloom.flows._sqlite_saver import LoopSqliteSaver

        path = _sqlite_path(url, home)
        path.parent.mkdir(parents=True, exist_ok=True)
        with LoopSqliteSaver.from_conn_string(str(path)) as saver:
            # WAL, and no fsync per commit: a crashed process loses nothing; a power cut
            # may lose the last commits, never corrupts the file (SQLite's guarantee)
            saver.conn.execute("PRAGMA journal_mode=WAL")
            saver.conn.execute("PRAGMA synchronous=NORMAL")
            saver.setup()
            try:
                yield saver
            finally:
                saver.group.flush()  # a group whose commit had not come round yet
    else:
        try:
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        except ImportError:
            raise FlowError(
                "PostgreSQL checkpoints need the postgres extra: pip install 'flowloom[postgres]'"
            ) from None
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        conn = url.replace("postgresql+psycopg://", "postgresql://")  # type: ignore[union-attr]
        async with AsyncExitStack() as stack:
            try:
                # reach the server once first: a pool would retry for its whole timeout
                await (await psycopg.AsyncConnection.connect(conn, connect_timeout=10)).close()
                # a pool, not one connection: concurrent runs write their checkpoints side
                # by side instead of queueing behind one connection's lock
                pool = await stack.enter_async_context(AsyncConnectionPool(
                    conn, min_size=1, max_size=POSTGRES_POOL, open=False,
                    kwargs=postgres_session(autocommit=True, prepare_threshold=0,
                                            row_factory=dict_row)))
                await pool.wait(timeout=30)
                pg = AsyncPostgresSaver(conn=pool)  # type: ignore[arg-type]
                await pg.setup()
            except (OSError, psycopg.OperationalError, TimeoutError) as exc:
                raise FlowError(f"cannot connect to PostgreSQL at {url}: {exc}") from None
            yield pg
