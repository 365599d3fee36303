"""Fixtures of the SQL tool's tests: PostgreSQL on 127.0.0.1:5432 (database `test`, trust
auth), each test in a schema of its own that is dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
PG_URL = "postgresql://postgres:not-a-secret@127.0.0.1:5432/test"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A schema with `artist` (20 rows) and `album` (300 rows, a foreign key to artist)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True)
    except psycopg.OperationalError as err:
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432: {err}")
    name = f"fl_sqltest_{uuid.uuid4().hex[:10]}"
    admin.execute(f"""
        CREATE SCHEMA {name};
        CREATE TABLE {name}.artist (pk serial PRIMARY KEY, name text NOT NULL);
        CREATE TABLE {name}.album (pk serial PRIMARY KEY, title varchar(80),
                                   artist int REFERENCES {name}.artist(pk),
                                   price numeric(6, 2));
        INSERT INTO {name}.artist (name) SELECT 'artist ' || g FROM generate_series(1, 20) g;
        INSERT INTO {name}.album (title, artist, price)
            SELECT 'album ' || g, g % 20 + 1, 9.5 FROM generate_series(1, 300) g;
    """)
    try:
        yield name
    finally:
        admin.execute(f"DROP SCHEMA {name} CASCADE")
        admin.close()
