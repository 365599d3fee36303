"""A read-only database connection with a time limit and a row cap.

`SqlDatabase.open(url)` takes a SQLAlchemy URL (or a bare path to a SQLite file).
SQLite files open with `mode=ro`, ATTACH disabled and, while a query runs, an
authorizer that allows reads only; PostgreSQL runs every query in a READ ONLY
transaction with `statement_timeout`. The connection is the second wall behind
`check_sql`: even a statement that skipped the guard cannot write.

>>> db = SqlDatabase.open("/work/shared/datasets/sql/chinook.sqlite")  # doctest: +SKIP
>>> db.run("SELECT name FROM artists ORDER BY pk LIMIT 1").rows        # doctest: +SKIP
[['AC/DC']]
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.exc import DBAPIError as SaDbapiError

from ._values import MAX_VALUE_CHARS, MAX_VALUES, ValueIndex
from .errors import SqlConnectionError, SqlExecutionError
from .schema import Column, ForeignKey, Schema, Table

__all__ = ["SQLITE_SUFFIXES", "QueryResult", "SqlDatabase"]

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db", ".db3")
_SAMPLE_CHARS = 100
_SQLITE_ATTACHED_LIMIT = 7  # sqlite3.SQLITE_LIMIT_ATTACHED (named in Python 3.11+)
_PROGRESS_STEPS = 2_000  # VM instructions between deadline checks (~tens of microseconds)
_SQLITE_READ_ACTIONS = {
    sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
}
# A check independent of the guard: a Postgres superuser's READ ONLY transaction still
# runs COPY ... TO PROGRAM, so nothing but a query may reach that connection. (SQLite
# needs none: mode=ro plus the authorizer refuse every non-read.)
_QUERY_KEYWORDS = {"SELECT", "WITH", "VALUES", "("}
_LEADING_NOISE = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_SQLITE_DENIED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}


@dataclass(frozen=True)
class QueryResult:
    """Rows of one query; `truncated` means more than `max_rows` rows were there."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    row_count: int
    seconds: float


