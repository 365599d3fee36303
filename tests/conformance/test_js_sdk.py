"""Conformance: the LangGraph **JS SDK** (`@langchain/langgraph-sdk` from npm, pinned in
js/package-lock.json) against a real `flowloom serve` subprocess (free port, temporary
FLOWLOOM_HOME, SQLite).

The server and the fake model it calls are conftest.py's fixtures (shared with
test_python_sdk.py): the flows (flows/) need no model but `conf_echo`, whose one chat call
goes to the fake OpenAI-compatible endpoint (it echoes; `slow N` is held N seconds), so a
run can be slow enough to cancel. js/conformance.mjs runs every check once and prints one
JSON line per check, `{"name", "ok", "detail"}`; each check is one case here.

Checks of endpoints the server does not have yet are marked `xfail(strict=True)` with a
"server gap" reason: once the server answers them, the xfail turns into a failure, and
the mark should go.

Run: .venv/bin/python -m pytest tests/conformance -q
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
JS = HERE / "js"
NODE_TIMEOUT_S = 100


def _gap(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"server gap: {reason}")


# Every check conformance.mjs reports, in its order; marks for the known server gaps.
CHECKS: list[str | pytest.param] = [
    "assistants.search",
    "assistants.get",
    "assistants.getGraph",
    "assistants.getSchemas",
    "threads.create",
    "threads.get",
    "runs.wait",
    "threads.search.metadata",
    "threads.search.assistant_id",
    "threads.search.sort",
    "threads.search.values",
    "threads.getState",
    "threads.updateState",
    "threads.getHistory",
    "threads.copy",
    "runs.create+join",
    "runs.stream.values",
    "runs.stream.updates",
    "runs.stream.values+updates",
    "runs.stream.events",
    "runs.list.select",
    "interrupt.resume",
    "runs.interruptBefore",
    "runs.cancel",
    "runs.cancelMany",
    "runs.badInput422",
    "runs.timeTravel",
    "runs.joinStream",
    "threads.joinStream",
    "runs.createBatch",
    "assistants.setLatest",
    "store.putItem+getItem",
    "store.searchItems",
    "store.listNamespaces",
    "store.deleteItem",
    "crons.create",
    "crons.search",
    "crons.delete",
]


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def js_deps() -> Path:
    """The JS SDK installed in js/node_modules (`npm ci` once, if missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run the JS SDK conformance checks")
    if not (JS / "node_modules" / "@langchain" / "langgraph-sdk").is_dir():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
                              cwd=JS, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return Path(node)


@pytest.fixture(scope="module")
def results(js_deps: Path, server: dict) -> dict[str, dict]:
    """Every check's `{"ok", "detail"}` by name, from one run of conformance.mjs."""
    started = time.monotonic()
    done = subprocess.run([str(js_deps), "conformance.mjs", server["url"]], cwd=JS,
                          capture_output=True, text=True, timeout=NODE_TIMEOUT_S)
    found: dict[str, dict] = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            found[row["name"]] = row
    if done.returncode != 0 or not found:
        raise AssertionError(f"conformance.mjs exited {done.returncode} after "
                             f"{time.monotonic() - started:.1f}s\nstdout:\n{done.stdout}\n"
                             f"stderr:\n{done.stderr}")
    return found


def _name(check: str | pytest.param) -> str:
    return check if isinstance(check, str) else check.values[0]


def test_every_check_reported(results: dict[str, dict]) -> None:
    expected = [_name(c) for c in CHECKS]
    assert sorted(results) == sorted(expected), (
        f"missing: {sorted(set(expected) - set(results))}, "
        f"unexpected: {sorted(set(results) - set(expected))}")


@pytest.mark.parametrize("check", CHECKS)
def test_js_sdk(check: str, results: dict[str, dict], server: dict) -> None:
    row = results.get(check)
    assert row is not None, f"{check}: not reported by conformance.mjs"
    if not row["ok"]:
        tail = server["log"].read_text()[-3000:]
        pytest.fail(f"{check}: {row['detail']}\n--- server log (tail) ---\n{tail}",
                    pytrace=False)
