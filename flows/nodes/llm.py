"""`llm.chat@1`: one model call over the conversation and/or a prompt template.

The system and user prompts are inline templates (`system`, `prompt`) or stored,
versioned prompts (`system_prompt`, `prompt_ref`: `name@version` or `name@latest`).

A client's request may set the model call's parameters of the node that answers it (the
OpenAI-compatible endpoint does: `max_tokens`, `stop`, `temperature`, `response_format`,
`tools`, ...): `config["configurable"][REQUEST_KEY]` maps node ids to parameters, which
replace the node's own for that run. `Params.request_options()` says which it takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from flowloom.flows.nodes._common import (
    check_prompt_ref,
    check_template,
    is_messages_field,
    prompt_ref_field,
    require_model,
    resolve_text,
    template_refs,
)
from flowloom.flows.nodes._sources import sources_list, sources_prompt
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import Template

__all__ = ["NODE_TYPE", "REQUEST_KEY", "Params", "build"]

REQUEST_KEY = "flowloom_request"
"""`config["configurable"][REQUEST_KEY]`: {node id: model call parameters} a client's
request sets on the nodes that answer it, over the nodes' own (see the module doc)."""

_SAMPLING = frozenset({"max_tokens", "stop", "temperature", "top_p", "seed", "presence_penalty",
                       "frequency_penalty", "response_format"})
_TOOLS = frozenset({"tools", "tool_choice", "parallel_tool_calls"})


class Params(BaseModel):
    """Call a chat model. The answer is appended to `output` (a messages field) or
    written to it as text."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("local", description="Model alias from the gateway config.",
                       json_schema_extra={"x-flowloom-choices": "models"})
    system: str = Field("", description="System prompt (template over state fields).")
    system_prompt: str | None = prompt_ref_field(
        "Stored system prompt, name@version or name@latest (instead of `system`).")
    prompt: str = Field(
        "", description="User prompt (template over state fields); empty: use the conversation."
    )
    prompt_ref: str | None = prompt_ref_field(
        "Stored user prompt, name@version or name@latest (instead of `prompt`).")
    history: bool = Field(True, description="Send the flow's `messages` before the prompt.")
    temperature: float = Field(0.2, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=1, le=32768)
    streaming: bool = Field(True, description="Stream tokens to clients as they come.")
    output: str = Field("messages", description="State field that receives the answer.",
                        json_schema_extra={"x-flowloom-state": "write"})
    context: str = Field(
        "", description="State field of retrieved documents (e.g. `documents` from "
                        "retriever.search) given to the model as numbered sources to cite.",
                         json_schema_extra={"x-flowloom-state": "read"})
    list_sources: bool = Field(
        True, description="With `context`: end the answer with the sources it cites.")

    @field_validator("system", "prompt")
    @classmethod
    def _check(cls, value: str) -> str:
        return check_template(value)

    @field_validator("system_prompt", "prompt_ref")
    @classmethod
    def _check_ref(cls, value: str | None, info: ValidationInfo) -> str | None:
        inline = {"system_prompt": "system", "prompt_ref": "prompt"}[str(info.field_name)]
        return check_prompt_ref(value, inline=info.data.get(inline, ""), inline_name=inline,
                                ref_name=str(info.field_name))

    def request_options(self) -> frozenset[str]:
        """The request parameters this node honours when it answers a client
        (`REQUEST_KEY`): sampling and `response_format` always; client tools only when it
        appends to the conversation it reads (`messages`), where tool results come back."""
        return _SAMPLING | _TOOLS if self.output == "messages" and self.history else _SAMPLING


def state_refs(params: Params) -> Iterator[StateRef]:
    yield from template_refs("system", params.system)
    yield from template_refs("prompt", params.prompt)
    yield StateRef("output", params.output, "write",
                   "messages" if params.output == "messages" else "string")
    if params.context:
        yield StateRef("context", params.context)


def build(params: Params, ctx: NodeContext) -> Any:
    models = require_model(ctx, params.model)
    model = models.chat_model(
        params.model,
        temperature=params.temperature,
        max_tokens=params.max_tokens,
        streaming=params.streaming,
    )
    system_text = resolve_text(ctx, "system_prompt", params.system, params.system_prompt)
    prompt_text = resolve_text(ctx, "prompt_ref", params.prompt, params.prompt_ref)
    system = Template(system_text) if system_text else None
    prompt = Template(prompt_text) if prompt_text else None
    use_history = params.history and is_messages_field(ctx, "messages")
    output = params.output
    context = params.context
    as_message = is_messages_field(ctx, output)
    node_id = ctx.node_id

    async def llm_chat(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        request = ((config.get("configurable") or {}).get(REQUEST_KEY) or {}).get(node_id) or {}
        messages: list[BaseMessage] = []
        system_text = system.render(state) if system is not None else ""
        asked = prompt.render(state) if prompt is not None else None
        if context:
            shown = sources_prompt(state.get(context), asked or _last_human(state))
            system_text = f"{system_text}\n\n{shown}".strip()
        if system_text:
            messages.append(SystemMessage(system_text))
        if use_history:
            messages.extend(state.get("messages") or [])
        if asked is not None:
            messages.append(HumanMessage(asked))
        answer = await model.ainvoke(messages, **request)
        if context and params.list_sources and "response_format" not in request:
            listed = sources_list(answer.text, state.get(context))
            if listed:
                answer = answer.model_copy(update={"content": f"{answer.text}\n\n{listed}"})
        return {output: [answer] if as_message else answer.text}

    return llm_chat


def _last_human(state: dict[str, Any]) -> str | None:
    """The text of the conversation's last user message (what sources answer)."""
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            return message.text
    return None


NODE_TYPE = NodeType(
    name="llm.chat",
    version=1,
    params=Params,
    build=build,
    category="models",
    description="Call a chat model with a system prompt, the conversation and a prompt template.",
    state_refs=state_refs,
)