class SqlDatabase:
    """One database, opened read-only. Build with `SqlDatabase.open`."""

    def __init__(self, engine: Engine, dialect: str, url_masked: str, *, timeout_s: float,
                 max_rows: int, sample_values: int = 3) -> None:
        self._engine = engine
        self.dialect = dialect
        self.url_masked = url_masked
        self.timeout_s = timeout_s
        self.max_rows = max_rows
        self.sample_values = sample_values
        self._schema: Schema | None = None
        self._values: ValueIndex | None = None
        self._schema_lock = threading.Lock()

    @classmethod
    def open(cls, url: str, *, timeout_s: float = 10.0, max_rows: int = 200,
             schema: str | None = None, sample_values: int = 3) -> SqlDatabase:
        """Open `url` read-only: "sqlite:///file.db", a bare "file.sqlite" path, or
        "postgresql://user@host/db" (`schema` sets Postgres's search_path). Raises
        `SqlConnectionError` for a bad URL, a missing file or an unreachable server."""
        if timeout_s <= 0 or max_rows < 1:
            raise ValueError(f"timeout_s must be > 0 and max_rows >= 1, "
                             f"not {timeout_s} and {max_rows}")
        parsed = _parse_url(url)
        masked = parsed.render_as_string(hide_password=True)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            engine = _sqlite_engine(parsed, masked)
            dialect = "sqlite"
        elif backend == "postgresql":
            engine = _postgres_engine(parsed, masked, timeout_s, schema)
            dialect = "postgres"
        else:
            raise SqlConnectionError(
                f"{masked}: {backend} databases are not supported; use a sqlite:/// path "
                f"or a postgresql:// URL", masked)
        db = cls(engine, dialect, masked, timeout_s=timeout_s, max_rows=max_rows,
                 sample_values=sample_values)
        db._check_connection()
        return db

    def _check_connection(self) -> None:
        try:
            with self._raw() as conn:
                conn.cursor().execute("SELECT 1").fetchall()
                conn.rollback()
        except SqlConnectionError:
            self._engine.dispose()
            raise

    @contextlib.contextmanager
    def _raw(self) -> Iterator[Any]:
        """A pooled DBAPI connection (sqlite3 or psycopg), returned to the pool after."""
        dbapi_error = self._engine.dialect.loaded_dbapi.Error
        try:
            proxy = self._engine.raw_connection()
        except (SaDbapiError, dbapi_error, OSError) as err:
            cause = err.orig if isinstance(err, SaDbapiError) and err.orig else err
            raise SqlConnectionError(f"cannot connect to {self.url_masked}: "
                                     f"{_first_line(cause)}", self.url_masked) from err
        try:
            yield proxy.driver_connection
        finally:
            proxy.close()

    def run(self, sql: str, *, max_rows: int | None = None) -> QueryResult:
        """Run one statement that `check_sql` passed, read-only, within `timeout_s`,
        keeping the first `max_rows` rows (the database's cap unless given); raises
        `SqlExecutionError`."""
        cap = max_rows or self.max_rows
        start = time.perf_counter()
        keyword = _first_keyword(sql)
        if self.dialect != "sqlite" and keyword not in _QUERY_KEYWORDS:
            raise SqlExecutionError(f"refused to run: only queries run here, and this begins "
                                    f"with {keyword or 'nothing'}", sql)
        with self._raw() as conn:
            if self.dialect == "sqlite":
                columns, rows = self._run_sqlite(conn, sql, cap)
            else:
                columns, rows = self._run_postgres(conn, sql, cap)
        truncated = len(rows) > cap
        rows = rows[:cap]
        return QueryResult(columns, rows, truncated, len(rows), time.perf_counter() - start)

    async def arun(self, sql: str) -> QueryResult:
        """`run` in a worker thread, so an event loop is never blocked by a query."""
        return await asyncio.to_thread(self.run, sql)

    def _run_sqlite(self, conn: sqlite3.Connection, sql: str, cap: int
                    ) -> tuple[list[str], list[list[Any]]]:
        deadline = time.monotonic() + self.timeout_s
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)
        conn.set_authorizer(_sqlite_read_only)
        try:
            cur = conn.cursor()
            cur.execute(sql)
            rows = [list(r) for r in cur.fetchmany(cap + 1)]
            columns = [d[0] for d in cur.description or ()]
            cur.close()
        except sqlite3.Error as err:
            if time.monotonic() > deadline:
                raise SqlExecutionError(self._timeout_message(), sql, timed_out=True) from err
            raise SqlExecutionError(f"the database refused the query: {_first_line(err)}",
                                    sql) from err
        finally:
            conn.set_authorizer(None)
            conn.set_progress_handler(None, 0)
            conn.rollback()
        return columns, rows

    def _run_postgres(self, conn: Any, sql: str, cap: int) -> tuple[list[str], list[list[Any]]]:
        import psycopg

        try:
            conn.read_only = True
            cur = conn.cursor()
            cur.execute(f"SET LOCAL statement_timeout = {int(self.timeout_s * 1000)}")
            # prepare=True: the extended protocol, which runs exactly one statement
            # ("COMMIT; SET ..." cannot escape the READ ONLY transaction); no parameters,
            # so a % in LIKE 'a%' is not a placeholder.
            cur.execute(sql.encode(), prepare=True)
            rows = [list(r) for r in cur.fetchmany(cap + 1)] if cur.description else []
            columns = [d.name for d in cur.description or ()]
            cur.close()
        except psycopg.errors.QueryCanceled as err:
            raise SqlExecutionError(self._timeout_message(), sql, timed_out=True) from err
        except psycopg.Error as err:
            raise SqlExecutionError(f"the database refused the query: {_first_line(err)}",
                                    sql) from err
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
        return columns, rows

    def _timeout_message(self) -> str:
        return f"the query ran past the {self.timeout_s:g} s time limit and was stopped"

    def schema(self, *, refresh: bool = False) -> Schema:
        """Tables, columns, keys, row counts and a few sample values, read once and cached."""
        with self._schema_lock:
            if self._schema is None or refresh:
                self._schema = self._introspect()
            return self._schema

    def _introspect(self) -> Schema:
        try:
            inspector = sa.inspect(self._engine)
            names = sorted(inspector.get_table_names()) + sorted(inspector.get_view_names())
            tables = {name: self._table(inspector, name) for name in names}
        except SaDbapiError as err:
            raise SqlConnectionError(f"cannot read the schema of {self.url_masked}: "
                                     f"{_first_line(err.orig or err)}", self.url_masked) from err
        return Schema(self.dialect, tables)

    def _table(self, inspector: Any, name: str) -> Table:
        pk = set(inspector.get_pk_constraint(name).get("constrained_columns") or ())
        fks = tuple(
            ForeignKey(tuple(fk["constrained_columns"]), fk["referred_table"],
                       tuple(fk["referred_columns"]))
            for fk in inspector.get_foreign_keys(name) if fk.get("referred_table"))
        columns = []
        for col in inspector.get_columns(name):
            type_text = _type_text(col["type"], self._engine)
            values = self._samples(name, col["name"], type_text)
            if not type_text:  # SQLite columns may have no declared type: name what is stored
                type_text = _stored_type(values)
            samples = tuple(str(v)[:_SAMPLE_CHARS] for v in values if not isinstance(v, bytes))
            columns.append(Column(col["name"], type_text, bool(col.get("nullable", True)),
                                  col["name"] in pk, samples,
                                  description=" ".join(str(col.get("comment") or "").split())))
        return Table(name, tuple(columns), fks, self._count(name),
                     description=_table_comment(inspector, name))

    def value_index(self) -> ValueIndex:
        """Distinct values of every text column (up to 5,000 each), read once and
        cached: what value linking matches a question's words against."""
        with self._schema_lock:
            if self._values is not None:
                return self._values
        schema = self.schema()
        found: dict[tuple[str, str], tuple[str, ...]] = {}
        for table in schema.tables.values():
            for col in table.columns:
                if col.primary_key or _NOT_TEXT.search(col.type):
                    continue
                c, t = self._quote(col.name), self._quote(table.name)
                try:
                    rows = self.run(f"SELECT DISTINCT {c} FROM {t} WHERE {c} IS NOT NULL "
                                    f"LIMIT {MAX_VALUES}", max_rows=MAX_VALUES).rows
                except SqlExecutionError:
                    continue
                values = tuple(v for (v,) in rows
                               if isinstance(v, str) and 0 < len(v) <= MAX_VALUE_CHARS)
                if values:
                    found[(table.name, col.name)] = values
        index = ValueIndex(found)
        with self._schema_lock:
            self._values = index
        return index

    def _quote(self, name: str) -> str:
        return str(self._engine.dialect.identifier_preparer.quote(name))

    def _count(self, table: str) -> int | None:
        try:
            result = self.run(f"SELECT count(*) FROM {self._quote(table)}")
        except SqlExecutionError:
            return None
        return int(result.rows[0][0]) if result.rows else None

    def _samples(self, table: str, column: str, type_text: str) -> list[Any]:
        if any(b in type_text.upper() for b in ("BLOB", "BYTEA")):
            return []
        col, tab = self._quote(column), self._quote(table)
        sql = (f"SELECT DISTINCT {col} FROM {tab} WHERE {col} IS NOT NULL "
               f"LIMIT {max(self.sample_values, 1)}")
        try:
            rows = self.run(sql).rows
        except SqlExecutionError:
            return []
        return [r[0] for r in rows][: self.sample_values]

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> SqlDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlDatabase({self.url_masked!r})"


