"""Tables for causal queries: read from a CSV file or one checked, read-only SELECT on a
named connection, and narrowed to the graph's numeric columns.

>>> table = load_table(csv="shop.csv")                                   # doctest: +SKIP
>>> table = load_table(connection="demo", sql="SELECT * FROM orders")    # doctest: +SKIP
>>> numbers = prepare_table(table, parse_graph("discount -> total"))     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CausalError
from .graph import CausalGraph, validate_graph

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MIN_ROWS", "load_table", "prepare_table"]

MIN_ROWS = 20  # complete rows needed to fit anything


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
    `attrs["encodings"]`), rows with a missing or infinite value dropped. The index is
    kept when it is unique integers (a CSV or SQL
    table's 0-based row numbers), else replaced by row positions: a unit's row number means
    the same before and after. Raises `CausalError` naming other text
    columns, or when fewer than `MIN_ROWS` complete rows remain."""
    import numpy as np
    import pandas as pd

    validate_graph(graph, [str(c) for c in table.columns])
    index = table.index
    integer_labels = pd.api.types.is_integer_dtype(index.dtype) and index.is_unique
    frame = table.copy(deep=False) if integer_labels else table.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    wrong: list[str] = []
    out: dict[str, pd.Series] = {}
    encodings: dict[str, dict[str, float]] = {  # a prepared table's, kept
        k: v for k, v in table.attrs.get("encodings", {}).items() if k in graph.nodes}
    for name in graph.nodes:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            out[name] = column.astype("float64")
            continue
        numeric = pd.to_numeric(column, errors="coerce")
        if numeric.isna().sum() <= column.isna().sum():  # numbers in text form
            out[name] = numeric.astype("float64")
            continue
        levels = sorted(str(v) for v in column.dropna().unique())
        if len(levels) == 2:  # two words (yes/no, basic/pro): 0 and 1, in sorted order
            encodings[name] = {levels[0]: 0.0, levels[1]: 1.0}
            out[name] = column.map(lambda v, e=encodings[name]: e.get(str(v)) if
                                   pd.notna(v) else np.nan).astype("float64")
            continue
        shown = ", ".join(repr(v[:20]) for v in levels[:5]) + (", ..." if len(levels) > 5
                                                               else "")
        wrong.append(f"{name} ({len(levels)} values: {shown})")
    if wrong:
        raise CausalError(f"data: column{'s' if len(wrong) > 1 else ''} {'; '.join(wrong)} "
                          f"{'are' if len(wrong) > 1 else 'is'} not numeric; causal queries "
                          f"need numbers, booleans or two-valued text (encode a category of "
                          f"more values as 0/1 columns, one per value)")
    numbers = pd.DataFrame(out, index=frame.index).replace([np.inf, -np.inf], np.nan).dropna()
    numbers.attrs["encodings"] = encodings
    if len(numbers) < MIN_ROWS:
        raise CausalError(f"data: {len(numbers)} rows have values in every graph column "
                          f"({', '.join(graph.nodes)}); at least {MIN_ROWS} are needed")
    return numbers
