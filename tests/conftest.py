"""Test-wide settings: nothing may reach for the network."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
for _key in ("LANGGRAPH_API_KEY", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "OPENAI_API_KEY"):
    os.environ.pop(_key, None)


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One data dir for the session's end-to-end tests, so the bundled GGUF is assembled
    once; whatever model service a test left running there is stopped at the end."""
    from flowloom.backends.model_launcher import MODEL_URL_ENV, stop_started_services

    home = tmp_path_factory.mktemp("flowloom-home")
    saved = os.environ.get(MODEL_URL_ENV)
    yield home
    stop_started_services(home)
    if saved is None:
        os.environ.pop(MODEL_URL_ENV, None)
    else:
        os.environ[MODEL_URL_ENV] = saved


@pytest.fixture(scope="module")
def running_model_service(model_home: Path) -> Iterator[str]:
    """The real model service, started as commands start it; stopped after the module."""
    from flowloom.backends.model_launcher import (
        MODEL_URL_ENV,
        ensure_model_service,
        stop_started_services,
    )

    url = ensure_model_service(model_home)
    yield url
    stop_started_services(model_home)
    os.environ.pop(MODEL_URL_ENV, None)
