"""Every `flowloom` command, given bad input, ends with a short message and a non-zero exit:
never a traceback. Each case runs the real command in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flowloom.flows.loader import examples_dir

CHAT = json.loads((examples_dir() / "chat.json").read_text())


def _files(folder: Path) -> dict[str, str]:
    def write(name: str, text: str) -> str:
        path = folder / name
        path.write_text(text)
        return str(path)

    key = {**CHAT, "nodes": [{**CHAT["nodes"][0], "params": {"x[": 1}}]}
    note = {"schema_version": 1, "id": "note", "name": "Note",
            "state": {"text": {"type": "string"}, "note": {"type": "string"}},
            "nodes": [{"id": "w", "type": "state.set@1",
                       "params": {"templates": {"note": "{{ text.nope() }}"}}}],
            "edges": [{"source": "START", "target": "w"}, {"source": "w", "target": "END"}]}
    bomb = {**note, "nodes": [{"id": "w", "type": "state.set@1", "params": {
        "templates": {"note": '{{ "A" * 2000000000 }}'}}}]}
    return {
        "notjson": write("notjson.json", '{"id": "x", "nodes": ['),
        "key": write("key.json", json.dumps(key)),
        "surrogate": write("surrogate.json", json.dumps({**CHAT, "name": "a\ud800b"})),
        "nul": write("nul.json", json.dumps({**CHAT, "description": "a\x00b"})),
        "deep": write("deep.json", '{"nodes": [], "m": ' + "[" * 5000 + "]" * 5000 + "}"),
        "array": write("array.json", "[1, 2]"),
        "note": write("note.json", json.dumps(note)),
        "bomb": write("bomb.json", json.dumps(bomb)),
        "badyaml": write("models.yaml", "model_list: [{model_name: 1"),
        "csv": write("t.csv", "a,b\n1,2\n"),
    }


def _arg(arg: str, files: dict[str, str]) -> str:
    """`{name}` stands for one of `files`; anything else (JSON included) is as written."""
    name = arg[1:-1]
    return files[name] if arg.startswith("{") and arg.endswith("}") and name in files else arg


CASES = [
    ["nosuch"],
    ["validate", "--nope", "x"],
    ["validate", "{missing}"],
    ["validate", "{notjson}"],
    ["validate", "{key}"],
    ["validate", "{surrogate}"],
    ["validate", "{nul}"],
    ["validate", "{deep}"],
    ["validate", "{array}"],
    ["migrate", "{deep}", "--write"],
    ["schema", "extra"],
    ["node-types", "--nope"],
    ["run", "{note}", "--input-json", '{"text": "hi"}'],
    ["run", "{bomb}", "--input-json", '{"text": "hi"}'],
    ["run", "{note}", "--input-json", "{bad"],
    ["run", "{note}", "-i", "words"],
    ["run", "{missing}", "-i", "x"],
    ["export", "{deep}"],
    ["models", "--models", "{badyaml}"],
    ["models", "--models", "{missing}"],
    ["serve", "--flows", "{missing}"],
    ["serve", "--metrics-role", "root"],
    ["up", "--port", "abc"],
    ["kb", "search", "nosuch", "question"],
    ["kb", "create", "Bad Name!"],
    ["prompts", "show", "nosuch@1"],
    ["prompts", "push", "BAD NAME", "{missing}"],
    ["keys", "revoke", "nope"],
    ["keys", "create", "--role", "root"],
    ["sql", "ask", "how many?", "--database", "nosuch://x"],
    ["causal", "query", "--data", "{csv}", "--graph", "a->", "--kind", "effect"],
    ["rec", "recommend", "--history", "zzz,yyy", "--model", "{missing}"],
]


def test_bad_input_never_shows_a_traceback(tmp_path):
    files = {**_files(tmp_path), "missing": str(tmp_path / "nowhere.json")}
    env = {**os.environ, "FLOWLOOM_HOME": str(tmp_path / "home")}
    env.pop("FLOWLOOM_DEBUG", None)

    def run(args: list[str]) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        argv = [_arg(a, files) for a in args]
        done = subprocess.run([sys.executable, "-m", "flowloom.ui.cli", *argv],
                              capture_output=True, text=True, env=env, timeout=180)
        return argv, done

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, CASES))
    failures = []
    for argv, done in results:
        said = done.stdout + done.stderr
        if done.returncode == 0 or "Traceback" in said or not done.stderr.strip():
            failures.append(f"flowloom {' '.join(argv)} -> {done.returncode}\n{said[-1500:]}")
        elif len(done.stderr.strip().splitlines()) > 12:
            failures.append(f"flowloom {' '.join(argv)}: not a short message\n{done.stderr}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("argv", [["validate", "{key}"], ["run", "{bomb}", "--input-json",
                                                          '{"text": "x"}']])
def test_the_message_says_what_and_where(tmp_path, argv):
    files = _files(tmp_path)
    done = subprocess.run([sys.executable, "-m", "flowloom.ui.cli",
                           *[_arg(a, files) for a in argv]], capture_output=True,
                          text=True, timeout=180,
                          env={**os.environ, "FLOWLOOM_HOME": str(tmp_path / "home")})
    assert done.returncode == 2
    said = done.stdout + done.stderr
    assert "nodes[0].params.x[" in said or "repetition would make 2,000,000,000" in said
