"""Group commits: writes made in one pass of the event loop share a commit, each write
returns only once it is committed (another connection sees it), and a failed commit
reaches every writer of its group."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from flowloom.backends.server.db import open_database
from flowloom.flows.checkpoint import GroupCommit, open_checkpointer


def _commits(conn: sqlite3.Connection) -> list[str]:
    seen: list[str] = []
    conn.set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None)
    return seen


async def test_concurrent_writes_share_a_commit_and_are_durable_on_return(tmp_path):
    path = tmp_path / "g.sqlite"
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.commit()
    commits = _commits(conn)
    group = GroupCommit(conn)
    other = sqlite3.connect(path)

    async def write(x: int) -> int:
        conn.execute("INSERT INTO t VALUES (?)", (x,))
        await group.commit()
        # returned: committed, so a second connection sees it
        return other.execute("SELECT count(*) FROM t WHERE x = ?", (x,)).fetchone()[0]

    seen = await asyncio.gather(*(write(i) for i in range(16)))
    assert seen == [1] * 16
    assert len(commits) == 1  # sixteen writers in one pass, one commit
    assert await write(99) == 1
    assert len(commits) == 2


async def test_a_failed_commit_reaches_every_writer_and_rolls_back(tmp_path):
    conn = sqlite3.connect(tmp_path / "f.sqlite", check_same_thread=False)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.commit()

    class Failing:  # sqlite3.Connection's commit can't be patched; wrap it
        def __init__(self, real: sqlite3.Connection) -> None:
            self.real = real

        def commit(self) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        def rollback(self) -> None:
            self.real.rollback()

    group = GroupCommit(Failing(conn))  # type: ignore[arg-type]

    async def write(x: int) -> None:
        conn.execute("INSERT INTO t VALUES (?)", (x,))
        await group.commit()

    results = await asyncio.gather(write(1), write(2), return_exceptions=True)
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0


async def test_server_database_batches_are_all_or_none_within_a_group(tmp_path):
    url = f"sqlite:///{tmp_path / 'server.sqlite'}"
    async with open_database(url) as db:
        await db.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
        ok = db.batch([("INSERT INTO t VALUES (?)", (1,)), ("INSERT INTO t VALUES (?)", (2,))])
        bad = db.batch([("INSERT INTO t VALUES (?)", (3,)), ("INSERT INTO t VALUES (?)", (1,))])
        results = await asyncio.gather(ok, bad, return_exceptions=True)
        assert results[0] == [1, 1]
        assert isinstance(results[1], sqlite3.IntegrityError)
        # the failed batch left nothing behind; the good one, in the same group, stays
        rows = await db.fetchall("SELECT x FROM t ORDER BY x")
    assert [r["x"] for r in rows] == [1, 2]
    with sqlite3.connect(tmp_path / "server.sqlite") as plain:
        assert [x for (x,) in plain.execute("SELECT x FROM t ORDER BY x")] == [1, 2]


async def test_one_sqlite_file_for_runs_and_checkpoints_shares_one_connection(tmp_path):
    """With --database sqlite:///one.sqlite the server's tables and the checkpoints live in
    one file; two connections on the loop's thread would block on each other's write lock
    (each waiting for a commit only the loop can run)."""
    url = f"sqlite:///{tmp_path / 'one.sqlite'}"
    async with open_checkpointer(url) as saver, open_database(url, checkpointer=saver) as db:
        assert db.group is saver.group  # type: ignore[attr-defined]
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        checkpoint = {"v": 4, "id": "1f0", "ts": "2026-01-01T00:00:00+00:00",
                      "channel_values": {}, "channel_versions": {}, "versions_seen": {}}
        await asyncio.wait_for(asyncio.gather(
            saver.aput(config, checkpoint, {}, {}),
            db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)"),
            db.execute("INSERT INTO t VALUES (1)"),
        ), timeout=2)
    with sqlite3.connect(tmp_path / "one.sqlite") as plain:
        assert plain.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 1
        assert plain.execute("SELECT count(*) FROM t").fetchone()[0] == 1


@pytest.mark.parametrize("share", [False, True])
async def test_pending_writes_are_committed_when_closed(tmp_path, share):
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    async with (open_checkpointer(url) as saver,
                open_database(url, checkpointer=saver if share else None) as db):
        await db.execute("CREATE TABLE t (x INTEGER)")
        db.conn.execute("INSERT INTO t VALUES (1)")  # type: ignore[attr-defined]
        db.group.schedule()  # type: ignore[attr-defined]  # not yet run
    with sqlite3.connect(tmp_path / "c.sqlite") as plain:
        assert plain.execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_postgres_commits_are_as_durable_as_asked(monkeypatch):
    from flowloom.flows.checkpoint import SYNC_COMMIT_ENV, postgres_session
    from flowloom.flows.errors import FlowError

    monkeypatch.delenv(SYNC_COMMIT_ENV, raising=False)
    assert postgres_session(autocommit=True) == {
        "autocommit": True, "options": "-c synchronous_commit=off"}
    monkeypatch.setenv(SYNC_COMMIT_ENV, "on")
    assert postgres_session()["options"] == "-c synchronous_commit=on"
    monkeypatch.setenv(SYNC_COMMIT_ENV, "sometimes")
    with pytest.raises(FlowError, match="use on, off"):
        postgres_session()


@pytest.mark.postgres
async def test_postgres_sessions_use_the_setting():
    async with open_database("postgresql://postgres@127.0.0.1:5432/test") as db:
        row = await db.fetchone("SHOW synchronous_commit")
        assert row is not None and list(row.values()) == ["off"]
