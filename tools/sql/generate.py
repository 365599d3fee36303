"""Question in, checked query and its rows out: the Text-to-SQL loop.

Schema linking (big schemas only) → a prompt in the database's dialect → the model's SQL
pulled out of its answer → `check_sql` (refuses anything but one read-only, schema-valid,
row-capped SELECT) → run on a read-only connection. A refusal or a database error is fed
back to the model as a note under the question, and it gets `retries` more attempts.

Example:
    >>> db = SqlDatabase.open("sqlite:///demo.sqlite")                   # doctest: +SKIP
    >>> answer = await answer_sql("How many customers are there?", db, models)  # doctest: +SKIP
    >>> answer.sql, answer.rows                                  # doctest: +SKIP
    ('SELECT COUNT(*) FROM customers LIMIT 200', [[80]])
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage

from . import _linking, _values, _vote
from ._fewshot import FewShotStore, merged
from ._prompt import (
    build_messages,
    cell,
    explain_sql,
    extract_sql,
    note_for,
    words_messages,
)
from .errors import SqlExecutionError, SqlRefused

if TYPE_CHECKING:
    from flowloom.flows.context import ModelProvider

    from .db import SqlDatabase
    from .schema import Schema

__all__ = ["SqlAnswer", "answer_sql", "say_answer"]

SAMPLES = 3  # sample values per column in the prompt
RESAMPLE_TEMPERATURE = 0.7  # a retry that repeats an earlier query is asked again so
CANDIDATE_TEMPERATURE = 0.7  # candidates after the first (greedy) one are sampled so
_NO_SQL = "the answer holds no SQL query; write one SELECT statement"
_TAGS = ["nostream"]  # LangGraph's `messages` stream skips these: the node's message is the answer
_START_SQL = re.compile(r"\s*(SELECT|WITH)\b", re.IGNORECASE)


@dataclass(frozen=True)
class SqlAnswer:
    """What `answer_sql` found: the last query tried, its result, and why it stopped.

    `refused` (the checker's reason) or `error` (the database's) is set when no attempt
    succeeded; `attempts` counts model calls; token counts are summed over them.
    `history` has one `{"sql", "refused", "error"}` per attempt, `sql` as the model wrote
    it (before the checker rewrote it). A retry whose query repeats an earlier one word
    for word is not checked again: the model is asked once more, sampled, and that is the
    attempt (its tokens are counted too). `tables` are the tables the query read,
    `prompt_tables` those the prompt described (fewer than all when schema linking ran).
    `votes`: how many of the attempt's candidate queries returned the kept result;
    `value_hints`: the stored values value linking put in the prompt.
    """

    question: str
    sql: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    truncated: bool = False
    attempts: int = 0
    refused: str | None = None
    error: str | None = None
    explanation: str = ""
    tables: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    history: list[dict[str, str | None]] = field(default_factory=list)
    prompt_tables: list[str] = field(default_factory=list)
    votes: int = 0
    value_hints: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when a query passed the checker and ran."""
        return self.refused is None and self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (rows as lists); the shape the `tool.sql` node writes to state."""
        return asdict(self)


async def answer_sql(
    question: str,
    db: SqlDatabase,
    models: ModelProvider,
    *,
    model: str = "local",
    embed_model: str = "local-embed",
    retries: int = 2,
    max_rows: int = 200,
    examples: Sequence[tuple[str, str]] = (),
    link_tables: int | None = None,
    values: bool = False,
    candidates: int = 1,
    fewshot: FewShotStore | None = None,
    fewshot_k: int = 3,
    descriptions: Mapping[str, str] | None = None,
) -> SqlAnswer:
    """Answer `question` with one checked SELECT on `db`, retrying `retries` times with
    the refusal or error fed back. `link_tables`: how many tables schema linking picks
    (before their foreign-key neighbours); None links only schemas whose description is
    longer than 12,000 characters, 0 never links. Each technique is a switch, so its gain
    can be measured alone: `values` puts the stored values the question names (spelled as
    stored) and every value of few-valued text columns in the prompt; `candidates` > 1
    samples that many queries per attempt and keeps the result most of them return;
    `fewshot` adds its `fewshot_k` pairs closest to the question to `examples`;
    `descriptions` (`{"table.column": text}`) comment the schema beside the database's own
    COMMENT ON text."""
    from .guard import check_sql

    started = time.perf_counter()
    schema: Schema = await asyncio.to_thread(db.schema)
    if descriptions:
        schema = schema.with_descriptions(descriptions)
    tables = await _tables_for(question, schema, models, embed_model, link_tables)
    shown, samples, value_hints = schema, SAMPLES, []
    if values:
        index = await asyncio.to_thread(db.value_index)
        shown, samples = _values.with_all_values(schema, index), _values.CATEGORICAL
        picked = {t.lower() for t in tables}
        value_hints = [m.hint for m in index.match(question) if m.table.lower() in picked]
    schema_text = shown.describe(tables, samples=samples)
    hints = _linking.join_hints(schema, tables)
    if fewshot is not None and fewshot_k > 0:
        # the closest pair goes last, next to the question
        examples = merged(examples, fewshot.nearest(question, fewshot_k)[::-1])

    def prompt(notes: Sequence[str] = ()) -> list[BaseMessage]:
        return build_messages(question, schema_text, schema.dialect, hints=hints,
                              examples=examples, notes=notes, values=value_hints)

    messages = prompt()
    notes: list[str] = []
    chat = models.chat_model(model, temperature=0.0, max_tokens=384, streaming=False)
    usage = [0, 0]
    sql, refused, error = "", None, None
    attempts = 0
    history: list[dict[str, str | None]] = []
    for attempts in range(1, retries + 2):  # noqa: B007  (attempts is reported)
        ran: list[tuple[Any, Any]] = []  # (checked, result) of this attempt's queries
        failures: list[tuple[str | None, str | None]] = []
        round_sql: dict[str, int] = {}
        for n in range(max(candidates, 1)):
            if n == 0:
                reply = await chat.ainvoke(messages, config={"tags": _TAGS})
            else:
                reply = await chat.ainvoke(messages, config={"tags": _TAGS},
                                           temperature=CANDIDATE_TEMPERATURE,
                                           seed=100 * attempts + n)
            _count(reply, usage)
            sql = extract_sql(reply.text)
            if n == 0 and any(sql == h["sql"] for h in history):
                # The same query again could only fail the same way: ask once more, sampled
                # (a fixed seed per attempt keeps runs repeatable where the server honours it).
                reply = await chat.ainvoke(messages, config={"tags": _TAGS},
                                           temperature=RESAMPLE_TEMPERATURE, seed=attempts)
                _count(reply, usage)
                sql = extract_sql(reply.text)
            if sql in round_sql:  # a repeat within one attempt is one more vote for it
                done = round_sql[sql]
                if done >= 0:
                    ran.append(ran[done])
                continue
            refused = error = None
            try:
                if not sql:
                    raise SqlRefused(_NO_SQL, reply.text)
                checked = check_sql(sql, schema, max_rows=max_rows)
                result = await db.arun(checked.sql)
            except SqlRefused as exc:
                refused = exc.reason
            except SqlExecutionError as exc:
                error = exc.reason
            history.append({"sql": sql, "refused": refused, "error": error})
            if refused is None and error is None:
                round_sql[sql] = len(ran)
                ran.append((checked, result))
            else:
                round_sql[sql] = -1
                failures.append((refused, error))
        if ran:
            choice = _vote.pick([r.rows for _, r in ran]) if len(ran) > 1 else 0
            checked, result = ran[choice]
            votes = sum(_vote.result_key(r.rows) == _vote.result_key(result.rows)
                        for _, r in ran)
            rows = [list(r) for r in result.rows[:max_rows]]
            # the guard's LIMIT hides whether more rows were there; a full page may be cut
            truncated = result.truncated or (checked.limited and len(rows) >= max_rows)
            return SqlAnswer(
                question=question, sql=checked.sql, columns=list(result.columns), rows=rows,
                truncated=truncated, attempts=attempts,
                explanation=explain_sql(checked.sql, schema.dialect, rows=len(rows),
                                        truncated=truncated),
                tables=list(checked.tables), prompt_tokens=usage[0],
                completion_tokens=usage[1], seconds=time.perf_counter() - started,
                history=history, prompt_tables=list(tables), votes=votes,
                value_hints=value_hints)
        # A retry is a fresh prompt with the earlier mistakes as notes, not a reply in
        # the same conversation: shown its own query, the bundled 0.5B model wrote it
        # again word for word on every one of 19 Chinook failures (0 fixed); with notes
        # it fixed 7 (benchmarks/RESULTS.md).
        refused, error = failures[0]
        for why_refused, why_error in failures:
            note = note_for(why_refused or why_error or "", refused=why_refused is not None)
            if note not in notes:
                notes.append(note)
        messages = prompt(notes)
    why = refused or error
    return SqlAnswer(
        question=question, sql=sql, attempts=attempts, refused=refused, error=error,
        explanation=f"No query could answer this after {attempts} attempt"
                    f"{'s' if attempts != 1 else ''}: {why}",
        prompt_tokens=usage[0], completion_tokens=usage[1],
        seconds=time.perf_counter() - started, history=history, prompt_tables=list(tables),
        value_hints=value_hints)


async def say_answer(answer: SqlAnswer, models: ModelProvider, *, model: str = "local",
                     max_rows: int = 10) -> str:
    """The answer in one sentence, written by the model from the first `max_rows` rows;
    empty when the query failed, or the reply is SQL, or it leaves out the one value the
    query returned (the caller then says it from a template)."""
    if not answer.ok:
        return ""
    chat = models.chat_model(model, temperature=0.0, max_tokens=96, streaming=False)
    reply = await chat.ainvoke(words_messages(answer.question, answer.columns, answer.rows,
                                              max_rows=max_rows), config={"tags": _TAGS})
    text = " ".join(reply.text.split())
    if not text or "```" in text or _START_SQL.match(text):
        return ""
    if len(answer.rows) == 1 and len(answer.columns) == 1:
        # one value: a sentence that does not state it is not trusted
        value = cell(answer.rows[0][0])
        if value not in text and value.replace(".", ",") not in text:
            return ""
    elif not _numbers_hold(text, answer.rows[:max_rows], len(answer.rows)):
        return ""
    return text


_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?![\w])")
_COUNT_CLAIM = re.compile(r"\b(?:there (?:are|were|is)|a total of|in all|in total)\s+"
                          r"(\d+)\b", re.IGNORECASE)


def _numbers_hold(text: str, rows: Sequence[Sequence[Any]], total: int) -> bool:
    """Whether every number a sentence about several rows states is in them (or is how
    many there are), and a count it claims ("there are 9 ...") is the row count: the
    bundled 0.5B model miscounted 11 rows as 9 or 10 when asked to sum them up."""
    cells = {cell(v) for row in rows for v in row} | {str(total)}
    for claim in _COUNT_CLAIM.finditer(text):
        if int(claim.group(1)) != total:
            return False
    return all(n in cells or n.replace(",", ".") in cells for n in _NUMBER.findall(text))


async def _tables_for(question: str, schema: Schema, models: Any, embed_model: str,
                      top: int | None) -> list[str]:
    if top == 0 or (top is None and len(schema.describe(samples=SAMPLES)) <= _linking.LINK_CHARS):
        return list(schema.tables)
    return await _linking.link_tables(question, schema, models, embed_model=embed_model,
                                      top=top or _linking.LINK_TOP)


def _count(reply: Any, usage: list[int]) -> None:
    meta = getattr(reply, "usage_metadata", None) or {}
    usage[0] += int(meta.get("input_tokens") or 0)
    usage[1] += int(meta.get("output_tokens") or 0)
