"""Text-to-SQL, safe by construction: a `Schema` to prompt with, `check_sql` to refuse
anything but one read-only, schema-valid, row-capped SELECT, `SqlDatabase` to run what
passed on a read-only connection with a timeout, and `answer_sql`, the loop that asks the
model, checks, runs and feeds errors back.

>>> from flowloom.tools.sql import SqlDatabase, check_sql
>>> db = SqlDatabase.open("sqlite:////work/shared/datasets/sql/chinook.sqlite")  # doctest: +SKIP
>>> checked = check_sql("SELECT name FROM artist ORDER BY pk", db.schema())   # doctest: +SKIP
>>> db.run(checked.sql).rows[:1]                                             # doctest: +SKIP
[['AC/DC']]

Names are imported on first use: the node registry imports this package, and SQLAlchemy
and sqlglot together take most of a second to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowloom.tools._lazy import lazy_getattr

from .errors import SqlConnectionError, SqlError, SqlExecutionError, SqlRefused

if TYPE_CHECKING:
    from ._fewshot import FewShotStore
    from ._values import ValueIndex
    from .db import QueryResult, SqlDatabase
    from .generate import SqlAnswer, answer_sql
    from .guard import CheckedSql, check_sql
    from .schema import Column, ForeignKey, Schema, Table, UnknownTable

__all__ = [
    "CheckedSql",
    "Column",
    "FewShotStore",
    "ForeignKey",
    "QueryResult",
    "Schema",
    "SqlAnswer",
    "SqlConnectionError",
    "SqlDatabase",
    "SqlError",
    "SqlExecutionError",
    "SqlRefused",
    "Table",
    "UnknownTable",
    "ValueIndex",
    "answer_sql",
    "check_sql",
]

_LAZY = {
    "QueryResult": "db", "SqlDatabase": "db", "SqlAnswer": "generate", "answer_sql": "generate",
    "CheckedSql": "guard", "check_sql": "guard", "Column": "schema", "ForeignKey": "schema",
    "Schema": "schema", "Table": "schema", "UnknownTable": "schema",
    "FewShotStore": "_fewshot", "ValueIndex": "_values",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
