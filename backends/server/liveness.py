"""Which servers are alive, and what happens to the runs of one that died.

Every server process writes a row in `fl_server_beats` and refreshes its heartbeat every
`interval` seconds. A run is owned by the process that executes it (`fl_runs.owner`), so
when a process dies its pending and running runs would stay "running" forever. They are
found and marked `error` (and their threads `error`, the state they were left in):

- SQLite: one server per database file, so at start every unfinished run not its own is
  orphaned;
- Postgres (several servers): a run whose owner has not beaten for `stale` seconds (or
  has no row at all) is orphaned; every live server reaps them on each heartbeat, so the
  runs of a crashed peer are marked within `stale + interval` seconds.

Nothing is lost: the run's checkpoints stay, and a new run on the thread with no input
resumes from the last one (LangGraph continues with the nodes that had not finished).
A marked run says so in its metadata, under `__error__` (the shape of a failed
`/runs/wait` answer): `{"error": "ServerStopped", "message": ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time

from flowloom.backends.server.db import Database

__all__ = ["STOPPED", "Liveness"]

logger = logging.getLogger("flowloom.server")

STOPPED = {"error": "ServerStopped",
           "message": "the server executing this run stopped (it crashed or was killed) "
                      "before the run finished; the thread keeps its last checkpoint: a new "
                      "run on the thread with no input resumes from it"}
"""What a run marked here carries in `metadata.__error__`."""

_TABLE = """CREATE TABLE IF NOT EXISTS fl_server_beats (
    owner TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL, heartbeat_at DOUBLE PRECISION NOT NULL)"""


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


class Liveness:
    """The heartbeat of one server process (`owner`) and the reaper of dead peers' runs."""

    def __init__(self, db: Database, owner: str, *, interval: float = 5.0,
                 stale: float = 30.0) -> None:
        if stale <= interval:
            raise ValueError("stale must be longer than the heartbeat interval")
        self.db = db
        self.owner = owner
        self.interval = interval
        self.stale = stale
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Register this server, mark the orphaned runs, start beating; returns how many
        runs were marked."""
        await self.db.execute(_TABLE)
        now = time.time()
        await self.db.execute(
            "INSERT INTO fl_server_beats (owner, host, pid, started_at, heartbeat_at) "
            "VALUES (?, ?, ?, ?, ?)", (self.owner, socket.gethostname(), os.getpid(), now, now))
        marked = await self.reap(everyone_else=self.db.kind == "sqlite")
        if self.db.kind != "sqlite":
            self._task = asyncio.create_task(self._beat(), name="flowloom-heartbeat")
        return marked

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # the database may be gone already
            await self.db.execute("DELETE FROM fl_server_beats WHERE owner = ?", (self.owner,))

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.db.execute("UPDATE fl_server_beats SET heartbeat_at = ? WHERE owner = ?",
                                      (time.time(), self.owner))
                await self.reap()
            except Exception:  # a database hiccup must not stop the beating
                logger.exception("heartbeat failed")

    async def reap(self, *, everyone_else: bool = False) -> int:
        """Mark `error` the unfinished runs of servers that are gone (with `everyone_else`:
        of every server but this one); their threads too. Returns the number of runs."""
        if everyone_else:
            where = "(owner IS NULL OR owner != ?)"
            params: tuple[object, ...] = (self.owner,)
        else:
            where = ("(owner IS NULL OR owner NOT IN "
                     "(SELECT owner FROM fl_server_beats WHERE heartbeat_at >= ?))")
            params = (time.time() - self.stale,)
        rows = await self.db.fetchall(
            f"SELECT run_id, thread_id, metadata FROM fl_runs WHERE status IN "
            f"('pending', 'running') AND {where}", params)
        if not rows:
            return 0
        now = _now_iso()
        for row in rows:
            metadata = {**json.loads(row["metadata"] or "{}"), "__error__": STOPPED}
            # guarded by status so a run its owner finished meanwhile is left alone
            await self.db.execute(
                "UPDATE fl_runs SET status = 'error', metadata = ?, updated_at = ? "
                "WHERE run_id = ? AND status IN ('pending', 'running')",
                (json.dumps(metadata), now, row["run_id"]))
        for thread_id in {row["thread_id"] for row in rows}:
            await self.db.execute(
                "UPDATE fl_threads SET status = 'error', updated_at = ? WHERE thread_id = ? "
                "AND status = 'busy' AND NOT EXISTS (SELECT 1 FROM fl_runs WHERE "
                "fl_runs.thread_id = fl_threads.thread_id AND status IN ('pending', 'running'))",
                (now, thread_id))
        if not everyone_else:
            await self.db.execute("DELETE FROM fl_server_beats WHERE heartbeat_at < ?",
                                  (time.time() - self.stale,))
        logger.warning("%d runs left unfinished by a stopped server marked error: %s",
                       len(rows), ", ".join(r["run_id"] for r in rows[:10]))
        return len(rows)
