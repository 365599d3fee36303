"""Tables for causal queries: read from a CSV file or one checked, read-only SELECT on a
named connection, and turned into numbers: the graph's columns, text ones encoded.

>>> table = load_table(csv="shop.csv")                                   # doctest: +SKIP
>>> table = load_table(connection="demo", sql="SELECT * FROM orders")    # doctest: +SKIP
>>> numbers = prepare_table(table, parse_graph("discount -> total"))     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from .errors import CausalError
from .graph import CausalGraph, validate_graph

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MAX_LEVELS", "MIN_ROWS", "OneHot", "encoded_graph", "load_table", "prepare_table"]

MIN_ROWS = 20  # complete rows needed to fit anything
MAX_LEVELS = 50  # values of a text column encoded as 0/1 columns
ROWS_PER_LEVEL = 5  # rows per value at least: fewer is an identifier, not a category


class OneHot(TypedDict):
    """How a text column of more than two values became 0/1 columns: `columns` maps each
    value but `baseline` (the first in sorted order, all its columns 0) to its column."""

    baseline: str
    columns: dict[str, str]


def load_table(*, csv: str | Path | None = None, connection: str | None = None,
               sql: str | None = None, home: Path | None = None, max_rows: int = 1_000_000,
               graph: CausalGraph | None = None, timeout_s: float = 60.0) -> pd.DataFrame:
    """The table in the CSV file `csv`, or the rows of `sql` run on `connection` (a name
    from connections.yaml in the data dir `home`, "demo", a URL or a SQLite path) after the
    SQL tool's read-only check. More than `max_rows` rows is a `CausalError`, not a silent
    cut. With `graph`, only its columns are kept, as numbers (`prepare_table`)."""
    if (csv is None) == (connection is None):
        raise CausalError("data: give a CSV file, or a connection and a SQL query (not both)")
    if connection is not None:
        if not sql or not sql.strip():
            raise CausalError(f"sql: connection '{connection}' needs a SELECT query (--sql)")
        table = _from_sql(connection, sql, home, max_rows, timeout_s)
    else:
        if sql is not None:
            raise CausalError("sql: a query needs a connection (--connection), not a CSV file")
        table = _from_csv(Path(str(csv)).expanduser(), max_rows)
    if table.empty:
        raise CausalError("data: the table has no rows")
    return prepare_table(table, graph) if graph is not None else table


def _from_csv(path: Path, max_rows: int) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise CausalError(f"data: no such file: {path}")
    try:
        table = pd.read_csv(path, nrows=max_rows + 1)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CausalError(f"data: {path} is not a readable CSV file ({first})") from None
    if len(table) > max_rows:
        raise CausalError(f"data: {path} has more than {max_rows:,} rows; sample or filter it "
                          f"first")
    return table


def _from_sql(connection: str, sql: str, home: Path | None, max_rows: int,
              timeout_s: float) -> pd.DataFrame:
    import pandas as pd

    from flowloom.flows.errors import FlowBuildError
    from flowloom.flows.home import flowloom_home
    from flowloom.tools.sql.db import SqlDatabase
    from flowloom.tools.sql.errors import SqlError, SqlRefused
    from flowloom.tools.sql.guard import check_sql
    from flowloom.tools.sql.node import resolve_database

    home = home or flowloom_home()
    try:
        url = resolve_database(connection, home)
    except FlowBuildError as exc:
        raise CausalError(f"connection: {exc}") from None
    try:  # one row past the cap tells a full result from a cut one
        with SqlDatabase.open(url, max_rows=max_rows + 1, timeout_s=timeout_s) as db:
            checked = check_sql(sql, db.schema(), max_rows=max_rows + 1)
            result = db.run(checked.sql)
    except SqlRefused as exc:
        raise CausalError(f"sql: refused: {exc.reason}") from None
    except SqlError as exc:
        raise CausalError(f"sql: {exc}") from None
    if result.row_count > max_rows:
        raise CausalError(f"sql: the query returns more than {max_rows:,} rows; add a WHERE or "
                          f"a LIMIT")
    return pd.DataFrame(result.rows, columns=result.columns)


def prepare_table(table: pd.DataFrame, graph: CausalGraph) -> pd.DataFrame:
    """The graph's columns of `table` as float64 (booleans as 0/1; a text column of two
    values as 0/1 in sorted order, e.g. no = 0, yes = 1, recorded in the frame's
    `attrs["encodings"]`; a text column of more values, a cause with no edges into it, as
    0/1 columns `name=value`, one per value but the first in sorted order, recorded in
    `attrs["one_hot"]`: see `encoded_graph`), rows with a missing or infinite value
    dropped. The index is kept when it is unique integers (a CSV or SQL table's 0-based
    row numbers), else replaced by row positions: a unit's row number means the same
    before and after. No graph column is ever left out: one that cannot be used raises
    `CausalError` naming it, as do fewer than `MIN_ROWS` complete rows."""
    import numpy as np
    import pandas as pd

    encoded = list(table.attrs.get("one_hot", {}))  # a prepared table's text columns
    validate_graph(graph, [str(c) for c in table.columns] + encoded)
    index = table.index
    integer_labels = pd.api.types.is_integer_dtype(index.dtype) and index.is_unique
    frame = table.copy(deep=False) if integer_labels else table.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    wrong: list[str] = []
    out: dict[str, pd.Series] = {}
    encodings: dict[str, dict[str, float]] = {  # a prepared table's, kept
        k: v for k, v in table.attrs.get("encodings", {}).items() if k in graph.nodes}
    one_hot: dict[str, OneHot] = {
        k: v for k, v in table.attrs.get("one_hot", {}).items() if k in graph.nodes}
    for name in graph.nodes:
        if name in one_hot:  # a prepared table's indicator columns, kept
            out.update({c: frame[c].astype("float64") for c in one_hot[name]["columns"].values()})
            continue
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            out[name] = column.astype("float64")
            continue
        numeric = pd.to_numeric(column, errors="coerce")
        if numeric.isna().sum() <= column.isna().sum():  # numbers in text form
            out[name] = numeric.astype("float64")
            continue
        levels = sorted(str(v) for v in column.dropna().unique())
        if len(levels) <= 2:  # two words (yes/no, basic/pro): 0 and 1, in sorted order
            encodings[name] = {word: float(i) for i, word in enumerate(levels)}
            out[name] = column.map(lambda v, e=encodings[name]: e.get(str(v)) if
                                   pd.notna(v) else np.nan).astype("float64")
            continue
        problem = _many_valued_problem(name, levels, graph, len(frame), set(frame.columns))
        if problem:
            wrong.append(problem)
            continue
        text = column.map(lambda v: str(v) if pd.notna(v) else None)
        columns = {level: f"{name}={level}" for level in levels[1:]}
        one_hot[name] = {"baseline": levels[0], "columns": columns}
        for level, indicator in columns.items():
            out[indicator] = (text == level).astype("float64").where(text.notna())
    if wrong:
        raise CausalError(f"data: {'; '.join(wrong)}")
    numbers = pd.DataFrame(out, index=frame.index).replace([np.inf, -np.inf], np.nan).dropna()
    numbers.attrs["encodings"] = encodings
    numbers.attrs["one_hot"] = one_hot
    if len(numbers) < MIN_ROWS:
        raise CausalError(f"data: {len(numbers)} rows have values in every graph column "
                          f"({', '.join(graph.nodes)}); at least {MIN_ROWS} are needed")
    return numbers


def _many_valued_problem(name: str, levels: list[str], graph: CausalGraph, rows: int,
                         columns: set[str]) -> str:
    """Why the text column `name` of `levels` cannot be 0/1 columns, or "" when it can."""
    shown = ", ".join(repr(v[:20]) for v in levels[:5]) + (", ..." if len(levels) > 5 else "")
    what = f"column {name} ({len(levels)} text values: {shown})"
    most = min(MAX_LEVELS, rows // ROWS_PER_LEVEL)
    if len(levels) > most:
        return (f"{what} has too many values to encode as 0/1 columns (at most {most} for "
                f"{rows:,} rows); an identifier? leave it out of the graph or the "
                f"confounders (--confounders '*,-{name}')")
    causes = graph.parents(name)
    if causes:
        return (f"{what} has causes in the graph ({', '.join(causes)}); a text column of more "
                f"than two values is encoded as 0/1 columns, one per value, only as a cause "
                f"(no edges into it): drop those edges, or give it as numbers")
    clash = [f"{name}={v}" for v in levels[1:] if f"{name}={v}" in columns]
    if clash:
        return f"{what}: its 0/1 column {clash[0]} would clash with a column of that name"
    return ""


def encoded_graph(graph: CausalGraph, numbers: pd.DataFrame) -> CausalGraph:
    """`graph` over `prepare_table`'s columns: each one-hot encoded node replaced by its
    0/1 columns, every one with the node's edges (a text confounder of three values
    becomes two confounders)."""
    one_hot: dict[str, OneHot] = numbers.attrs.get("one_hot", {})
    if not one_hot:
        return graph

    def expand(node: str) -> list[str]:
        return list(one_hot[node]["columns"].values()) if node in one_hot else [node]

    edges = [(a, b) for x, y in graph.edges for a in expand(x) for b in expand(y)]
    return CausalGraph(tuple(dict.fromkeys(edges)))
