"""Helpers shared by node types: template params and their state references."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowloom.flows.errors import FlowBuildError
from flowloom.flows.registry import StateRef, closest
from flowloom.flows.templates import BUILTIN_VARIABLES, Template, TemplateError

__all__ = ["check_template", "is_messages_field", "require_model", "template_refs"]


def check_template(value: str) -> str:
    """Pydantic validator body: raise ValueError (→ a problem at the param's path)."""
    try:
        Template(value)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None
    return value


def template_refs(param: str, source: str) -> Iterator[StateRef]:
    """State fields a template reads (`last_message` reads `messages`)."""
    if not source:
        return
    variables = Template(source).variables
    for name in sorted(variables - BUILTIN_VARIABLES):
        yield StateRef(param, name)
    if "last_message" in variables:
        yield StateRef(param, "messages")


def is_messages_field(ctx: Any, name: str) -> bool:
    spec = ctx.flow.state.get(name)
    return spec is not None and spec.type == "messages"


def require_model(ctx: Any, alias: str) -> Any:
    """The build's model provider, after checking that it knows `alias`; a FlowBuildError
    at the node names the closest valid aliases otherwise."""
    models = ctx.require_models()
    aliases = models.aliases()
    if alias not in aliases:
        raise FlowBuildError(
            f"model {alias!r} is not in the gateway config; valid: "
            f"{', '.join(closest(alias, aliases) or aliases)}",
            node_id=ctx.node_id,
        )
    return models
