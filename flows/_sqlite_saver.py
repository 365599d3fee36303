"""A SQLite checkpointer whose async methods run on the caller's thread.

langgraph's `AsyncSqliteSaver` sends every cursor call (execute, fetchone, fetchall,
close) through aiosqlite's worker thread: a `get_tuple` is about six thread hops, a run
of a two-node graph some twenty. A checkpoint read or write on a WAL database with
`synchronous=NORMAL` takes tens of microseconds, far less than a hop, so this saver does
the work in place: the same tables and queries as `SqliteSaver` (files stay
interchangeable), its lock kept, nothing moved to a thread.

Example:
    >>> with LoopSqliteSaver.from_conn_string("checkpoints.sqlite") as saver:
    ...     graph = builder.compile(checkpointer=saver)
    ...     await graph.ainvoke(inputs, {"configurable": {"thread_id": "t1"}})
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
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

__all__ = ["LoopSqliteSaver"]


class LoopSqliteSaver(SqliteSaver):
    """`SqliteSaver` with its async API done in place (see the module docstring)."""

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
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self.get_delta_channel_history(config=config, channels=channels)
