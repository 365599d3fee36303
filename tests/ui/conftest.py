"""A real flowloom API server for the UI's tests: in this process, on 127.0.0.1 (ephemeral
port), with the example flows and scripted models (see `ui_reply`)."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.context import BuildContext
from flowloom.ui.client import API_URL_ENV, FlowloomClient
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels


@pytest.fixture(scope="session", autouse=True)
def _parser_worker_started_first() -> None:
    """The knowledge bases' parser worker (a `spawn`ed process, see `_parse_pool`), started
    before any AppTest run: a process spawned while AppTest has a page script installed
    as `__main__` runs that script and dies (no `__args`)."""
    from flowloom.retrievers._parse_pool import shared_pool

    shared_pool()._executor().submit(int)  # the worker starts here; nothing to wait for


@pytest.fixture(autouse=True)
def _pytest_main_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """AppTest installs each page script as `__main__` and leaves it there (see above):
    every AppTest run ends with pytest's `__main__` back."""
    main = sys.modules["__main__"]
    run = AppTest._run

    def run_then_restore(self: AppTest, *args: Any, **kwargs: Any) -> AppTest:
        try:
            return run(self, *args, **kwargs)
        finally:
            sys.modules["__main__"] = main

    monkeypatch.setattr(AppTest, "_run", run_then_restore)
    yield
    sys.modules["__main__"] = main


RELEASE = threading.Event()  # set when the session ends: slow replies stop waiting


def ui_reply(messages) -> str:
    """Routers' classifiers get `billing` (or `technical` for a crash); a user message
    `boom` makes the model fail; `slow N ...` waits N seconds before its first token (a
    model starting); anything else is echoed, a word per streamed chunk."""
    text = str(messages[-1].content)
    if "Classify" in str(messages[0].content):
        return "technical" if "crash" in text else "billing"
    if text == "boom":
        raise ValueError("the model exploded")
    if (slow := re.match(r"slow (\d+(?:\.\d+)?)\b", text)) is not None:
        RELEASE.wait(float(slow.group(1)))
    time.sleep(0.005)  # every model node takes measurable time
    return f"echo: {text}"


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a server for the whole session (SQLite in a temp dir)."""
    home = tmp_path_factory.mktemp("ui-server")
    settings = ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home)
    models = ScriptedModels(ui_reply, aliases=("local", "local-embed"))
    for url in run_server(create_app(settings, ctx=BuildContext(models=models, data_dir=home))):
        try:
            yield url
        finally:
            RELEASE.set()  # before the server stops: no run waits on a slow reply then


@pytest.fixture
def ui_api(ui_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlowloomClient]:
    """`$FLOWLOOM_API_URL` pointed at `ui_server` (what pages read), and a client of it."""
    monkeypatch.setenv(API_URL_ENV, ui_server)
    client = FlowloomClient(ui_server)
    yield client
    client.close()
