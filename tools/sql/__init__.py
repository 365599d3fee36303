"""Text-to-SQL, safe by construction: a `Schema` to prompt with, `check_sql` to refuse
anything but one read-only, schema-valid, row-capped SELECT, and `SqlDatabase` to run
what passed on a read-only connection with a timeout.

>>> from flowloom.tools.sql import SqlDatabase, check_sql
>>> db = SqlDatabase.open("sqlite:////work/shared/datasets/sql/chinook.sqlite")  # doctest: +SKIP
>>> checked = check_sql("SELECT name FROM artist ORDER BY pk", db.schema())   # doctest: +SKIP
>>> db.run(checked.sql).rows[:1]                                             # doctest: +SKIP
[['AC/DC']]
"""

from .db import QueryResult, SqlDatabase
from .errors import SqlConnectionError, SqlError, SqlExecutionError, SqlRefused
from .guard import CheckedSql, check_sql
from .schema import Column, ForeignKey, Schema, Table, UnknownTable

__all__ = [
    "CheckedSql",
    "Column",
    "ForeignKey",
    "QueryResult",
    "Schema",
    "SqlConnectionError",
    "SqlDatabase",
    "SqlError",
    "SqlExecutionError",
    "SqlRefused",
    "Table",
    "UnknownTable",
    "check_sql",
]
