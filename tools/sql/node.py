"""`tool.sql@1`: answer a question from a database with one checked, read-only SELECT.

It writes `{"question", "sql", "columns", "rows", "truncated", "attempts", "refused",
"error", "explanation", "tables", ...}` (`SqlAnswer.to_dict()`) to `output`, and with
`answer` on, appends an AI message saying it in words with a markdown table of the first
rows. The chat UI's SQL panel reads the state key `sql`: name `output` "sql" to see it
there (the example flow does).

`database` is a SQLAlchemy URL or a name from `<data dir>/connections.yaml`
(`name: url` lines); `demo` is the shipped demo shop, built on first use.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from langchain_core.messages import AIMessage
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowloom.flows.errors import FlowBuildError, FlowRunError
from flowloom.flows.home import flowloom_home
from flowloom.flows.nodes._common import (
    check_template,
    is_messages_field,
    require_model,
    template_refs,
)
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import Template

from .demo_data import demo_url
from .errors import SqlError

__all__ = ["CONNECTIONS_FILE", "NODE_TYPE", "Params", "SqlExample", "answer_text", "build",
           "lazy_database", "resolve_database"]

CONNECTIONS_FILE = "connections.yaml"
TABLE_ROWS = 20  # rows shown in the chat answer's table (and to the model that says it)


class SqlExample(BaseModel):
    """One few-shot pair: a question and the SQL that answers it on this database."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1)
    sql: str = Field(..., min_length=1)


class Params(BaseModel):
    """Turn `question` into one checked SELECT on `database`, run it and write the result
    to `output`."""

    model_config = ConfigDict(extra="forbid")

    database: str = Field(
        "demo", min_length=1,
        description="SQLAlchemy URL (sqlite:///shop.db, postgresql://...) or a name from "
                    "connections.yaml in the data dir; 'demo' is the shipped demo shop.")
    question: str = Field("{{ last_message }}",
                          description="The question (template over state fields).")
    model: str = Field("local", description="Model alias from the gateway config.",
                       json_schema_extra={"x-flowloom-choices": "models"})
    max_rows: int = Field(200, ge=1, le=10000, description="Most rows a query may return.")
    retries: int = Field(2, ge=0, le=5, description="Retries with the error fed back.")
    timeout_s: float = Field(10.0, gt=0, le=600, description="Time limit of one query, "
                                                             "in seconds.")
    examples: list[SqlExample] = Field(
        default_factory=list,
        description="Few-shot pairs [{\"question\", \"sql\"}] for this database, shown to "
                    "the model before the question.")
    link_tables: int | None = Field(
        None, ge=0, le=50,
        description="Schema linking: how many tables (plus their foreign-key neighbours) go "
                    "in the prompt, picked by embedding similarity; empty: 4 when the schema's "
                    "description is over 12,000 characters, all otherwise; 0: always all.")
    embed_model: str = Field("local-embed", description="Embedding model alias (schema "
                                                        "linking).",
                             json_schema_extra={"x-flowloom-choices": "embedding_models"})
    value_linking: bool = Field(
        True, description="Put in the prompt the stored values the question names (matched "
                          "ignoring case, accents and punctuation, or by a close spelling) "
                          "and every value of text columns with at most 12 distinct values.")
    candidates: int = Field(
        1, ge=1, le=10,
        description="Queries sampled per attempt; with more than one, each is run and the "
                    "result most of them return is kept (self-consistency). Costs that many "
                    "model calls.")
    examples_file: str | None = Field(
        None, description="Question-SQL store: a JSONL file of {\"question\", \"sql\"} lines "
                          "(a relative path is under the data dir); the `fewshot_k` pairs "
                          "closest to the question join `examples`. Append lines to grow it.")
    fewshot_k: int = Field(3, ge=0, le=20, description="Pairs taken from `examples_file`.")
    descriptions: dict[str, str] = Field(
        default_factory=dict,
        description="What tables and columns mean, {\"table\": text, \"table.column\": "
                    "text}, shown in the schema beside the database's own comments "
                    "(PostgreSQL COMMENT ON; SQLite has none).")
    descriptions_file: str | None = Field(
        None, description="A JSON file holding the same mapping as `descriptions` (a "
                          "relative path is under the data dir); `descriptions` wins.")
    output: str = Field("sql_result", description="State field that receives the result.",
                        json_schema_extra={"x-flowloom-state": "write"})
    answer: bool = Field(True, description="Also append an answer with a table of the first "
                                           "rows and the SQL to `messages`.")
    words: bool = Field(False, description="With `answer`: the model says the answer in a "
                                           "sentence first (one more model call).")

    @field_validator("question")
    @classmethod
    def _check(cls, value: str) -> str:
        return check_template(value)


def state_refs(params: Params) -> Iterator[StateRef]:
    yield from template_refs("question", params.question)
    yield StateRef("output", params.output, "write", "object")
    if params.answer:
        yield StateRef("answer", "messages", "write", "messages")


