"""Prompts as versioned assets: stored by name, every version immutable.

Versions are files `prompts/<name>/<version>.json` under the data dir, created with
O_EXCL so a version, once written, never changes; saving again makes the next version.

Example:
    >>> store = PromptStore(tmp_path)
    >>> store.save("greet", "Hello {{ name }}").ref
    'greet@1'
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from flowloom.flows.errors import FlowError
from flowloom.flows.templates import Template, TemplateError

__all__ = ["PromptNotFound", "PromptStore", "PromptVersion", "parse_ref"]

_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")


class PromptNotFound(FlowError):
    pass


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


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`name@3` → ("name", 3); `name` or `name@latest` → ("name", None)."""
    name, _, version = ref.partition("@")
    if not _NAME.match(name):
        raise ValueError(f"{ref!r} is not a prompt reference (name@version)")
    if version in ("", "latest"):
        return name, None
    if not version.isdigit():
        raise ValueError(f"{ref!r}: version must be a number or 'latest'")
    return name, int(version)


class PromptStore:
    """File-backed prompt store rooted at `root` (usually `<data dir>/prompts`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def versions(self, name: str) -> list[int]:
        folder = self.root / name
        if not folder.exists():
            return []
        return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())

    def save(self, name: str, text: str, notes: str = "") -> PromptVersion:
        if not _NAME.match(name):
            raise FlowError(f"prompt name {name!r}: use lower-case letters, digits, _ and -")
        try:
            variables = sorted(Template(text).variables)
        except TemplateError as exc:
            raise FlowError(f"prompt {name!r}: {exc}") from None
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            version = (self.versions(name) or [0])[-1] + 1
            prompt = PromptVersion(name, version, text, variables, notes,
                                   datetime.now(UTC).isoformat())
            try:
                fd = os.open(folder / f"{version}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:  # another writer took this version number
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(asdict(prompt), f, indent=2)
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
