"""Prompt templates over state fields, rendered in a sandbox.

Templates use Jinja syntax (`{{ question }}`, `{% for m in messages %}`) in Jinja's
sandboxed environment, so a template can read state but never reach Python internals.
Besides the state fields, a template sees `last_message`: the text of the last message.

Templates come from flow documents, so from anyone who may save or validate one; they are
checked without evaluating anything (no constant folding: `{{ "A" * 10**9 }}` costs
nothing to check), and rendering is bounded: every value a template makes (an operator's
result, a call's arguments, a filter's result, the output) is at most `MAX_CHARS`
characters, and a render does at most `MAX_STEPS` operations within `MAX_SECONDS`; past a
limit it fails with a TemplateError that names it.

Example:
    >>> Template("Q: {{ question }}").render({"question": "why?"})
    'Q: why?'
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

__all__ = ["BUILTIN_VARIABLES", "MAX_CHARS", "MAX_SECONDS", "MAX_STEPS", "Template",
           "TemplateError", "message_text"]

BUILTIN_VARIABLES = frozenset({"last_message"})
MAX_CHARS = 2_000_000  # the largest value or output a render may make (characters)
MAX_STEPS = 1_000_000  # calls, operators, attribute reads and loop turns per render
MAX_SECONDS = 2.0  # wall time per render


class TemplateError(ValueError):
    """A template that does not parse, names an unknown variable, or fails or exceeds a
    limit while rendering."""


class _Budget(threading.local):
    """The current render's steps left and deadline (renders are synchronous)."""

    steps: int = 0
    deadline: float = 0.0


_budget = _Budget()


def _step() -> None:
    _budget.steps -= 1
    if _budget.steps < 0:
        raise SecurityError(f"the template did more than {MAX_STEPS:,} operations")
    if not _budget.steps % 1024 and time.monotonic() > _budget.deadline:
        raise SecurityError(f"the template took longer than {MAX_SECONDS} s")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0


def _check_size(value: Any, what: str) -> Any:
    if _size(value) > MAX_CHARS:
        raise SecurityError(f"{what} would be {_size(value):,} long; the limit is "
                            f"{MAX_CHARS:,}")
    return value


_WIDTHS = re.compile(r"\d+")


def _check_widths(fmt: str) -> None:
    """Refuse a format string whose widths or precisions would make a huge value."""
    if any(int(n) > MAX_CHARS for n in _WIDTHS.findall(fmt)) or "*" in fmt:
        raise SecurityError(f"a format width or precision is larger than {MAX_CHARS:,} "
                            "(or given with *)")


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with every value-making operation counted and sized."""

    # intercepted binary operators are also never folded at compile time
    intercepted_binops = frozenset({"*", "**", "%", "+", "-", "//", "/"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _step()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if _size(seq) and isinstance(times, int) and _size(seq) * times > MAX_CHARS:
                    raise SecurityError(f"a repetition would make {_size(seq) * times:,} "
                                        f"items; the limit is {MAX_CHARS:,}")
        elif operator == "**" and isinstance(right, int | float) and abs(right) > 1000:
            raise SecurityError("an exponent larger than 1000")
        elif operator == "%" and isinstance(left, str):
            _check_widths(left)
        return _check_size(super().call_binop(context, operator, left, right),
                           f"the result of {operator!r}")

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        for value in (*args, *kwargs.values()):
            _check_size(value, "a call's argument")
        name = getattr(__obj, "__name__", "")
        if (isinstance(getattr(__obj, "__self__", None), str)
                and name in ("center", "ljust", "rjust", "zfill", "expandtabs")
                and any(isinstance(a, int) and a > MAX_CHARS for a in args)):
            raise SecurityError(f"str.{name} wider than {MAX_CHARS:,}")
        return _check_size(super().call(__context, __obj, *args, **kwargs),
                           "a call's result")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `format_map` (the sandbox wraps both when read): their widths
        and precisions are checked before they run."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_widths(value.__self__)
        return wrapped

    def getattr(self, obj: Any, attribute: str) -> Any:
        _step()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _step()
        return super().getitem(obj, argument)


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose numeric arguments (widths, counts) and result are bounded."""

    def bounded(*args: Any, **kwargs: Any) -> Any:
        _step()
        for value in (*args[1:], *kwargs.values()):
            if isinstance(value, int | float) and not isinstance(value, bool) \
                    and abs(value) > MAX_CHARS:
                raise SecurityError(f"filter {name!r}: an argument larger than {MAX_CHARS:,}")
            if isinstance(value, str) and name == "format":
                _check_widths(value)
        if name == "format" and args and isinstance(args[0], str):
            _check_widths(args[0])
        if name == "replace" and len(args) >= 3 and all(isinstance(a, str) for a in args[:3]):
            text, old, new = args[:3]
            grows = (len(text) + 1) * len(new) if not old else \
                len(text) // len(old) * max(0, len(new) - len(old)) + len(text)
            if grows > MAX_CHARS:
                raise SecurityError(f"filter 'replace' would make {grows:,} characters")
        return _check_size(fn(*args, **kwargs), f"the result of filter {name!r}")

    for attr in ("jinja_pass_arg",):  # context/environment-passing filters keep working
        if hasattr(fn, attr):
            setattr(bounded, attr, getattr(fn, attr))
    return bounded


def _bounded_range(*args: Any) -> Iterator[int]:
    for i in range(*args):
        _step()
        yield i


@lru_cache(maxsize=1)
def _env() -> ImmutableSandboxedEnvironment:
    env = _BoundedEnvironment(undefined=StrictUndefined, autoescape=False, optimized=False)
    env.filters = {name: _bounded_filter(name, fn) for name, fn in env.filters.items()}
    # no lipsum (a generator of any size) nor namespace (mutable state: doubling in a loop)
    for name in ("lipsum", "namespace"):
        env.globals.pop(name, None)
    env.globals["range"] = _bounded_range
    return env


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
        _budget.steps, _budget.deadline = MAX_STEPS, time.monotonic() + MAX_SECONDS
        out: list[str] = []
        size = 0
        try:
            for chunk in self._template.generate(values):
                size += len(chunk)
                if size > MAX_CHARS:
                    raise SecurityError(f"the output is longer than {MAX_CHARS:,} characters")
                _step()
                out.append(chunk)
        except RecursionError:
            raise TemplateError("template failed to render: it recursed too deep") from None
        except MemoryError:
            raise TemplateError("template failed to render: out of memory") from None
        except Exception as exc:  # sandbox violations and bad filters are user errors
            raise TemplateError(f"template failed to render: {exc}") from None
        return "".join(out)
