"""Checkpointers for threads: SQLite under the data dir by default, Postgres by URL.

Example:
    >>> async with open_checkpointer("postgresql://127.0.0.1:5432/test") as saver:
    ...     graph = compile_flow(flow, ctx=ctx, checkpointer=saver)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver

from flowloom.flows._group_commit import GroupCommit
from flowloom.flows.errors import FlowError
from flowloom.flows.home import flowloom_home

__all__ = ["GroupCommit", "checkpointer_kind", "open_checkpointer"]


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

        conn = url.replace("postgresql+psycopg://", "postgresql://")  # type: ignore[union-attr]
        async with AsyncExitStack() as stack:
            try:
                pg = await stack.enter_async_context(AsyncPostgresSaver.from_conn_string(conn))
                await pg.setup()
            except (OSError, psycopg.OperationalError) as exc:
                raise FlowError(f"cannot connect to PostgreSQL at {url}: {exc}") from None
            yield pg
