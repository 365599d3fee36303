from __future__ import annotations

import copy
from typing import Any

import pytest


def _flow(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "id": "t",
        "name": "Test",
        "state": {"messages": {"type": "messages"}, "route": {"type": "string"},
                  "text": {"type": "string"}, "log": {"type": "array", "reducer": "append"}},
        "nodes": [],
        "edges": [],
    }
    doc.update(copy.deepcopy(overrides))
    return doc


@pytest.fixture
def make_flow():
    return _flow
