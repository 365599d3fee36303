"""`flowloom kb ...` and `flowloom ingest` as a user runs them (real parser, the bundled
embedder through the running model service, Milvus Lite in the data dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RESET = "To reset a forgotten password, open Settings, choose Security and press Reset."


def flowloom(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWLOOM_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "flowloom.ui.cli", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_create_ingest_search_queries_docs_rm(tmp_path, running_model_service):
    home, docs = tmp_path / "home", tmp_path / "docs"
    docs.mkdir()
    (docs / "account.md").write_text(f"# Account\n\n## Passwords\n\n{RESET}\n")
    (docs / "notes.txt").write_text("Lunch is served at noon in the canteen.\n")
    (docs / "bad.pdf").write_bytes(b"garbage")

    assert flowloom(home, "kb", "create", "help").returncode == 0
    done = flowloom(home, "ingest", str(docs), "--kb", "help")
    assert done.returncode == 1  # one file failed: said, and the rest ingested
    assert "2 added" in done.stdout and "1 failed" in done.stdout
    assert "bad.pdf" in done.stderr and "Traceback" not in done.stderr
    again = flowloom(home, "ingest", str(docs / "account.md"), "--kb", "help", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["unchanged"] == [
        str((docs / "account.md").resolve())]

    found = flowloom(home, "kb", "search", "help", "reset my password", "--top-k", "1",
                     "--json")
    hits = json.loads(found.stdout)
    assert RESET in hits[0]["text"] and hits[0]["source"].endswith("account.md")
    assert set(hits[0]) >= {"source", "chunk_id", "score", "text"}

    queries = tmp_path / "q.jsonl"
    queries.write_text('{"id": "a", "question": "reset password"}\n'
                       '{"id": "b", "question": "when is lunch"}\n')
    lines = flowloom(home, "kb", "search", "help", "--queries", str(queries), "-k", "1"
                     ).stdout.splitlines()
    answers = {row["id"]: row["hits"][0]["text"] for row in map(json.loads, lines)}
    assert RESET in answers["a"] and "noon" in answers["b"]

    listed = json.loads(flowloom(home, "kb", "docs", "help", "--json").stdout)
    assert sorted(Path(d["source"]).name for d in listed) == ["account.md", "notes.txt"]
    notes = next(d for d in listed if d["filename"] == "notes.txt")
    assert flowloom(home, "kb", "rm", "help", "--doc", notes["doc_id"]).returncode == 0
    kbs = json.loads(flowloom(home, "kb", "list", "--json").stdout)
    assert [(k["name"], k["documents"]) for k in kbs] == [("help", 1)]
    assert flowloom(home, "kb", "rm", "help").returncode == 0
    assert json.loads(flowloom(home, "kb", "list", "--json").stdout) == []


def test_mistakes_exit_2_with_one_line(tmp_path):
    home = tmp_path / "home"
    bad = flowloom(home, "kb", "create", "Bad Name")
    assert bad.returncode == 2 and "not valid" in bad.stderr and "Traceback" not in bad.stderr
    missing = flowloom(home, "kb", "docs", "nope")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    both = flowloom(home, "kb", "search", "nope")
    assert both.returncode == 2 and "--queries" in both.stderr


def test_ingest_with_ray_matches_local(tmp_path, running_model_service):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "account.md").write_text(f"# Account\n\n## Passwords\n\n{RESET}\n")
    (docs / "notes.txt").write_text("Lunch is served at noon in the canteen.\n")
    (docs / "bad.docx").write_bytes(b"garbage")
    reports = {}
    for name, extra in (("local", []), ("ray", ["--ray"])):
        home = tmp_path / name
        done = flowloom(home, "ingest", str(docs), "--kb", "k", "--create", "--json", *extra)
        assert done.returncode == 1, done.stderr[-2000:]  # bad.docx failed, said so
        reports[name] = json.loads(done.stdout)
        hits = json.loads(flowloom(home, "kb", "search", "k", "reset password", "-k", "1",
                                   "--json").stdout)
        assert RESET in hits[0]["text"]
    local, ray = reports["local"], reports["ray"]
    assert sorted(ray["added"]) == sorted(local["added"]) and len(local["added"]) == 2
    assert ray["chunks"] == local["chunks"]
    assert [f["path"] for f in ray["failed"]] == [f["path"] for f in local["failed"]]
