"""Domain errors for flows: each problem names where it is and what would be valid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FlowBuildError",
    "FlowError",
    "FlowLoadError",
    "FlowRunError",
    "FlowValidationError",
    "Problem",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a flow document.

    `path` is a JSON path into the document (`nodes[2].params.top_k`, `edges[3].target`);
    `choices` lists the valid values where there is a short list of them.
    """

    path: str
    message: str
    choices: tuple[str, ...] = field(default_factory=tuple)
    code: str = "invalid"
    # a change that mends it, for tools to offer (e.g. {"declare": {"field", "type"}})
    fix: dict[str, Any] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.choices:
            shown = ", ".join(self.choices[:20])
            more = f" (+{len(self.choices) - 20} more)" if len(self.choices) > 20 else ""
            text += f"; valid: {shown}{more}"
        return text

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "path": self.path,
            "message": self.message,
            "choices": list(self.choices),
            "code": self.code,
        }
        if self.fix is not None:
            out["fix"] = self.fix
        return out


class FlowError(Exception):
    """Base of every flow error that is the user's to fix."""


class FlowLoadError(FlowError):
    """The file is not readable, not JSON, or not a flow document at all."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class FlowValidationError(FlowError):
    """A flow document has problems; all of them are reported at once."""

    def __init__(self, problems: Sequence[Problem], *, source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        count = len(self.problems)
        lines = [f"{head}{count} problem{'s' if count != 1 else ''} in flow"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class FlowBuildError(FlowError):
    """A node could not be built from valid params (a missing resource, say)."""

    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        self.node_id = node_id
        super().__init__(f"node '{node_id}': {message}" if node_id else message)


class FlowRunError(FlowError):
    """A run failed in a way the caller should see as a message, not a traceback."""

    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        self.node_id = node_id
        super().__init__(f"node '{node_id}': {message}" if node_id else message)
