"""The guard's refusals worded for a model to act on: an unknown name with the closest
valid ones, a column that lives in another table (join it), a table used as a column,
a wrong alias. `check_sql` raises them; this module only writes the sentences."""

from __future__ import annotations

import difflib
import re

from sqlglot import exp

from ._linking import inferred_joins
from .schema import Schema

__all__ = ["column_problem", "join_clause", "unknown_name"]


def unknown_name(kind: str, name: str, choices: list[str]) -> str:
    """"unknown table x; did you mean y?", or the valid names when none is close."""
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    if close:
        return f"unknown {kind} {name}; did you mean {' or '.join(lowered[c] for c in close)}?"
    shown = ", ".join(sorted(choices)[:20]) + (", ..." if len(choices) > 20 else "")
    return f"unknown {kind} {name}; valid {kind}s: {shown or 'none'}"


_UNRESOLVED = re.compile(r"Column '(?P<col>.+?)' could not be resolved"
                         r"(?: for table: '(?P<table>.+?)')?")
_UNKNOWN = re.compile(r"Unknown column: (?P<col>\S+)")


def join_clause(schema: Schema, table: str, aliases: dict[str, str]) -> str:
    """`join T ON T.x = a.y` joining `table` to a table of the query (`aliases`: alias ->
    table) by a declared or name-inferred key; `join T` when there is no direct one."""
    for src, col, ref, ref_col in inferred_joins(schema):
        for mine, mine_col, other, other_col in ((src, col, ref, ref_col),
                                                 (ref, ref_col, src, col)):
            if mine.lower() != table.lower():
                continue
            alias = next((a for a, t in aliases.items() if t.lower() == other.lower()), None)
            if alias is not None:
                return f"join {mine} ON {mine}.{mine_col} = {alias}.{other_col}"
    return f"join {table}"


def column_problem(message: str, tree: exp.Expr, schema: Schema) -> str:
    """Turn sqlglot's OptimizeError into one sentence naming the closest valid columns."""
    match = _UNRESOLVED.search(message) or _UNKNOWN.search(message)
    if match is None:
        return f"the SQL does not match the schema: {message.splitlines()[0]}"
    column = match.group("col")
    alias = match.groupdict().get("table")
    aliases = {t.alias_or_name.lower(): t.name for t in tree.find_all(exp.Table)}
    if _UNKNOWN.search(message):
        qualified = next((c for c in tree.find_all(exp.Column)
                          if c.name.lower() == column.lower() and c.table), None)
        alias = qualified.table if qualified is not None else None
    if alias and alias.lower() not in aliases:
        named = ", ".join(sorted(aliases)) or "none"
        if alias.lower() in {n.lower() for n in schema.tables}:
            return (f"{alias}.{column} names table {alias}, which is not in the FROM clause "
                    f"where it is used (the query names: {named}); "
                    f"{join_clause(schema, alias, aliases)} there")
        return f"unknown table or alias {alias} in {alias}.{column}; the query names: {named}"
    owner = aliases.get(alias.lower()) if alias else None
    known = {n.lower(): n for n in schema.tables}
    if owner and owner.lower() in known and schema.table(owner).column(column) is not None:
        table = known[owner.lower()]
        scope = {a: t for a, t in aliases.items() if t.lower() != table.lower()}
        return (f"{alias}.{column} is used where {table} is not in the FROM clause (it is "
                f"only in another part of the query); {join_clause(schema, table, scope)} "
                f"there")
    in_scope = [known[t.lower()] for t in dict.fromkeys(aliases.values()) if t.lower() in known]
    if alias:
        in_scope = [known[owner.lower()]] if owner and owner.lower() in known else []
    candidates = [f"{t}.{c.name}" for t in in_scope for c in schema.tables[t].columns]
    owners = [c for c in candidates if c.split(".", 1)[1].lower() == column.lower()]
    if len(owners) > 1:
        tables = " and ".join(o.split(".")[0] for o in owners)
        return f"column {column} is ambiguous: it is in {tables}; write {' or '.join(owners)}"
    shown = f"{alias}.{column}" if alias else column
    if not alias and column.lower() in known:
        return (f"{column} is a table, not a column: COUNT(*) counts rows, and "
                f"{known[column.lower()]}.<column> names one of its columns once it is in FROM")
    here = f"{in_scope[0]} has no column {column}" if alias and in_scope else \
        f"unknown column {shown}"
    # the same name in another table of the query (a wrong alias), then close names here
    others = [f"{a}.{column}" for a, t in aliases.items() if a != (alias or "").lower()
              and t.lower() in known and schema.table(t).column(column) is not None]
    if others:
        return f"{here}; did you mean {' or '.join(sorted(set(others)))}?"
    bare = {c.split(".", 1)[1].lower(): c for c in candidates}
    close = difflib.get_close_matches(column.lower(), list(bare), n=3, cutoff=0.6)
    if close:
        return f"{here}; did you mean {' or '.join(bare[c] for c in close)}?"
    # a table not in the query has it: say which, so the model can join it
    elsewhere = sorted(f"{t.name}.{c.name}" for t in schema.tables.values()
                       if t.name not in in_scope for c in t.columns
                       if c.name.lower() == column.lower())
    if elsewhere:
        verb = "has" if len(elsewhere) == 1 else "have"
        joins = " or ".join(join_clause(schema, e.split(".")[0], aliases) for e in elsewhere[:3])
        return f"{here}; {', '.join(elsewhere[:3])} {verb} that name: {joins} to use it"
    listed = ", ".join(candidates[:20]) + (", ..." if len(candidates) > 20 else "")
    return f"{here}; columns here: {listed or 'none'}"
