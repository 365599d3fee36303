"""A real flowloom API server for the UI's tests: in this process, on 127.0.0.1 (ephemeral
port), with the example flows and scripted models (see `ui_reply`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.context import BuildContext
from flowloom.ui.client import API_URL_ENV, FlowloomClient
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels


def ui_reply(messages) -> str:
    """Routers' classifiers get `billing` (or `technical` for a crash); a user message
    `boom` makes the model fail; anything else is echoed, a word per streamed chunk."""
    text = str(messages[-1].content)
    if "Classify" in str(messages[0].content):
        return "technical" if "crash" in text else "billing"
    if text == "boom":
        raise ValueError("the model exploded")
    time.sleep(0.005)  # every model node takes measurable time
    return f"echo: {text}"


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a server for the whole session (SQLite in a temp dir)."""
    home = tmp_path_factory.mktemp("ui-server")
    settings = ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home)
    models = ScriptedModels(ui_reply, aliases=("local", "local-embed"))
    yield from run_server(create_app(settings, ctx=BuildContext(models=models, data_dir=home)))


@pytest.fixture
def ui_api(ui_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlowloomClient]:
    """`$FLOWLOOM_API_URL` pointed at `ui_server` (what pages read), and a client of it."""
    monkeypatch.setenv(API_URL_ENV, ui_server)
    client = FlowloomClient(ui_server)
    yield client
    client.close()
