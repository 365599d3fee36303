"""The guard every generated statement passes before it touches a database.

`check_sql` accepts exactly one read-only query (SELECT, WITH ... SELECT, UNION and
friends of selects), checks every table and column against the `Schema`, refuses
functions that reach files, the network or the server, refuses joins with no
condition whose cross product is past `max_cross_rows`, caps the rows with a LIMIT and
writes the statement out in the schema's dialect. A refusal is a `SqlRefused` whose
message is one sentence a model can act on:

>>> from flowloom.tools.sql.schema import Column, Schema, Table
>>> s = Schema("sqlite", {"tracks": Table("tracks", (Column("pk", "INTEGER"),
...     Column("name", "TEXT")))})
>>> check_sql("SELECT name FROM tracks;", s, max_rows=50).sql
'SELECT tracks.name AS name FROM tracks AS tracks LIMIT 50'
>>> check_sql("SELECT nme FROM tracks", s)
Traceback (most recent call last):
...
flowloom.tools.sql.errors.SqlRefused: unknown column nme; did you mean tracks.name?

The database connection is read-only as well (`SqlDatabase`); the guard is the first
of two walls, not the only one.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, OptimizeError, ParseError, TokenError, UnsupportedError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

from ._reasons import column_problem, join_clause, unknown_name
from .errors import SqlRefused
from .schema import Schema

__all__ = ["CheckedSql", "check_sql"]

MAX_SQL_CHARS = 20_000
DEFAULT_MAX_CROSS_ROWS = 1_000_000


@dataclass(frozen=True)
class CheckedSql:
    """A statement that passed the guard. `sql` is what will run: in the schema's
    dialect, every name qualified, with the LIMIT. `limited` is True when the guard
    added or lowered that LIMIT, so a result of exactly `max_rows` rows may be cut short.
    """

    sql: str
    tables: tuple[str, ...]
    limited: bool


def _node_types(*names: str) -> tuple[type[exp.Expr], ...]:
    return tuple(getattr(exp, n) for n in names if hasattr(exp, n))


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Statements (and statement parts) that write, change settings or leave the database.
_FORBIDDEN = _node_types(
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable",
    "Command", "Pragma", "Attach", "Detach", "Analyze", "Copy", "Set", "Grant", "Revoke",
    "Transaction", "Commit", "Rollback", "Use", "Describe", "Into", "Lock", "Returning",
    "LoadData", "Kill", "Cache", "Uncache", "Refresh", "Comment", "Summarize", "Export",
)
_STATEMENT_NAMES = {
    "TruncateTable": "TRUNCATE", "Transaction": "BEGIN", "LoadData": "LOAD DATA",
    "Into": "SELECT ... INTO", "Lock": "SELECT ... FOR UPDATE/SHARE (a locking read)",
    "Returning": "RETURNING clause",
}
# Known sqlglot function classes that read or write files, call out, or change state.
_FORBIDDEN_FUNC_CLASSES = {
    "ReadCSV", "ReadParquet", "ToFile", "NextValueFor", "AIGenerate", "GenerateEmbedding",
    "GenerateText", "GenerateTable",
}
# Functions unknown to sqlglot that touch files, the server or other databases: named
# in the refusal so the model does not retry them. Anything unknown is refused anyway.
_DENIED_FUNCS = re.compile(
    r"^(load_extension|readfile|writefile|edit|fts3_tokenizer|zipfile|sqlar_\w+|fsdir|"
    r"pg_\w+|lo_\w+|dblink\w*|set_config|current_setting|\w*_to_xml\w*|query_to_\w+|"
    r"xpath\w*|nextval|setval|currval|lastval|txid_\w+|copy|sleep|benchmark|sys_\w+|"
    r"load_file|sys_exec|sys_eval|randomblob|zeroblob|get_lock|release_lock|"
    r"make_interval_sleep|shell|system|exec\w*|http\w*|url\w*)$",
    re.IGNORECASE,
)
# Functions sqlglot does not model that are plain scalar or aggregate computations.
_SAFE_UNKNOWN_FUNCS = _words("""
    julianday unixepoch strftime printf format char hex unhex unicode quote typeof iif
    likely unlikely likelihood soundex glob like total sign ltrim rtrim btrim lpad rpad
    initcap split_part strpos translate age date_part to_date to_timestamp to_number
    justify_days justify_hours make_date make_time make_timestamp isfinite width_bucket
    regexp_matches regexp_split_to_array array_length array_position cardinality
    string_to_array array_to_string to_json to_jsonb json_build_object jsonb_build_object
    json_agg jsonb_agg json_object_agg jsonb_object_agg char_length octet_length bit_length
    md5 sha256 concat_ws reverse left right repeat ascii chr nullif greatest least mode
    percentile_cont percentile_disc stddev_samp stddev_pop var_samp var_pop every bool_and
    bool_or bit_and bit_or median ntile lag lead first_value last_value nth_value
    percent_rank cume_dist dense_rank rank row_number now localtime localtimestamp
    datetime time date timestamp trunc div mod power sqrt exp ln log log10 floor ceil
    ceiling pi degrees radians sin cos tan asin acos atan atan2 cot random
