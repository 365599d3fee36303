"""Prompt templates over state fields, rendered in a sandbox.

Templates use Jinja syntax (`{{ question }}`, `{% for m in messages %}`) in Jinja's
sandboxed environment, so a template can read state but never reach Python internals.
Besides the state fields, a template sees `last_message`: the text of the last message.

Example:
    >>> Template("Q: {{ question }}").render({"question": "why?"})
    'Q: why?'
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["BUILTIN_VARIABLES", "Template", "TemplateError", "message_text"]

BUILTIN_VARIABLES = frozenset({"last_message"})


class TemplateError(ValueError):
    """A template that does not parse or names an unknown variable."""


@lru_cache(maxsize=1)
def _env() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def message_text(message: Any) -> str:
    """The text of a LangChain message or an OpenAI-style dict."""
    content = message.get("content") if isinstance(message, dict) else getattr(
        message, "content", message
    )
    if isinstance(content, list):  # content blocks
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return "" if content is None else str(content)


class Template:
    """A parsed template; `variables` are the names it reads."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            env = _env()
            ast = env.parse(source)
            self.variables = frozenset(meta.find_undeclared_variables(ast))
            self._template = env.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error at line {exc.lineno}: {exc.message}"
            ) from None

    def render(self, state: Mapping[str, Any]) -> str:
        values = {name: state.get(name) for name in self.variables}
        for name, value in values.items():
            if value is None:
                values[name] = ""
        if "last_message" in self.variables:
            messages = state.get("messages") or []
            values["last_message"] = message_text(messages[-1]) if messages else ""
        try:
            return self._template.render(values)
        except Exception as exc:  # sandbox violations and bad filters are user errors
            raise TemplateError(f"template failed to render: {exc}") from None
