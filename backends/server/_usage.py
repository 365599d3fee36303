"""The model gateway behind a build context, when there is one (tests use scripted models)."""

from __future__ import annotations

from flowloom.backends.gateway.gateway import Gateway
from flowloom.backends.gateway.provider import GatewayModels
from flowloom.flows.context import BuildContext

__all__ = ["gateway_of", "total_cost"]


def gateway_of(ctx: BuildContext | None) -> Gateway | None:
    """The Gateway the context's models call through, or None (scripted or no models)."""
    models = ctx.models if ctx is not None else None
    return models.gateway if isinstance(models, GatewayModels) else None


def total_cost(ctx: BuildContext | None, owner: str | None = None) -> float:
    """USD spent on model calls through the context's gateway since it started (0 if none):
    in all, or with `owner` on the calls made for that API key (`records.call_owner`)."""
    gateway = gateway_of(ctx)
    if gateway is None:
        return 0.0
    if owner is None:
        return gateway.usage_summary().total.cost
    return gateway.usage_summary(owner=owner, every_owner=False).total.cost