""")


def check_sql(
    sql: str,
    schema: Schema,
    *,
    max_rows: int = 200,
    read_dialect: str | None = None,
    max_cross_rows: int = DEFAULT_MAX_CROSS_ROWS,
) -> CheckedSql:
    """Check one generated statement and return what may run; raises `SqlRefused`.

    `read_dialect` is the dialect `sql` is written in (default: the schema's);
    the result is always in `schema.dialect`.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, not {max_rows}")
    text = _strip(sql)
    if not text:
        raise SqlRefused("the SQL is empty", sql)
    if len(text) > MAX_SQL_CHARS:
        raise SqlRefused(f"the SQL is {len(text):,} characters long; the limit is "
                         f"{MAX_SQL_CHARS:,}", sql)
    dialect = read_dialect or schema.dialect
    tree = _parse_one(text, dialect, sql)
    _refuse_writes(tree, sql)
    _refuse_functions(tree, sql)
    tables = _check_tables(tree, schema, sql)
    if dialect == "sqlite":
        _double_quoted_strings(tree, schema)
    tree = _qualify(tree, schema, sql)
    _refuse_cross_joins(tree, schema, max_cross_rows, sql)
    if schema.dialect == "sqlite":
        tree = _sqlite_date_parts(tree)
    limited = _cap_rows(tree, max_rows, sql)
    try:
        out = tree.sql(dialect=schema.dialect, comments=False,
                       unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as err:
        raise SqlRefused(f"the SQL cannot be written in {schema.dialect}: "
                         f"{_first_line(err)}", sql) from err
    return CheckedSql(out, tables, limited)


def _strip(sql: str) -> str:
    """Drop markdown fences (the first fenced block wins) and one trailing ';'."""
    text = sql.strip()
    fenced = re.search(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    elif text.startswith("```"):
        text = re.sub(r"^```[A-Za-z0-9_-]*", "", text).strip()
    if text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _parse_one(text: str, dialect: str, sql: str) -> exp.Expr:
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except (ParseError, TokenError) as err:
        raise SqlRefused(f"could not parse the SQL: {_first_line(err)}", sql) from err
    except RecursionError as err:
        raise SqlRefused("could not parse the SQL: it is nested too deeply", sql) from err
    if len(statements) != 1:
        kinds = ", ".join(_statement_name(s) for s in statements)
        raise SqlRefused(f"only one statement is allowed; this has {len(statements)} "
                         f"({kinds})", sql)
    tree = statements[0]
    if isinstance(tree, exp.Select | exp.SetOperation | exp.Subquery):
        return tree
    if isinstance(tree, _FORBIDDEN + _node_types("Values")):
        raise SqlRefused(f"only SELECT queries are allowed; this is "
                         f"{_a(_statement_name(tree))}", sql)
    first = text.split(None, 1)[0]
    raise SqlRefused(f"could not parse the SQL: it should be a SELECT query but begins "
                     f"with {first!r}", sql)


def _statement_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    name = type(node).__name__
    if name in _STATEMENT_NAMES:
        return _STATEMENT_NAMES[name]
    kind = node.args.get("kind") if isinstance(node, exp.Create | exp.Drop) else None
    return f"{name.upper()} {kind}" if isinstance(kind, str) else name.upper()


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "AEIOU" else f"a {noun}"


def _refuse_writes(tree: exp.Expr, sql: str) -> None:
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN):
            inside = " inside the query" if node is not tree else ""
            raise SqlRefused(f"only read-only SELECT queries are allowed; this has "
                             f"{_a(_statement_name(node))}{inside}", sql)


def _function_name(node: exp.Func) -> str:
    return node.name if isinstance(node, exp.Anonymous) else node.sql_name()


def _refuse_functions(tree: exp.Expr, sql: str) -> None:
    for node in tree.find_all(exp.Func):
        name = _function_name(node)
        if type(node).__name__ in _FORBIDDEN_FUNC_CLASSES or _DENIED_FUNCS.match(name):
            raise SqlRefused(f"function {name.lower()}() is not allowed: it reaches files, "
                             f"the server or other databases", sql)
        if isinstance(node, exp.Anonymous) and name.lower() not in _SAFE_UNKNOWN_FUNCS:
            raise SqlRefused(f"function {name.lower()}() is not on the list of functions "
                             f"this tool allows; use standard SQL functions", sql)
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Func):
            raise SqlRefused(f"table functions such as {_function_name(table.this).lower()}"
                             f"() are not allowed; select from the schema's tables", sql)


def _check_tables(tree: exp.Expr, schema: Schema, sql: str) -> tuple[str, ...]:
    """Every FROM/JOIN name is a CTE or a schema table; returns the schema tables."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    by_lower = {name.lower(): name for name in schema.tables}
    found: dict[str, None] = {}
    for table in tree.find_all(exp.Table):
        if table.args.get("catalog") or table.args.get("db"):
            if table.args.get("catalog") or table.db.lower() not in {"main", "public"}:
                raise SqlRefused(f"table {table.sql()} is outside this database; name "
                                 f"tables without a schema prefix", sql)
            table.set("db", None)
        name = table.name
        if not table.args.get("db") and name.lower() in ctes:
            continue
        if name.lower() not in by_lower:
            raise SqlRefused(unknown_name("table", name, list(schema.tables)), sql)
        found[by_lower[name.lower()]] = None
    return tuple(found)


def _double_quoted_strings(tree: exp.Expr, schema: Schema) -> None:
    """SQLite reads "text" as a string when no column has that name; so do we."""
    names = {c.name.lower() for t in schema.tables.values() for c in t.columns}
    names |= {a.alias.lower() for a in tree.find_all(exp.Alias)}
    names |= {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    for column in list(tree.find_all(exp.Column)):
        ident = column.this
        if (isinstance(ident, exp.Identifier) and ident.quoted and not column.table
                and ident.name.lower() not in names):
            column.replace(exp.Literal.string(ident.name))


def _name_outputs(tree: exp.Expr, dialect: str) -> None:
    """Name the result's unnamed expressions as the query wrote them (`COUNT(*)`, as the
    database itself would), not `_col_0` as `qualify` does."""
    select = tree
    while isinstance(select, exp.SetOperation):  # a UNION's columns are its first part's
        select = select.this
    if not isinstance(select, exp.Select):
        return
    for i, projection in enumerate(select.expressions):
        if isinstance(projection, exp.Alias | exp.Column | exp.Star):
            continue
        name = projection.sql(dialect)
        if len(name) > 60:
            name = f"column_{i + 1}"
        projection.replace(exp.alias_(projection.copy(), exp.to_identifier(name, quoted=True)))


_UNRESOLVED_IN = re.compile(r"Column '(?P<col>.+?)' could not be resolved for table: "
                            r"'(?P<table>.+?)'")
_UNKNOWN_COLUMN = re.compile(r"Unknown column: (?P<col>\S+)")
MAX_REPAIRS = 3


def _repair_qualifier(tree: exp.Expr, schema: Schema, message: str) -> exp.Expr | None:
    """`tree` with one column's qualifier fixed where only one reading is possible, else
    None. Two slips a model makes: a table's name where the query gave it an alias
    (`FROM track AS t ... track.name`: the one alias of track in that SELECT), and a
    column put on the wrong alias (`t1.quantity` where t1's table has none and exactly one
    other table of the same SELECT has it). Either is what SQL does with an unqualified
    name: the one table in scope that has it. Nothing outside the column's own SELECT is
    considered."""
    known = {n.lower(): n for n in schema.tables}
    match = _UNRESOLVED_IN.search(message)
    unknown = _UNKNOWN_COLUMN.search(message)
    if match is None and unknown is None:
        return None
    column = (match or unknown).group("col").lower()  # type: ignore[union-attr]
    repaired = tree.copy()

    def has(table: str) -> bool:
        return table in known and schema.table(known[table]).column(column) is not None

    for scope in traverse_scope(repaired):
        aliases = {a.lower(): s.name.lower() for a, s in scope.sources.items()
                   if isinstance(s, exp.Table)}
        for col in scope.columns:
            qualifier = col.table.lower()
            if col.name.lower() != column or not qualifier:
                continue
            if match is not None and qualifier != match.group("table").lower():
                continue
            if qualifier in aliases:
                if has(aliases[qualifier]):
                    continue  # not this one's problem
                fits = [a for a, t in aliases.items() if a != qualifier and has(t)]
            elif qualifier in known:
                fits = [a for a, t in aliases.items() if t == qualifier and has(t)]
            else:
                continue
            if len(fits) != 1:
                return None
            for same in scope.columns:
                if same.name.lower() == column and same.table.lower() == qualifier:
                    same.set("table", exp.to_identifier(fits[0]))
            return repaired
    return None


def _qualify(tree: exp.Expr, schema: Schema, sql: str) -> exp.Expr:
    mapping: dict[str, object] = dict(schema.sqlglot_schema())
    for repairs in range(MAX_REPAIRS + 1):
        before = tree.copy()  # qualify works in place, also when it fails
        _name_outputs(tree, schema.dialect)  # after a repair: named as repaired
        try:
            tree = qualify(tree, schema=mapping, dialect=schema.dialect,
                           validate_qualify_columns=True, identify=False)
            break
        except OptimizeError as err:
            repaired = _repair_qualifier(before, schema, str(err)) \
                if repairs < MAX_REPAIRS else None
            if repaired is None:
                raise SqlRefused(column_problem(str(err), before, schema), sql) from err
            tree = repaired
        except (ParseError, UnsupportedError, ValueError, KeyError, RecursionError) as err:
            raise SqlRefused(f"could not check the SQL against the schema: "
                             f"{_first_line(err)}", sql) from err
    _refuse_dotted(tree, schema, sql)
    _quote_keywords(tree, schema.dialect)
    return tree


def _refuse_dotted(tree: exp.Expr, schema: Schema, sql: str) -> None:
    """`artist.name` where `artist` is not in FROM but is a column of a table that is
    comes out of `qualify` as a field of that column (`album.artist.name`): refuse it."""
    tables = {t.lower() for t in schema.tables}
    aliases = {t.alias_or_name: t.name for t in tree.find_all(exp.Table)}
    for dot in tree.find_all(exp.Dot):
        left = dot.this
        if not isinstance(left, exp.Column):
            continue
        ref = f"{left.name}.{dot.name}"
        if left.name.lower() in tables:
            raise SqlRefused(f"{ref} names table {left.name}, which is not in this query's "
                             f"FROM clause; {join_clause(schema, left.name, aliases)} first",
                             sql)
        raise SqlRefused(f"{ref} is not a column; write table.column", sql)


@functools.cache
def _keywords(dialect: str) -> frozenset[str]:
    phrases = Dialect.get_or_raise(dialect).tokenizer_class.KEYWORDS
    return frozenset(word for phrase in phrases for word in phrase.split())


def _quote_keywords(tree: exp.Expr, dialect: str) -> None:
    """Quote names that are SQL keywords (a column called "order"): `qualify` leaves
    them bare when it expands `*`, which would not parse."""
    keywords = _keywords(dialect)
    for ident in tree.find_all(exp.Identifier):
        if not ident.quoted and ident.name.upper() in keywords:
            ident.set("quoted", True)


_DATE_PARTS = {"Year": "%Y", "Month": "%m", "Day": "%d"}


def _sqlite_date_parts(tree: exp.Expr) -> exp.Expr:
    """YEAR(x), MONTH(x), DAY(x) and EXTRACT(YEAR FROM x), which SQLite lacks (sqlglot
    writes them unchanged), as CAST(STRFTIME('%Y', x) AS INTEGER)."""

    def rewrite(node: exp.Expr) -> exp.Expr:
        part, value = None, None
        if type(node).__name__ in _DATE_PARTS:
            part, value = _DATE_PARTS[type(node).__name__], node.this
        elif isinstance(node, exp.Extract) and node.name.capitalize() in _DATE_PARTS:
            part, value = _DATE_PARTS[node.name.capitalize()], node.expression
        if part is None or value is None:
            return node
        strftime = exp.Anonymous(this="STRFTIME", expressions=[exp.Literal.string(part),
                                                                value.copy()])
        return exp.Cast(this=strftime, to=exp.DataType.build("INTEGER"))

    return tree.transform(rewrite)


def _refuse_cross_joins(tree: exp.Expr, schema: Schema, limit: int, sql: str) -> None:
    for scope in traverse_scope(tree):
        if isinstance(scope.expression, exp.Select):
            _check_scope_joins(scope, schema, limit, sql)


def _check_scope_joins(scope: Scope, schema: Schema, limit: int, sql: str) -> None:
    sources = scope.selected_sources
    if len(sources) < 2:
        return
    parent = {alias: alias for alias in sources}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def link(aliases: set[str]) -> None:
        roots = {find(a) for a in aliases if a in parent}
        first = next(iter(roots), None)
        for r in roots:
            parent[r] = first  # type: ignore[assignment]

    select = scope.expression
    order = list(sources)
    conditions: list[exp.Expr] = []
    where = select.args.get("where")
    if where is not None:
        conditions.append(where.this)
    for join in select.args.get("joins") or []:
        if join.args.get("on") is not None:
            conditions.append(join.args["on"])
        elif join.args.get("using") or join.method == "NATURAL":
            joined = join.this.alias_or_name
            link({joined, *order[: max(order.index(joined), 1)]} if joined in order
                 else set())
    for condition in conditions:
        for part in condition.flatten() if isinstance(condition, exp.And) else [condition]:
            link({c.table for c in part.find_all(exp.Column)})
    groups: dict[str, list[str]] = {}
    for alias in sources:
        groups.setdefault(find(alias), []).append(alias)
    if len(groups) < 2:
        return
    estimate, names = 1, []
    for members in groups.values():
        counts = []
        for alias in members:
            node = sources[alias][1]
            if isinstance(node, exp.Table) and node.name.lower() in {
                    t.lower() for t in schema.tables}:
                counts.append(schema.table(node.name).row_count or 1)
        estimate *= max(counts, default=1)
        first = sources[members[0]][1]
        names.append(first.name if isinstance(first, exp.Table) else members[0])
    if estimate > limit:
        raise SqlRefused(f"{' and '.join(names)} are joined with no condition linking "
                         f"them (about {estimate:,} rows, the limit is {limit:,}); add an "
                         f"ON condition", sql)


def _cap_rows(tree: exp.Expr, max_rows: int, sql: str) -> bool:
    """Add `LIMIT max_rows` to the outer query or lower a larger one; True if changed."""
    current = tree.args.get("limit")
    if current is None:
        tree.set("limit", exp.Limit(expression=exp.Literal.number(max_rows)))
        return True
    count = current.args.get("count") if isinstance(current, exp.Fetch) else current.expression
    if not (isinstance(count, exp.Literal) and count.is_int):
        raise SqlRefused(f"the LIMIT must be a whole number, not {count.sql() if count else '?'}",
                         sql)
    if int(count.this) <= max_rows:
        return False
    count.replace(exp.Literal.number(max_rows))
    return True
