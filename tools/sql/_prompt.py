"""The Text-to-SQL prompt, the SQL pulled back out of a model's answer, and the one-line
explanation of a query (templated from its syntax tree, so it costs no model call)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

__all__ = ["DIALECT_NAMES", "build_messages", "explain_sql", "extract_sql", "note_for",
           "cell", "markdown_table", "words_messages"]

DIALECT_NAMES = {
    "sqlite": "SQLite", "postgres": "PostgreSQL", "mysql": "MySQL", "duckdb": "DuckDB",
    "tsql": "SQL Server", "oracle": "Oracle", "bigquery": "BigQuery", "snowflake": "Snowflake",
}

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_START = re.compile(r"\b(WITH|SELECT)\b", re.I)
_OTHER = re.compile(r"\s*(INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|REPLACE|PRAGMA|ATTACH|DETACH|"
                    r"TRUNCATE|GRANT|REVOKE|MERGE|VACUUM|COPY|SET|EXEC|CALL|BEGIN)\b", re.I)
_LABEL = re.compile(r"^\s*(?:sql\s*query|sql|query|answer)\s*:\s*", re.I)


def extract_sql(text: str) -> str:
    """The SQL statement in a model's answer: the first fenced block that holds a
    query (```sql ... ```), else the text from its first SELECT/WITH; one statement,
    without the trailing semicolon (prose after it is dropped; a second statement is
    kept, for the guard to refuse). Empty when there is none.

    >>> extract_sql("Sure! Here it is:\\n```sql\\nSELECT 1;\\n```\\nThis selects one.")
    'SELECT 1'
    """
    text = text.strip()
    blocks = [_LABEL.sub("", body.strip()) for _lang, body in _FENCE.findall(text)]
    candidates = [b for b in blocks if _START.search(b)] or [text]
    body = _LABEL.sub("", candidates[0].strip())
    match = _START.search(body)
    if match is not None:
        body = body[match.start():]
    else:  # a write or a command: kept, so the guard can say why it is refused
        body = next((b for b in [body, *blocks] if _OTHER.match(b)), "")
    statement = _first_statement(body)
    rest = body[len(statement) + 1:]
    if _START.match(rest.lstrip()) or _OTHER.match(rest):
        # a second statement is kept, so the guard refuses the pair and says why
        return body.strip().rstrip(";").strip()
    # Chatty tails after a blank line ("This query selects ...") are not SQL.
    statement = re.split(r"\n\s*\n(?=[A-Z][a-z]+ )", statement, maxsplit=1)[0]
    return statement.strip().rstrip(";").strip()


def _first_statement(body: str) -> str:
    """`body` up to its first semicolon outside quotes."""
    quote: str | None = None
    for i, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == ";":
            return body[:i]
    return body


def _system(dialect: str) -> str:
    name = DIALECT_NAMES.get(dialect, dialect)
    return (
        f"You are an expert {name} analyst. Answer the user's question with ONE {name} "
        "SELECT query over the tables below. Use only the tables and columns that exist; "
        "join on the keys shown. Return only the SQL in a ```sql block, no explanation.")


def build_messages(question: str, schema_text: str, dialect: str, *,
                   hints: Sequence[str] = (),
                   examples: Sequence[tuple[str, str]] = (),
                   notes: Sequence[str] = (),
                   values: Sequence[str] = ()) -> list[BaseMessage]:
    """System prompt, schema, few-shot pairs (as earlier turns) and the question, with
    `notes` (what was wrong with earlier attempts) under it; `values` are stored values
    the question names (`table.column = 'Value'`), spelled as the data spells them."""
    schema_block = f"Database schema:\n```sql\n{schema_text}\n```"
    if hints:
        schema_block += "\nLikely joins: " + "; ".join(hints)
    if values:
        schema_block += ("\nValues in the database that the question mentions (write them "
                         "exactly like this): " + "; ".join(values))
    messages: list[BaseMessage] = [SystemMessage(f"{_system(dialect)}\n\n{schema_block}")]
    for ex_question, ex_sql in examples:
        messages.append(HumanMessage(f"Question: {ex_question}"))
        messages.append(AIMessage(f"```sql\n{ex_sql.strip().rstrip(';')}\n```"))
    text = f"Question: {question}"
    if notes:
        text += "\n\nAvoid these mistakes of earlier answers:\n" + "\n".join(
            f"- {note}" for note in notes)
    messages.append(HumanMessage(text))
    return messages


# Database errors a small model cannot act on alone, with what to do about them.
_ERROR_HINTS = (
    (re.compile(r"misuse of aggregate|must appear in the GROUP BY|aggregate functions are "
                r"not allowed", re.I),
     "an aggregate such as COUNT() or SUM() in ORDER BY, WHERE or beside plain columns "
     "needs GROUP BY on those columns (conditions on it go in HAVING)"),
    (re.compile(r"no such function: (\w+)", re.I),
     "use only functions this database has"),
)


def note_for(reason: str, *, refused: bool) -> str:
    """One line for the retry prompt: the checker's or the database's reason, with a
    hint where the database's own message says too little."""
    note = reason if refused else f"the query failed when it ran: {reason}"
    for pattern, hint in _ERROR_HINTS:
        if pattern.search(reason):
            return f"{note} ({hint})"
    return note


def explain_sql(sql: str, dialect: str, *, rows: int, truncated: bool) -> str:
    """One short sentence: which tables, filters, grouping and order, how many rows."""
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return f"Ran the query; {_rows(rows, truncated)}."
    tables = list(dict.fromkeys(t.name for t in tree.find_all(exp.Table) if t.name))
    parts = [f"Read {_join(tables) or 'no table'}"]
    where = tree.args.get("where")
    if isinstance(where, exp.Where):
        parts.append(f"where {_short(where.this.sql(dialect=dialect))}")
    group = tree.args.get("group")
    if isinstance(group, exp.Group):
        parts.append(f"grouped by {_list(group.expressions, dialect)}")
    order = tree.args.get("order")
    if isinstance(order, exp.Order):
        parts.append(f"ordered by {_list(order.expressions, dialect)}")
    return f"{', '.join(parts)}; {_rows(rows, truncated)}."


def _list(nodes: Sequence[exp.Expr], dialect: str) -> str:
    return _short(", ".join(e.sql(dialect=dialect) for e in nodes))


def _rows(rows: int, truncated: bool) -> str:
    if truncated:
        return f"showing the first {rows} rows (more were cut off)"
    return f"{rows} row{'s' if rows != 1 else ''}"


def _join(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cell(value: Any) -> str:
    """A value as table text: floats to 2 decimals, no pipes or newlines."""
    text = "" if value is None else str(value)
    if isinstance(value, float):
        text = f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) < 1e15 else text
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_rows: int) -> str:
    """The first `max_rows` rows as a markdown table, with a line saying how many more."""
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows[:max_rows]]
    if len(rows) > max_rows:
        more = len(rows) - max_rows
        lines.append(f"\n…and {more} more row{'s' if more != 1 else ''}.")
    return "\n".join(lines)


def words_messages(question: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                   *, max_rows: int = 10) -> list[BaseMessage]:
    """Ask for the answer in one sentence from the rows a query returned."""
    shown = f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
    if len(rows) > max_rows:
        shown += f", the first {max_rows} shown"
    return [
        SystemMessage("You state the answer to the user's question in one short sentence, "
                      "using only the query result given. Do not write SQL."),
        HumanMessage(f"Question: {question}\n\nQuery result ({shown}):\n"
                     f"{markdown_table(columns, rows, max_rows)}"),
    ]
