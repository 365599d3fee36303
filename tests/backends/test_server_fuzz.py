"""schemathesis against /openapi.json: no generated request may get a 5xx."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.context import BuildContext
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz")
    app = create_app(ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home),
                     ctx=BuildContext(models=ScriptedModels(lambda m: "ok")))
    yield from run_server(app)


def test_no_server_errors_for_generated_requests(server):
    st = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    out = subprocess.run(
        [st, "run", f"{server}/openapi.json", "--checks", "not_a_server_error",
         "--max-examples", "5", "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=900,
    )
    tail = out.stdout[-3000:]
    assert out.returncode == 0, tail
    assert "passed" in tail and "Server error" not in tail
