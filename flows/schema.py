"""The flow document's JSON Schema, with each node type's params schema attached.

Editors get completion for `params` once `type` is set: the schema says, for every
registered `name@version`, "if type is this, params follow that type's `Params` schema".
"""

from __future__ import annotations

from typing import Any

from flowloom.flows.format import Flow
from flowloom.flows.registry import NodeRegistry, default_registry

__all__ = ["flow_json_schema"]


def _def_name(key: str) -> str:
    return "params_" + key.replace(".", "_").replace("@", "_v")


def flow_json_schema(registry: NodeRegistry | None = None) -> dict[str, Any]:
    registry = registry or default_registry()
    schema = Flow.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "flowloom flow"
    defs = schema.setdefault("$defs", {})
    conditions = []
    for node_type in registry.types():
        params = node_type.params_schema()
        for name, sub in params.pop("$defs", {}).items():
            defs.setdefault(name, sub)
        defs[_def_name(node_type.key)] = params
        conditions.append({
            "if": {"properties": {"type": {"const": node_type.key}}, "required": ["type"]},
            "then": {"properties": {"params": {"$ref": f"#/$defs/{_def_name(node_type.key)}"}}},
        })
    node = defs["NodeSpec"]
    node["properties"]["type"]["examples"] = registry.keys()
    node["allOf"] = conditions
    return schema
