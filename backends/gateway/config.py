"""The models file, in LiteLLM proxy's own shape, validated by pydantic.

```yaml
model_list:
  - model_name: local                      # the alias flows name
    litellm_params:                        # passed to litellm as is
      model: openai/local
      api_base: os.environ/FLOWLOOM_MODEL_URL
    model_info: {embedded: true, mode: chat}
router_settings: {num_retries: 1, fallbacks: [{gpt-4o-mini: [local]}]}
```

Secrets are written `os.environ/NAME` and resolved when the router is built.

Retries: every transient fault is retried `num_retries` times unless `retry_policy` says
otherwise for its kind. LiteLLM picks a `RetryPolicy` field by exception class, and its
table has no entry for a 502 (`BadGatewayError`) or a dropped connection, which fall to
`DefaultRetries` (unset: `num_retries`), so `InternalServerErrorRetries: 0` would stop
500s but not 502s. flowloom treats those server faults as one kind: the router gets an
explicit policy (`RouterSettings.router_retry_policy`) with every field filled in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowloom.backends.gateway.errors import GatewayConfigError
from flowloom.flows.errors import Problem

__all__ = [
    "DEFAULT_NUM_RETRIES",
    "ENV_PREFIX",
    "SERVER_FAULT_FIELDS",
    "Deployment",
    "GatewayConfig",
    "LiteLLMParams",
    "ModelInfo",
    "RetryPolicy",
    "RouterSettings",
    "env_refs",
    "load_gateway_config",
    "parse_gateway_config",
]

ENV_PREFIX = "os.environ/"

DEFAULT_NUM_RETRIES = 2
"""`litellm.Router`'s `num_retries` when none is set."""

SERVER_FAULT_FIELDS = ("InternalServerErrorRetries", "ServiceUnavailableErrorRetries",
                       "DefaultRetries")
"""The `RetryPolicy` fields LiteLLM reads for a server fault, by exception class: a 500
(and a dropped connection or broken answer before a stream opens), a 503 (and a stream
that breaks before its first token), and anything its table does not name (a 502, a
connection error mid-stream). flowloom gives them one value."""

_CLIENT_FAULT_FIELDS = ("BadRequestErrorRetries", "AuthenticationErrorRetries",
                        "ContentPolicyViolationErrorRetries", "NotFoundErrorRetries")


class LiteLLMParams(BaseModel):
    """`litellm_params` of one deployment; keys beyond these go to litellm unchanged."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, description="provider/model, e.g. `openai/gpt-4o-mini`")
    api_base: str | None = None
    api_key: str | None = None
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)


class ModelInfo(BaseModel):
    """`model_info` of one deployment. `embedded: true` marks flowloom's bundled model service."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    mode: str = "chat"
    embedded: bool = False
    input_type: bool = False
    """An embedding model that wants to know a query from a passage (e5 and the like): the
    gateway then sends `input_type: "query" | "passage"` with each request."""


class Deployment(BaseModel):
    """One entry of `model_list`: a deployment serving the alias `model_name`."""

    model_name: str = Field(min_length=1)
    litellm_params: LiteLLMParams
    model_info: ModelInfo = Field(default_factory=ModelInfo)


