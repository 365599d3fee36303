"""The gateway as the flow engine's `ModelProvider`, and finding the models file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from flowloom.backends.gateway.chat_model import GatewayChatModel
from flowloom.backends.gateway.config import (
    GatewayConfig,
    load_gateway_config,
    parse_gateway_config,
)
from flowloom.backends.gateway.errors import UnknownModelError
from flowloom.backends.gateway.gateway import Gateway
from flowloom.flows.context import EmbedInput

__all__ = ["MODELS_ENV", "GatewayModels", "load_gateway", "shipped_models_config"]

MODELS_ENV = "FLOWLOOM_MODELS"


class GatewayModels:
    """Chat and embedding models by alias, all through one `Gateway` (a `ModelProvider`).

    >>> models = GatewayModels(load_gateway())  # doctest: +SKIP
    >>> models.chat_model("local", temperature=0).invoke("Hi").content  # doctest: +SKIP
    'Hello!'
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def aliases(self) -> list[str]:
        return self.gateway.aliases()

    def chat_model(
        self,
        alias: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        streaming: bool = True,
    ) -> GatewayChatModel:
        """A chat model for `alias`; raises `UnknownModelError` now, not at the first call.

        `streaming=True` streams whenever a caller wants tokens (LangGraph's `messages`
        mode); `streaming=False` never streams.
        """
        if alias not in self.gateway.aliases():
            raise UnknownModelError(alias, self.gateway.aliases())
        fields: dict[str, object] = {} if streaming else {"streaming": False}
        return GatewayChatModel(gateway=self.gateway, alias=alias, temperature=temperature,
                                max_tokens=max_tokens, **fields)

    async def aembed(self, alias: str, texts: Sequence[str], *,
                     input_type: EmbedInput | None = None) -> list[list[float]]:
        return await self.gateway.aembed(alias, texts, input_type=input_type)

    def embedder_id(self, alias: str) -> str:
        """The models behind embedding alias `alias` (see `Gateway.embedder_id`)."""
        return self.gateway.embedder_id(alias)


def shipped_models_config() -> GatewayConfig:
    """The default models file shipped with flowloom (`backends/models.yaml`)."""
    shipped = resources.files("flowloom.backends").joinpath("models.yaml")
    return parse_gateway_config(shipped.read_text(encoding="utf-8"), source=str(shipped))


def load_gateway(path: Path | None = None, home: Path | None = None) -> Gateway:
    """A Gateway from the first models file found: `path`, `$FLOWLOOM_MODELS`,
    `home/models.yaml`, else the shipped default. Nothing connects until the first call.

    >>> gateway = load_gateway()  # doctest: +SKIP
    >>> gateway.aliases()  # doctest: +SKIP
    ['local', 'local-embed']
    """
    if home is None:
        from flowloom.flows.home import flowloom_home

        home = flowloom_home()
    env_path = os.environ.get(MODELS_ENV)
    if path is not None:
        config = load_gateway_config(path)
    elif env_path:
        config = load_gateway_config(Path(env_path).expanduser())
    elif (home / "models.yaml").is_file():
        config = load_gateway_config(home / "models.yaml")
    else:
        config = shipped_models_config()
    return Gateway(config, home=home)
