"""Spider's `tables.json` as `Schema`s, empty SQLite databases built from them (so
generated SQL can be checked and run, on no rows, where the dataset ships schemas only),
and Spider's exact-set-match comparison of a predicted query with the gold one.

>>> schemas = load_spider_schemas(Path("spider-dev/tables.json"))        # doctest: +SKIP
>>> sorted(schemas["concert_singer"].tables)                              # doctest: +SKIP
['concert', 'singer', 'singer_in_concert', 'stadium']
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify

from .errors import SqlError
from .schema import Column, ForeignKey, Schema, Table

__all__ = ["empty_sqlite", "exact_set_match", "load_spider_schemas", "spider_schema",
           "tables_of"]

_TYPES = {"number": "NUMERIC", "text": "TEXT", "time": "TEXT", "boolean": "BOOLEAN",
          "others": "TEXT"}


def spider_schema(entry: dict[str, Any]) -> Schema:
    """One `tables.json` entry as a SQLite `Schema` (original names, keys, no rows);
    SQLite's own `sqlite_sequence`, listed by some entries, is left out."""
    tables = entry["table_names_original"]
    cols = entry["column_names_original"]
    types = entry["column_types"]
    keys: set[int] = set()
    for pk in entry["primary_keys"]:
        keys.update(pk if isinstance(pk, list) else [pk])
    fks: dict[int, list[ForeignKey]] = {}
    for src, dst in entry["foreign_keys"]:
        src_table, src_col = cols[src]
        dst_table, dst_col = cols[dst]
        fks.setdefault(src_table, []).append(
            ForeignKey((src_col,), tables[dst_table], (dst_col,)))
    columns: dict[int, list[Column]] = {i: [] for i in range(len(tables))}
    for i, (table, name) in enumerate(cols):
        if table < 0:
            continue
        columns[table].append(Column(name, _TYPES.get(types[i], "TEXT"), i not in keys,
                                     i in keys))
    return Schema("sqlite", {
        name: Table(name, tuple(columns[i]), tuple(fks.get(i, ())), None)
        for i, name in enumerate(tables) if not name.lower().startswith("sqlite_")})


def load_spider_schemas(path: Path) -> dict[str, Schema]:
    """Every database of a Spider `tables.json`, by `db_id`."""
    return {entry["db_id"]: spider_schema(entry) for entry in json.loads(path.read_text())}


def empty_sqlite(schema: Schema, path: Path) -> Path:
    """Create the schema's tables, empty, in a new SQLite file at `path`."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(schema.describe(samples=0))
        conn.commit()
    except sqlite3.Error as exc:
        raise SqlError(f"{path}: could not create the tables: {exc}") from exc
    finally:
        conn.close()
    return path


def tables_of(sql: str, dialect: str = "sqlite") -> frozenset[str]:
    """The tables a query reads (lower-case, CTE names left out); empty if unparseable."""
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return frozenset()
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return frozenset(t.name.lower() for t in tree.find_all(exp.Table)
                     if t.name and t.name.lower() not in ctes)


def exact_set_match(pred: str, gold: str, schema: Schema) -> bool | None:
    """Spider's exact set match without values: the two queries have the same tables, the
    same SELECT items, WHERE and HAVING conjuncts and GROUP BY keys as sets (aliases
    resolved to tables, literals masked), the same ORDER BY, LIMIT present in both or
    neither, and the same set operations, compared the same way inside. Join conditions
    are not compared (as in Spider). None when the gold query cannot be parsed.

    >>> s = Schema("sqlite", {"t": Table("t", (Column("a", "TEXT"), Column("b", "TEXT")))})
    >>> exact_set_match("SELECT b, a FROM t AS x WHERE x.a = 'z'",
    ...                 "select a, b from t where a = 'y'", s)
    True
    """
    gold_shape = _shape_of(gold, schema)
    if gold_shape is None:
        return None
    return _shape_of(pred, schema) == gold_shape


def _shape_of(sql: str, schema: Schema) -> tuple[Any, ...] | None:
    try:
        tree = parse_one(sql, read="sqlite")
        tree = qualify(tree, schema=dict(schema.sqlglot_schema()), dialect="sqlite",
                       validate_qualify_columns=False, identify=False,
                       expand_alias_refs=False)
        return _shape(tree)
    except (SqlglotError, ValueError, KeyError, RecursionError):
        return None


def _is_query(node: exp.Expr) -> bool:
    return isinstance(node, exp.Subquery | exp.Select | exp.SetOperation)


def _shape(node: exp.Expr) -> tuple[Any, ...]:
    if isinstance(node, exp.Subquery):
        return _shape(node.this)
    if isinstance(node, exp.SetOperation):
        return (type(node).__name__.lower(), _shape(node.left), _shape(node.right))
    if not isinstance(node, exp.Select):
        return ("other", node.sql(dialect="sqlite").lower())
    sources = [node.args.get("from_") or node.args.get("from")]
    sources += [j.this for j in node.args.get("joins") or []]
    aliases: dict[str, str] = {}
    tables: list[Any] = []
    for source in sources:
        item = source.this if isinstance(source, exp.From) else source
        if isinstance(item, exp.Table):
            aliases[item.alias_or_name.lower()] = item.name.lower()
            tables.append(item.name.lower())
        elif item is not None:
            tables.append(_shape(item.this if isinstance(item, exp.Subquery) else item))

    def norm(e: exp.Expr) -> str:
        e = e.copy()
        if isinstance(e, exp.Alias):
            e = e.this
        nested = []  # the outermost subqueries, compared by their own shape
        queries = [n for n in e.walk(prune=lambda n: n is not e and _is_query(n))
                   if n is not e and _is_query(n)]
        for sub in queries:
            nested.append(_shape(sub))
            sub.replace(exp.Var(this="__query__"))
        for col in list(e.find_all(exp.Column)):
            if col.table:
                col.set("table", exp.to_identifier(aliases.get(col.table.lower(), col.table)))
        for lit in list(e.find_all(exp.Literal)):
            lit.replace(exp.Placeholder())
        text = e.sql(dialect="sqlite").lower()
        return f"{text} {nested!r}" if nested else text

    def conjuncts(clause: exp.Expr | None) -> frozenset[str]:
        if clause is None:
            return frozenset()
        cond = clause.this
        parts = cond.flatten() if isinstance(cond, exp.And) else [cond]
        return frozenset(norm(p) for p in parts)

    group = node.args.get("group")
    order = node.args.get("order")
    return (
        bool(node.args.get("distinct")),
        frozenset(norm(e) for e in node.expressions),
        tuple(sorted(tables, key=repr)),
        conjuncts(node.args.get("where")),
        frozenset(norm(e) for e in group.expressions) if group else frozenset(),
        conjuncts(node.args.get("having")),
        tuple((norm(o.this), bool(o.args.get("desc"))) for o in order.expressions)
        if order else (),
        node.args.get("limit") is not None,
    )