def _connections(home: Path) -> dict[str, str]:
    path = home / CONNECTIONS_FILE
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise FlowBuildError(f"{path}: not readable YAML ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise FlowBuildError(f"{path}: write one `name: url` line per connection")
    return {str(k): v for k, v in data.items()}


def resolve_database(database: str, home: Path) -> str:
    """The URL `database` names: itself when it is a URL or a path to a SQLite file,
    else its entry in connections.yaml, else the demo database for `demo`."""
    from .db import SQLITE_SUFFIXES

    if "://" in database or "/" in database or database.lower().endswith(SQLITE_SUFFIXES):
        return database  # a URL or a SQLite file's path
    named = _connections(home)
    if database in named:
        return named[database]
    if database == "demo":
        return demo_url(home)
    valid = sorted({"demo", *named})
    raise FlowBuildError(
        f"database {database!r} is not a URL nor a connection in {home / CONNECTIONS_FILE}; "
        f"valid: {', '.join(valid)}")


def lazy_database(database: str, home: Path, *, max_rows: int, timeout_s: float = 10.0
                  ) -> Callable[[], Awaitable[Any]]:
    """An async getter of the `SqlDatabase` that `database` names, opened on first use
    (the demo database is built then, not when a server compiles flows). A name that is
    neither a URL nor a known connection is a FlowBuildError now."""
    lazy_demo = database == "demo" and "demo" not in _connections(home)
    url = "" if lazy_demo else resolve_database(database, home)
    opened: list[Any] = []
    lock = asyncio.Lock()

    async def get() -> Any:
        from .db import SqlDatabase  # SQLAlchemy: imported when first used

        async with lock:
            if not opened:
                target = url or await asyncio.to_thread(demo_url, home)
                opened.append(await asyncio.to_thread(
                    SqlDatabase.open, target, max_rows=max_rows, timeout_s=timeout_s))
            return opened[0]

    return get


def answer_text(result: dict[str, Any], *, max_rows: int = TABLE_ROWS, words: str = "") -> str:
    """The chat answer for a `SqlAnswer.to_dict()`: words (the model's sentence when given,
    else templated), a markdown table of the first rows, and the SQL."""
    from ._prompt import cell, markdown_table

    if result.get("refused") or result.get("error"):
        why = result.get("refused") or result.get("error")
        return f"I could not answer that with a safe query: {why}"
    columns, rows = result["columns"], result["rows"]
    sql = f"\n\n```sql\n{result['sql']}\n```"
    lead = f"{words.strip()}\n\n" if words.strip() else ""
    if len(rows) == 1 and len(columns) == 1:
        said = lead or f"The answer is **{cell(rows[0][0])}** ({columns[0]}). "
        return f"{said}{result['explanation']}{sql}"
    if not rows:
        return f"{lead}No rows match. {result['explanation']}{sql}"
    table = markdown_table(columns, rows, max_rows)
    return f"{lead}{result['explanation']}\n\n{table}{sql}"


def _under(path: str, home: Path) -> Path:
    file = Path(path).expanduser()
    return file if file.is_absolute() else home / file


def _descriptions_file(path: str | None, home: Path, node_id: str) -> dict[str, str]:
    if not path:
        return {}
    file = _under(path, home)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FlowBuildError(f"descriptions_file {file}: not readable JSON ({exc})",
                             node_id=node_id) from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise FlowBuildError(f"descriptions_file {file}: write one object of "
                             f"{{\"table.column\": \"what it means\"}}", node_id=node_id)
    return {str(k): v for k, v in data.items()}


def build(params: Params, ctx: NodeContext) -> Any:
    from ._fewshot import FewShotStore
    from .generate import answer_sql, say_answer

    models = require_model(ctx, params.model)
    if params.link_tables and params.embed_model not in models.aliases():
        raise FlowBuildError(
            f"embed_model {params.embed_model!r} (for link_tables) is not in the gateway "
            f"config; valid: {', '.join(models.aliases())}", node_id=ctx.node_id)
    home = ctx.build.data_dir or flowloom_home()
    try:
        database = lazy_database(params.database, home, max_rows=params.max_rows,
                                 timeout_s=params.timeout_s)
    except FlowBuildError as exc:
        raise FlowBuildError(str(exc), node_id=ctx.node_id) from None
    question = Template(params.question)
    node_id = ctx.node_id
    with_answer = params.answer and is_messages_field(ctx, "messages")
    examples = [(e.question, e.sql) for e in params.examples]
    descriptions = {**_descriptions_file(params.descriptions_file, home, node_id),
                    **params.descriptions}
    store_path = _under(params.examples_file, home) if params.examples_file else None

    async def tool_sql(state: dict[str, Any]) -> dict[str, Any]:
        text = question.render(state).strip()
        if not text:
            raise FlowRunError("the question is empty; set `question` or send a message",
                               node_id=node_id)
        try:
            db = await database()
            store = (await asyncio.to_thread(FewShotStore.load, store_path)
                     if store_path is not None else None)
            found = await answer_sql(
                text, db, models, model=params.model, embed_model=params.embed_model,
                retries=params.retries, max_rows=params.max_rows, examples=examples,
                link_tables=params.link_tables, values=params.value_linking,
                candidates=params.candidates, fewshot=store, fewshot_k=params.fewshot_k,
                descriptions=descriptions)
        except SqlError as exc:
            raise FlowRunError(str(exc), node_id=node_id) from None
        result = found.to_dict()
        update: dict[str, Any] = {params.output: result}
        if with_answer:
            words = await say_answer(found, models, model=params.model,
                                     max_rows=TABLE_ROWS) if params.words and found.ok else ""
            update["messages"] = [AIMessage(answer_text(result, words=words))]
        return update

    return tool_sql


NODE_TYPE = NodeType(
    name="tool.sql",
    version=1,
    params=Params,
    build=build,
    category="tools",
    description="Answer a question from a SQL database: the model writes one SELECT, which "
                "is checked (read-only, schema-valid, row-capped), run, and retried with "
                "the error on failure.",
    state_refs=state_refs,
)
