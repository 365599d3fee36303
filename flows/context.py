"""What node builders may use at build time, without importing any backend.

`flows` sits at the bottom of the import graph: the model gateway, stores and the API
server live in `backends/` and are handed in through a `BuildContext`, so the spine can
be compiled and tested with a scripted model and no network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from flowloom.flows.format import Flow
    from flowloom.flows.prompts import PromptStore

__all__ = ["BuildContext", "EmbedInput", "FlowSource", "ModelProvider"]

EmbedInput = Literal["query", "passage"]
"""What a text to embed is: a search query or a document passage. Models trained with
prefixes for each (e5: "query: " / "passage: ") use it; the others ignore it."""


@runtime_checkable
class FlowSource(Protocol):
    """Flows by id, for node types that compose other flows (`agent.supervisor`)."""

    def flow_ids(self) -> list[str]:
        ...

    def get_flow(self, flow_id: str) -> Flow | None:
        ...


@runtime_checkable
class ModelProvider(Protocol):
    """Chat and embedding models by alias (`local`, `local-embed`, `gpt-4o`, ...)."""

    def aliases(self) -> list[str]:
        """Model aliases a flow may name (chat and embedding)."""
        ...

    def chat_model(
        self,
        alias: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        streaming: bool = True,
    ) -> BaseChatModel:
        """A LangChain chat model whose calls go through the gateway under `alias`.

        Being a LangChain model is what lets LangGraph's `messages` stream mode see
        tokens as they are produced.
        """
        ...

    async def aembed(self, alias: str, texts: Sequence[str], *,
                     input_type: EmbedInput | None = None) -> list[list[float]]:
        """Embed `texts` with the embedding model `alias`, one vector per text;
        `input_type` says whether they are queries or passages (None: passages)."""
        ...


@dataclass(frozen=True)
class BuildContext:
    """Everything `build(params, ctx)` may reach: models, prompts, the data dir and other
    flows by id."""

    models: ModelProvider | None = None
    prompts: PromptStore | None = None
    data_dir: Path | None = None
    flows: FlowSource | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def require_models(self) -> ModelProvider:
        from flowloom.flows.errors import FlowBuildError

        if self.models is None:
            raise FlowBuildError("this flow calls a model but no model gateway was configured")
        return self.models
