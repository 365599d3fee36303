"""Helpers shared by node types: template params and their state references."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowloom.flows.registry import StateRef
from flowloom.flows.templates import BUILTIN_VARIABLES, Template, TemplateError

__all__ = ["check_template", "template_refs"]


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
