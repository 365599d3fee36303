"""The model gateway: every model call of flowloom goes through one `litellm.Router`.

The router is built on first use (importing litellm takes seconds), after starting the
embedded model service when a deployment needs it. Each call is recorded (usage, cost,
latency) after it returns; LiteLLM's errors become `ModelCallError`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from flowloom.backends.gateway._streaming import Recovery, StreamProgress, recovering_stream
from flowloom.backends.gateway._sync import LoopThread
from flowloom.backends.gateway.config import GatewayConfig
from flowloom.backends.gateway.errors import (
    GatewayConfigError,
    ModelCallError,
    UnknownModelError,
)
from flowloom.backends.gateway.health import DeploymentHealth, probe_deployments
from flowloom.backends.gateway.records import (
    CallKind,
    CallLog,
    CallRecord,
    UsageSummary,
)
from flowloom.backends.gateway.routes import PlannedDeployment, Route, plan_deployments
from flowloom.flows.context import EmbedInput as InputType
from flowloom.flows.errors import Problem

# Set before litellm is ever imported: otherwise its import fetches the cost map online.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__all__ = ["MODEL_URL_ENV", "EnsureService", "Gateway"]

logger = logging.getLogger(__name__)

MODEL_URL_ENV = "FLOWLOOM_MODEL_URL"
"""Where the embedded model service listens; set by `ensure_model_service`."""

EnsureService = Callable[[Path], str]
Message = Mapping[str, Any]


def _ensure_embedded_service(home: Path) -> str:
    from flowloom.backends.model_launcher import ensure_model_service

    return ensure_model_service(home)


def _reason(exc: BaseException) -> str:
    """LiteLLM's message, first line only, without its `litellm.` prefix and retry advice."""
    text = str(exc).strip().split("\n", 1)[0] or type(exc).__name__
    text = text.removeprefix("litellm.")
    head, _, rest = text.partition(": ")
    if rest.startswith(head + ": "):
        text = rest
    return text if len(text) <= 300 else text[:297] + "..."


