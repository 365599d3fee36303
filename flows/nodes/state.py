"""`state.set@1`: write constants or rendered templates into state fields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowloom.flows.nodes._common import check_template, template_refs
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import Template

__all__ = ["NODE_TYPE", "Params", "build"]


class Params(BaseModel):
    """Set state fields: `values` are written as given, `templates` are rendered first."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, Any] = Field(default_factory=dict, description="field → constant")
    templates: dict[str, str] = Field(default_factory=dict, description="field → template")

    @field_validator("templates")
    @classmethod
    def _check(cls, value: dict[str, str]) -> dict[str, str]:
        for source in value.values():
            check_template(source)
        return value


def _kind(value: Any) -> str:
    """The state type of a constant."""
    for kind, types in (("boolean", bool), ("integer", int), ("number", float),
                        ("string", str), ("array", list), ("object", dict)):
        if isinstance(value, types):
            return kind
    return "any"


def state_refs(params: Params) -> Iterator[StateRef]:
    for name, value in params.values.items():
        yield StateRef(f"values.{name}", name, "write", _kind(value))
    for name, source in params.templates.items():
        yield StateRef(f"templates.{name}", name, "write", "string")
        yield from template_refs(f"templates.{name}", source)


def build(params: Params, ctx: NodeContext) -> Any:
    values = dict(params.values)
    if not params.templates:

        def state_set(state: dict[str, Any]) -> dict[str, Any]:
            return dict(values)

        return state_set

    templates = {name: Template(source) for name, source in params.templates.items()}

    def state_set_templates(state: dict[str, Any]) -> dict[str, Any]:
        update = dict(values)
        for name, template in templates.items():
            update[name] = template.render(state)
        return update

    return state_set_templates


NODE_TYPE = NodeType(
    name="state.set",
    version=1,
    params=Params,
    build=build,
    category="state",
    description="Write constants or rendered templates into state fields.",
    state_refs=state_refs,
    inline=True,
)
