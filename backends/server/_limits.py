"""Per-key request rate (token buckets) and model spend (cost windows), in memory."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter", "SpendMeter", "TokenBucket", "burst_for"]

Clock = Callable[[], float]


def burst_for(rpm: int) -> int:
    """A key may send 10 seconds' worth of its rate at once: rpm/6 requests, at least 1."""
    return max(1, math.ceil(rpm / 6))


@dataclass
class TokenBucket:
    """`capacity` tokens, refilled at `rate` per second; each request takes one."""

    capacity: float
    rate: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0 if a token was taken, else the seconds until one is there."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per key, of `rpm` per minute with a burst of `burst_for(rpm)`."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def wait_s(self, key_id: str, rpm: int) -> float:
        """Take a token for `key_id`: 0 when allowed, else seconds to wait."""
        now = self._clock()
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate != rpm / 60:
            burst = burst_for(rpm)
            bucket = self._buckets[key_id] = TokenBucket(burst, rpm / 60, burst, now)
        return bucket.take(now)


class SpendMeter:
    """Charges a key the growth of the gateway's total cost while it has work in flight.

    A key's window opens when its first flow-running request or run starts and closes
    when its last one ends; everything the gateway spent meanwhile is the key's. Alone on
    a server that is exact; with other keys' work overlapping, each key is charged for
    all of it, so budgets err on the side of stopping early.
    """

    def __init__(self, total_cost: Callable[[], float]) -> None:
        self._total = total_cost
        self._open: dict[str, tuple[int, float]] = {}  # key -> (works in flight, cost then)

    def enter(self, key_id: str) -> None:
        count, start = self._open.get(key_id, (0, 0.0))
        self._open[key_id] = (count + 1, self._total() if count == 0 else start)

    def leave(self, key_id: str) -> float:
        """Close one work; the cost to charge when it was the key's last, else 0."""
        count, start = self._open.pop(key_id, (0, 0.0))
        if count > 1:
            self._open[key_id] = (count - 1, start)
            return 0.0
        return max(0.0, self._total() - start) if count == 1 else 0.0

    def pending(self, key_id: str) -> float:
        """Cost of the key's open window so far (not yet charged)."""
        if key_id not in self._open:
            return 0.0
        return max(0.0, self._total() - self._open[key_id][1])