class Gateway:
    """Chat, streaming and embedding calls by alias, over a lazily built LiteLLM Router.

    >>> from flowloom.backends.gateway import Gateway, load_gateway_config
    >>> gateway = Gateway(load_gateway_config("models.yaml"))  # doctest: +SKIP
    >>> reply = gateway.completion("local", [{"role": "user", "content": "Hi"}])  # doctest: +SKIP
    >>> reply.choices[0].message.content  # doctest: +SKIP
    'Hello! How can I help?'
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        home: Path | None = None,
        ensure_service: EnsureService | None = None,
        history: int = 1000,
        embed_batch_size: int = 64,
        health_timeout: float = 3.0,
    ) -> None:
        self._config = config
        self._home = home
        self._ensure_service = ensure_service or _ensure_embedded_service
        self._aliases = config.aliases()
        self._known = frozenset(self._aliases)
        self._embed_batch_size = embed_batch_size
        self._health_timeout = health_timeout
        self._router: Any = None
        self._planned: list[PlannedDeployment] | None = None
        self._blocked: dict[str, str] = {}
        self._service_error: str | None = None
        self._build_lock = threading.Lock()
        self._log = CallLog(history)
        self._sync = LoopThread()
        self._recovery = self._make_recovery()

    @property
    def config(self) -> GatewayConfig:
        return self._config

    @property
    def home(self) -> Path:
        """The data dir the embedded model service runs from."""
        if self._home is None:
            from flowloom.flows.home import flowloom_home

            self._home = flowloom_home()
        return self._home

    # -- what is configured ---------------------------------------------------------------

    def aliases(self) -> list[str]:
        """Every configured alias (chat and embedding), in file order."""
        return list(self._aliases)

    def routes(self) -> dict[str, list[Route]]:
        """Alias -> its deployments (model, api_base, masked key, whether active)."""
        routes: dict[str, list[Route]] = {alias: [] for alias in self._aliases}
        for planned in self._plan():
            routes[planned.route.alias].append(planned.route)
        return routes

    def _plan(self) -> list[PlannedDeployment]:
        return self._planned if self._planned is not None else plan_deployments(self._config)

    # -- building the router ----------------------------------------------------------------

    async def aready(self) -> None:
        """Start what the config needs and build the router now rather than on first call."""
        if self._router is None:
            await asyncio.to_thread(self._build)

    async def _arouter(self) -> Any:
        await self.aready()
        return self._router

    def _build(self) -> None:
        with self._build_lock:
            if self._router is not None:
                return
            # Starting the model service (a subprocess) and importing litellm (~3.5 s) take
            # about as long as each other: do them side by side.
            starter = threading.Thread(target=self._start_embedded_service, daemon=True)
            starter.start()
            import litellm  # noqa: F401

            starter.join()
            planned = plan_deployments(self._config)
            for p in planned:
                if p.route.refused:
                    logger.warning("model %r: deployment %s left out: %s", p.route.alias,
                                   p.route.id, p.route.refused)
                elif not p.route.active:
                    logger.warning("model %r: deployment %s left out, %s not set",
                                   p.route.alias, p.route.id, ", ".join(p.route.missing_env))
            self._blocked = self._blocked_aliases(planned)
            self._router = self._make_router([p.entry for p in planned if p.route.active])
            self._planned = planned

    def _start_embedded_service(self) -> None:
        embedded = any(d.model_info.embedded for d in self._config.model_list)
        if not embedded or os.environ.get(MODEL_URL_ENV):
            return
        try:
            self._ensure_service(self.home)
        except Exception as exc:  # the other models must stay usable
            self._service_error = _reason(exc)
            logger.warning("embedded model service did not start: %s", self._service_error)

    def _blocked_aliases(self, planned: list[PlannedDeployment]) -> dict[str, str]:
        """Aliases with no active deployment and no fallback: calls fail without LiteLLM."""
        fallback_sources = {
            source for entry in self._config.router_settings.fallbacks or () for source in entry
        }
        blocked = {}
        for alias in self._aliases:
            routes = [p.route for p in planned if p.route.alias == alias]
            if any(r.active for r in routes) or alias in fallback_sources:
                continue
            missing = sorted({name for r in routes for name in r.missing_env})
            refused = [r.refused for r in routes if r.refused]
            reason = "no usable deployment: " + "; ".join(
                [*refused, *([f"{', '.join(missing)} not set"] if missing else [])])
            if self._service_error and any(r.embedded for r in routes):
                reason += f" (embedded model service failed: {self._service_error})"
            blocked[alias] = reason
        return blocked

    def _make_router(self, model_list: list[dict[str, Any]]) -> Any:
        import litellm

        for key, value in self._config.litellm_settings.items():
            if not hasattr(litellm, key):
                problem = Problem(f"litellm_settings.{key}", "not a litellm setting")
                raise GatewayConfigError([problem])
            setattr(litellm, key, value)
        try:
            return litellm.Router(model_list=model_list,
                                  **self._config.router_settings.router_kwargs())
        except (TypeError, ValueError) as exc:
            raise GatewayConfigError([Problem("router_settings", _reason(exc))]) from exc

    # -- calls ------------------------------------------------------------------------------

    def _check(self, model: str) -> None:
        if model not in self._known:
            raise UnknownModelError(model, self._aliases)

    def _failed(self, model: str, kind: CallKind, start: float, exc: Exception,
                deployment: str | None = None) -> ModelCallError:
        reason = _reason(exc)
        latency = (time.perf_counter() - start) * 1000
        self._log.add(CallRecord(model, deployment, kind, None, None, None, latency, None,
                                 False, reason, time.time()))
        return ModelCallError(model, reason, status_code=getattr(exc, "status_code", None))

    async def acompletion(self, model: str, messages: Sequence[Message], **kwargs: Any) -> Any:
        """One chat completion (litellm's OpenAI-shaped `ModelResponse`); `kwargs` go to
        litellm (`temperature`, `max_tokens`, `tools`, ...)."""
        if model not in self._known:
            raise UnknownModelError(model, self._aliases)
        if kwargs.get("stream"):
            raise ValueError("acompletion() does not stream; use astream()")
        router = self._router or await self._arouter()
        if model in self._blocked:
            raise ModelCallError(model, self._blocked[model])
        start = time.perf_counter()
        try:
            response = await router.acompletion(model=model, messages=messages, **kwargs)
        except Exception as exc:
            raise self._failed(model, "completion", start, exc) from exc
        latency = (time.perf_counter() - start) * 1000
        hidden = response._hidden_params
        usage = getattr(response, "usage", None)
        self._log.add(CallRecord(
            model, hidden.get("model_id"), "completion",
            usage.prompt_tokens if usage else None, usage.completion_tokens if usage else None,
            hidden.get("response_cost"), latency, None, True, None, time.time(),
        ))
        return response

    async def astream(
        self, model: str, messages: Sequence[Message], **kwargs: Any
    ) -> AsyncIterator[Any]:
        """A streamed chat completion: litellm's `ModelResponseStream` chunks as they arrive.

        Usage is asked for (`stream_options.include_usage`) and comes in the last chunk.
        A stream that fails before any content was yielded is retried and handed to the
        fallbacks like a failed request (see `_streaming.py`); one that breaks after
        raises `PartialAnswerError`, saying how much was sent.
        """
        self._check(model)
        router = self._router or await self._arouter()
        if model in self._blocked:
            raise ModelCallError(model, self._blocked[model])
        kwargs.setdefault("stream_options", {"include_usage": True})
        progress = StreamProgress(start=time.perf_counter())

        def open_stream(target: str) -> Any:
            return router.acompletion(model=target, messages=messages, stream=True,
                                      disable_fallbacks=True, **kwargs)

        finished = failed = False
        try:
            async for chunk in recovering_stream(open_stream, model, self._recovery, progress):
                yield chunk
            finished = True
        except ModelCallError as exc:
            failed = True
            self._log.add(CallRecord(
                model, progress.deployment, "stream", None, None, None,
                (time.perf_counter() - progress.start) * 1000, progress.ttft_ms, False,
                exc.reason, time.time()))
            raise
        finally:
            if not failed:
                usage = progress.usage
                latency = (time.perf_counter() - progress.start) * 1000
                error = None if finished else "stream closed before its end"
                # litellm puts a stream's cost on its usage
                cost = getattr(usage, "cost", None) if usage is not None else None
                self._log.add(CallRecord(
                    model, progress.deployment, "stream",
                    usage.prompt_tokens if usage else None,
                    usage.completion_tokens if usage else None,
                    cost, latency, progress.ttft_ms, finished, error, time.time(),
                ))

    def _make_recovery(self) -> Recovery:
        """How `astream` recovers a stream that failed before its first token: the
        config's retry policy and fallbacks, read the way LiteLLM's Router reads them."""
        settings = self._config.router_settings

        def retries(alias: str, exc: BaseException) -> int:
            from litellm.litellm_core_utils.get_retry_from_policy import (
                get_num_retries_from_retry_policy,
            )

            status = getattr(exc, "status_code", None)
            if isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429):
                return 0  # a client error: trying again cannot help
            policy = settings.router_retry_policy(alias)
            found = get_num_retries_from_retry_policy(exception=exc,  # type: ignore[arg-type]
                                                      retry_policy=policy)
            return settings.retries if found is None else int(found)

        def fallbacks(alias: str, exc: BaseException) -> list[str]:
            import litellm

            for kind, field in ((litellm.ContextWindowExceededError, "context_window_fallbacks"),
                                (litellm.ContentPolicyViolationError,
                                 "content_policy_fallbacks")):
                if isinstance(exc, kind) and (special := settings.fallbacks_of(alias, field)):
                    return special
            return settings.fallbacks_of(alias)

        def backoff(attempt: int) -> float:
            return max(settings.retry_after or 0.0, min(0.5 * 2 ** (attempt - 1), 8.0))

        return Recovery(retries, fallbacks, backoff, _reason)

    def embedder_id(self, model: str) -> str:
        """What the embedding alias `model` stands for (its deployments' models), so a
        vector index can tell when an alias was pointed at another model."""
        self._check(model)
        models = sorted({d.litellm_params.model for d in self._config.model_list
                         if d.model_name == model})
        return f"{model}={','.join(models)}"

    def _takes_input_type(self, model: str) -> bool:
        return any(d.model_info.input_type for d in self._config.model_list
                   if d.model_name == model)

    async def aembed(self, model: str, texts: Sequence[str], *,
                     input_type: InputType | None = None) -> list[list[float]]:
        """Embed `texts` with the embedding alias `model`, in batches; one vector per text.
        `input_type` ("query" or "passage") reaches models configured with
        `model_info.input_type: true` (e5's prefixes); others ignore it."""
        vectors, _tokens = await self.aembed_counted(model, texts, input_type=input_type)
        return vectors

    async def aembed_counted(self, model: str, texts: Sequence[str], *,
                             input_type: InputType | None = None,
                             ) -> tuple[list[list[float]], int]:
        """`aembed`, and the prompt tokens the calls used (as the provider reported)."""
        self._check(model)
        extra: dict[str, Any] = (
            {"extra_body": {"input_type": input_type}}
            if input_type is not None and self._takes_input_type(model) else {})
        if not texts:
            return [], 0
        router = self._router or await self._arouter()
        if model in self._blocked:
            raise ModelCallError(model, self._blocked[model])
        vectors: list[list[float]] = []
        tokens = 0
        size = self._embed_batch_size
        for offset in range(0, len(texts), size):
            batch = list(texts[offset:offset + size])
            start = time.perf_counter()
            try:
                response = await router.aembedding(model=model, input=batch, **extra)
            except Exception as exc:
                raise self._failed(model, "embedding", start, exc) from exc
            latency = (time.perf_counter() - start) * 1000
            data = sorted(response.data, key=lambda item: item["index"])
            if len(data) != len(batch):
                reason = f"{len(data)} vectors for {len(batch)} texts"
                raise self._failed(model, "embedding", start, ValueError(reason))
            vectors.extend(list(item["embedding"]) for item in data)
            hidden = response._hidden_params
            usage = getattr(response, "usage", None)
            tokens += (usage.prompt_tokens or 0) if usage else 0
            self._log.add(CallRecord(
                model, hidden.get("model_id"), "embedding",
                usage.prompt_tokens if usage else None, None,
                hidden.get("response_cost"), latency, None, True, None, time.time(),
            ))
        return vectors, tokens

    async def ahealth(self) -> list[DeploymentHealth]:
        """Check each deployment cheaply (`GET {api_base}/models`); starts nothing."""
        return await probe_deployments(self._plan(), timeout=self._health_timeout)

    # -- sync wrappers ----------------------------------------------------------------------

    def completion(self, model: str, messages: Sequence[Message], **kwargs: Any) -> Any:
        """Sync `acompletion`, run on the gateway's background loop."""
        return self._sync.run(self.acompletion(model, messages, **kwargs))

    def stream(self, model: str, messages: Sequence[Message], **kwargs: Any) -> Iterator[Any]:
        """Sync `astream`."""
        return self._sync.iterate(self.astream(model, messages, **kwargs))

    def embed(self, model: str, texts: Sequence[str], *,
              input_type: InputType | None = None) -> list[list[float]]:
        """Sync `aembed`."""
        return self._sync.run(self.aembed(model, texts, input_type=input_type))

    def health(self) -> list[DeploymentHealth]:
        """Sync `ahealth`."""
        return self._sync.run(self.ahealth())

    # -- usage --------------------------------------------------------------------------------

    def recent_calls(self, limit: int | None = None, *, owner: str | None = None,
                     every_owner: bool = True) -> list[CallRecord]:
        """The latest call records, oldest first (with `every_owner` False, only those
        made for `owner`: see `records.call_owner`)."""
        return self._log.recent(limit, owner=owner, every_owner=every_owner)

    def usage_summary(self, *, owner: str | None = None,
                      every_owner: bool = True) -> UsageSummary:
        """Totals since start: calls, errors, tokens, cost and latency, overall and per alias
        (with `every_owner` False, of `owner`'s calls only)."""
        return self._log.summary(owner=owner, every_owner=every_owner)
