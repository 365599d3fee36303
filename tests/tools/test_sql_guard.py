"""check_sql over a small hand-made schema: what passes comes out qualified, limited and
in the schema's dialect; what is refused says why in one sentence; Schema's own text."""

from __future__ import annotations

import pytest

from flowloom.tools.sql import (
    Column,
    ForeignKey,
    Schema,
    SqlError,
    SqlRefused,
    Table,
    UnknownTable,
    check_sql,
)

TABLES = {
    "artist": Table("artist", (Column("pk", "INTEGER", False, True, ("1", "2")),
                               Column("name", "TEXT", True, False, ("AC/DC", "Accept"))),
                    (), 275),
    "album": Table("album", (Column("pk", "INTEGER", False, True),
                             Column("title", "TEXT"),
                             Column("artist", "INTEGER")),
                   (ForeignKey(("artist",), "artist", ("pk",)),), 347),
    "track": Table("track", (Column("pk", "INTEGER", False, True),
                             Column("name", "TEXT"),
                             Column("album", "INTEGER"),
                             Column("order", "INTEGER"),
                             Column("milliseconds", "INTEGER")),
                   (ForeignKey(("album",), "album", ("pk",)),), 3503),
}
SQLITE = Schema("sqlite", TABLES)
POSTGRES = Schema("postgres", TABLES)


def refused(sql: str, schema: Schema = SQLITE, **kw: object) -> str:
    with pytest.raises(SqlRefused) as info:
        check_sql(sql, schema, **kw)  # type: ignore[arg-type]
    assert info.value.sql == sql
    assert str(info.value) == info.value.reason
    assert "\n" not in info.value.reason
    return info.value.reason


# -- what passes ---------------------------------------------------------------------


def test_select_is_qualified_and_limited() -> None:
    checked = check_sql("SELECT name FROM track WHERE milliseconds > 1000", SQLITE, max_rows=50)
    assert checked.sql == ("SELECT track.name AS name FROM track AS track "
                           "WHERE track.milliseconds > 1000 LIMIT 50")
    assert checked.tables == ("track",)
    assert checked.limited is True


@pytest.mark.parametrize(("sql", "fixed"), [
    # a wrong alias where exactly one other table of the SELECT has the column
    ("SELECT t.title FROM track AS t JOIN album AS a ON t.album = a.pk",
     "SELECT a.title AS title FROM track AS t JOIN album AS a ON t.album = a.pk"),
    # a table's own name where the query gave it an alias
    ("SELECT track.name FROM track AS t JOIN album AS a ON t.album = a.pk",
     "SELECT t.name AS name FROM track AS t JOIN album AS a ON t.album = a.pk"),
    # both slips at once, every use of the name repaired
    ("SELECT t.title, COUNT(*) FROM track AS t JOIN album AS a ON t.album = a.pk "
     "GROUP BY t.title ORDER BY track.name",
     'SELECT a.title AS title, COUNT(*) AS "count(*)" FROM track AS t JOIN album AS a '
     "ON t.album = a.pk GROUP BY a.title ORDER BY t.name"),
])
def test_a_qualifier_with_one_reading_is_repaired(sql: str, fixed: str) -> None:
    """What SQL itself would do with the name unqualified: the one table in that SELECT
    that has it. Never a table outside the column's own SELECT (see the refusals)."""
    assert check_sql(sql, SQLITE).sql == f"{fixed} LIMIT 200"


def test_unnamed_outputs_are_named_as_written() -> None:
    """A result column reads `count(*)` (names are normalised to lower case before the
    check), as the database would name it, not `_col_0`."""
    checked = check_sql("SELECT COUNT(*), MAX(milliseconds) / 1000, name AS n FROM track",
                        SQLITE)
    assert checked.sql.startswith('SELECT COUNT(*) AS "count(*)", '
                                  'MAX(track.milliseconds) / 1000 AS "max(milliseconds) / 1000", '
                                  "track.name AS n FROM")


def test_fences_trailing_semicolon_and_comments_are_stripped() -> None:
    text = "```sql\nSELECT name /* the name */ FROM artist -- all of them\n;\n```"
    checked = check_sql(text, SQLITE)
    assert checked.sql == "SELECT artist.name AS name FROM artist AS artist LIMIT 200"
    assert "--" not in checked.sql and "/*" not in checked.sql


