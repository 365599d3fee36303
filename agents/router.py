"""`router.condition@1`: pick the next branch from a state field, by rule or by an LLM.

Rules compare the field (for a messages field: the last message's text) with each route's
`value` by equality, substring or regex, first match wins; `llm` mode asks a model to
classify the text into one of the route labels. No match takes `default`. The decision is
written to the state field `output`, which the compiled graph's conditional edge reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowloom.flows.nodes._common import repeated
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import message_text

__all__ = ["NODE_TYPE", "Params", "Route", "build", "field_text", "match_label"]


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    value: str | None = Field(None, description="Value, substring or regex (rule modes).")
    description: str = Field("", description="What belongs here (llm mode).")


class Params(BaseModel):
    """Route on a state field."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field("messages", description="State field to inspect.",
                       json_schema_extra={"x-flowloom-state": "read"})
    mode: Literal["equals", "contains", "regex", "llm"] = "equals"
    routes: list[Route] = Field(..., min_length=1)
    default: str = Field("default", description="Label taken when nothing matches.")
    default_description: str = Field(
        "", description="What belongs to the default besides anything else (llm mode).")
    case_sensitive: bool = False
    model: str = Field("local", description="Model alias (llm mode).",
                       json_schema_extra={"x-flowloom-choices": "models"})
    instructions: str = Field("", description="Extra instructions for the classifier (llm).")
    output: str = Field("route", description="State field that records the decision.",
                        json_schema_extra={"x-flowloom-state": "write"})

    @model_validator(mode="after")
    def _check(self) -> Params:
        labels = [r.label for r in self.routes]
        if dupes := repeated(labels):
            raise ValueError(f"route labels must be unique; repeated: {', '.join(dupes)}")
        if self.default in labels:
            raise ValueError(f"default {self.default!r} must differ from the route labels")
        for i, route in enumerate(self.routes):
            if self.mode != "llm" and route.value is None:
                raise ValueError(f"routes[{i}] ({route.label}) needs a 'value' in {self.mode} mode")
            if self.mode == "regex" and route.value is not None:
                try:
                    re.compile(route.value)
                except re.error as exc:
                    raise ValueError(f"routes[{i}].value is not a valid regex: {exc}") from None
        return self

    def labels(self) -> list[str]:
        return [r.label for r in self.routes] + [self.default]


def match_label(answer: str, labels: list[str], default: str) -> str:
    """The label a classifier's free-text answer names: exact, then as a word, else default."""
    text = answer.strip().strip("`'\". \n").lower()
    by_lower = {label.lower(): label for label in labels}
    if text in by_lower:
        return by_lower[text]
    found = [
        (m.start(), label)
        for label in labels
        if (m := re.search(rf"(?<![\w-]){re.escape(label.lower())}(?![\w-])", text))
    ]
    return min(found)[1] if found else default


def _rule_matcher(params: Params) -> Any:
    flags = 0 if params.case_sensitive else re.IGNORECASE
    norm = (lambda s: s) if params.case_sensitive else str.lower
    tests = []
    for route in params.routes:
        value = route.value or ""
        if params.mode == "equals":
            wanted = norm(value.strip())
            tests.append((route.label, lambda t, w=wanted: norm(t.strip()) == w))
        elif params.mode == "contains":
            wanted = norm(value)
            tests.append((route.label, lambda t, w=wanted: w in norm(t)))
        else:
            pattern = re.compile(value, flags)
            tests.append((route.label, lambda t, p=pattern: p.search(t) is not None))

    def decide(text: str) -> str:
        for label, test in tests:
            if test(text):
                return label
        return params.default

    return decide


def field_text(state: dict[str, Any], name: str) -> str:
    value = state.get(name)
    if isinstance(value, list):  # a messages field: route on the latest message
        return message_text(value[-1]) if value else ""
    return "" if value is None else str(value)


def build(params: Params, ctx: NodeContext) -> Any:
    output, field = params.output, params.field
    if params.mode != "llm":
        decide = _rule_matcher(params)

        def router_rules(state: dict[str, Any]) -> dict[str, Any]:
            return {output: decide(field_text(state, field))}

        return router_rules

    # Tagged so the label is not streamed to chat clients as if it were the answer.
    model = ctx.require_models().chat_model(
        params.model, temperature=0.0, max_tokens=16, streaming=False
    ).with_config(tags=["nostream"])
    labels = [r.label for r in params.routes]
    catalogue = "\n".join(
        f"- {r.label}: {r.description}" if r.description else f"- {r.label}" for r in params.routes
    )
    system = (
        "Classify the user's message into exactly one category. Answer with the category "
        f"name only.\nCategories:\n{catalogue}\n- {params.default}: "
        + (f"{params.default_description}; or anything else" if params.default_description
           else "anything else")
        + (f"\n{params.instructions}" if params.instructions else "")
    )

    async def router_llm(state: dict[str, Any]) -> dict[str, Any]:
        text = field_text(state, field)
        answer = await model.ainvoke([SystemMessage(system), HumanMessage(text)])
        return {output: match_label(answer.text, [*labels, params.default], params.default)}

    return router_llm


def state_refs(params: Params) -> Iterator[StateRef]:
    yield StateRef("field", params.field)
    yield StateRef("output", params.output, "write", "string")


NODE_TYPE = NodeType(
    name="router.condition",
    version=1,
    params=Params,
    build=build,
    category="routing",
    description="Route on a state field by equality, substring, regex or LLM classification.",
    routes=Params.labels,
    route_field=lambda p: p.output,
    state_refs=state_refs,
    inline=True,
)
