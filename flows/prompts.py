"""Prompts as versioned assets: stored by name, every version immutable.

Versions are files `prompts/<name>/<version>.json` under the data dir, created with
O_EXCL so a version, once written, never changes; saving again makes the next version.

Node params that name a stored prompt (`name@version`, `name@latest` or a bare name) are
marked in their type's `Params` schema with `PROMPT_REF_KEY`, so export can find them in
any node type: `pin_prompts` rewrites them to concrete versions and carries those versions
in the document's `prompts` section; `import_prompts` writes carried versions to a store,
refusing any that the store holds with other text.

Example:
    >>> store = PromptStore(tmp_path)
    >>> store.save("greet", "Hello {{ name }}").ref
    'greet@1'
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowloom.flows.errors import FlowError
from flowloom.flows.format import PromptAsset
from flowloom.flows.templates import Template, TemplateError

if TYPE_CHECKING:
    from flowloom.flows.format import Flow
    from flowloom.flows.registry import NodeRegistry

__all__ = [
    "PROMPT_REF_KEY",
    "PromptConflict",
    "PromptNotFound",
    "PromptStore",
    "PromptVersion",
    "check_name",
    "import_prompts",
    "parse_ref",
    "pin_prompts",
    "prompt_ref_slots",
    "resolve_prompt",
]

PROMPT_REF_KEY = "x-prompt-ref"
"""JSON Schema key marking a node param whose value is a stored prompt's ref."""

_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")


class PromptNotFound(FlowError):
    """No prompt of that name, or no such version of it."""


class PromptConflict(FlowError):
    """A version exists with other text: versions are immutable, so it is refused."""


@dataclass(frozen=True)
class PromptVersion:
    name: str
    version: int
    text: str
    variables: list[str]
    notes: str
    created_at: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, **asdict(self)}