class RetryPolicy(BaseModel):
    """Retries per exception type (litellm's `RetryPolicy`); unset types use `num_retries`.

    `InternalServerErrorRetries`, `ServiceUnavailableErrorRetries` and `DefaultRetries`
    are one setting here (see `SERVER_FAULT_FIELDS`): set one, or several to one value.
    """

    model_config = ConfigDict(extra="forbid")

    BadRequestErrorRetries: int | None = Field(default=None, ge=0)
    AuthenticationErrorRetries: int | None = Field(default=None, ge=0)
    TimeoutErrorRetries: int | None = Field(default=None, ge=0)
    RateLimitErrorRetries: int | None = Field(default=None, ge=0)
    ContentPolicyViolationErrorRetries: int | None = Field(default=None, ge=0)
    InternalServerErrorRetries: int | None = Field(default=None, ge=0)
    ServiceUnavailableErrorRetries: int | None = Field(default=None, ge=0)
    NotFoundErrorRetries: int | None = Field(default=None, ge=0)
    DefaultRetries: int | None = Field(default=None, ge=0)

    def server_retries(self) -> int | None:
        """The retries of a server fault, when this policy sets them (the first of
        `SERVER_FAULT_FIELDS` set; `_cross_problems` makes sure they agree)."""
        return next((value for name in SERVER_FAULT_FIELDS
                     if (value := getattr(self, name)) is not None), None)

    def filled(self, num_retries: int) -> dict[str, int]:
        """Every field with a value, as LiteLLM's Router should read this policy: server
        faults alike, the others as LiteLLM would have read them (unset: `num_retries`)."""
        server = self.server_retries()
        server = num_retries if server is None else server
        out = {name: server for name in SERVER_FAULT_FIELDS}
        for name in ("TimeoutErrorRetries", "RateLimitErrorRetries"):
            value = getattr(self, name)
            out[name] = num_retries if value is None else value
        for name in _CLIENT_FAULT_FIELDS:
            value = getattr(self, name)
            out[name] = (value if value is not None else
                         self.DefaultRetries if self.DefaultRetries is not None else num_retries)
        return out


Fallbacks = list[dict[str, list[str]]]


class RouterSettings(BaseModel):
    """Keyword arguments of `litellm.Router`; the common ones are typed, others pass through."""

    model_config = ConfigDict(extra="allow")

    num_retries: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    retry_after: float | None = Field(default=None, ge=0)
    retry_policy: RetryPolicy | None = None
    model_group_retry_policy: dict[str, RetryPolicy] | None = None
    allowed_fails: int | None = Field(default=None, ge=0)
    cooldown_time: float | None = Field(default=None, ge=0)
    routing_strategy: str | None = None
    fallbacks: Fallbacks | None = None
    context_window_fallbacks: Fallbacks | None = None
    content_policy_fallbacks: Fallbacks | None = None

    @property
    def retries(self) -> int:
        """`num_retries`, or the Router's default when unset."""
        return DEFAULT_NUM_RETRIES if self.num_retries is None else self.num_retries

    def router_retry_policy(self, group: str | None = None) -> dict[str, int]:
        """The retry policy the Router gets (of `group`, when it has its own): explicit
        for every exception type, so that each server fault is retried alike."""
        policy = (self.model_group_retry_policy or {}).get(group or "") or self.retry_policy
        return (policy or RetryPolicy()).filled(self.retries)

    def fallbacks_of(self, alias: str, field: str = "fallbacks") -> list[str]:
        """The aliases `alias` falls back to (of `fallbacks`, or `context_window_fallbacks`
        or `content_policy_fallbacks`), in order; LiteLLM reads the first entry naming it."""
        entries: Fallbacks = getattr(self, field) or []
        return next((list(entry[alias]) for entry in entries if alias in entry), [])

    def router_kwargs(self) -> dict[str, Any]:
        """These settings as `litellm.Router(**kwargs)` takes them, the retry policies
        made explicit (see `router_retry_policy`)."""
        kwargs = self.model_dump(exclude_none=True)
        kwargs["num_retries"] = self.retries
        kwargs["retry_policy"] = self.router_retry_policy()
        if self.model_group_retry_policy:
            kwargs["model_group_retry_policy"] = {
                group: self.router_retry_policy(group) for group in self.model_group_retry_policy}
        return kwargs


class GatewayConfig(BaseModel):
    """A whole models file. `general_settings` is accepted (proxy configs have it) and unused."""

    model_config = ConfigDict(extra="forbid")

    model_list: list[Deployment] = Field(min_length=1)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    litellm_settings: dict[str, Any] = Field(default_factory=dict)
    general_settings: dict[str, Any] = Field(default_factory=dict)

    def aliases(self) -> list[str]:
        """The distinct `model_name`s, in the order they first appear."""
        return list(dict.fromkeys(d.model_name for d in self.model_list))