def test_smaller_limit_kept_larger_limit_clamped() -> None:
    small = check_sql("SELECT name FROM artist LIMIT 5 OFFSET 10", SQLITE, max_rows=100)
    assert small.sql.endswith("LIMIT 5 OFFSET 10") and small.limited is False
    big = check_sql("SELECT name FROM artist LIMIT 100000", SQLITE, max_rows=100)
    assert big.sql.endswith("LIMIT 100") and big.limited is True
    fetch = check_sql("SELECT name FROM artist FETCH FIRST 900 ROWS ONLY", POSTGRES,
                      max_rows=100)
    assert fetch.sql.endswith("FETCH FIRST 100 ROWS ONLY") and fetch.limited


def test_union_cte_and_subquery_pass_with_one_outer_limit() -> None:
    union = check_sql("SELECT name FROM artist UNION SELECT title FROM album", SQLITE)
    assert union.sql.endswith("FROM album AS album LIMIT 200")
    assert union.sql.count("LIMIT") == 1
    assert set(union.tables) == {"artist", "album"}
    cte = check_sql("WITH a AS (SELECT artist, count(*) AS n FROM album GROUP BY artist) "
                    "SELECT artist.name, a.n FROM a JOIN artist ON artist.pk = a.artist", SQLITE)
    assert cte.tables == ("artist", "album") or set(cte.tables) == {"artist", "album"}
    assert "a" not in cte.tables
    sub = check_sql("SELECT name FROM track WHERE album IN "
                    "(SELECT pk FROM album WHERE artist = 1)", SQLITE)
    assert "album.artist = 1" in sub.sql


def test_join_with_unqualified_columns_is_qualified() -> None:
    checked = check_sql("SELECT title, name FROM album JOIN artist ON artist = artist.pk",
                        SQLITE)
    assert "album.title AS title" in checked.sql
    assert "artist.name AS name" in checked.sql
    assert "ON album.artist = artist.pk" in checked.sql


def test_star_expansion_quotes_keyword_columns() -> None:
    checked = check_sql("SELECT * FROM track", SQLITE)
    assert 'track."order" AS "order"' in checked.sql


def test_transpiled_to_schema_dialect() -> None:
    checked = check_sql("SELECT IFNULL(title, 'none') AS n FROM album", POSTGRES,
                        read_dialect="sqlite")
    assert checked.sql == ("SELECT COALESCE(album.title, 'none') AS n FROM album AS album "
                           "LIMIT 200")


def test_sqlite_double_quoted_string_becomes_a_literal() -> None:
    checked = check_sql('SELECT pk FROM artist WHERE name = "AC/DC"', SQLITE)
    assert "artist.name = 'AC/DC'" in checked.sql
    # A double-quoted name that is a column stays a column.
    assert 'artist."name" AS "name"' in check_sql('SELECT "name" FROM artist', SQLITE).sql


def test_schema_prefix_main_is_dropped_others_refused() -> None:
    assert check_sql("SELECT name FROM main.artist", SQLITE).tables == ("artist",)
    assert "outside this database" in refused("SELECT name FROM other.artist")


def test_string_literals_with_sql_inside_are_data() -> None:
    checked = check_sql("SELECT ';DROP TABLE artist; --' AS s", SQLITE)
    assert checked.sql == "SELECT ';DROP TABLE artist; --' AS s LIMIT 200"


def test_small_cross_join_is_neutralised_by_the_limit() -> None:
    checked = check_sql("SELECT artist.name, album.title FROM artist, album", SQLITE)
    assert checked.sql.endswith("LIMIT 200")
    assert "CROSS JOIN" in checked.sql


# -- what is refused -----------------------------------------------------------------


