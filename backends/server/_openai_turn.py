"""One turn of a flow for the OpenAI-shaped endpoints (chat completions and responses):
what the thread is sent (new input, or the decision a paused thread waits for), the run
itself (tokens as they come, then the `Outcome`), and how a pause reads as a message.

The outcome's finish reason is read from the answering nodes' model calls (`AnswerWatch`):
`length` when the token limit cut the answer, `tool_calls` when it called client tools,
`interrupted` when the flow paused for a person (`human.approve`, an agent's
`approve_tools`): the pending request is then the answer's text, and the next message on
the thread is the decision (`decision_of`: yes/no words in English or Chinese, or JSON
such as `{"approved": true, "comment": "..."}`), which resumes the run where it paused.

Example:
    >>> decision_of("好的"), decision_of('{"approved": false}'), decision_of("maybe")
    ('approve', {'approved': False}, 'maybe')
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.outputs import LLMResult

from flowloom.agents.approve import Decision, parse_decision
from flowloom.backends.server._openai_messages import usage_of
from flowloom.backends.server._openai_options import REQUEST_KEY
from flowloom.backends.server.catalog import CompiledFlow
from flowloom.flows.runtime import RunResult

__all__ = ["AnswerWatch", "Outcome", "Turn", "decision_of", "output_text", "pending_text",
           "run_turn"]

_YES_ZH = ("是", "是的", "好", "好的", "行", "可以", "同意", "批准", "确认", "对", "没问题",
           "允许", "通过", "不错")
_NO_ZH = ("否", "不", "不是", "不行", "不要", "不可以", "不同意", "拒绝", "取消", "驳回",
          "不批准", "算了")
_MORE_YES = {"okay", "sure", "yeah", "yep", "approve it", "go ahead"}
_MORE_NO = {"nope", "cancel", "don't", "do not"}
_PUNCTUATION = " \t\r\n.,;:!?'\"。，；：！？、…"
_HOW_TO_ANSWER = ('Reply "yes" or "no" (是 / 否), or JSON such as '
                  '{"approved": true, "comment": "..."}.')


def decision_of(text: str) -> Any:
    """The resume value a message means: a JSON object or boolean as it is; yes/no words
    (English or Chinese, at the start of the message) as "approve"/"reject"; anything else
    as its text, which the paused node answers by asking again, saying what it accepts."""
    stripped = text.strip()
    try:
        value = json.loads(stripped)
    except ValueError:
        value = None
    if isinstance(value, dict | bool):
        return value
    for word in sorted(_YES_ZH + _NO_ZH, key=len, reverse=True):  # 不同意 before 同意
        if stripped.startswith(word):
            return "approve" if word in _YES_ZH else "reject"
    lowered = stripped.lower().strip(_PUNCTUATION)
    first = re.split(r"[\s,.;:!?]+", lowered, maxsplit=1)[0] if lowered else ""
    for candidate in (lowered, first):
        if candidate in _MORE_YES or candidate in _MORE_NO:
            return "approve" if candidate in _MORE_YES else "reject"
        decided = parse_decision(candidate)
        if isinstance(decided, Decision):
            return "approve" if decided.approved else "reject"
    return text


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           default=str)


def pending_text(interrupts: Iterable[Any]) -> str:
    """What a paused flow waits for, as the assistant's message: each request's message,
    the values shown with it, the error of a decision it could not read, and how to
    answer; a request without a message as JSON."""
    parts = []
    for value in interrupts:
        if not (isinstance(value, dict) and isinstance(value.get("message"), str)):
            parts.append(_shown(value))
            continue
        lines = [value["message"]]
        shown = value.get("values")
        if isinstance(shown, dict) and shown:
            lines += [f"{name}: {_shown(item)}" for name, item in shown.items()]
        if value.get("error"):
            lines.append(f"(not understood: {value['error']})")
        if "accepts" in value or value.get("kind") in ("approval", "tool_approval"):
            lines.append(_HOW_TO_ANSWER)
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def output_text(output: Any) -> str:
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, default=str)


class AnswerWatch(BaseCallbackHandler):
    """Keeps the finish reason and tool calls of the last model call made by an
    answering node (`langgraph_node` in the call's metadata is one of `nodes`)."""

    run_inline = True  # cheap bookkeeping: no hop to a worker thread

    def __init__(self, nodes: Iterable[str]) -> None:
        self.nodes = frozenset(nodes)
        self._calls: dict[uuid.UUID, str] = {}
        self.finish_reason: str | None = None
        self.tool_calls: list[dict[str, Any]] = []

    def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, *,
                            run_id: uuid.UUID, metadata: dict[str, Any] | None = None,
                            **kwargs: Any) -> None:
        node = (metadata or {}).get("langgraph_node")
        if node in self.nodes:
            self._calls[run_id] = str(node)

    def on_llm_end(self, response: LLMResult, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        if self._calls.pop(run_id, None) is None or not response.generations \
                or not response.generations[0]:
            return
        generation = response.generations[0][0]
        message = getattr(generation, "message", None)
        metadata = getattr(message, "response_metadata", None) or {}
        self.finish_reason = (metadata.get("finish_reason")
                              or (generation.generation_info or {}).get("finish_reason"))
        self.tool_calls = [
            {"id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": call["name"],
                          "arguments": json.dumps(call.get("args") or {}, ensure_ascii=False)}}
            for call in (message.tool_calls if isinstance(message, AIMessage) else ())]


