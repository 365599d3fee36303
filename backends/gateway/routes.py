"""Which deployments serve which alias, with their secrets resolved (internally) or masked.

A deployment whose `os.environ/NAME` references are not all set is left out of the
router, so one missing key does not break the other models; `Route.missing_env`
says why. So is one whose `api_base` is an address the allow-list does not admit
(`backends/netguard.py`); `Route.refused` says why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowloom.backends.gateway.config import ENV_PREFIX, GatewayConfig, env_refs
from flowloom.backends.netguard import url_problem

__all__ = ["PlannedDeployment", "Route", "mask_secret", "plan_deployments"]


@dataclass(frozen=True, slots=True)
class Route:
    """A deployment as `Gateway.routes()` shows it: nothing secret in it."""

    alias: str
    id: str
    model: str
    api_base: str | None
    api_key: str | None
    mode: str
    embedded: bool
    missing_env: tuple[str, ...] = ()
    refused: str | None = None  # why its api_base may not be connected to

    @property
    def active(self) -> bool:
        """Whether the router serves this deployment (all its secrets are set, and its
        address is allowed)."""
        return not self.missing_env and self.refused is None


@dataclass(frozen=True, slots=True)
class PlannedDeployment:
    """A deployment ready for `litellm.Router`: the entry to pass, and resolved endpoints."""

    route: Route
    entry: dict[str, Any]
    api_base: str | None
    api_key: str | None


def mask_secret(value: str | None) -> str | None:
    """`os.environ/NAME` stays readable; a literal key shows only its last four characters."""
    if value is None or value.startswith(ENV_PREFIX):
        return value
    return f"***{value[-4:]}" if len(value) >= 12 else "***"


def _resolve(value: str | None, environ: Mapping[str, str]) -> str | None:
    if value is not None and value.startswith(ENV_PREFIX):
        return environ.get(value[len(ENV_PREFIX):]) or None
    return value


def plan_deployments(
    config: GatewayConfig, environ: Mapping[str, str] | None = None
) -> list[PlannedDeployment]:
    """Every deployment of `config`, in file order, with ids `alias#n` unless set.

    `litellm_params` are passed on unresolved: LiteLLM's Router resolves
    `os.environ/NAME` itself; we only check that each name is set.
    """
    env = os.environ if environ is None else environ
    counts: dict[str, int] = {}
    planned = []
    for deployment in config.model_list:
        alias = deployment.model_name
        index = counts[alias] = counts.get(alias, -1) + 1
        info = deployment.model_info
        ident = info.id or f"{alias}#{index}"
        params = deployment.litellm_params.model_dump(exclude_none=True)
        missing = tuple(name for name in env_refs(params).values() if not env.get(name))
        api_base = _resolve(params.get("api_base"), env)
        raw_key = params.get("api_key")
        route = Route(
            alias=alias,
            id=ident,
            model=deployment.litellm_params.model,
            api_base=api_base or params.get("api_base"),
            api_key=mask_secret(raw_key),
            mode=info.mode,
            embedded=info.embedded,
            missing_env=missing,
            refused=url_problem(api_base) if api_base else None,
        )
        model_info = {**info.model_dump(exclude_none=True), "id": ident}
        entry = {"model_name": alias, "litellm_params": params, "model_info": model_info}
        planned.append(PlannedDeployment(route, entry, api_base, _resolve(raw_key, env)))
    return planned
