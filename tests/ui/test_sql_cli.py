"""`flowloom sql ask` on the shipped demo database: mistakes as one-line messages and
exit 2, and (slow) real answers from the bundled model, one and many per start-up."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowloom.ui.errors import UsageError
from flowloom.ui.sql_cli import sql_app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLOWLOOM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def flowloom(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWLOOM_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "flowloom.ui.cli", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, out.stderr
    assert out.stdout == "" and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ")
    return out.stderr


def test_bad_input_is_one_line_and_exit_2(home: Path, tmp_path: Path) -> None:
    """Through `flowloom` itself: no traceback, one line, exit 2, before any model starts."""
    missing = one_line_error(flowloom(home, "sql", "ask", "--db",
                                      f"sqlite:///{tmp_path}/nope.db", "hi"))
    assert "does not exist" in missing and not (tmp_path / "nope.db").exists()
    unsupported = one_line_error(flowloom(home, "sql", "ask", "--db", "oracle://u:secret@h/db",
                                          "hi"))
    assert "not supported" in unsupported and "secret" not in unsupported
    malformed = one_line_error(flowloom(home, "sql", "ask", "--db",
                                        "postgresql://u@h:notaport/db", "hi"))
    assert "malformed database URL" in malformed
    assert "neither a database URL" in one_line_error(
        flowloom(home, "sql", "ask", "--db", str(tmp_path / "nowhere"), "hi"))
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all, just bytes" * 100)
    assert "garbage.sqlite" in one_line_error(
        flowloom(home, "sql", "ask", "--db", str(garbage), "hi"))
    no_file = one_line_error(flowloom(home, "sql", "ask", "--questions",
                                      str(tmp_path / "none.jsonl")))
    assert "--questions" in no_file and "No such file" in no_file
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": 1, "question": "ok"}\n{"id": 2, "question": \n')
    assert f"{bad}:2: not JSON" in one_line_error(
        flowloom(home, "sql", "ask", "--questions", str(bad)))
    bad.write_text('{"id": 1, "q": "no question key"}\n')
    assert ':1: each line needs a "question"' in one_line_error(
        flowloom(home, "sql", "ask", "--questions", str(bad)))


def test_usage_mistakes_raise_usage_errors(home: Path, tmp_path: Path) -> None:
    neither = runner.invoke(sql_app, ["ask"])
    assert isinstance(neither.exception, UsageError) and "--questions" in str(neither.exception)
    unknown = runner.invoke(sql_app, ["ask", "--db", "warehouse", "hi"])
    assert isinstance(unknown.exception, UsageError)
    assert "valid: demo" in str(unknown.exception)
    both = runner.invoke(sql_app, ["ask", "hi", "--questions", str(tmp_path / "q.jsonl")])
    assert isinstance(both.exception, UsageError)
    limits = runner.invoke(sql_app, ["ask", "--retries", "9", "hi"])
    assert limits.exit_code == 2 and "--retries" in limits.output


@pytest.mark.slow
def test_ask_json_and_questions_with_the_bundled_model(
        model_home: Path, running_model_service: str, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("FLOWLOOM_HOME", str(model_home))
    one = runner.invoke(sql_app, ["ask", "How many customers are there?", "--json"])
    assert one.exit_code == 0, one.output
    result = json.loads(one.stdout)
    demo = sqlite3.connect(model_home / "demo.sqlite")
    assert result["rows"] == [[demo.execute("SELECT COUNT(*) FROM customers").fetchone()[0]]]
    assert result["attempts"] >= 1 and result["sql"].upper().startswith("SELECT")

    questions = tmp_path / "q.jsonl"
    questions.write_text('{"id": "a", "question": "How many products are there?"}\n'
                         '{"id": "b", "question": "Delete every order."}\n')
    many = runner.invoke(sql_app, ["ask", "--questions", str(questions), "--retries", "1"])
    assert many.exit_code == 0, many.output
    lines = [json.loads(line) for line in many.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", "b"]
    assert set(lines[0]) >= {"id", "question", "sql", "columns", "rows", "attempts", "refused"}
    assert lines[0]["rows"] == [[demo.execute("SELECT COUNT(*) FROM products").fetchone()[0]]]
    # whatever the model wrote for "delete", nothing was deleted
    assert demo.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 300


def test_technique_files_are_checked_before_any_model_starts(home: Path,
                                                             tmp_path: Path) -> None:
    missing = runner.invoke(sql_app, ["ask", "hi", "--examples", str(tmp_path / "none.jsonl")])
    assert isinstance(missing.exception, UsageError)
    assert "--examples" in str(missing.exception) and "no such file" in str(missing.exception)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"question": "q", "sql": "SELECT 1"}\n{"question": "no sql"}\n')
    bad_pair = runner.invoke(sql_app, ["ask", "hi", "--examples", str(pairs)])
    assert isinstance(bad_pair.exception, UsageError) and ":2:" in str(bad_pair.exception)
    described = tmp_path / "d.json"
    described.write_text('["not", "a mapping"]')
    bad_map = runner.invoke(sql_app, ["ask", "hi", "--descriptions", str(described)])
    assert isinstance(bad_map.exception, UsageError)
    assert "--descriptions" in str(bad_map.exception)
    too_many = runner.invoke(sql_app, ["ask", "--candidates", "11", "hi"])
    assert too_many.exit_code == 2 and "--candidates" in too_many.output

