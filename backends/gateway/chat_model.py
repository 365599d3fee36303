"""A LangChain chat model whose calls go through the gateway under one alias.

Being a `BaseChatModel` with `_astream` is what lets LangGraph's `messages` stream mode
see tokens: LangChain streams whenever a streaming callback handler is attached.

A stream that breaks after part of the answer was streamed ends with a visible note
(`CUT_OFF_NOTE`) as its last token, then the call fails with `PartialAnswerError`, so
the run fails saying why instead of keeping half an answer as if it were whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from flowloom.backends.gateway._messages import (
    chunk_from_stream,
    message_from_response,
    to_openai_messages,
)
from flowloom.backends.gateway.errors import PartialAnswerError
from flowloom.backends.gateway.gateway import Gateway

__all__ = ["CUT_OFF_NOTE", "GatewayChatModel"]

CUT_OFF_NOTE = "\n\n[answer cut off: model {alias!r} stopped mid-answer ({reason})]"
"""The last token of an answer whose stream broke (`str.format`ted with alias, reason)."""

ToolLike = dict[str, Any] | type | Callable[..., Any] | BaseTool


def _tool_choice(choice: str | dict[str, Any] | bool, tools: list[dict[str, Any]]) -> Any:
    """LangChain's tool_choice forms as OpenAI's (`any` -> `required`, a name -> a function)."""
    if isinstance(choice, dict):
        return choice
    if choice is True:
        if len(tools) != 1:
            raise ValueError("tool_choice=True needs exactly one tool")
        choice = tools[0]["function"]["name"]
    if choice is False:
        return "none"
    if choice == "any":
        return "required"
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


class GatewayChatModel(BaseChatModel):
    """Chat model `alias` of a `Gateway`, with tools, streaming and usage metadata.

    >>> model = GatewayChatModel(gateway=gateway, alias="local")  # doctest: +SKIP
    >>> model.invoke("Say hi").content  # doctest: +SKIP
    'Hi!'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    gateway: Gateway = Field(exclude=True, repr=False)
    alias: str
    temperature: float | None = None
    max_tokens: int | None = None
    streaming: bool = False
    """Stream even on `invoke`; when left unset, streams only if a handler wants tokens."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra litellm parameters sent with every call (`top_p`, `seed`, ...)."""

    @property
    def _llm_type(self) -> str:
        return "flowloom-gateway"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"alias": self.alias, "temperature": self.temperature,
                "max_tokens": self.max_tokens}

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        params = dict(self.model_kwargs)
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        if stop:
            params["stop"] = stop
        params.update(kwargs)
        params.pop("stream", None)
        return params

    def _cut_off(self, error: PartialAnswerError, message_id: str | None) -> ChatGenerationChunk:
        """The note that ends a broken answer, as a chunk of the same message."""
        note = CUT_OFF_NOTE.format(alias=self.alias, reason=error.cause)
        return ChatGenerationChunk(message=AIMessageChunk(content=note, id=message_id))

    def _result(self, response: Any) -> ChatResult:
        message = message_from_response(response, self.alias)
        info = {"finish_reason": message.response_metadata.get("finish_reason")}
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info=info)],
            llm_output={"model_name": response.model, "model_alias": self.alias},
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = await self.gateway.acompletion(
            self.alias, to_openai_messages(messages), **self._params(stop, kwargs)
        )
        return self._result(response)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = self.gateway.completion(
            self.alias, to_openai_messages(messages), **self._params(stop, kwargs)
        )
        return self._result(response)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        stream = self.gateway.astream(
            self.alias, to_openai_messages(messages), **self._params(stop, kwargs)
        )
        message_id: str | None = None
        try:
            async for raw in stream:
                message = chunk_from_stream(raw)
                if message is None:
                    continue
                message_id = message.id
                chunk = ChatGenerationChunk(message=message)
                if run_manager is not None:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        except PartialAnswerError as exc:
            note = self._cut_off(exc, message_id)
            if run_manager is not None:
                await run_manager.on_llm_new_token(note.text, chunk=note)
            yield note
            raise

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        stream = self.gateway.stream(
            self.alias, to_openai_messages(messages), **self._params(stop, kwargs)
        )
        message_id: str | None = None
        try:
            for raw in stream:
                message = chunk_from_stream(raw)
                if message is None:
                    continue
                message_id = message.id
                chunk = ChatGenerationChunk(message=message)
                if run_manager is not None:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        except PartialAnswerError as exc:
            note = self._cut_off(exc, message_id)
            if run_manager is not None:
                run_manager.on_llm_new_token(note.text, chunk=note)
            yield note
            raise

    def bind_tools(
        self,
        tools: Sequence[ToolLike],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer `tools` (LangChain tools, pydantic models, functions or OpenAI dicts) to
        the model in OpenAI's format; `tool_choice` takes `auto`, `any`, `none` or a name."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = _tool_choice(tool_choice, formatted)
        return super().bind(tools=formatted, **kwargs)
