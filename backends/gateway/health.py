"""Cheap per-deployment health checks: `GET {api_base}/models` on OpenAI-compatible servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from flowloom.backends.gateway.routes import PlannedDeployment

__all__ = ["DeploymentHealth", "HealthStatus", "OPENAI_COMPATIBLE", "probe_deployments"]

HealthStatus = Literal["ok", "error", "skipped", "unchecked"]

# Providers whose servers answer OpenAI's `GET /models`.
OPENAI_COMPATIBLE = frozenset({
    "openai", "hosted_vllm", "openai_like", "text-completion-openai", "deepseek", "lm_studio",
    "llamafile", "groq", "mistral", "together_ai", "fireworks_ai", "xai", "openrouter",
    "deepinfra", "perplexity",
})
_DEFAULT_BASES = {"openai": "https://api.openai.com/v1", "deepseek": "https://api.deepseek.com"}


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    """The outcome of one check. `skipped`: not in the router (a secret is missing);
    `unchecked`: no cheap check is known for its provider."""

    alias: str
    deployment: str
    api_base: str | None
    status: HealthStatus
    latency_ms: float | None = None
    error: str | None = None


def _provider(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "openai"


async def _probe(client: httpx.AsyncClient, planned: PlannedDeployment) -> DeploymentHealth:
    route = planned.route
    if not route.active:
        reason = f"not set: {', '.join(route.missing_env)}"
        if route.embedded:
            reason = f"embedded model service not started ({reason})"
        return DeploymentHealth(route.alias, route.id, route.api_base, "skipped", error=reason)
    provider = _provider(route.model)
    base = planned.api_base or _DEFAULT_BASES.get(provider)
    if provider not in OPENAI_COMPATIBLE or base is None:
        return DeploymentHealth(route.alias, route.id, base, "unchecked")
    headers = {"Authorization": f"Bearer {planned.api_key}"} if planned.api_key else {}
    start = time.perf_counter()
    try:
        response = await client.get(f"{base.rstrip('/')}/models", headers=headers)
    except httpx.HTTPError as exc:
        elapsed = (time.perf_counter() - start) * 1000
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return DeploymentHealth(route.alias, route.id, base, "error", elapsed, reason)
    elapsed = (time.perf_counter() - start) * 1000
    if response.is_success:
        return DeploymentHealth(route.alias, route.id, base, "ok", elapsed)
    reason = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    return DeploymentHealth(route.alias, route.id, base, "error", elapsed, reason)


async def probe_deployments(
    deployments: Sequence[PlannedDeployment], *, timeout: float = 3.0
) -> list[DeploymentHealth]:
    """Check every deployment concurrently, each bounded by `timeout` seconds."""
    async with httpx.AsyncClient(timeout=timeout) as client:
        return list(await asyncio.gather(*(_probe(client, d) for d in deployments)))
