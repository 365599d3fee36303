"""`prompt.template@1`: render a stored, versioned prompt (or an inline one) into state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowloom.flows.nodes._common import (
    check_prompt_ref,
    check_template,
    prompt_ref_field,
    resolve_text,
    template_refs,
)
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import Template

__all__ = ["NODE_TYPE", "Params", "build"]


class Params(BaseModel):
    """Render a prompt into the state field `output`. Give `prompt` (a stored prompt,
    `name@version`) or `template` (inline text), not both."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = prompt_ref_field("Stored prompt: name@version or name@latest.")
    template: str | None = Field(None, description="Inline template over state fields.")
    output: str = Field(..., description="State field that receives the rendered text.",
                        json_schema_extra={"x-flowloom-state": "write"})

    @field_validator("prompt")
    @classmethod
    def _check_ref(cls, value: str | None) -> str | None:
        return check_prompt_ref(value)

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
    yield StateRef("output", params.output, "write", "string")


def build(params: Params, ctx: NodeContext) -> Any:
    template = Template(resolve_text(ctx, "prompt", params.template or "", params.prompt))
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
