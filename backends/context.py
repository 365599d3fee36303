"""Wiring the flow engine to the real backends: the gateway's models, the prompt store."""

from __future__ import annotations

from pathlib import Path

from flowloom.flows.context import BuildContext
from flowloom.flows.home import flowloom_home
from flowloom.flows.prompts import PromptStore

__all__ = ["default_build_context"]


def default_build_context(
    *, home: Path | None = None, models_config: Path | None = None
) -> BuildContext:
    """A BuildContext whose models go through the LiteLLM gateway (built lazily: nothing
    starts or connects until a node calls a model)."""
    from flowloom.backends.gateway import GatewayModels, load_gateway

    home = home or flowloom_home()
    gateway = load_gateway(models_config, home=home)
    return BuildContext(
        models=GatewayModels(gateway),
        prompts=PromptStore(home / "prompts"),
        data_dir=home,
    )
