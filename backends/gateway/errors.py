"""Domain errors of the model gateway: what went wrong, for which alias, and what is valid."""

from __future__ import annotations

from collections.abc import Sequence

from flowloom.flows.errors import Problem

__all__ = [
    "GatewayConfigError",
    "GatewayError",
    "ModelCallError",
    "PartialAnswerError",
    "UnknownModelError",
]


class GatewayError(Exception):
    """Base of every error the model gateway raises."""


class GatewayConfigError(GatewayError):
    """The models file is unreadable, not YAML, or not a valid LiteLLM model config.

    `problems` lists every problem found, each with its path in the document
    (`model_list[2].litellm_params.model: field required`).
    """

    def __init__(self, problems: Sequence[Problem], *, source: str | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        head = f"{source}: " if source else ""
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{head}invalid model config ({count} {noun}):\n{lines}")


class UnknownModelError(GatewayError):
    """A call named a model alias the config does not define."""

    def __init__(self, alias: str, choices: Sequence[str]) -> None:
        self.alias = alias
        self.choices = tuple(choices)
        super().__init__(f"unknown model {alias!r}; models are: {', '.join(self.choices)}")


class ModelCallError(GatewayError):
    """A model call failed after the router's retries and fallbacks."""

    def __init__(self, alias: str, reason: str, *, status_code: int | None = None) -> None:
        self.alias = alias
        self.reason = reason
        self.status_code = status_code
        super().__init__(f"model {alias!r}: {reason}")


class PartialAnswerError(ModelCallError):
    """A streamed answer broke off after part of it was sent to the caller: it cannot be
    retried or handed to a fallback without the caller seeing the answer twice, so the
    call fails, saying how much was sent (`sent`: chunks with content) and why."""

    def __init__(self, alias: str, reason: str, *, sent: int, status_code: int | None = None,
                 deployment: str | None = None) -> None:
        self.sent = sent
        self.deployment = deployment
        super().__init__(alias, f"the answer broke off after {sent} streamed chunks were sent, "
                                f"so it is incomplete: {reason}", status_code=status_code)
        self.cause = reason