def env_refs(params: Mapping[str, Any]) -> dict[str, str]:
    """Top-level `os.environ/NAME` values of `params`, as {key: NAME} (what LiteLLM resolves)."""
    return {
        key: value[len(ENV_PREFIX):]
        for key, value in params.items()
        if isinstance(value, str) and value.startswith(ENV_PREFIX)
    }


def load_gateway_config(path: Path | str) -> GatewayConfig:
    """Read and validate a models file.

    >>> config = load_gateway_config("backends/models.yaml")  # doctest: +SKIP
    >>> config.aliases()  # doctest: +SKIP
    ['local', 'local-embed']
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GatewayConfigError([Problem("", f"cannot read: {exc.strerror or exc}")],
                                 source=str(path)) from exc
    return parse_gateway_config(text, source=str(path))


def parse_gateway_config(text: str, *, source: str | None = None) -> GatewayConfig:
    """Validate the YAML text of a models file; every problem is reported with its path."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        message = str(getattr(exc, "problem", None) or exc)
        raise GatewayConfigError([Problem(where, f"not valid YAML: {message}")],
                                 source=source) from exc
    if not isinstance(data, dict):
        found = "an empty document" if data is None else type(data).__name__
        raise GatewayConfigError(
            [Problem("", f"expected a mapping with 'model_list', found {found}")], source=source
        )
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise GatewayConfigError(_problems(exc), source=source) from exc
    problems = list(_cross_problems(config))
    if problems:
        raise GatewayConfigError(problems, source=source)
    return config


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = error["msg"]
        message = message[:1].lower() + message[1:]
        choices: tuple[str, ...] = ()
        if error["type"] == "extra_forbidden":
            message = "unknown key"
            owner = GatewayConfig if len(loc) == 1 else RetryPolicy
            choices = tuple(owner.model_fields)
        problems.append(Problem(_path(loc), message, choices=choices, code=error["type"]))
    return problems


def _cross_problems(config: GatewayConfig) -> Iterable[Problem]:
    """What pydantic cannot see: fallbacks naming unknown aliases, duplicate deployment ids."""
    aliases = config.aliases()
    settings = config.router_settings
    for field in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        entries: Sequence[dict[str, list[str]]] = getattr(settings, field) or []
        for i, entry in enumerate(entries):
            base = f"router_settings.{field}[{i}]"
            if len(entry) != 1:
                yield Problem(base, "each entry maps one model to its fallbacks: {model: [others]}")
            for source, targets in entry.items():
                named = [(f"{base}.{source}", source)]
                named += [(f"{base}.{source}[{j}]", t) for j, t in enumerate(targets)]
                for path, name in named:
                    if name not in aliases:
                        yield Problem(path, f"{name!r} is not a model_name", choices=tuple(aliases))
    policies = [("router_settings.retry_policy", settings.retry_policy)]
    policies += [(f"router_settings.model_group_retry_policy.{group}", policy)
                 for group, policy in (settings.model_group_retry_policy or {}).items()]
    for group in settings.model_group_retry_policy or {}:
        if group not in aliases:
            yield Problem(f"router_settings.model_group_retry_policy.{group}",
                          f"{group!r} is not a model_name", choices=tuple(aliases))
    for base, policy in policies:
        if policy is None:
            continue
        values = {name: value for name in SERVER_FAULT_FIELDS
                  if (value := getattr(policy, name)) is not None}
        if len(set(values.values())) > 1:
            given = ", ".join(f"{name}: {value}" for name, value in values.items())
            yield Problem(base, f"{given} disagree: flowloom retries every server fault alike "
                                "(HTTP 500, 502, 503, a dropped connection, a broken answer), "
                                "which LiteLLM reads from these fields by exception class; "
                                "give them one value", code="retry_policy_conflict")
    seen: dict[str, int] = {}
    for i, deployment in enumerate(config.model_list):
        ident = deployment.model_info.id
        if ident is None:
            continue
        if ident in seen:
            yield Problem(f"model_list[{i}].model_info.id",
                          f"duplicate id {ident!r} (also model_list[{seen[ident]}])")
        seen.setdefault(ident, i)