_NOT_TEXT = re.compile(r"INT|REAL|NUM|DEC|FLOAT|DOUBLE|SERIAL|MONEY|BOOL|DATE|TIME|BLOB|"
                       r"BYTEA|JSON|UUID", re.IGNORECASE)


def _table_comment(inspector: Any, name: str) -> str:
    """The table's COMMENT ON text (PostgreSQL); SQLite has none."""
    try:
        text = inspector.get_table_comment(name).get("text")
    except NotImplementedError:
        return ""
    return " ".join(str(text or "").split())


def _first_keyword(sql: str) -> str:
    text = _LEADING_NOISE.sub("", sql)
    match = re.match(r"[A-Za-z]+|\(", text)
    return match.group(0).upper() if match else ""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _parse_url(url: str) -> URL:
    text = url.strip()
    if "://" not in text:
        if not text.lower().endswith(SQLITE_SUFFIXES) and not Path(text).is_file():
            raise SqlConnectionError(
                f"{text!r} is neither a database URL nor a SQLite file; use sqlite:///path.db, "
                f"postgresql://user@host/db or a path ending in {', '.join(SQLITE_SUFFIXES)}",
                text)
        return URL.create("sqlite", database=str(Path(text).expanduser().resolve()))
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError) as err:
        masked = text.split("@")[-1] if "@" in text else text
        raise SqlConnectionError(f"malformed database URL (…@{masked}): {_first_line(err)}",
                                 masked) from err
    if parsed.drivername in {"postgres", "postgresql", "postgresql+psycopg2"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_engine(url: URL, masked: str) -> Engine:
    database = url.database or ""
    if database in {"", ":memory:"} or database.startswith("file:"):
        raise SqlConnectionError(f"{masked}: give the path of a SQLite file "
                                 f"(sqlite:///path/to/file.db)", masked)
    path = Path(database).expanduser().resolve()
    if not path.is_file():
        raise SqlConnectionError(f"SQLite file {path} does not exist (it is opened "
                                 f"read-only and never created)", masked)
    uri = f"file:{quote(str(path))}?mode=ro"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5.0)
        conn.setlimit(_SQLITE_ATTACHED_LIMIT, 0)
        conn.execute("PRAGMA query_only = ON")
        return conn

    try:
        return sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.QueuePool)
    except NoSuchModuleError as err:  # pragma: no cover - sqlite3 is in the stdlib
        raise SqlConnectionError(f"{masked}: {err}", masked) from err


