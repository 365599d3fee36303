"""Flow documents round-trip with a stable key order and no code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowloom.flows.format import Flow, dump_flow
from flowloom.flows.loader import examples_dir, load_flow
from flowloom.flows.registry import default_registry
from flowloom.flows.schema import flow_json_schema

SNAPSHOTS = Path(__file__).parent.parent / "snapshots"


@pytest.mark.parametrize("path", sorted(examples_dir().glob("*.json")), ids=lambda p: p.name)
def test_examples_are_canonical(path):
    """Examples are stored exactly as dump_flow writes them (stable order)."""
    assert dump_flow(load_flow(path).flow) == path.read_text()


def test_dump_sorts_params_and_layout_follows_nodes():
    flow = Flow.model_validate({
        "id": "x", "name": "X",
        "nodes": [{"id": "b", "type": "state.set@1", "params": {"values": {"z": 1, "a": 2}}},
                  {"id": "a", "type": "state.set@1", "params": {}}],
        "layout": {"nodes": {"a": {"x": 1, "y": 2}, "b": {"x": 3, "y": 4}}},
    })
    data = json.loads(dump_flow(flow))
    assert list(data) == ["schema_version", "id", "name", "description", "state", "nodes",
                          "edges", "io", "recursion_limit", "metadata", "layout"]
    assert list(data["nodes"][0]["params"]["values"]) == ["a", "z"]
    assert list(data["layout"]["nodes"]) == ["b", "a"]


def _snapshot(name: str, value: object) -> None:
    path = SNAPSHOTS / name
    text = json.dumps(value, indent=2, sort_keys=True) + "\n"
    if not path.exists():  # first run writes it; review it in the diff
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed: review, then delete it to refresh"


def test_flow_json_schema_snapshot():
    schema = flow_json_schema()
    node = schema["$defs"]["NodeSpec"]
    assert node["properties"]["type"]["examples"] == default_registry().keys()
    _snapshot("flow.schema.json", schema)


def test_node_catalogue_snapshot():
    _snapshot("node-types.json", default_registry().catalogue())
