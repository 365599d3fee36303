"""What a database holds, as plain frozen data: tables, columns, keys, a few sample values.

The same `Schema` feeds the prompt (`describe`), the guard (`sqlglot_schema`, which
`check_sql` qualifies every name against) and table selection (`neighbours`). It is
built by `SqlDatabase.schema()` from a live database, or by hand (e.g. from Spider's
`tables.json`, which has no rows):

>>> s = Schema("sqlite", {"artists": Table("artists", (Column("pk", "INTEGER", False, True),
...     Column("name", "TEXT", True, False, ("AC/DC",))), (), 275)})
>>> print(s.describe())
CREATE TABLE artists (  -- 275 rows
  pk INTEGER NOT NULL PRIMARY KEY,
  name TEXT  -- e.g. 'AC/DC'
);
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from sqlglot import exp
from sqlglot.errors import ParseError

from .errors import SqlError

__all__ = ["Column", "ForeignKey", "Schema", "Table", "UnknownTable"]

_SAMPLE_CHARS = 40
_NUMERIC = re.compile(r"INT|REAL|NUM|DEC|FLOAT|DOUBLE|SERIAL|MONEY|BOOL", re.IGNORECASE)


class UnknownTable(SqlError, KeyError):
    """A table name asked of a `Schema` that it does not hold."""

    def __init__(self, name: str, choices: Iterable[str]) -> None:
        names = sorted(choices)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        valid = ", ".join(names) if names else "none"
        super().__init__(f"unknown table {name!r}; {hint}tables: {valid}")
        self.name = name
        self.choices = tuple(names)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Column:
    """One column; `type` is the database's declared type, `samples` a few distinct
    values rendered as text (for prompts, never for checking), `description` what it
    means (a Postgres COMMENT ON, or given by the user)."""

    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False
    samples: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class ForeignKey:
    """`columns` of the owning table reference `ref_columns` of `ref_table`."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table or view; `row_count` is None where counting was skipped or impossible."""

    name: str
    columns: tuple[Column, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    row_count: int | None = None
    description: str = ""

    def column(self, name: str) -> Column | None:
        """The column called `name`, matched exactly first, then ignoring case."""
        for col in self.columns:
            if col.name == name:
                return col
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)


@dataclass(frozen=True)
class Schema:
    """Every table of one database, with the sqlglot dialect its SQL is written in."""

    dialect: str
    tables: Mapping[str, Table] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))

    def __hash__(self) -> int:
        return hash((self.dialect, tuple(self.tables)))

    def table(self, name: str) -> Table:
        """The table called `name` (exact, then ignoring case); raises `UnknownTable`."""
        found = self.tables.get(name)
        if found is None:
            lowered = name.lower()
            found = next((t for n, t in self.tables.items() if n.lower() == lowered), None)
        if found is None:
            raise UnknownTable(name, self.tables)
        return found

    def neighbours(self, table: str) -> set[str]:
        """Tables joined to `table` by a foreign key, in either direction (not itself)."""
        name = self.table(table).name
        out = {fk.ref_table for fk in self.tables[name].foreign_keys}
        out |= {t.name for t in self.tables.values()
                if any(fk.ref_table.lower() == name.lower() for fk in t.foreign_keys)}
        found = {self.table(n).name for n in out if _has(self, n)}
        found.discard(name)
        return found

    def describe(self, tables: Iterable[str] | None = None, *, samples: int = 3) -> str:
        """CREATE TABLE-like text for a prompt: types, keys, foreign keys, row counts
        and up to `samples` sample values per column as comments."""
        names = list(self.tables) if tables is None else [self.table(t).name for t in tables]
        return "\n\n".join(_describe_table(self.tables[n], self.dialect, samples)
                           for n in dict.fromkeys(names))

    def with_descriptions(self, descriptions: Mapping[str, str]) -> Schema:
        """A copy with `{"table": text, "table.column": text}` as descriptions (replacing
        the database's own comments where both say something). Raises `SqlError`
        naming a key whose table or column is not here."""
        if not descriptions:
            return self
        tables = dict(self.tables)
        for key, text in descriptions.items():
            name, _, column = key.partition(".")
            try:
                table = tables[self.table(name).name]
            except UnknownTable as exc:
                raise SqlError(f"descriptions: {key!r}: {exc}") from None
            clean = " ".join(str(text).split())
            if not column:
                tables[table.name] = replace(table, description=clean)
                continue
            col = table.column(column)
            if col is None:
                raise SqlError(f"descriptions: {key!r}: {table.name} has no column {column!r}; "
                               f"columns: {', '.join(c.name for c in table.columns)}")
            cols = tuple(replace(c, description=clean) if c is col else c for c in table.columns)
            tables[table.name] = replace(table, columns=cols)
        return Schema(self.dialect, tables)

    def sqlglot_schema(self) -> dict[str, dict[str, str]]:
        """`{table: {column: type}}` for sqlglot's `qualify`/`optimize`; types sqlglot
        cannot parse (SQLite accepts any text as a type) are given as TEXT."""
        return {t.name: {c.name: _sqlglot_type(c.type, self.dialect) for c in t.columns}
                for t in self.tables.values()}