def _postgres_engine(url: URL, masked: str, timeout_s: float, schema: str | None) -> Engine:
    options = ["-c default_transaction_read_only=on",
               f"-c statement_timeout={int(timeout_s * 1000)}"]
    if schema:
        if not schema.replace("_", "").isalnum():
            raise SqlConnectionError(f"{masked}: schema {schema!r} must be a plain name "
                                     f"(letters, digits, _)", masked)
        options.append(f"-c search_path={schema}")
    try:
        return sa.create_engine(url, connect_args={
            "options": " ".join(options),
            "connect_timeout": max(1, int(min(timeout_s, 10))),
        }, pool_pre_ping=True)
    except (NoSuchModuleError, ArgumentError, ImportError) as err:
        raise SqlConnectionError(f"{masked}: {_first_line(err)}", masked) from err


def _type_text(type_: Any, engine: Engine) -> str:
    if isinstance(type_, sa.types.NullType):
        return ""
    try:
        return str(type_.compile(dialect=engine.dialect))
    except Exception:  # noqa: BLE001 - exotic types may have no DDL form
        return str(getattr(type_, "__visit_name__", "")).upper()


def _stored_type(values: list[Any]) -> str:
    """SQLite's storage class of the sample values (a column declared with no type)."""
    kinds = {type(v) for v in values}
    if kinds <= {int, bool} and kinds:
        return "INTEGER"
    if kinds <= {int, float} and kinds:
        return "REAL"
    if kinds == {bytes}:
        return "BLOB"
    return "TEXT"


def _sqlite_read_only(action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
    """While a query runs: reads and plain functions only (no ATTACH, PRAGMA, writes)."""
    if action not in _SQLITE_READ_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _SQLITE_DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK
