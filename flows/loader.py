"""Reading flow documents: file or JSON text → migrated → validated `Flow`.

Example:
    >>> from flowloom.flows.loader import load_flow
    >>> loaded = load_flow(examples_dir() / "chat.json")
    >>> loaded.flow.id
    'chat'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from flowloom.flows.errors import FlowLoadError, FlowValidationError, Problem
from flowloom.flows.format import Flow
from flowloom.flows.limits import MAX_DEPTH, json_problem
from flowloom.flows.migrations import migrate
from flowloom.flows.registry import NodeRegistry, default_registry
from flowloom.flows.validate import validate_document

__all__ = ["FolderFlows", "LoadedFlow", "check_flow", "examples_dir", "load_flow",
           "read_document"]


@dataclass(frozen=True)
class LoadedFlow:
    flow: Flow
    source: str | None = None
    migrated_from: int | None = None
    notes: list[str] = field(default_factory=list)


def examples_dir() -> Path:
    """The example flows shipped with flowloom."""
    return Path(str(files("flowloom.flows") / "examples"))


def read_document(source: str | Path | dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Parse a path, JSON text or dict into a raw document; FlowLoadError says why not."""
    if isinstance(source, dict):
        if (problem := json_problem(source)) is not None:
            raise FlowLoadError(problem)
        return source, None
    label: str | None = None
    if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith("{")
                                    and not source.lstrip().startswith("[")):
        path = Path(source)
        label = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FlowLoadError("no such file", source=label) from None
        except IsADirectoryError:
            raise FlowLoadError("is a directory, not a flow file", source=label) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise FlowLoadError(f"cannot read: {exc}", source=label) from None
    else:
        text = str(source)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FlowLoadError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", source=label
        ) from None
    except RecursionError:
        raise FlowLoadError(f"nested deeper than {MAX_DEPTH} levels", source=label) from None
    if (problem := json_problem(doc)) is not None:
        raise FlowLoadError(problem, source=label)
    if not isinstance(doc, dict):
        kind = type(doc).__name__.replace("dict", "object").replace("list", "array")
        raise FlowLoadError(
            f"not a flow document: the top level is a JSON {kind}, expected an object with "
            "'nodes' and 'edges'", source=label)
    if "nodes" not in doc:
        keys = ", ".join(list(doc)[:8]) or "none"
        raise FlowLoadError(
            f"not a flow document: expected an object with 'nodes' and 'edges' (keys found: "
            f"{keys})", source=label)
    return doc, label


def _check(
    source: str | Path | dict[str, Any], registry: NodeRegistry | None
) -> tuple[LoadedFlow | None, list[Problem], str | None]:
    doc, label = read_document(source)
    migrated = migrate(doc)
    flow, problems = validate_document(migrated.document, registry or default_registry())
    if flow is None:
        return None, problems, label
    from_version = migrated.from_version if migrated.changed else None
    return LoadedFlow(flow, label, from_version, migrated.notes), [], label


def check_flow(
    source: str | Path | dict[str, Any], registry: NodeRegistry | None = None
) -> tuple[LoadedFlow | None, list[Problem]]:
    """Load and validate, returning problems instead of raising on invalid flows.

    A file that is unreadable, not JSON or not a flow still raises FlowLoadError.
    """
    loaded, problems, _ = _check(source, registry)
    return loaded, problems


def load_flow(
    source: str | Path | dict[str, Any], registry: NodeRegistry | None = None
) -> LoadedFlow:
    """Load, migrate and validate a flow; FlowValidationError lists every problem."""
    loaded, problems, label = _check(source, registry)
    if loaded is None:
        raise FlowValidationError(problems, source=label)
    return loaded


class FolderFlows:
    """Flows by id from folders of flow files (first folder wins), read when asked:
    the `FlowSource` a flow file run from the CLI composes its sub-flows from."""

    def __init__(self, *folders: Path, registry: NodeRegistry | None = None) -> None:
        self.folders = [Path(f) for f in folders]
        self.registry = registry
        self._paths: dict[str, Path] | None = None

    def _index(self) -> dict[str, Path]:
        if self._paths is None:
            paths: dict[str, Path] = {}
            for folder in self.folders:
                for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                    try:
                        doc, _ = read_document(path)
                    except FlowLoadError:
                        continue
                    flow_id = doc.get("id")
                    if isinstance(flow_id, str):
                        paths.setdefault(flow_id, path)
            self._paths = paths
        return self._paths

    def flow_ids(self) -> list[str]:
        return sorted(self._index())

    def get_flow(self, flow_id: str) -> Flow | None:
        path = self._index().get(flow_id)
        return None if path is None else load_flow(path, self.registry).flow
