"""OpenAI chat requests as flow input: the request model (with the model parameters it
may set on the flow's answering call), message conversion (tool calls and their results
included), what a thread that holds the history is sent, and token usage of a run.

Kept apart from the router so the web layer only maps these to HTTP.

Example:
    >>> request = ChatCompletionRequest.model_validate(
    ...     {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9})
    >>> last_user_text(request.messages), request.answer_options().values
    ('hi', {'max_tokens': 9})
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from flowloom.backends.server._openai_errors import (
    ErrorBody,
    ErrorDetail,
    OpenAIRequestError,
    describe_errors,
)
from flowloom.backends.server._openai_options import AnswerOptions
from flowloom.flows.format import Flow

__all__ = [
    "IGNORED_PARAMS",
    "ROLES",
    "ChatCompletionRequest",
    "ChatMessage",
    "ErrorBody",
    "ErrorDetail",
    "FunctionSpec",
    "OpenAIRequestError",
    "ResponseFormat",
    "ToolSpec",
    "describe_errors",
    "flow_input",
    "last_user_text",
    "named_tool_choice",
    "new_turn",
    "to_langchain",
    "tool_call_param",
    "usage_of",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "developer", "user", "assistant", "tool")
NAME = r"^[A-Za-z0-9_-]{1,64}$"
IGNORED_PARAMS = frozenset({"metadata", "store", "service_tier", "safety_identifier",
                            "prompt_cache_key", "prompt_cache_retention"})
"""Request fields accepted and not acted on: they ask nothing of the answer."""

_CONTENT_SCHEMA = {
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "object", "properties": {
            "type": {"const": "text"}, "text": {"type": "string"}}}},
        {"type": "null"},
    ],
    "description": "Text, or a list of text parts (joined).",
}


def _text_parts(value: Any, kinds: tuple[str, ...] = ("text",)) -> str | None:
    """A message's content as text: a string, or text parts joined."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ValueError("content must be a string or a list of text parts")
    texts = []
    for i, part in enumerate(value):
        if not (isinstance(part, dict) and part.get("type") in kinds
                and isinstance(part.get("text"), str)):
            raise ValueError(
                f"content part {i}: only text parts ({{\"type\": \"{kinds[0]}\", "
                "\"text\": ...}) are supported"
            )
        texts.append(part["text"])
    return "".join(texts)


class FunctionCall(BaseModel):
    name: str = Field(..., pattern=NAME)
    arguments: str = Field(..., description="The arguments, a JSON object as text.")

    @field_validator("arguments")
    @classmethod
    def _object(cls, value: str) -> str:
        try:
            parsed = json.loads(value or "{}")
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ValueError("must be a JSON object")
        return value

    @property
    def args(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.arguments or "{}")
        return parsed


