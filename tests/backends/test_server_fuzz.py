"""schemathesis over the whole OpenAPI document, without a key and with an admin key:
no generated request may get a 5xx, and every answer must be what the document says
(status codes, bodies, headers, 405s with their Allow header).

One check is left out: `positive_data_acceptance` (a schema-valid request must be
accepted). The server refuses, on purpose, text no database or UTF-8 answer can hold (NUL
characters, unpaired surrogates) and ids of things that do not exist, which JSON Schema
cannot say of every string."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flowloom.backends.server import ServerSettings, create_app
from flowloom.backends.server.db import open_database
from flowloom.backends.server.keys import KeyStore
from flowloom.flows.context import BuildContext
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels


def _schemathesis(url: str, *headers: str, seed: int) -> subprocess.CompletedProcess[str]:
    st = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    extra = [arg for header in headers for arg in ("-H", header)]
    return subprocess.run(
        [st, "run", f"{url}/openapi.json", "--checks", "all",
         "--exclude-checks", "positive_data_acceptance", "--max-examples", "8",
         "--seed", str(seed), "--no-color", *extra],
        capture_output=True, text=True, timeout=900)


def _app(home: Path):
    return create_app(ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home),
                      ctx=BuildContext(models=ScriptedModels(lambda m: "ok"), data_dir=home))


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "admin-key"])
def test_every_answer_is_what_the_document_says(tmp_path, keyed):
    headers: list[str] = []
    if keyed:
        async def admin_key() -> str:
            async with open_database(f"sqlite:///{tmp_path}/fl.sqlite") as db:
                store = KeyStore(db)
                await store.setup()
                return (await store.create("admin", name="fuzz"))[1]

        headers.append(f"x-api-key: {asyncio.run(admin_key())}")
    for url in run_server(_app(tmp_path)):
        out = _schemathesis(url, *headers, seed=3 if keyed else 1)
    tail = out.stdout[-4000:]
    found = out.stdout.find("FAILURES")  # each failure, with its request, comes first
    assert out.returncode == 0, out.stdout[found:found + 8000] if found >= 0 else tail
    assert " passed" in tail and "Server error" not in tail