@pytest.mark.parametrize(("sql", "reason"), [
    ("DELETE FROM artist", "only SELECT queries are allowed; this is a DELETE"),
    ("UPDATE artist SET name = 'x'", "only SELECT queries are allowed; this is an UPDATE"),
    ("INSERT INTO artist VALUES (1, 'x')", "this is an INSERT"),
    ("DROP TABLE artist", "this is a DROP TABLE"),
    ("CREATE TABLE x (a INT)", "this is a CREATE TABLE"),
    ("ALTER TABLE artist ADD COLUMN x INT", "this is an ALTER"),
    ("TRUNCATE artist", "this is a TRUNCATE"),
    ("MERGE INTO artist USING album ON artist.pk = album.pk WHEN MATCHED THEN DELETE",
     "this is a MERGE"),
    ("ATTACH DATABASE 'x.db' AS x", "this is an ATTACH"),
    ("DETACH DATABASE x", "this is a DETACH"),
    ("PRAGMA writable_schema = 1", "this is a PRAGMA"),
    ("VACUUM", "this is a VACUUM"),
    ("ANALYZE", "this is an ANALYZE"),
    ("SELECT 1; DROP TABLE artist", "only one statement is allowed; this has 2 (SELECT, DROP"),
    ("SELECT 1 --\n; DROP TABLE artist", "only one statement is allowed"),
    ("SELECT * INTO copy FROM artist", "this has a SELECT ... INTO inside the query"),
    ("WITH x AS (DELETE FROM artist RETURNING pk) SELECT * FROM x",
     "this has a DELETE inside the query"),
    ("SELECT load_extension('/tmp/evil.so')", "function load_extension() is not allowed"),
    ("SELECT readfile('/etc/passwd')", "function readfile() is not allowed"),
    ("SELECT shady_udf(name) FROM artist", "function shady_udf() is not on the list"),
    ("SELECT * FROM generate_series(1, 10)", "table functions such as generate_series()"),
    ("SELEC * FRM artist", "could not parse the SQL"),
    ("SELECT FROM WHERE (", "could not parse the SQL"),
    ("", "the SQL is empty"),
    ("SELECT name FROM artist LIMIT (SELECT 5)", "the LIMIT must be a whole number"),
])
def test_refusals_say_why(sql: str, reason: str) -> None:
    assert reason in refused(sql)


@pytest.mark.parametrize(("sql", "reason"), [
    ("SELECT pg_sleep(5)", "function pg_sleep() is not allowed"),
    ("SELECT pg_read_file('/etc/passwd')", "function pg_read_file() is not allowed"),
    ("SELECT lo_import('/etc/passwd')", "function lo_import() is not allowed"),
    ("COPY artist TO PROGRAM 'ls'", "this is a COPY"),
    ("SET statement_timeout = 0", "this is a SET"),
    ("GRANT ALL ON artist TO public", "this is a GRANT"),
    ("SELECT name FROM artist FOR UPDATE", "a locking read"),
    ("SELECT * FROM dblink('host=x', 'SELECT 1') AS t(a INT)", "function dblink() is not"),
])
def test_postgres_refusals(sql: str, reason: str) -> None:
    assert reason in refused(sql, POSTGRES)


def test_unknown_column_names_the_closest() -> None:
    assert refused("SELECT nme FROM track") == "unknown column nme; did you mean track.name?"
    assert refused("SELECT t.nme FROM track AS t") == (
        "track has no column nme; did you mean track.name?")


@pytest.mark.parametrize(("sql", "reason"), [
    # a table's name used as a column
    ("SELECT COUNT(track) FROM track", "track is a table, not a column: COUNT(*) counts "
     "rows, and track.<column> names one of its columns once it is in FROM"),
    # the column is on a wrong alias, and two other tables of the query have it
    ("SELECT t.name FROM album AS t JOIN track AS x ON x.album = t.pk "
     "JOIN artist AS y ON t.artist = y.pk",
     "album has no column name; did you mean x.name or y.name?"),
    # the column is in a table the query does not read: say which, so it can be joined
    ("SELECT t.title FROM track AS t", "track has no column title; album.title has that "
     "name: join album ON album.pk = t.album to use it"),
    # a table named that is not in FROM (qualify would read it as a field of a column)
    ("SELECT title FROM album WHERE artist = 1 AND artist.name = 'AC/DC'",
     "artist.name names table artist, which is not in this query's FROM clause; join "
     "artist ON artist.pk = album.artist first"),
    ("SELECT name FROM track WHERE artist.pk = (SELECT pk FROM artist WHERE name = 'x')",
     "artist.pk is used where artist is not in the FROM clause (it is only in another "
     "part of the query); join artist there"),
])
def test_refusals_say_how_to_fix_the_query(sql: str, reason: str) -> None:
    assert refused(sql) == reason


