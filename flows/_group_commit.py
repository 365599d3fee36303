"""Group commits on one SQLite connection used in place on the event loop's thread.

A commit is most of a small write's cost. Writers on one connection (the checkpointer,
the server's run bookkeeping) run their statements in its open transaction, then
`await group.commit()`: one commit, scheduled for the end of the event loop's current
pass, serves every write made in that pass. A write still returns only once committed.

Example:
    >>> group = GroupCommit(conn)
    >>> conn.execute("INSERT INTO t VALUES (?)", (1,))
    >>> await group.commit()
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

__all__ = ["GroupCommit"]


class GroupCommit:
    """Commits on one connection, grouped: `await group.commit()` after a write waits for
    one commit scheduled for the end of the event loop's current pass, which every write
    made on the connection in that pass shares (the server's run bookkeeping and the
    checkpointer share it when they share a database file). If the commit fails it is
    rolled back, and every write of the group gets the error."""

    def __init__(self, conn: sqlite3.Connection, lock: Any = None) -> None:
        self.conn = conn
        self.lock = lock or threading.Lock()
        self._pending: asyncio.Future[None] | None = None

    def schedule(self) -> asyncio.Future[None]:
        """The pending group commit, scheduled if none is."""
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.create_future()
            loop.call_soon(self._run_if_pending, self._pending)
        return self._pending

    async def commit(self) -> None:
        await asyncio.shield(self.schedule())

    def flush(self) -> None:
        """Commit now (before the connection closes); the pending group is done."""
        if self._pending is not None or self.conn.in_transaction:
            self._run()

    def _run_if_pending(self, group: asyncio.Future[None]) -> None:
        if self._pending is group:  # not flushed in the meantime
            self._run()

    def _run(self) -> None:
        done, self._pending = self._pending, None
        try:
            with self.lock:
                self.conn.commit()
        except BaseException as exc:
            with self.lock:
                self.conn.rollback()
            if done is None:
                raise
            done.set_exception(exc)
            done.exception()  # retrieved: a group nobody still waits on logs nothing
        else:
            if done is not None:
                done.set_result(None)