@dataclass(frozen=True)
class Turn:
    """What a turn sends the flow: new input (`value`), or the decision a paused thread
    waits for (`resume`); `overrides` for its answering nodes (`REQUEST_KEY`) and the
    checkpoint to go on from (None: the thread's latest)."""

    thread_id: str
    value: str | dict[str, Any] | None = None
    resume: Any = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    answerers: frozenset[str] = frozenset()
    checkpoint_id: str | None = None


@dataclass
class Outcome:
    """How a turn ended: its answer text (a paused flow's: the pending request), the
    finish reason (`stop`, `length`, `tool_calls`, `content_filter`, `interrupted`), tool
    calls in OpenAI's shape, what it paused for, and token usage."""

    text: str
    finish_reason: str
    tool_calls: list[dict[str, Any]]
    interrupts: list[Any]
    prompt_tokens: int
    completion_tokens: int
    result: RunResult | None

    @property
    def paused(self) -> bool:
        return bool(self.interrupts)


def _with(config: dict[str, Any], turn: Turn, watch: AnswerWatch) -> dict[str, Any]:
    callbacks = config.get("callbacks")
    if callbacks is None or isinstance(callbacks, list):
        callbacks = [*(callbacks or []), watch]
    else:  # a callback manager
        callbacks = callbacks.copy()
        callbacks.add_handler(watch, inherit=True)
    configurable = {**config.get("configurable", {}), REQUEST_KEY: turn.overrides}
    if turn.checkpoint_id is not None:
        configurable["checkpoint_id"] = turn.checkpoint_id
    return {**config, "callbacks": callbacks, "configurable": configurable}


async def run_turn(compiled: CompiledFlow, turn: Turn, config: dict[str, Any], *,
                   tokens: bool) -> AsyncIterator[str | Outcome]:
    """Run `turn`: its answer's tokens as they come (with `tokens`), then the `Outcome`.
    `config` is more LangGraph config (the observers' callbacks)."""
    watch = AnswerWatch(turn.answerers)
    prompt = completion = 0
    result: RunResult | None = None
    async for event in compiled.runner.astream(
            turn.value, thread_id=turn.thread_id, tokens=tokens,
            config=_with(config, turn, watch), resume=turn.resume):
        if event.kind == "token" and event.text:
            yield event.text
        elif event.kind == "update":
            used = usage_of(event.data)
            prompt, completion = prompt + used[0], completion + used[1]
        elif event.kind == "done":
            result = event.result
    interrupts = list(result.interrupts) if result is not None else []
    if interrupts:
        yield Outcome(pending_text(interrupts), "interrupted", [], interrupts, prompt,
                      completion, result)
        return
    finish = "stop"
    if watch.tool_calls:
        finish = "tool_calls"
    elif watch.finish_reason in ("length", "content_filter"):
        finish = watch.finish_reason
    yield Outcome(output_text(result.output if result else None), finish,
                  list(watch.tool_calls), [], prompt, completion, result)
