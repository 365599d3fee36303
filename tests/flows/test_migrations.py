"""A v0 document (the prototype format) loads as v1 and says so."""

from __future__ import annotations

import json

import pytest

from flowloom.flows.errors import FlowLoadError
from flowloom.flows.format import dump_flow
from flowloom.flows.loader import load_flow
from flowloom.flows.migrations import migrate

V0 = {
    "version": 0,
    "name": "Old triage",
    "state": ["messages", "route"],
    "nodes": {
        "classify": {
            "type": "router.condition",
            "params": {"routes": [{"label": "billing", "value": "invoice"}], "mode": "contains"},
            "position": [10, 20],
        },
        "billing": {"type": "state.set", "params": {"values": {"route": "b"}},
                    "position": [300, 20]},
    },
    "edges": [["START", "classify"], ["classify", "billing", "billing"],
              ["classify", "END", "default"], ["billing", "END"]],
}


def test_v0_document_is_upgraded_and_says_so(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps(V0))
    loaded = load_flow(path)
    assert loaded.migrated_from == 0
    assert loaded.notes == ["migrated from schema version 0 to 1"]
    flow = loaded.flow
    assert flow.schema_version == 1
    assert flow.id == "Old-triage"
    assert [n.type for n in flow.nodes] == ["router.condition@1", "state.set@1"]
    assert flow.state["messages"].type == "messages"
    assert flow.edges[1].condition == "billing"
    assert flow.layout.nodes["billing"].x == 300
    assert json.loads(dump_flow(flow))["schema_version"] == 1


def test_migrate_leaves_input_untouched_and_current_is_noop():
    original = json.loads(json.dumps(V0))
    migrate(V0)
    assert original == V0
    current = migrate({"schema_version": 1, "nodes": []})
    assert not current.changed and current.notes == []


@pytest.mark.parametrize(
    ("version", "message"), [(99, "newer than"), ("1", "integer"), (-1, ">= 0")]
)
def test_bad_versions(version, message):
    with pytest.raises(FlowLoadError, match=message):
        migrate({"schema_version": version, "nodes": []})
