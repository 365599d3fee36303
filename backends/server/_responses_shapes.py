"""The Responses API's shapes: its request (input items as chat messages, its model
parameters in the chat names the flow's answering call takes), the response object, and
the streamed events the openai client expects, in order.

Example:
    >>> request = ResponsesRequest.model_validate({"model": "chat", "input": "Hi",
    ...                                            "max_output_tokens": 50})
    >>> [m.text for m in request.messages()], request.answer_options().values
    (['Hi'], {'max_tokens': 50})
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
)

from flowloom.backends.server._openai_errors import OpenAIRequestError, describe_errors
from flowloom.backends.server._openai_messages import (
    IGNORED_PARAMS,
    NAME,
    ChatMessage,
    FunctionSpec,
)
from flowloom.backends.server._openai_options import AnswerOptions
from flowloom.backends.server._openai_turn import Outcome

__all__ = ["ResponseDraft", "ResponsesRequest", "new_id"]

_TEXT_PARTS = ("input_text", "output_text", "text")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[dict[str, Any]]


class _FunctionCall(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function_call"]
    call_id: str = Field(..., min_length=1)
    name: str = Field(..., pattern=NAME)
    arguments: str


class _FunctionOutput(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function_call_output"]
    call_id: str = Field(..., min_length=1)
    output: str | list[dict[str, Any]]


_ITEMS: dict[str, type[BaseModel]] = {"message": _Message, "function_call": _FunctionCall,
                                      "function_call_output": _FunctionOutput}


def _validated(model: type[BaseModel], value: Any, where: str) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        message, param = describe_errors(exc.errors())
        inner = f"{where}.{param}" if param else where
        raise OpenAIRequestError(f"{where}: {message}", param=inner) from None


def _text(content: str | list[dict[str, Any]], where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if part.get("type") not in _TEXT_PARTS or not isinstance(part.get("text"), str):
            raise OpenAIRequestError(
                f"{where}.content[{j}]: only text parts (input_text, output_text) are "
                f"supported, not {part.get('type')!r}", param=f"{where}.content[{j}]")
        texts.append(part["text"])
    return "".join(texts)


class _Format(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(None, pattern=NAME)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None

    def as_litellm(self) -> dict[str, Any] | None:
        if self.type == "text":
            return None
        if self.type == "json_object":
            return {"type": "json_object"}
        if self.name is None or self.schema_ is None:
            raise OpenAIRequestError("text.format: json_schema needs `name` and `schema`",
                                     param="text.format")
        spec = {"name": self.name, "description": self.description, "schema": self.schema_,
                "strict": self.strict}
        return {"type": "json_schema",
                "json_schema": {k: v for k, v in spec.items() if v is not None}}


class _TextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: _Format | None = None
    verbosity: Literal["medium"] | None = Field(
        None, description="Only the default: flows do not change their verbosity.")


class ResponsesRequest(BaseModel):
    """A Responses API request: `model` is a flow id; `input` a text or message items
    (with function calls and their outputs); `previous_response_id` continues a stored
    response's conversation (its thread). Model parameters go to the flow's answering
    call, or are refused (`answer_options`)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(..., min_length=1, description="A flow id (see GET /v1/models).")
    input: str | list[dict[str, Any]] = Field(..., description="A text or input items.")
    instructions: str | None = None
    previous_response_id: str | None = None
    store: StrictBool = True
    stream: StrictBool = False
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    text: _TextConfig | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: StrictBool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    stream_options: dict[str, Any] | None = None

    @field_validator("input")
    @classmethod
    def _some(cls, value: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        if isinstance(value, list) and not value:
            raise ValueError("needs at least one item")
        return value

    def items(self) -> Iterator[tuple[str, BaseModel]]:
        """The input items, validated, with where each is (`input[2]`)."""
        if isinstance(self.input, str):
            yield "input", _Message(role="user", content=self.input)
            return
        for i, raw in enumerate(self.input):
            where = f"input[{i}]"
            kind = raw.get("type", "message")
            model = _ITEMS.get(kind)
            if model is None:
                raise OpenAIRequestError(
                    f"{where}.type: {kind!r} items are not supported; supported: "
                    f"{', '.join(_ITEMS)}", param=f"{where}.type")
            yield where, _validated(model, raw, where)

    def messages(self) -> list[ChatMessage]:
        """The input as chat messages (`instructions` first, as a system message): function
        calls of one turn become one assistant message's tool calls, their outputs tool
        messages."""
        out: list[ChatMessage] = []
        if self.instructions:
            out.append(ChatMessage(role="system", content=self.instructions))
        for where, item in self.items():
            if isinstance(item, _Message):
                out.append(ChatMessage(role=item.role, content=_text(item.content, where)))
            elif isinstance(item, _FunctionCall):
                call = _validated(ChatMessage, {"role": "assistant", "tool_calls": [{
                    "id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments}}]}, where)
                last = out[-1] if out else None
                if last is not None and last.role == "assistant" and last.tool_calls \
                        and not last.text:
                    last.tool_calls.extend(call.tool_calls or ())
                else:
                    out.append(call)
            elif isinstance(item, _FunctionOutput):
                out.append(ChatMessage(role="tool", tool_call_id=item.call_id,
                                       content=_text(item.output, where)))
        return out

    def tool_param(self) -> str | None:
        """Where the input carries function calls or their outputs (`input[1]`)."""
        if isinstance(self.input, list):
            for i, raw in enumerate(self.input):
                if raw.get("type") in ("function_call", "function_call_output"):
                    return f"input[{i}]"
        return None

    def _tools(self) -> list[dict[str, Any]]:
        tools = []
        for i, tool in enumerate(self.tools or ()):
            if tool.get("type") != "function":
                raise OpenAIRequestError(
                    f"tools[{i}].type: only function tools (run by the client) are "
                    f"supported, not {tool.get('type')!r}", param=f"tools[{i}].type",
                    code="unsupported_parameter")
            spec = {k: v for k, v in tool.items() if k != "type"}
            function = _validated(FunctionSpec, spec, f"tools[{i}]")
            tools.append({"type": "function", "function": function.model_dump(exclude_none=True)})
        return tools

    def _tool_choice(self, names: list[str]) -> Any:
        choice = self.tool_choice
        if choice is None or choice in ("none", "auto", "required"):
            return choice
        if isinstance(choice, dict) and choice.get("type") == "function" \
                and isinstance(choice.get("name"), str):
            if choice["name"] not in names:
                raise OpenAIRequestError(
                    f"tool_choice names {choice['name']!r}, which is not among the tools: "
                    f"{', '.join(names)}", param="tool_choice")
            return {"type": "function", "function": {"name": choice["name"]}}
        raise OpenAIRequestError('tool_choice: "none", "auto", "required" or {"type": '
                                 '"function", "name": ...}', param="tool_choice")

    def answer_options(self) -> AnswerOptions:
        """The model parameters this request sets, by their chat (litellm) names; refuses
        (`OpenAIRequestError`) a field flowloom cannot act on."""
        for name, value in (self.model_extra or {}).items():
            if name not in IGNORED_PARAMS and value not in (None, False, [], {}):
                raise OpenAIRequestError(
                    f"{name}: not supported by flowloom's flows; supported: input, "
                    "instructions, previous_response_id, store, stream, max_output_tokens, "
                    "temperature, top_p, text.format, tools (functions), tool_choice, "
                    "parallel_tool_calls, metadata, user, truncation",
                    param=name, code="unsupported_parameter")
        values: dict[str, Any] = {}
        params = {"max_tokens": "max_output_tokens", "response_format": "text.format"}
        if self.max_output_tokens is not None:
            values["max_tokens"] = self.max_output_tokens
        for name in ("temperature", "top_p"):
            if (value := getattr(self, name)) is not None:
                values[name] = value
        if self.text is not None and self.text.format is not None \
                and (fmt := self.text.format.as_litellm()) is not None:
            values["response_format"] = fmt
        tools = self._tools()
        if tools:
            values["tools"] = tools
            choice = self._tool_choice([t["function"]["name"] for t in tools])
            if choice is not None:
                values["tool_choice"] = choice
            if self.parallel_tool_calls is not None:
                values["parallel_tool_calls"] = self.parallel_tool_calls
        elif self.tool_choice not in (None, "auto", "none"):
            raise OpenAIRequestError("tool_choice needs `tools`", param="tool_choice")
        return AnswerOptions(values, params)

    def echo(self) -> dict[str, Any]:
        """The request's settings as a response repeats them."""
        fmt = (self.text.format.model_dump(by_alias=True, exclude_none=True)
               if self.text is not None and self.text.format is not None else {"type": "text"})
        return {
            "instructions": self.instructions, "max_output_tokens": self.max_output_tokens,
            "temperature": self.temperature, "top_p": self.top_p,
            "text": {"format": fmt}, "tools": list(self.tools or []),
            "tool_choice": self.tool_choice if self.tool_choice is not None else "auto",
            "parallel_tool_calls": True if self.parallel_tool_calls is None
            else self.parallel_tool_calls,
            "metadata": dict(self.metadata or {}), "previous_response_id":
            self.previous_response_id, "store": self.store, "user": self.user,
            "truncation": self.truncation or "disabled", "background": False,
            "reasoning": None, "service_tier": "default",
        }


def _usage(outcome: Outcome | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    prompt, completion = outcome.prompt_tokens, outcome.completion_tokens
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter",
               "interrupted": "interrupted"}


@dataclass
class ResponseDraft:
    """One response as it is made: its id, the request's echo, and (streamed) the events
    that build it, numbered; `finish` makes the final object."""

    request: ResponsesRequest
    flow_id: str
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    message_id: str = field(default_factory=lambda: new_id("msg"))
    sequence: int = 0
    text: str = ""
    opened: bool = False  # the message item was announced (streaming)

    def object(self, status: str, output: list[dict[str, Any]] | None = None, *,
               outcome: Outcome | None = None, error: dict[str, Any] | None = None,
               extension: dict[str, Any] | None = None) -> dict[str, Any]:
        reason = _INCOMPLETE.get(outcome.finish_reason) if outcome is not None else None
        body = {
            "id": self.id, "object": "response", "created_at": self.created_at,
            "status": status, "model": self.flow_id, "output": output or [],
            "error": error, "incomplete_details": {"reason": reason} if reason else None,
            "usage": _usage(outcome), **self.request.echo(),
        }
        if status in ("completed", "incomplete", "failed"):
            body["completed_at"] = int(time.time())
        if extension:
            body["flowloom"] = extension
        return body

    def output(self, outcome: Outcome, text: str) -> list[dict[str, Any]]:
        """The output items: the message (unless the answer is tool calls alone), then one
        function call item per tool call."""
        status = "incomplete" if outcome.finish_reason in ("length", "content_filter") \
            else "completed"
        items: list[dict[str, Any]] = []
        if text or not outcome.tool_calls:
            items.append(self.message(text, status))
        for call in outcome.tool_calls:
            items.append({"type": "function_call", "id": f"fc_{call['id']}",
                          "call_id": call["id"], "name": call["function"]["name"],
                          "arguments": call["function"]["arguments"], "status": "completed"})
        return items

    def message(self, text: str, status: str) -> dict[str, Any]:
        content = [] if status == "in_progress" and not text else [self.part(text)]
        return {"type": "message", "id": self.message_id, "status": status,
                "role": "assistant", "content": content}

    @staticmethod
    def part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    # -- streamed events ----------------------------------------------------------------

    def event(self, kind: str, **data: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return event

    def started(self) -> list[dict[str, Any]]:
        body = self.object("in_progress")
        return [self.event("response.created", response=body),
                self.event("response.in_progress", response=body)]

    def delta(self, text: str) -> list[dict[str, Any]]:
        events = [] if self.opened else self._open()
        self.text += text
        return [*events, self.event("response.output_text.delta", item_id=self.message_id,
                                    output_index=0, content_index=0, delta=text, logprobs=[])]

    def _open(self) -> list[dict[str, Any]]:
        self.opened = True
        return [self.event("response.output_item.added", output_index=0,
                           item=self.message("", "in_progress")),
                self.event("response.content_part.added", item_id=self.message_id,
                           output_index=0, content_index=0, part=self.part(""))]

    def finished(self, outcome: Outcome, extension: dict[str, Any] | None
                 ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The closing events (the message's, the function calls', then
        `response.completed` or `response.incomplete`) and the final object."""
        events: list[dict[str, Any]] = []
        output = self.output(outcome, self.text)
        for index, item in enumerate(output):
            if item["type"] == "message":
                if not self.opened:
                    events += self._open()
                text = item["content"][0]["text"] if item["content"] else ""
                events += [
                    self.event("response.output_text.done", item_id=self.message_id,
                               output_index=index, content_index=0, text=text, logprobs=[]),
                    self.event("response.content_part.done", item_id=self.message_id,
                               output_index=index, content_index=0, part=self.part(text)),
                    self.event("response.output_item.done", output_index=index, item=item)]
                continue
            events += [
                self.event("response.output_item.added", output_index=index,
                           item={**item, "arguments": "", "status": "in_progress"}),
                self.event("response.function_call_arguments.delta", item_id=item["id"],
                           output_index=index, delta=item["arguments"]),
                self.event("response.function_call_arguments.done", item_id=item["id"],
                           output_index=index, name=item["name"],
                           arguments=item["arguments"]),
                self.event("response.output_item.done", output_index=index, item=item)]
        status = self.status(outcome)
        final = self.object(status, output, outcome=outcome, extension=extension)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [*events, self.event(kind, response=final)], final

    def failed(self, message: str) -> dict[str, Any]:
        body = self.object("failed", error={"code": "server_error", "message": message})
        return self.event("response.failed", response=body)

    @staticmethod
    def status(outcome: Outcome) -> str:
        return "incomplete" if outcome.finish_reason in _INCOMPLETE else "completed"
