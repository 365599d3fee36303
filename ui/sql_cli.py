"""`flowloom sql ask`: questions in words, answered by one checked, read-only SELECT.

    $ flowloom sql ask "How many customers are there in each country?"
    $ flowloom sql ask --db sqlite:///shop.db "Top 5 products by revenue" --json
    $ flowloom sql ask --db shop --questions questions.jsonl > answers.jsonl

`--db` is a SQLAlchemy URL or a name from `<data dir>/connections.yaml`; without it, the
shipped demo shop (built on first use). Many `--questions` share one start-up.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from flowloom.ui._questions import read_questions
from flowloom.ui.errors import UsageError

__all__ = ["sql_app"]

sql_app = typer.Typer(help="Ask a database questions in words (read-only, checked SQL).",
                      no_args_is_help=True)


@sql_app.callback()
def _group() -> None:
    """Ask a database questions in words (read-only, checked SQL)."""


BATCH_KEYS = ("id", "question", "sql", "columns", "rows", "truncated", "attempts", "refused",
              "error", "explanation", "prompt_tokens", "completion_tokens", "seconds")


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, default=str))


def _url(db: str | None, home: Path) -> str:
    from flowloom.flows.errors import FlowBuildError
    from flowloom.tools.sql.node import resolve_database

    try:
        return resolve_database(db or "demo", home)
    except FlowBuildError as exc:
        raise UsageError(f"--db: {exc}") from None


@sql_app.command("ask")
def ask(
    question: Annotated[str | None, typer.Argument(help="The question, in words.")] = None,
    db: Annotated[str | None, typer.Option(
        "--db", help="SQLAlchemy URL or a connections.yaml name (default: the demo shop).")]
    = None,
    questions: Annotated[Path | None, typer.Option(
        "--questions", help="JSONL of {\"id\", \"question\"}: one JSON answer line each.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="The answer as JSON.")] = False,
    retries: Annotated[int, typer.Option("--retries", min=0, max=5,
                                         help="Retries with the error fed back.")] = 2,
    max_rows: Annotated[int, typer.Option("--max-rows", min=1, max=10000,
                                          help="Most rows a query may return.")] = 200,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, max=600,
                                           help="Seconds one query may run.")] = 10.0,
    model: Annotated[str, typer.Option("--model", help="Chat model alias.")] = "local",
    models: Annotated[Path | None, typer.Option(
        "--models", help="LiteLLM-format model config (YAML).")] = None,
    values: Annotated[bool, typer.Option(
        "--values/--no-values", help="Put the stored values the question names (spelled as "
                                     "stored) in the prompt.")] = True,
    candidates: Annotated[int, typer.Option(
        "--candidates", min=1, max=10, help="Queries sampled per attempt; the result most "
                                            "of them return is kept.")] = 1,
    examples: Annotated[Path | None, typer.Option(
        "--examples", help="JSONL of {\"question\", \"sql\"} pairs; the closest are shown "
                           "to the model.")] = None,
    descriptions: Annotated[Path | None, typer.Option(
        "--descriptions", help="JSON {\"table.column\": text} describing the schema.")]
    = None,
) -> None:
    """Answer a question (or --questions FILE.jsonl) with one checked SELECT each.
    Exit 2 for a bad --db (malformed URL, missing file, unreachable server) or a bad
    questions file; exit 1 when the one question's query was refused or failed (in a
    batch, each line says so and the exit is 0)."""
    from flowloom.backends.context import default_build_context
    from flowloom.flows.home import flowloom_home
    from flowloom.tools.sql.errors import SqlConnectionError, SqlError

    if (question is None) == (questions is None):
        raise UsageError("give a QUESTION or --questions FILE.jsonl (not both)")
    batch = read_questions(questions, "--questions") if questions is not None else [
        {"id": 1, "question": question}]
    home = flowloom_home()
    url = _url(db, home)
    if models is not None and not models.exists():
        raise UsageError(f"--models {models}: no such file")
    from flowloom.tools.sql._fewshot import FewShotStore
    from flowloom.tools.sql.db import SqlDatabase
    from flowloom.tools.sql.generate import answer_sql

    store, described = None, None
    if examples is not None:
        if not examples.is_file():
            raise UsageError(f"--examples {examples}: no such file")
        try:
            store = FewShotStore.load(examples)
        except (ValueError, SqlError) as exc:
            raise UsageError(f"--examples {examples}: {exc}") from None
    if descriptions is not None:
        try:
            described = json.loads(descriptions.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--descriptions {descriptions}: not readable JSON ({exc})"
                             ) from None
        if not isinstance(described, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in described.items()):
            raise UsageError(f"--descriptions {descriptions}: write one object of "
                             "\"table\" or \"table.column\" -> text")

    try:  # the database first: a bad URL is said before any model starts
        database = SqlDatabase.open(url, max_rows=max_rows, timeout_s=timeout)
        database.schema()
    except SqlConnectionError as exc:
        raise UsageError(f"--db: {exc}") from None
    except SqlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        provider = default_build_context(home=home, models_config=models).models
        if provider is None or model not in provider.aliases():
            valid = ", ".join(provider.aliases()) if provider is not None else "none"
            raise UsageError(f"--model {model!r} is not in the gateway config; valid: {valid}")

        async def run() -> list[dict[str, Any]]:
            out = []
            for item in batch:
                found = await answer_sql(item["question"], database, provider, model=model,
                                         retries=retries, max_rows=max_rows, values=values,
                                         candidates=candidates, fewshot=store,
                                         descriptions=described)
                out.append({"id": item["id"], **found.to_dict()})
                if questions is not None:  # each line as soon as it is answered
                    _echo_json({k: out[-1].get(k) for k in BATCH_KEYS})
            return out

        answers = asyncio.run(run())
    except SqlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        database.close()
    if questions is not None:
        return
    _show(answers[0], as_json)


def _show(result: dict[str, Any], as_json: bool) -> None:
    from flowloom.tools.sql.node import answer_text

    failed = result.get("refused") or result.get("error")
    if as_json:
        _echo_json({k: v for k, v in result.items() if k != "id"})
    elif not failed:
        typer.echo(answer_text(result, max_rows=50))
    if failed:
        kind = "refused" if result.get("refused") else "failed"
        shown = f" (last query: {result['sql']})" if result.get("sql") else ""
        typer.echo(f"error: query {kind} after {result['attempts']} attempts: {failed}"
                   f"{shown}", err=True)
        raise typer.Exit(1)
