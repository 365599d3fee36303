"""OpenAI chat requests as flow input: the request and error models, message conversion,
validation errors as one message with a field path, and token usage of a run's messages.

Kept apart from the router so the web layer only maps these to HTTP.

Example:
    >>> request = ChatCompletionRequest.model_validate(
    ...     {"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    >>> last_user_text(request.messages)
    'hi'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema, field_validator

from flowloom.flows.format import Flow

__all__ = [
    "ROLES",
    "ChatCompletionRequest",
    "ChatMessage",
    "ErrorBody",
    "ErrorDetail",
    "OpenAIRequestError",
    "describe_errors",
    "flow_input",
    "last_user_text",
    "to_langchain",
    "usage_of",
]

Role = Literal["system", "developer", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "developer", "user", "assistant")

_CONTENT_SCHEMA = {
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "object", "properties": {
            "type": {"const": "text"}, "text": {"type": "string"}}}},
        {"type": "null"},
    ],
    "description": "Text, or a list of text parts (joined).",
}


class OpenAIRequestError(Exception):
    """A request the server cannot serve, with the OpenAI error fields to report it."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str = "invalid_request",
        type: str = "invalid_request_error",
    ) -> None:
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type
        super().__init__(message)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """OpenAI's error envelope: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorDetail


class ChatMessage(BaseModel):
    """One chat message; fields a flow cannot use (tool calls, audio, ...) are ignored."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: Annotated[str | None, WithJsonSchema(_CONTENT_SCHEMA)] = None
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ValueError("content must be a string or a list of text parts")
        texts = []
        for i, part in enumerate(value):
            if not (isinstance(part, dict) and part.get("type") == "text"
                    and isinstance(part.get("text"), str)):
                raise ValueError(
                    f"content part {i}: only text parts ({{\"type\": \"text\", \"text\": ...}}) "
                    "are supported"
                )
            texts.append(part["text"])
        return "".join(texts)

    @property
    def text(self) -> str:
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """The parts of an OpenAI chat completion request a flow uses; other parameters
    (temperature, max_tokens, tools, ...) are accepted and ignored: they are the flow's."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(..., min_length=1, description="A flow id (see GET /v1/models).")
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, description="Thread id (the X-Flowloom-Thread header wins).")
    n: int | None = Field(None, description="Only 1: a flow gives one answer per run.")

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


def _path(loc: Sequence[Any]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """FastAPI/pydantic validation errors as one message and the first field's path
    (`messages[0].role`)."""
    lines: list[str] = []
    param: str | None = None
    for error in errors:
        loc = list(error.get("loc", ()))
        if loc and loc[0] == "body":
            loc = loc[1:]
        kind = str(error.get("type", ""))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", message)
            where = f" at character {loc[0]}" if loc else ""
            lines.append(f"the request body is not valid JSON: {reason}{where}")
            continue
        if not loc:
            lines.append("the request body must be a JSON object with `model` and `messages`")
            continue
        path = _path(loc)
        param = param or path
        lines.append(f"{path}: {message}")
    return "; ".join(lines) or "invalid request", param


def to_langchain(messages: Iterable[ChatMessage]) -> list[BaseMessage]:
    """Request messages as LangChain messages (`developer` is a system message)."""
    kinds: dict[str, type[BaseMessage]] = {
        "system": SystemMessage, "developer": SystemMessage,
        "user": HumanMessage, "assistant": AIMessage,
    }
    out: list[BaseMessage] = []
    for message in messages:
        extra = {"name": message.name} if message.name else {}
        out.append(kinds[message.role](content=message.text, **extra))
    return out


def last_user_text(messages: Sequence[ChatMessage]) -> str:
    return next(m.text for m in reversed(messages) if m.role == "user")


def flow_input(
    flow: Flow, messages: Sequence[ChatMessage], *, whole: bool
) -> str | dict[str, Any]:
    """The runner's input: for a messages input field, the conversation (`whole`) or the
    last user message; for any other input field, the last user message's text."""
    name = flow.input_field
    if name is None:
        raise OpenAIRequestError(
            f"flow '{flow.id}' has no input field (no `io.input` and no `messages`), so it "
            "cannot answer chat messages",
            param="model", code="flow_not_chat",
        )
    if flow.state[name].type != "messages":
        return last_user_text(messages)
    chosen = list(messages) if whole else [m for m in messages if m.role == "user"][-1:]
    return {name: to_langchain(chosen)}


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
