"""Helpers shared by node types: template params, stored-prompt params and the state
fields they read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import Field

from flowloom.flows.errors import FlowBuildError, FlowError
from flowloom.flows.prompts import PROMPT_REF_KEY, parse_ref, resolve_prompt
from flowloom.flows.registry import NodeContext, StateRef, closest
from flowloom.flows.templates import BUILTIN_VARIABLES, Template, TemplateError

__all__ = [
    "check_prompt_ref",
    "check_state_fields",
    "check_template",
    "is_messages_field",
    "prompt_ref_field",
    "require_model",
    "resolve_text",
    "template_refs",
]


def check_template(value: str) -> str:
    """Pydantic validator body: raise ValueError (→ a problem at the param's path)."""
    try:
        Template(value)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None
    return value


def prompt_ref_field(description: str) -> Any:
    """An optional param naming a stored prompt (`name@version`, `name@latest`): marked
    with PROMPT_REF_KEY, so export pins it, and with the builder's choices key, so the
    builder can offer the server's prompts."""
    return Field(None, description=description,
                 json_schema_extra={PROMPT_REF_KEY: True, "x-flowloom-choices": "prompts"})


def check_prompt_ref(
    value: str | None, *, inline: str = "", inline_name: str = "", ref_name: str = ""
) -> str | None:
    """Pydantic validator body for a prompt-ref param: the ref parses, and the slot's
    inline text (`inline_name`) is not given as well."""
    if value is None:
        return None
    parse_ref(value)
    if inline:
        raise ValueError(f"give {inline_name!r} (inline text) or {ref_name!r} (a stored "
                         "prompt), not both")
    return value


def resolve_text(ctx: NodeContext, param: str, inline: str, ref: str | None) -> str:
    """The template source of one prompt slot: the stored prompt `ref` names (one the flow
    carries, else the build's prompt store), checked against the flow's state fields; else
    `inline`. Problems are FlowBuildErrors naming the node and `param`.

    Example:
        >>> resolve_text(ctx, "system_prompt", params.system, params.system_prompt)
        'You are {{ persona }}.'
    """
    if ref is None:
        return inline
    try:
        source = resolve_prompt(ref, ctx.build.prompts, ctx.flow.prompts).text
    except (FlowError, ValueError) as exc:
        raise FlowBuildError(f"{param}: {exc}", node_id=ctx.node_id) from None
    check_state_fields(ctx, param, source, f"prompt {ref}")
    return source


def check_state_fields(ctx: NodeContext, param: str, source: str, what: str) -> None:
    """A FlowBuildError when the template `source` (named `what` in the message) reads
    state fields the flow does not declare: the build-time check of text the validator
    cannot see, such as a stored prompt's."""
    unknown = sorted({ref.field for ref in template_refs(param, source)
                      if ref.field not in ctx.flow.state})
    if unknown:
        raise FlowBuildError(
            f"{param}: {what} reads state fields the flow does not declare: "
            f"{', '.join(unknown)}; declared: {', '.join(ctx.flow.state) or 'none'}",
            node_id=ctx.node_id,
        )


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


def repeated(values: Iterable[str]) -> list[str]:
    """The values that occur more than once, sorted (labels, names that must be unique)."""
    seen = list(values)
    return sorted({v for v in seen if seen.count(v) > 1})
