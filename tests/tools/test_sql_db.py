"""SqlDatabase against real databases: a SQLite file made here, the Chinook file read in
place, and PostgreSQL on 127.0.0.1:5432 (a schema of its own, dropped afterwards)."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowloom.tools.sql import (
    SqlConnectionError,
    SqlDatabase,
    SqlExecutionError,
    check_sql,
)
from tests.tools.conftest import PG_DSN, PG_URL

CHINOOK = Path("/work/shared/datasets/sql/chinook.sqlite")
SLOW_CTE = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
            "SELECT count(*) FROM c")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_music_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE artist (pk INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE album (pk INTEGER PRIMARY KEY, title VARCHAR(80),
                            artist INTEGER REFERENCES artist(pk), price NUMERIC(6, 2));
        CREATE TABLE note (pk INTEGER PRIMARY KEY, body);
    """)
    conn.executemany("INSERT INTO artist VALUES (?, ?)",
                     [(i, f"artist {i}") for i in range(1, 21)])
    conn.executemany("INSERT INTO album VALUES (?, ?, ?, ?)",
                     [(i, f"album {i}", i % 20 + 1, 9.5) for i in range(1, 301)])
    conn.executemany("INSERT INTO note VALUES (?, ?)", [(1, "free text"), (2, None)])
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def music(tmp_path: Path) -> Iterator[tuple[SqlDatabase, Path]]:
    path = make_music_db(tmp_path / "music.db")
    db = SqlDatabase.open(f"sqlite:///{path}", timeout_s=2.0, max_rows=50)
    yield db, path
    db.close()


# -- SQLite --------------------------------------------------------------------------


def test_sqlite_introspection(music: tuple[SqlDatabase, Path]) -> None:
    db, _ = music
    schema = db.schema()
    assert db.dialect == schema.dialect == "sqlite"
    assert set(schema.tables) == {"artist", "album", "note"}
    album = schema.tables["album"]
    assert [c.name for c in album.columns] == ["pk", "title", "artist", "price"]
    assert [c.type for c in album.columns] == ["INTEGER", "VARCHAR(80)", "INTEGER",
                                               "NUMERIC(6, 2)"]
    assert [c.primary_key for c in album.columns] == [True, False, False, False]
    assert album.foreign_keys[0].columns == ("artist",)
    assert album.foreign_keys[0].ref_table == "artist"
    assert album.foreign_keys[0].ref_columns == ("pk",)
    assert album.row_count == 300
    assert schema.tables["artist"].columns[1].nullable is False
    assert schema.tables["artist"].columns[1].samples == ("artist 1", "artist 2", "artist 3")
    # A column declared with no type is named by what it stores.
    assert schema.tables["note"].columns[1].type == "TEXT"
    assert schema.tables["note"].columns[1].samples == ("free text",)
    assert schema.neighbours("artist") == {"album"}
    assert "artist INTEGER REFERENCES artist(pk)" in schema.describe(["album"])


def test_schema_is_cached_until_refresh(music: tuple[SqlDatabase, Path]) -> None:
    db, path = music
    first = db.schema()
    writer = sqlite3.connect(path)
    writer.execute("CREATE TABLE label (pk INTEGER PRIMARY KEY)")
    writer.commit()
    writer.close()
    assert db.schema() is first
    assert "label" not in db.schema().tables
    assert "label" in db.schema(refresh=True).tables


def test_run_caps_rows_and_says_truncated(music: tuple[SqlDatabase, Path]) -> None:
    db, _ = music
    result = db.run("SELECT pk, title FROM album ORDER BY pk")
    assert result.columns == ["pk", "title"]
    assert result.row_count == len(result.rows) == 50
    assert result.truncated is True
    assert result.rows[0] == [1, "album 1"]
    assert result.seconds >= 0
    exact = db.run("SELECT pk FROM album ORDER BY pk LIMIT 50")
    assert exact.row_count == 50 and exact.truncated is False


