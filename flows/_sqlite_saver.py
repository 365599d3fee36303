"""A SQLite checkpointer whose async methods run on the caller's thread.

langgraph's `AsyncSqliteSaver` sends every cursor call (execute, fetchone, fetchall,
close) through aiosqlite's worker thread: a `get_tuple` is about six thread hops, a run
of a two-node graph some twenty. A checkpoint read or write on a WAL database with
`synchronous=NORMAL` takes tens of microseconds, far less than a hop, so this saver does
the work in place: the same tables and queries as `SqliteSaver` (files stay
interchangeable), its lock kept, nothing moved to a thread.

Writes made through the async API are committed in groups (`GroupCommit`): under
concurrent runs several share one commit, and a write still returns only once committed.

Example:
    >>> with LoopSqliteSaver.from_conn_string("checkpoints.sqlite") as saver:
    ...     graph = builder.compile(checkpointer=saver)
    ...     await graph.ainvoke(inputs, {"configurable": {"thread_id": "t1"}})
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.sqlite import SqliteSaver

from flowloom.flows._group_commit import GroupCommit

__all__ = ["LoopSqliteSaver"]


class LoopSqliteSaver(SqliteSaver):
    """`SqliteSaver` with its async API done in place and its async writes committed in
    groups (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, **kwargs: Any) -> None:
        super().__init__(conn, **kwargs)
        self._deferring = threading.local()  # set while an async write runs its SQL
        self.group = GroupCommit(conn, self.lock)

    @contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        with self.lock:
            self.setup()
            cur = self.conn.cursor()
            try:
                yield cur
            finally:
                if transaction and not getattr(self._deferring, "on", False):
                    self.conn.commit()
                cur.close()

    async def _grouped(self, write: Any, *args: Any) -> Any:
        """Run `write` (a sync method) without its commit, then wait for the group's."""
        self._deferring.on = True
        try:
            result = write(*args)
        finally:
            self._deferring.on = False
            # as SqliteSaver.cursor does, what ran is committed even when `write` failed
            group = self.group.schedule()
        await asyncio.shield(group)
        return result

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,  # noqa: A002 - the base class's name
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        # Read it all before yielding: `list` holds the lock while it iterates, and a
        # consumer that awaits between items could let a write on this thread reach for
        # the same lock.
        for item in list(self.list(config, filter=filter, before=before, limit=limit)):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._grouped(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._grouped(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self.get_delta_channel_history(config=config, channels=channels)
