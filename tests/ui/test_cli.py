"""The CLI: clear messages and exit code 2 for user mistakes, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowloom.flows.loader import examples_dir
from flowloom.flows.registry import default_registry

BROKEN = {
    "schema_version": 1, "id": "broken", "name": "Broken",
    "state": {"messages": {"type": "messages"}},
    "nodes": [
        {"id": "a", "type": "llm.chatt@1", "params": {}},
        {"id": "b", "type": "llm.chat@1", "params": {"temperature": 7}},
    ],
    "edges": [{"source": "START", "target": "a"}, {"source": "a", "target": "b"},
              {"source": "b", "target": "retreive"}],
}


def flowloom(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowloom.ui.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )


def test_validate_examples_ok():
    out = flowloom("validate", *map(str, sorted(examples_dir().glob("*.json"))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ok: ") == len(list(examples_dir().glob("*.json")))


def test_broken_flow_one_message_per_problem(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(BROKEN))
    out = flowloom("validate", str(path))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [line.strip() for line in out.stderr.splitlines() if line.strip().startswith("- ")]
    head, valid = lines[0].split("; valid: ")
    assert head == "- nodes[0].type: unknown node type 'llm.chatt@1'"
    # the closest type first, then every installed one, each once
    assert valid.split(", ")[0] == "llm.chat@1"
    assert sorted(valid.split(", ")) == sorted(default_registry().keys())
    assert lines[1:] == [
        "- nodes[1].params.temperature: Input should be less than or equal to 2",
        "- edges[2].target: 'retreive' is not a node; valid: a, b, END",
    ]
    as_json = json.loads(flowloom("validate", "--json", str(path)).stdout)
    assert [p["path"] for p in as_json[0]["problems"]] == [
        "nodes[0].type", "nodes[1].params.temperature", "edges[2].target"]


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "not valid JSON"), ('{"a": 1}', "not a flow document"),
     ("[]", "not a flow document")],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_files_exit_2_without_traceback(tmp_path, text, message, command):
    path = tmp_path / "bad.json"
    path.write_text(text)
    args = [command, str(path)] + (["--input", "hi"] if command == "run" else [])
    out = flowloom(*args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_run_refuses_invalid_flow_before_any_model(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(BROKEN))
    out = flowloom("run", str(path), "--input", "hi")
    assert out.returncode == 2 and "3 problems in flow" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_file_and_bad_option():
    out = flowloom("run", "nope.json", "--input", "x")
    assert out.returncode == 2 and "no such file" in out.stderr
    out = flowloom("run", str(examples_dir() / "chat.json"), "--input-json", "[1]")
    assert out.returncode == 2 and "JSON object" in out.stderr


def test_schema_and_node_types_print_json():
    schema = json.loads(flowloom("schema").stdout)
    assert schema["title"] == "flowloom flow"
    types = json.loads(flowloom("node-types", "--json").stdout)
    assert {t["type"] for t in types} >= {"llm.chat@1", "router.condition@1", "state.set@1",
                                          "prompt.template@1"}


def test_migrate_writes_current_version(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"version": 0, "name": "Old", "state": ["messages"],
                                "nodes": {"a": {"type": "state.set"}},
                                "edges": [["START", "a"], ["a", "END"]]}))
    out = flowloom("migrate", "--write", str(path))
    assert out.returncode == 0 and "migrated from schema version 0 to 1" in out.stderr
    assert json.loads(path.read_text())["schema_version"] == 1
    assert flowloom("validate", str(path)).returncode == 0


def test_models_without_a_running_service(tmp_path):
    out = subprocess.run([sys.executable, "-m", "flowloom.ui.cli", "models", "--check"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "FLOWLOOM_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("not running, starts on first use") == 3


@pytest.mark.slow
def test_models_check_probes_the_running_service(model_home, running_model_service):
    env = {**os.environ, "FLOWLOOM_HOME": str(model_home)}
    env.pop("FLOWLOOM_MODEL_URL", None)
    out = subprocess.run([sys.executable, "-m", "flowloom.ui.cli", "models", "--check", "--json"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert {r["alias"]: r["status"] for r in report["health"]} == {
        "local": "ok", "local-embed": "ok", "local-embed-multilingual": "ok"}
    assert report["routes"]["local"][0]["api_base"] == running_model_service