def test_checked_sql_runs(music: tuple[SqlDatabase, Path]) -> None:
    db, _ = music
    checked = check_sql("SELECT name, count(*) AS n FROM artist JOIN album "
                        "ON album.artist = artist.pk GROUP BY name ORDER BY n DESC, name",
                        db.schema(), max_rows=db.max_rows)
    result = db.run(checked.sql)
    assert result.columns == ["name", "n"]
    assert result.rows[0] == ["artist 1", 15]
    assert result.row_count == 20


def test_sqlite_timeout_stops_a_runaway_query(tmp_path: Path) -> None:
    path = make_music_db(tmp_path / "slow.db")
    with SqlDatabase.open(str(path), timeout_s=0.3) as db:
        start = time.perf_counter()
        with pytest.raises(SqlExecutionError) as info:
            db.run(SLOW_CTE)
        elapsed = time.perf_counter() - start
        assert info.value.timed_out is True
        assert str(info.value) == "the query ran past the 0.3 s time limit and was stopped"
        assert 0.25 < elapsed < 2.0
        assert db.run("SELECT count(*) FROM album").rows == [[300]]  # connection still fine


@pytest.mark.parametrize("sql", [
    "DELETE FROM album",
    "UPDATE artist SET name = 'x'",
    "INSERT INTO artist VALUES (99, 'x')",
    "DROP TABLE album",
    "CREATE TABLE evil (a)",
    "PRAGMA user_version = 7",
    "VACUUM",
])
def test_sqlite_connection_is_read_only_without_the_guard(
        music: tuple[SqlDatabase, Path], sql: str) -> None:
    db, path = music
    before = sha256(path)
    with pytest.raises(SqlExecutionError, match="the database refused the query"):
        db.run(sql)
    assert sha256(path) == before
    assert db.run("SELECT count(*) FROM album").rows == [[300]]


def test_sqlite_attach_cannot_create_files(music: tuple[SqlDatabase, Path],
                                           tmp_path: Path) -> None:
    db, _ = music
    target = tmp_path / "evil.db"
    with pytest.raises(SqlExecutionError):
        db.run(f"ATTACH DATABASE '{target}' AS evil")
    with pytest.raises(SqlExecutionError):
        db.run(f"VACUUM INTO '{target}'")
    with pytest.raises(SqlExecutionError, match="load_extension"):
        db.run("SELECT load_extension('/nonexistent.so')")
    assert not target.exists()


def test_sqlite_one_statement_per_run(music: tuple[SqlDatabase, Path]) -> None:
    db, _ = music
    with pytest.raises(SqlExecutionError, match="one statement"):
        db.run("SELECT 1; DELETE FROM album")


def test_missing_sqlite_file_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    for url in (f"sqlite:///{missing}", str(missing)):
        with pytest.raises(SqlConnectionError, match="does not exist"):
            SqlDatabase.open(url)
    assert not missing.exists()


def test_bad_urls_say_what_is_valid() -> None:
    with pytest.raises(SqlConnectionError, match="neither a database URL nor a SQLite file"):
        SqlDatabase.open("not a database")
    with pytest.raises(SqlConnectionError, match="not supported; use a sqlite"):
        SqlDatabase.open("mysql://user:pw@localhost/db")
    with pytest.raises(SqlConnectionError, match="path of a SQLite file"):
        SqlDatabase.open("sqlite://")


def test_chinook_read_in_place(tmp_path: Path) -> None:
    before = sha256(CHINOOK)
    with SqlDatabase.open(str(CHINOOK), timeout_s=5) as db:
        schema = db.schema()
        assert len(schema.tables) == 11
        track = schema.tables["track"]
        assert track.row_count == 3503
        assert track.column("pk") is not None and track.column("pk").primary_key  # type: ignore[union-attr]
        assert track.column("unit_price").type == "REAL"  # type: ignore[union-attr]
        checked = check_sql("SELECT name FROM artist ORDER BY pk", schema, max_rows=3)
        assert db.run(checked.sql).rows == [["AC/DC"], ["Accept"], ["Aerosmith"]]
        with pytest.raises(SqlExecutionError):
            db.run("DELETE FROM track")
    assert sha256(CHINOOK) == before


