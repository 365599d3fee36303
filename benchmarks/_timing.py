"""Side-by-side timing: interleaved rounds, so machine noise hits both sides alike."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

__all__ = ["compare_async", "fmt_ms"]


async def _round(fn: Callable[[], Awaitable[object]], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - start) / n


async def compare_async(
    sides: dict[str, Callable[[], Awaitable[object]]], *, n: int, rounds: int, warmup: int = 20
) -> dict[str, float]:
    """Median per-call seconds for each side, rounds interleaved A B C A B C ..."""
    for fn in sides.values():
        for _ in range(warmup):
            await fn()
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            samples[name].append(await _round(fn, n))
        await asyncio.sleep(0)
    return {name: statistics.median(values) for name, values in samples.items()}


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"
