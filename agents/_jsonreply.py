"""Chat calls whose reply is constrained to a JSON Schema, on whichever engine serves them.

OpenAI and vLLM take `response_format={"type": "json_schema", ...}`; llama.cpp's server
refuses that with a 400 but takes `{"type": "json_object", "schema": ...}`; some take
neither. `JsonReplies` tries them in that order and keeps the first the engine accepts, so
only the first call of a node pays for a refusal.

>>> replies = JsonReplies(chat)                                           # doctest: +SKIP
>>> reply = await replies.call(messages, ("answer", schema), tags=["nostream"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

__all__ = ["JsonReplies"]

FORMS = ("json_schema", "json_object", "none")


def _form(kind: str, name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    return {"type": "json_object", "schema": schema} if kind == "json_object" else None


def _refused(exc: Exception) -> bool:
    return "response_format" in str(exc) or "BadRequest" in type(exc).__name__ \
        or "BadRequest" in str(exc)


class JsonReplies:
    """One chat model's calls, with the JSON form its engine takes remembered."""

    def __init__(self, chat: Any) -> None:
        self.chat = chat
        self.forms: list[str] = list(FORMS)

    async def call(self, messages: Sequence[BaseMessage],
                   schema: tuple[str, dict[str, Any]] | None = None, *,
                   tags: Sequence[str] = ()) -> AIMessage:
        """The model's reply to `messages`; with `schema` (name, JSON Schema) constrained to
        it where the engine can. Errors other than a refused format are raised."""
        while True:
            kind = self.forms[0]
            form = _form(kind, *schema) if schema else None
            try:
                reply = await self.chat.ainvoke(list(messages), config={"tags": list(tags)},
                                                **({"response_format": form} if form else {}))
                break
            except Exception as exc:
                if form is None or not _refused(exc) or len(self.forms) == 1:
                    raise
                if self.forms[0] == kind:  # this engine does not take that form: the next
                    self.forms.pop(0)
        return AIMessage(content=reply.content, tool_calls=getattr(reply, "tool_calls", []))