def _has(schema: Schema, name: str) -> bool:
    try:
        schema.table(name)
    except UnknownTable:
        return False
    return True


def _sqlglot_type(declared: str, dialect: str) -> str:
    if not declared.strip():
        return "TEXT"
    try:
        exp.DataType.build(declared, dialect=dialect)
    except (ParseError, ValueError):
        return "TEXT"
    return declared


def _ident(name: str, dialect: str) -> str:
    return exp.to_identifier(name).sql(dialect=dialect)


def _describe_table(table: Table, dialect: str, samples: int) -> str:
    single_fk = {fk.columns[0]: fk for fk in table.foreign_keys if len(fk.columns) == 1}
    pk_count = sum(c.primary_key for c in table.columns)
    lines: list[str] = []
    for col in table.columns:
        text = f"  {_ident(col.name, dialect)} {col.type}".rstrip()
        if not col.nullable:
            text += " NOT NULL"
        if col.primary_key and pk_count == 1:
            text += " PRIMARY KEY"
        fk = single_fk.get(col.name)
        if fk is not None:
            ref = f"{_ident(fk.ref_table, dialect)}({_ident(fk.ref_columns[0], dialect)})"
            text += f" REFERENCES {ref}"
        lines.append(text)
    if pk_count > 1:
        keys = ", ".join(_ident(c.name, dialect) for c in table.columns if c.primary_key)
        lines.append(f"  PRIMARY KEY ({keys})")
    for fk in table.foreign_keys:
        if len(fk.columns) > 1:
            cols = ", ".join(_ident(c, dialect) for c in fk.columns)
            refs = ", ".join(_ident(c, dialect) for c in fk.ref_columns)
            ref_table = _ident(fk.ref_table, dialect)
            lines.append(f"  FOREIGN KEY ({cols}) REFERENCES {ref_table}({refs})")
    # Comments go after the comma so the text stays valid SQL.
    for i, col in enumerate(table.columns):
        shown = col.samples[:samples] if samples > 0 else ()
        comma = "," if i < len(lines) - 1 else ""
        lines[i] += comma
        notes = [col.description] if col.description else []
        if shown:
            numeric = _NUMERIC.search(col.type) is not None
            many = "e.g. " if len(shown) < len(col.samples) or len(shown) <= 3 else "values: "
            notes.append(many + ", ".join(_sample(v, numeric) for v in shown))
        if notes:
            lines[i] += "  -- " + "; ".join(notes)
    for i in range(len(table.columns), len(lines) - 1):
        lines[i] += ","
    rows = f"  -- {table.row_count} rows" if table.row_count is not None else ""
    if table.description:
        rows = f"  -- {table.description}" + (f" ({table.row_count} rows)"
                                               if table.row_count is not None else "")
    return f"CREATE TABLE {_ident(table.name, dialect)} ({rows}\n" + "\n".join(lines) + "\n);"


def _sample(value: str, numeric: bool) -> str:
    """A sample as a SQL literal: bare for numeric columns, quoted otherwise."""
    if numeric:
        try:
            float(value)
        except ValueError:
            pass
        else:
            return value
    text = value if len(value) <= _SAMPLE_CHARS else value[: _SAMPLE_CHARS - 1] + "…"
    return "'" + text.replace("'", "''").replace("\n", " ") + "'"