def check_name(name: str) -> str:
    """`name` if it is a valid prompt name, else a FlowError saying what is valid."""
    if not _NAME.fullmatch(name):
        raise FlowError(f"prompt name {name!r}: use 1-64 lower-case letters, digits, _ and -, "
                        "starting with a letter")
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`name@3` → ("name", 3); `name` or `name@latest` → ("name", None)."""
    name, _, version = ref.partition("@")
    if not _NAME.fullmatch(name):
        raise ValueError(f"{ref!r} is not a prompt reference (name@version)")
    if version in ("", "latest"):
        return name, None
    if not re.fullmatch(r"[0-9]+", version):
        raise ValueError(f"{ref!r}: version must be a number or 'latest'")
    return name, int(version)


def _variables(name: str, text: str) -> list[str]:
    try:
        return sorted(Template(text).variables)
    except TemplateError as exc:
        raise FlowError(f"prompt {name!r}: {exc}") from None


class PromptStore:
    """File-backed prompt store rooted at `root` (usually `<data dir>/prompts`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.fullmatch(p.name))

    def versions(self, name: str) -> list[int]:
        folder = self.root / check_name(name)
        if not folder.exists():
            return []
        return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())

    def _write(self, name: str, version: int, text: str, notes: str) -> PromptVersion | None:
        """Create exactly `name@version`; None when it exists already."""
        prompt = PromptVersion(name, version, text, _variables(name, text), notes,
                               datetime.now(UTC).isoformat())
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(folder / f"{version}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(prompt), f, indent=2)
        return prompt

    def save(self, name: str, text: str, notes: str = "") -> PromptVersion:
        """Store `text` as the next version of `name`."""
        check_name(name)
        _variables(name, text)
        while True:
            version = (self.versions(name) or [0])[-1] + 1
            prompt = self._write(name, version, text, notes)
            if prompt is not None:  # else another writer took this version number
                return prompt

    def add(self, name: str, version: int, text: str, notes: str = "") -> PromptVersion:
        """Store `text` as exactly `name@version` (an import); PromptConflict if it exists."""
        check_name(name)
        prompt = self._write(name, version, text, notes)
        if prompt is None:
            raise PromptConflict(f"prompt {name}@{version} exists already; versions are "
                                 "immutable")
        return prompt

    def get(self, ref: str) -> PromptVersion:
        name, version = parse_ref(ref)
        versions = self.versions(name)
        if not versions:
            raise PromptNotFound(f"no prompt named {name!r}; prompts: "
                                 f"{', '.join(self.names()) or 'none'}")
        version = versions[-1] if version is None else version
        if version not in versions:
            raise PromptNotFound(f"prompt {name!r} has no version {version}; versions: "
                                 f"{', '.join(map(str, versions))}")
        data = json.loads((self.root / name / f"{version}.json").read_text(encoding="utf-8"))
        return PromptVersion(**data)


def _conflict(refs: list[str]) -> PromptConflict:
    names = sorted({parse_ref(r)[0] for r in refs})
    return PromptConflict(
        f"prompt{'s' if len(refs) > 1 else ''} {', '.join(refs)}: the flow carries other text "
        f"than this store's version of the same number, so the store's history of "
        f"{', '.join(map(repr, names))} differs from the flow's; versions are immutable and "
        "are never overwritten: rename the prompt in the flow (its `prompts` entry and the "
        "refs to it), or push the flow's text as a new version and point the refs at that")


def resolve_prompt(
    ref: str, store: PromptStore | None, carried: Mapping[str, PromptAsset] | None = None
) -> PromptVersion:
    """The version `ref` names: one the flow carries (`Flow.prompts`), else the store's
    (its latest for `name@latest` or a bare name). A carried version that the store holds
    with other text is a PromptConflict: `name@N` means one text everywhere."""
    name, version = parse_ref(ref)
    asset = (carried or {}).get(f"{name}@{version}")
    if asset is not None and version is not None:
        if store is not None and version in store.versions(name):
            stored = store.get(f"{name}@{version}")
            if stored.text != asset.text:
                raise _conflict([stored.ref])
            return stored
        return PromptVersion(name, version, asset.text, _variables(name, asset.text),
                             asset.notes, "")
    if store is None:
        raise PromptNotFound(f"{ref!r} names a stored prompt, but no prompt store is "
                             "configured and the flow does not carry it")
    return store.get(ref)


def prompt_ref_slots(schema: Mapping[str, Any], value: Any) -> Iterator[tuple[Any, Any, str]]:
    """Where `value` (a node's params) holds prompt refs, per `schema` (its type's Params
    JSON Schema): `(container, key, path)` for every string under a property marked with
    PROMPT_REF_KEY, at any depth (nested models, lists, dicts)."""
    defs = schema.get("$defs", {})
    seen: set[tuple[int, Any]] = set()

    def walk(node: Mapping[str, Any], value: Any, path: str) -> Iterator[tuple[Any, Any, str]]:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node = {**defs.get(ref.removeprefix("#/$defs/"), {}), **node}
            node.pop("$ref", None)
        for branch in (*node.get("anyOf", ()), *node.get("oneOf", ()), *node.get("allOf", ())):
            yield from walk(branch, value, path)
        if isinstance(value, dict):
            props = node.get("properties", {})
            extra = node.get("additionalProperties")
            for key, item in value.items():
                sub = props.get(key, extra if isinstance(extra, dict) else None)
                if sub is None:
                    continue
                where = f"{path}.{key}" if path else str(key)
                if sub.get(PROMPT_REF_KEY):
                    yield from marked(value, key, item, where)
                else:
                    yield from walk(sub, item, where)
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for i, item in enumerate(value):
                yield from walk(node["items"], item, f"{path}[{i}]")

    def marked(container: Any, key: Any, item: Any, where: str) -> Iterator[tuple[Any, Any, str]]:
        if isinstance(item, str):
            if (id(container), key) not in seen:
                seen.add((id(container), key))
                yield container, key, where
        elif isinstance(item, list):
            for i, sub in enumerate(item):
                yield from marked(item, i, sub, f"{where}[{i}]")

    yield from walk(schema, value, "")


def _version_key(ref: str) -> tuple[str, int]:
    name, version = parse_ref(ref)
    return name, version or 0


def pin_prompts(
    flow_doc: Mapping[str, Any], store: PromptStore | None, *,
    registry: NodeRegistry | None = None,
) -> dict[str, Any]:
    """A copy of the (valid) flow document with every prompt ref pinned to a concrete
    version (`name@latest` and bare names become `name@N`) and `prompts` holding exactly
    the versions its nodes use, so that importing it elsewhere is reproducible.

    Example:
        >>> pinned = pin_prompts(doc, store)
        >>> pinned["nodes"][0]["params"]["prompt"], list(pinned["prompts"])
        ('greet@2', ['greet@2'])
    """
    from flowloom.flows.registry import UnknownNodeType, default_registry

    registry = registry or default_registry()
    doc = copy.deepcopy(dict(flow_doc))
    carried = {ref: PromptAsset.model_validate(asset)
               for ref, asset in (doc.get("prompts") or {}).items()}
    used: dict[str, dict[str, str]] = {}
    for i, node in enumerate(doc.get("nodes") or []):
        try:
            node_type = registry.get(node["type"])
        except UnknownNodeType as exc:
            raise FlowError(f"nodes[{i}].type: {exc}") from None
        params = node.get("params") or {}
        for container, key, path in prompt_ref_slots(node_type.params_schema(), params):
            try:
                prompt = resolve_prompt(container[key], store, carried)
            except (PromptNotFound, PromptConflict) as exc:
                raise type(exc)(f"node {node['id']!r} (nodes[{i}].params.{path}): {exc}") from None
            except (FlowError, ValueError) as exc:
                raise FlowError(f"node {node['id']!r} (nodes[{i}].params.{path}): {exc}") from None
            container[key] = prompt.ref
            used[prompt.ref] = {"text": prompt.text, "notes": prompt.notes}
    if used:
        doc["prompts"] = {ref: used[ref] for ref in sorted(used, key=_version_key)}
    else:
        doc.pop("prompts", None)
    return doc


def import_prompts(flow: Flow, store: PromptStore | None, *, dry_run: bool = False) -> list[str]:
    """Write the versions `flow` carries to `store` where missing; the refs written (or,
    with `dry_run`, that would be). Every carried version is checked before anything is
    written: one the store holds with other text fails the whole import (PromptConflict)."""
    if not flow.prompts:
        return []
    if store is None:
        raise FlowError(f"the flow carries prompts ({', '.join(flow.prompts)}) but no prompt "
                        "store is configured")
    missing: list[tuple[str, int, PromptAsset]] = []
    conflicts: list[str] = []
    for ref in sorted(flow.prompts, key=_version_key):
        name, version = parse_ref(ref)
        if version is None:
            raise FlowError(f"prompts.{ref}: carried prompts are concrete versions (name@N)")
        asset = flow.prompts[ref]
        if version not in store.versions(name):
            missing.append((name, version, asset))
        elif store.get(ref).text != asset.text:
            conflicts.append(ref)
    if conflicts:
        raise _conflict(conflicts)
    if dry_run:
        return [f"{name}@{version}" for name, version, _ in missing]
    written = []
    for name, version, asset in missing:
        try:
            store.add(name, version, asset.text, asset.notes)
            written.append(f"{name}@{version}")
        except PromptConflict:  # written meanwhile by another import: fine if the same
            if store.get(f"{name}@{version}").text != asset.text:
                raise _conflict([f"{name}@{version}"]) from None
    return written