def test_sqlite_date_parts_are_transpiled() -> None:
    sql = check_sql("SELECT name FROM track WHERE YEAR(milliseconds) = 2010 AND "
                    "EXTRACT(MONTH FROM milliseconds) = 2", SQLITE).sql
    assert "CAST(STRFTIME('%Y', track.milliseconds) AS INTEGER) = 2010" in sql
    assert "CAST(STRFTIME('%m', track.milliseconds) AS INTEGER) = 2" in sql
    assert "STRFTIME" not in check_sql("SELECT YEAR(milliseconds) FROM track", POSTGRES).sql


def test_unknown_table_names_the_closest() -> None:
    assert refused("SELECT name FROM tracks") == "unknown table tracks; did you mean track?"
    far = refused("SELECT x FROM zzzz")
    assert far == "unknown table zzzz; valid tables: album, artist, track"


def test_unknown_alias_and_ambiguous_column() -> None:
    assert refused("SELECT x.name FROM track AS t") == (
        "unknown table or alias x in x.name; the query names: t")
    assert refused("SELECT pk FROM track JOIN album ON album = album.pk") == (
        "column pk is ambiguous: it is in track and album; write track.pk or album.pk")


def test_catalog_tables_are_not_in_the_schema() -> None:
    assert "unknown table sqlite_master" in refused("SELECT * FROM sqlite_master")


def test_large_cross_join_refused_with_estimate() -> None:
    reason = refused("SELECT count(*) FROM track a, track b")
    assert reason == ("track and track are joined with no condition linking them "
                      "(about 12,271,009 rows, the limit is 1,000,000); add an ON condition")
    # A condition in WHERE links them.
    check_sql("SELECT count(*) FROM track a, track b WHERE a.album = b.album", SQLITE)
    # The threshold is a parameter.
    assert "joined with no condition" in refused(
        "SELECT * FROM artist CROSS JOIN album", max_cross_rows=1000)


def test_refused_is_an_sql_error() -> None:
    with pytest.raises(SqlError):
        check_sql("DROP TABLE artist", SQLITE)


def test_max_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        check_sql("SELECT 1", SQLITE, max_rows=0)


# -- Schema --------------------------------------------------------------------------


def test_describe_is_create_table_text_with_keys_and_samples() -> None:
    text = SQLITE.describe(["artist", "album"], samples=1)
    assert text == (
        "CREATE TABLE artist (  -- 275 rows\n"
        "  pk INTEGER NOT NULL PRIMARY KEY,  -- e.g. 1\n"
        "  name TEXT  -- e.g. 'AC/DC'\n"
        ");\n\n"
        "CREATE TABLE album (  -- 347 rows\n"
        "  pk INTEGER NOT NULL PRIMARY KEY,\n"
        "  title TEXT,\n"
        "  artist INTEGER REFERENCES artist(pk)\n"
        ");")
    assert "e.g." not in SQLITE.describe(["artist"], samples=0)


def test_neighbours_follow_foreign_keys_both_ways() -> None:
    assert SQLITE.neighbours("album") == {"artist", "track"}
    assert SQLITE.neighbours("ARTIST") == {"album"}


def test_unknown_table_error_lists_choices() -> None:
    with pytest.raises(UnknownTable) as info:
        SQLITE.describe(["albums"])
    assert str(info.value) == ("unknown table 'albums'; did you mean album? "
                               "tables: album, artist, track")


def test_sqlglot_schema_replaces_unparseable_types() -> None:
    odd = Schema("sqlite", {"t": Table("t", (Column("a", "whatever goes"), Column("b", "")))})
    assert odd.sqlglot_schema() == {"t": {"a": "TEXT", "b": "TEXT"}}
    assert SQLITE.sqlglot_schema()["track"]["order"] == "INTEGER"


def test_schema_is_read_only() -> None:
    with pytest.raises(TypeError):
        SQLITE.tables["x"] = TABLES["artist"]  # type: ignore[index]
