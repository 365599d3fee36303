"""A scripted chat model for unit tests of graph logic (never for end-to-end tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

Reply = Callable[[list[BaseMessage]], str]


class ScriptedChatModel(BaseChatModel):
    """Answers with `reply(messages)`; records every call in `calls`."""

    owner: Any  # the ScriptedModels that made it: holds the reply function and the calls

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], stop: Any = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        self.owner.calls.append(list(messages))
        text = self.owner.reply(messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])

    def _stream(self, messages: list[BaseMessage], stop: Any = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        self.owner.calls.append(list(messages))
        for i, word in enumerate(self.owner.reply(messages).split(" ")):
            chunk = ChatGenerationChunk(message=AIMessageChunk((" " if i else "") + word))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


class ScriptedModels:
    """A ModelProvider whose every alias answers through one reply function."""

    def __init__(self, reply: Reply | Sequence[str],
                 aliases: Sequence[str] = ("local", "local-embed")):
        if not callable(reply):
            script = list(reply)
            reply = lambda _messages: script.pop(0)  # noqa: E731
        self.reply = reply
        self._aliases = list(aliases)
        self.calls: list[list[BaseMessage]] = []

    def aliases(self) -> list[str]:
        return list(self._aliases)

    def chat_model(self, alias: str, *, temperature: float | None = None,
                   max_tokens: int | None = None, streaming: bool = True) -> BaseChatModel:
        return ScriptedChatModel(owner=self)

    async def aembed(self, alias: str, texts: Sequence[str], *,
                     input_type: str | None = None) -> list[list[float]]:
        return [[float(len(t)), 1.0] for t in texts]


def last_text(messages: list[BaseMessage]) -> str:
    return str(messages[-1].content)
