"""Streams that survive a provider fault before their first token reaches the caller.

LiteLLM's Router retries a stream that fails to open, but one that breaks after it
opened and before any content (a dropped connection, a malformed chunk) goes straight
to a fallback, or fails when there is none, without the retries a failed request gets.
Here every such failure is treated like a failed request: the alias is tried again as
its retry policy says, then its fallbacks in order (the Router is called with
`disable_fallbacks`, so that it retries and this walks the fallbacks, once each).

Chunks without content (the opening `role` chunk) are held back until the first chunk
with content, so a retry never repeats anything the caller saw. A stream that breaks
after content was yielded cannot be taken back: it raises `PartialAnswerError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flowloom.backends.gateway.errors import ModelCallError, PartialAnswerError

__all__ = ["StreamProgress", "carries_answer", "recovering_stream"]

OpenStream = Callable[[str], Awaitable[Any]]
"""Opens a stream of an alias through the Router (which retries a failure to open)."""

Reason = Callable[[BaseException], str]


@dataclass(slots=True)
class StreamProgress:
    """What a stream has done so far, for the call's record."""

    start: float
    deployment: str | None = None  # the deployment whose stream is read now
    ttft_ms: float | None = None
    usage: Any = None
    sent: int = 0  # chunks with content yielded to the caller


def carries_answer(chunk: Any) -> bool:
    """Whether a chunk has something the caller shows: text or a tool call."""
    if not getattr(chunk, "choices", None):
        return False
    delta = chunk.choices[0].delta
    return bool(getattr(delta, "content", None) or getattr(delta, "tool_calls", None))


@dataclass(frozen=True, slots=True)
class Recovery:
    """How failures are recovered: retries per alias and error, fallbacks per error."""

    retries: Callable[[str, BaseException], int]
    fallbacks: Callable[[str, BaseException], list[str]]
    backoff: Callable[[int], float]
    reason: Reason


async def _close(stream: Any) -> None:
    closer = getattr(stream, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):
            await closer()


async def recovering_stream(
    open_stream: OpenStream, alias: str, recovery: Recovery, progress: StreamProgress
) -> AsyncIterator[Any]:
    """The chunks of `alias`'s answer, from the first of its attempts and fallbacks whose
    stream gets through; raises `ModelCallError` naming every target's failure when none
    does, and `PartialAnswerError` when one breaks after content was yielded."""
    targets = [alias]
    failures: list[tuple[str, BaseException]] = []
    while targets:
        target = targets.pop(0)
        attempt = 0
        while True:
            failure: BaseException | None = None
            try:
                stream = await open_stream(target)
            except Exception as exc:  # the Router has retried it already
                failure = exc
            else:
                held: list[Any] = []
                try:
                    hidden = getattr(stream, "_hidden_params", None) or {}
                    progress.deployment = hidden.get("model_id")
                    async for chunk in stream:
                        answer = carries_answer(chunk)
                        if not progress.sent and not answer:
                            held.append(chunk)
                            continue
                        for early in held:
                            yield early
                        held.clear()
                        if answer:
                            if progress.ttft_ms is None:
                                progress.ttft_ms = (time.perf_counter() - progress.start) * 1000
                            progress.sent += 1
                        if (usage := getattr(chunk, "usage", None)) is not None:
                            progress.usage = usage
                        yield chunk
                except Exception as exc:
                    if progress.sent:
                        raise PartialAnswerError(
                            alias, recovery.reason(exc), sent=progress.sent,
                            status_code=getattr(exc, "status_code", None),
                            deployment=progress.deployment) from exc
                    failure = exc
                finally:
                    await _close(stream)
                if failure is None:
                    for early in held:
                        yield early
                    return
                if attempt < recovery.retries(target, failure):
                    attempt += 1
                    await asyncio.sleep(recovery.backoff(attempt))
                    continue
            failures.append((target, failure))
            if target == alias:
                targets = recovery.fallbacks(alias, failure)
            break
    raise _exhausted(alias, failures, recovery.reason)


def _exhausted(alias: str, failures: list[tuple[str, BaseException]],
               reason: Reason) -> ModelCallError:
    (_, first), *others = failures
    text = reason(first)
    if others:
        text += "; fallback " + "; fallback ".join(
            f"{target!r} failed too: {reason(exc)}" for target, exc in others)
    error = ModelCallError(alias, text, status_code=getattr(first, "status_code", None))
    error.__cause__ = failures[-1][1]
    return error
