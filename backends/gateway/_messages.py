"""LangChain messages <-> OpenAI chat dicts, and litellm responses -> LangChain messages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import (
    InvalidToolCall,
    ToolCall,
    ToolCallChunk,
    invalid_tool_call,
    tool_call,
    tool_call_chunk,
)

__all__ = ["message_from_response", "chunk_from_stream", "to_openai_messages", "usage_metadata"]


def _tool_call_dict(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
    }


def to_openai_message(message: BaseMessage) -> dict[str, Any]:
    """One LangChain message as an OpenAI chat message dict."""
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": message.content}
    if isinstance(message, HumanMessage):
        return {"role": "user", "content": message.content}
    if isinstance(message, AIMessage):
        out: dict[str, Any] = {"role": "assistant", "content": message.content}
        if message.tool_calls:
            out["tool_calls"] = [_tool_call_dict(c) for c in message.tool_calls]
            out["content"] = message.content or None
        return out
    if isinstance(message, ToolMessage):
        content = message.content if isinstance(message.content, str) else json.dumps(
            message.content)
        return {"role": "tool", "content": content, "tool_call_id": message.tool_call_id}
    if isinstance(message, FunctionMessage):
        return {"role": "function", "name": message.name, "content": message.content}
    if isinstance(message, ChatMessage):
        return {"role": message.role, "content": message.content}
    raise TypeError(f"cannot send a {type(message).__name__} to a chat model")


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    return [to_openai_message(m) for m in messages]


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def usage_metadata(usage: Any) -> UsageMetadata | None:
    """OpenAI usage (prompt/completion tokens) as LangChain's `usage_metadata`."""
    if usage is None:
        return None
    prompt = _get(usage, "prompt_tokens") or 0
    completion = _get(usage, "completion_tokens") or 0
    total = _get(usage, "total_tokens") or prompt + completion
    return UsageMetadata(input_tokens=prompt, output_tokens=completion, total_tokens=total)


def _parse_tool_calls(raw: Sequence[Any]) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for item in raw:
        function = _get(item, "function")
        name, arguments = _get(function, "name"), _get(function, "arguments") or "{}"
        try:
            args = json.loads(arguments)
            if not isinstance(args, dict):
                raise ValueError("arguments are not a JSON object")
        except ValueError as exc:
            invalid.append(invalid_tool_call(name=name, args=arguments, id=_get(item, "id"),
                                             error=str(exc)))
            continue
        calls.append(tool_call(name=name, args=args, id=_get(item, "id")))
    return calls, invalid


def message_from_response(response: Any, alias: str) -> AIMessage:
    """The first choice of a litellm `ModelResponse` as an `AIMessage`."""
    choice = response.choices[0]
    message = choice.message
    calls, invalid = _parse_tool_calls(message.tool_calls or ())
    hidden = getattr(response, "_hidden_params", None) or {}
    return AIMessage(
        content=message.content or "",
        tool_calls=calls,
        invalid_tool_calls=invalid,
        id=response.id,
        usage_metadata=usage_metadata(getattr(response, "usage", None)),
        response_metadata={
            "model_name": response.model,
            "model_alias": alias,
            "deployment": hidden.get("model_id"),
            "finish_reason": choice.finish_reason,
            "cost": hidden.get("response_cost"),
        },
    )


def chunk_from_stream(chunk: Any) -> AIMessageChunk | None:
    """One litellm stream chunk as an `AIMessageChunk` (None when it carries nothing)."""
    usage = usage_metadata(getattr(chunk, "usage", None))
    if not chunk.choices:
        if usage is None:
            return None
        return AIMessageChunk(content="", id=chunk.id, usage_metadata=usage,
                              chunk_position="last")
    choice = chunk.choices[0]
    delta = choice.delta
    tool_chunks: list[ToolCallChunk] = [
        tool_call_chunk(
            name=_get(_get(tc, "function"), "name"),
            args=_get(_get(tc, "function"), "arguments"),
            id=_get(tc, "id"),
            index=_get(tc, "index"),
        )
        for tc in delta.tool_calls or ()
    ]
    metadata: dict[str, Any] = {}
    if choice.finish_reason:
        metadata = {"finish_reason": choice.finish_reason, "model_name": chunk.model}
    if not (delta.content or tool_chunks or metadata or usage):
        return None
    return AIMessageChunk(
        content=delta.content or "",
        id=chunk.id,
        tool_call_chunks=tool_chunks,
        usage_metadata=usage,
        response_metadata=metadata,
    )