class ToolCallIn(BaseModel):
    """A tool call of an earlier assistant message, as the client sends it back."""

    id: str = Field(..., min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    """One chat message: text (or text parts), an assistant's tool calls, a tool's result.
    Other fields (audio, refusal, ...) are ignored."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: Annotated[str | None, WithJsonSchema(_CONTENT_SCHEMA)] = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = Field(None, description="role assistant only")
    tool_call_id: str | None = Field(None, description="role tool: the call it answers")

    @field_validator("content", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str | None:
        return _text_parts(value)

    @model_validator(mode="after")
    def _tool_fields(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs `tool_call_id` (the call it answers)")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry `tool_calls`")
        return self

    @property
    def text(self) -> str:
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: StrictBool = False


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(BaseModel):
    """A client tool (a function the client runs): OpenAI's chat completions shape."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    function: FunctionSpec


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(..., pattern=NAME)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("`json_schema` goes with type json_schema, and only with it")
        return self

    def as_litellm(self) -> dict[str, Any] | None:
        """What the model call gets (None for text: every answer is text)."""
        if self.type == "text":
            return None
        return self.model_dump(by_alias=True, exclude_none=True)


def named_tool_choice(value: Any) -> str | None:
    """The function a tool_choice names (`{"type": "function", "function": {"name"}}`)."""
    if isinstance(value, dict):
        function = value.get("function")
        name = function.get("name") if isinstance(function, dict) else value.get("name")
        return name if isinstance(name, str) else None
    return None


class ChatCompletionRequest(BaseModel):
    """An OpenAI chat completion request. The model parameters it sets (`max_tokens`,
    `stop`, `temperature`, `response_format`, `tools`, ...) go to the flow's answering
    model call, or are refused (`answer_options`, `_openai_options`)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(..., min_length=1, description="A flow id (see GET /v1/models).")
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, description="Thread id (the X-Flowloom-Thread header wins).")
    n: int | None = Field(None, description="Only 1: a flow gives one answer per run.")
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: list[str] | None = Field(None, description="Up to 4 sequences (or one string).")
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    response_format: ResponseFormat | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: Annotated[Any, WithJsonSchema({
        "anyOf": [{"enum": ["none", "auto", "required"]},
                  {"type": "object", "properties": {"type": {"const": "function"},
                                                    "function": {"type": "object"}}}]})] = None
    parallel_tool_calls: StrictBool | None = None

    @field_validator("messages")
    @classmethod
    def _has_user(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if not any(m.role == "user" for m in messages):
            raise ValueError("needs at least one message with role 'user'")
        return messages

    @field_validator("n")
    @classmethod
    def _one(cls, n: int | None) -> int | None:
        if n is not None and n != 1:
            raise ValueError(f"only n=1 is supported (a flow gives one answer per run), not {n}")
        return n

    @field_validator("stop", mode="before")
    @classmethod
    def _stops(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and len(value) > 4:
            raise ValueError(f"at most 4 stop sequences, not {len(value)}")
        return value

    @field_validator("tool_choice")
    @classmethod
    def _choice(cls, value: Any) -> Any:
        if value is None or value in ("none", "auto", "required"):
            return value
        if isinstance(value, dict) and value.get("type") == "function" \
                and named_tool_choice(value) is not None:
            return {"type": "function", "function": {"name": named_tool_choice(value)}}
        raise ValueError('"none", "auto", "required" or {"type": "function", "function": '
                         '{"name": ...}}')

    def answer_options(self) -> AnswerOptions:
        """The model parameters this request sets, by their litellm names; refuses
        (`OpenAIRequestError`) a field flowloom cannot act on."""
        for name, value in (self.model_extra or {}).items():
            if name not in IGNORED_PARAMS and value not in (None, False, [], {}, ["text"]):
                raise OpenAIRequestError(
                    f"{name}: not supported by flowloom's flows; supported: messages, "
                    "max_tokens, max_completion_tokens, stop, temperature, top_p, seed, "
                    "presence_penalty, frequency_penalty, response_format, tools, "
                    "tool_choice, parallel_tool_calls, stream, stream_options, user, n=1",
                    param=name, code="unsupported_parameter")
        values: dict[str, Any] = {}
        params: dict[str, str] = {}
        if self.max_completion_tokens is not None:
            values["max_tokens"] = self.max_completion_tokens
            params["max_tokens"] = "max_completion_tokens"
        elif self.max_tokens is not None:
            values["max_tokens"] = self.max_tokens
        for name in ("stop", "temperature", "top_p", "seed", "presence_penalty",
                     "frequency_penalty"):
            if (value := getattr(self, name)) not in (None, []):
                values[name] = value
        if self.response_format is not None \
                and (fmt := self.response_format.as_litellm()) is not None:
            values["response_format"] = fmt
        if self.tools:
            names = [t.function.name for t in self.tools]
            values["tools"] = [t.model_dump(exclude_none=True) for t in self.tools]
            if self.tool_choice is not None:
                chosen = named_tool_choice(self.tool_choice)
                if chosen is not None and chosen not in names:
                    raise OpenAIRequestError(
                        f"tool_choice names {chosen!r}, which is not among the tools: "
                        f"{', '.join(names)}", param="tool_choice")
                values["tool_choice"] = self.tool_choice
            if self.parallel_tool_calls is not None:
                values["parallel_tool_calls"] = self.parallel_tool_calls
        else:
            for name in ("tool_choice", "parallel_tool_calls"):
                if getattr(self, name) is not None:
                    raise OpenAIRequestError(f"{name} is only allowed with `tools`",
                                             param=name)
        return AnswerOptions(values, params)


def tool_call_param(messages: Sequence[ChatMessage], prefix: str = "messages") -> str | None:
    """Where the conversation carries tool calls or their results (`messages[2]`), if it
    does: only a flow that takes client tools can continue it."""
    for i, message in enumerate(messages):
        if message.role == "tool" or message.tool_calls:
            return f"{prefix}[{i}]"
    return None


def to_langchain(messages: Iterable[ChatMessage]) -> list[BaseMessage]:
    """Request messages as LangChain messages (`developer` is a system message)."""
    out: list[BaseMessage] = []
    for message in messages:
        extra: dict[str, Any] = {"name": message.name} if message.name else {}
        if message.role in ("system", "developer"):
            out.append(SystemMessage(content=message.text, **extra))
        elif message.role == "user":
            out.append(HumanMessage(content=message.text, **extra))
        elif message.role == "tool":
            out.append(ToolMessage(content=message.text, tool_call_id=message.tool_call_id or "",
                                   **extra))
        else:
            calls = [{"name": c.function.name, "args": c.function.args, "id": c.id,
                      "type": "tool_call"} for c in message.tool_calls or ()]
            out.append(AIMessage(content=message.text, tool_calls=calls, **extra))
    return out


def last_user_text(messages: Sequence[ChatMessage]) -> str:
    return next(m.text for m in reversed(messages) if m.role == "user")


def new_turn(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """What a thread that holds the history is sent: after the request's last assistant
    message, the tool results and the last user message (the last user message alone
    when the request has no assistant message)."""
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    tail = messages[last + 1:]
    chosen = [m for m in tail if m.role == "tool"] + [m for m in tail if m.role == "user"][-1:]
    return chosen or [m for m in messages if m.role == "user"][-1:]


def flow_input(
    flow: Flow, messages: Sequence[ChatMessage], *, whole: bool
) -> str | dict[str, Any]:
    """The runner's input: for a messages input field, the conversation (`whole`) or the
    new turn (`new_turn`); for any other input field, the last user message's text."""
    name = flow.input_field
    if name is None:
        raise OpenAIRequestError(
            f"flow '{flow.id}' has no input field (no `io.input` and no `messages`), so it "
            "cannot answer chat messages",
            param="model", code="flow_not_chat",
        )
    if flow.state[name].type != "messages":
        return last_user_text(messages)
    return {name: to_langchain(list(messages) if whole else new_turn(messages))}


def usage_of(update: Any) -> tuple[int, int]:
    """Prompt and completion tokens of the AI messages in one node update."""
    prompt = completion = 0
    values = update.values() if isinstance(update, Mapping) else ()
    for value in values:
        for item in value if isinstance(value, list) else [value]:
            usage = item.usage_metadata if isinstance(item, AIMessage) else None
            if usage:
                prompt += usage.get("input_tokens", 0)
                completion += usage.get("output_tokens", 0)
    return prompt, completion
