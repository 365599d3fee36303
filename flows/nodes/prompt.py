"""`prompt.template@1`: render a stored, versioned prompt (or an inline one) into state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowloom.flows.errors import FlowBuildError, FlowError
from flowloom.flows.nodes._common import check_template, template_refs
from flowloom.flows.prompts import parse_ref
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import Template

__all__ = ["NODE_TYPE", "Params", "build"]


class Params(BaseModel):
    """Render a prompt into the state field `output`. Give `prompt` (a stored prompt,
    `name@version`) or `template` (inline text), not both."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(None, description="Stored prompt: name@version or name@latest.")
    template: str | None = Field(None, description="Inline template over state fields.")
    output: str = Field(..., description="State field that receives the rendered text.")

    @field_validator("prompt")
    @classmethod
    def _check_ref(cls, value: str | None) -> str | None:
        if value is not None:
            parse_ref(value)
        return value

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value)

    @model_validator(mode="after")
    def _one_source(self) -> Params:
        if (self.prompt is None) == (self.template is None):
            raise ValueError("give exactly one of 'prompt' (name@version) or 'template'")
        return self


def state_refs(params: Params) -> Iterator[StateRef]:
    if params.template:
        yield from template_refs("template", params.template)
    yield StateRef("output", params.output, "write")


def build(params: Params, ctx: NodeContext) -> Any:
    if params.template is not None:
        source = params.template
    else:
        store = ctx.build.prompts
        if store is None:
            raise FlowBuildError("no prompt store is configured", node_id=ctx.node_id)
        try:
            source = store.get(params.prompt or "").text
        except FlowError as exc:
            raise FlowBuildError(str(exc), node_id=ctx.node_id) from None
    template = Template(source)
    unknown = sorted(
        ref.field for ref in template_refs("prompt", source) if ref.field not in ctx.flow.state
    )
    if unknown:
        raise FlowBuildError(
            f"prompt {params.prompt} reads state fields the flow does not declare: "
            f"{', '.join(unknown)}; declared: {', '.join(ctx.flow.state) or 'none'}",
            node_id=ctx.node_id,
        )
    output = params.output

    def prompt_template(state: dict[str, Any]) -> dict[str, Any]:
        return {output: template.render(state)}

    return prompt_template


NODE_TYPE = NodeType(
    name="prompt.template",
    version=1,
    params=Params,
    build=build,
    category="models",
    description="Render a versioned prompt (or an inline template) into a state field.",
    state_refs=state_refs,
    inline=True,
)