async def test_arun_in_a_thread(music: tuple[SqlDatabase, Path]) -> None:
    db, _ = music
    result = await db.arun("SELECT count(*) AS n FROM artist")
    assert result.columns == ["n"] and result.rows == [[20]]


# -- PostgreSQL ----------------------------------------------------------------------


def pg_count(schema: str, table: str) -> int:
    import psycopg

    with psycopg.connect(PG_DSN) as conn:
        row = conn.execute(f"SELECT count(*) FROM {schema}.{table}").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.postgres
def test_postgres_introspection_and_run(pg_schema: str) -> None:
    with SqlDatabase.open(PG_URL, schema=pg_schema, timeout_s=2, max_rows=25) as db:
        assert db.dialect == "postgres"
        assert "not-a-secret" not in db.url_masked and "***" in db.url_masked
        schema = db.schema()
        assert set(schema.tables) == {"artist", "album"}
        album = schema.tables["album"]
        assert [(c.name, c.type, c.primary_key) for c in album.columns] == [
            ("pk", "INTEGER", True), ("title", "VARCHAR(80)", False),
            ("artist", "INTEGER", False), ("price", "NUMERIC(6, 2)", False)]
        assert album.foreign_keys[0].ref_table == "artist"
        assert album.row_count == 300
        assert set(schema.tables["artist"].columns[1].samples) <= {
            f"artist {i}" for i in range(1, 21)}
        assert len(schema.tables["artist"].columns[1].samples) == 3
        assert db.schema() is schema
        checked = check_sql("SELECT title FROM album WHERE title LIKE 'album 1%' ORDER BY pk",
                            schema, max_rows=100)
        result = db.run(checked.sql)
        assert result.row_count == 25 and result.truncated is True
        assert result.rows[0] == ["album 1"]


@pytest.mark.postgres
def test_postgres_statement_timeout(pg_schema: str) -> None:
    with SqlDatabase.open(PG_URL, schema=pg_schema, timeout_s=0.5) as db:
        start = time.perf_counter()
        with pytest.raises(SqlExecutionError) as info:
            db.run("SELECT pg_sleep(5)")  # the guard refuses pg_sleep; this proves the wall
        assert info.value.timed_out is True
        assert time.perf_counter() - start < 3.0
        assert db.run("SELECT 1 AS one").rows == [[1]]


@pytest.mark.postgres
@pytest.mark.parametrize("sql", [
    "WITH gone AS (DELETE FROM album RETURNING pk) SELECT count(*) FROM gone",
    "WITH changed AS (UPDATE artist SET name = 'x' RETURNING pk) SELECT * FROM changed",
    "SELECT 1 FROM album FOR UPDATE",
])
def test_postgres_read_only_transaction_without_the_guard(pg_schema: str, sql: str) -> None:
    with SqlDatabase.open(PG_URL, schema=pg_schema) as db, \
            pytest.raises(SqlExecutionError, match="read-only transaction"):
        db.run(sql)
    assert pg_count(pg_schema, "album") == 300
    assert pg_count(pg_schema, "artist") == 20


@pytest.mark.postgres
@pytest.mark.parametrize(("sql", "message"), [
    ("DELETE FROM album", "this begins with DELETE"),
    ("COPY (SELECT 1) TO PROGRAM 'true'", "this begins with COPY"),
    ("SELECT 1; DELETE FROM album", "multiple commands"),
    ("COMMIT; SET default_transaction_read_only = off", "this begins with COMMIT"),
])
def test_postgres_runs_queries_only(pg_schema: str, sql: str, message: str) -> None:
    with SqlDatabase.open(PG_URL, schema=pg_schema) as db, \
            pytest.raises(SqlExecutionError, match=message):
        db.run(sql)
    assert pg_count(pg_schema, "album") == 300


@pytest.mark.postgres
def test_postgres_unreachable_is_a_connection_error() -> None:
    with pytest.raises(SqlConnectionError) as info:
        SqlDatabase.open("postgresql://postgres:hunter2@127.0.0.1:1/test", timeout_s=1)
    assert "hunter2" not in str(info.value)
    assert "127.0.0.1:1/test" in str(info.value)
