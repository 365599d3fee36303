"""The node-type registry: each node type is defined once, here it is looked up.

A node type is a `Params` pydantic model plus a `build(params, ctx)` function that
returns the LangGraph node callable, registered under `name@version`. Validation, the
builder's forms, `GET /node-types` and the docs all read the same definition.

Node modules don't register themselves on import; they export `NODE_TYPES`, and packages
that ship node types list their module under the `flowloom.nodes` entry-point group, so
third-party packages can add types without flowloom importing them by name.

Example:
    >>> reg = default_registry()
    >>> reg.get("state.set@1").category
    'state'
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowBuildError

if TYPE_CHECKING:
    from flowloom.flows.format import Flow

__all__ = [
    "CATEGORIES",
    "NodeContext",
    "NodeRegistry",
    "NodeType",
    "StateRef",
    "UnknownNodeType",
    "closest",
    "default_registry",
]

CATEGORIES = ("models", "agents", "retrieval", "tools", "routing", "state")


@dataclass(frozen=True)
class StateRef:
    """A state field named in a node's params (`param` is the path inside params). A write
    says what `kind` of value it puts there (a state type: string, array, messages, ...),
    so a flow that lacks the field can be told how to declare it."""

    param: str
    field: str
    access: str = "read"  # "read" | "write"
    kind: str = "any"


@dataclass(frozen=True)
class NodeContext:
    """What a node's `build` receives besides its params."""

    node_id: str
    flow: Flow
    build: BuildContext = field(default_factory=BuildContext)

    def require_models(self) -> Any:
        try:
            return self.build.require_models()
        except FlowBuildError as exc:
            raise FlowBuildError(str(exc), node_id=self.node_id) from None


@dataclass(frozen=True)
class NodeType:
    """One node type. `routes` makes it a router: the labels its conditional edges use."""

    name: str
    version: int
    params: type[BaseModel]
    build: Callable[[Any, NodeContext], Callable[..., Any]]
    category: str
    description: str
    routes: Callable[[Any], Sequence[str]] | None = None
    route_field: Callable[[Any], str] | None = None
    state_refs: Callable[[Any], Iterable[StateRef]] | None = None
    # Ids of other flows the node runs (their change means this flow is rebuilt).
    flow_refs: Callable[[Any], Iterable[str]] | None = None
    # The node's sync function only computes (microseconds, no I/O): async runs call it
    # on the event loop, where LangGraph would hand each call to a worker thread.
    inline: bool = False

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"{self.key}: category must be one of {CATEGORIES}")
        if (self.routes is None) != (self.route_field is None):
            raise ValueError(f"{self.key}: routers need both routes and route_field")

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def is_router(self) -> bool:
        return self.routes is not None

    def params_schema(self) -> dict[str, Any]:
        return self.params.model_json_schema()

    def describe(self) -> dict[str, Any]:
        """The catalogue entry the builder, the API and the docs read."""
        return {
            "type": self.key,
            "name": self.name,
            "version": self.version,
            "category": self.category,
            "description": self.description,
            "router": self.is_router,
            "params_schema": self.params_schema(),
        }


class UnknownNodeType(LookupError):
    def __init__(self, key: str, choices: Sequence[str]) -> None:
        self.key = key
        self.choices = list(choices)
        super().__init__(f"unknown node type {key!r}")


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Valid names that look like `word`, best first (for "did you mean" messages)."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)


class NodeRegistry:
    """Node types by `name@version`."""

    def __init__(self, types: Iterable[NodeType] = ()) -> None:
        self._types: dict[str, NodeType] = {}
        for node_type in types:
            self.register(node_type)

    def register(self, node_type: NodeType) -> NodeType:
        if node_type.key in self._types:
            raise ValueError(f"node type {node_type.key} is registered twice")
        self._types[node_type.key] = node_type
        return node_type

    def get(self, key: str) -> NodeType:
        try:
            return self._types[key]
        except KeyError:
            raise UnknownNodeType(key, self.choices_for(key)) from None

    def choices_for(self, key: str) -> list[str]:
        """The valid types to offer for a bad `key`: other versions first, else all."""
        name = key.rsplit("@", 1)[0]
        versions = [k for k in self._types if k.rsplit("@", 1)[0] == name]
        return versions or sorted(self._types)

    def __contains__(self, key: object) -> bool:
        return key in self._types

    def keys(self) -> list[str]:
        return sorted(self._types)

    def types(self) -> list[NodeType]:
        return [self._types[k] for k in self.keys()]

    def catalogue(self) -> list[dict[str, Any]]:
        return [t.describe() for t in self.types()]


def _load_module_types(module_name: str) -> list[NodeType]:
    module = importlib.import_module(module_name)
    types = getattr(module, "NODE_TYPES", None)
    if types is None:
        raise RuntimeError(f"{module_name} is a flowloom.nodes entry point but has no NODE_TYPES")
    return list(types)


@cache
def default_registry() -> NodeRegistry:
    """Every node type shipped by flowloom and by installed plugins."""
    registry = NodeRegistry()
    modules = sorted({ep.value for ep in entry_points(group="flowloom.nodes")})
    if not modules:  # running from a source tree without installed metadata
        modules = ["flowloom.flows.nodes", "flowloom.agents"]
    for module_name in modules:
        for node_type in _load_module_types(module_name):
            registry.register(node_type)
    return registry
