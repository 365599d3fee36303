"""`flowloom prompts ...` and `flowloom export` as a user runs them, on a data dir of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLOW = {
    "schema_version": 1, "id": "greeter", "name": "Greeter",
    "state": {"name": {"type": "string"}, "text": {"type": "string"}},
    "nodes": [{"id": "greet", "type": "prompt.template@1",
               "params": {"prompt": "greet", "output": "text"}}],
    "edges": [{"source": "START", "target": "greet"}, {"source": "greet", "target": "END"}],
    "io": {"input": "name", "output": "text"},
}


def flowloom(home: Path, *args: str, stdin: str | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWLOOM_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "flowloom.ui.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def test_push_list_show(tmp_path):
    home = tmp_path / "home"
    text = tmp_path / "greet.txt"
    text.write_text("Hello {{ name }}\n")
    first = flowloom(home, "prompts", "push", "greet", str(text), "--notes", "first")
    assert (first.returncode, first.stdout) == (0, "greet@1\n"), first.stderr
    assert "variables: name" in first.stderr
    second = flowloom(home, "prompts", "push", "greet", "-", stdin="Hi {{ name }}!")
    assert second.stdout == "greet@2\n"

    listed = flowloom(home, "prompts", "list")
    assert listed.stdout.split()[:3] == ["greet@2", "2", "versions"]
    rows = json.loads(flowloom(home, "prompts", "list", "--json").stdout)
    assert [(r["name"], r["latest"], r["versions"]) for r in rows] == [("greet", "greet@2", [1, 2])]
    shown = flowloom(home, "prompts", "show", "greet@1")
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("greet@1  created 20")
    assert lines[1:] == ["variables: name", "notes: first", "", "Hello {{ name }}"]
    latest = json.loads(flowloom(home, "prompts", "show", "greet", "--json").stdout)
    assert (latest["ref"], latest["text"], latest["notes"]) == ("greet@2", "Hi {{ name }}!", "")


def test_mistakes_exit_2_with_one_line(tmp_path):
    home = tmp_path / "home"
    flowloom(home, "prompts", "push", "greet", "-", stdin="Hello")
    cases = [
        (("prompts", "show", "greet@7"), None, "error: prompt 'greet' has no version 7; "
                                               "versions: 1"),
        (("prompts", "show", "nope"), None, "error: no prompt named 'nope'; prompts: greet"),
        (("prompts", "show", "greet@new"), None, "version must be a number or 'latest'"),
        (("prompts", "push", "Greet", "-"), "x", "error: prompt name 'Greet': use 1-64"),
        (("prompts", "push", "greet", "-"), "{{ oops", "template syntax error at line 1"),
        (("prompts", "push", "greet", "-"), "  \n", "error: stdin: the prompt text is empty"),
        (("prompts", "push", "greet", str(tmp_path / "missing.txt")), None,
         "missing.txt: no such file"),
    ]
    for args, stdin, message in cases:
        out = flowloom(home, *args, stdin=stdin)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert flowloom(home, "prompts", "list", "--json").stdout.count('"greet@1"') == 1


def test_export_import_and_run_elsewhere(tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    flow = tmp_path / "greeter.json"
    flow.write_text(json.dumps(FLOW))
    flowloom(here, "prompts", "push", "greet", "-", stdin="Hello {{ name }}")
    flowloom(here, "prompts", "push", "greet", "-", stdin="Hi {{ name }}!")
    shared = tmp_path / "shared.json"
    out = flowloom(here, "export", str(flow), "-o", str(shared))
    assert out.returncode == 0, out.stderr
    doc = json.loads(shared.read_text())
    assert doc["nodes"][0]["params"]["prompt"] == "greet@2"
    assert doc["prompts"] == {"greet@2": {"text": "Hi {{ name }}!", "notes": ""}}
    assert flowloom(here, "export", str(shared)).stdout == shared.read_text()  # idempotent

    # the exported file runs as it did, with no store at all, and imports into an empty one
    ran = flowloom(there, "run", str(shared), "-i", "Ada")
    assert (ran.returncode, ran.stdout) == (0, "Hi Ada!\n"), ran.stderr
    added = flowloom(there, "prompts", "import", str(shared))
    assert added.stdout == f"{shared}: 1 of 1 carried prompt versions added: greet@2\n"
    assert json.loads(flowloom(there, "prompts", "show", "greet", "--json").stdout)["ref"] == (
        "greet@2")

    # another history of `greet` refuses the import, and says why
    elsewhere = tmp_path / "elsewhere"
    flowloom(elsewhere, "prompts", "push", "greet", "-", stdin="one")
    flowloom(elsewhere, "prompts", "push", "greet", "-", stdin="two")
    refused = flowloom(elsewhere, "prompts", "import", str(shared))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "prompt greet@2" in refused.stderr and "history of 'greet' differs" in refused.stderr
    missing = flowloom(tmp_path / "empty", "export", str(flow))
    assert missing.returncode == 2 and "no prompt named 'greet'" in missing.stderr
