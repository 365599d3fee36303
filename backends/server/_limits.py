"""Per-key request rate (token buckets) and model spend (cost windows).

Rates are kept in memory, one server process each, or in Redis (`RedisRateLimiter`), so
that servers sharing a database share each key's rate too."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter", "RedisRateLimiter", "SpendMeter", "TokenBucket", "burst_for"]

Clock = Callable[[], float]
logger = logging.getLogger("flowloom.server")


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

    async def take(self, key_id: str, rpm: int) -> float:
        """`wait_s`, as `RedisRateLimiter.take` is called."""
        return self.wait_s(key_id, rpm)

    def wait_s(self, key_id: str, rpm: int) -> float:
        """Take a token for `key_id`: 0 when allowed, else seconds to wait."""
        now = self._clock()
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate != rpm / 60:
            burst = burst_for(rpm)
            bucket = self._buckets[key_id] = TokenBucket(burst, rpm / 60, burst, now)
        return bucket.take(now)


# One atomic token-bucket step in Redis: KEYS[1] the key's bucket; ARGV capacity, rate per
# second, now (seconds). Returns 0 when a token was taken, else milliseconds to wait.
_TAKE = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 't') or ARGV[1])
local updated = tonumber(redis.call('HGET', KEYS[1], 'u') or ARGV[3])
local capacity, rate, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 't', tokens, 'u', now)
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return wait
"""


class RedisRateLimiter:
    """`RateLimiter` with the buckets in Redis (same rates and bursts), shared by every
    server using the same Redis; the clock is Redis's own, so servers' clocks may differ."""

    def __init__(self, url: str, *, prefix: str = "flowloom:rate:") -> None:
        import redis.asyncio

        self._redis = redis.asyncio.from_url(url)
        self._take = self._redis.register_script(_TAKE)
        self._prefix = prefix

    async def take(self, key_id: str, rpm: int) -> float:
        """Take a token for `key_id`: 0 when allowed, else seconds to wait. With Redis
        unreachable the request is let through (and logged): a rate limit is not worth an
        outage."""
        import redis

        try:
            seconds, micros = await self._redis.time()
            now = seconds + micros / 1e6
            waited = await self._take(keys=[self._prefix + key_id],
                                      args=[burst_for(rpm), rpm / 60, now])
        except redis.RedisError as exc:
            logger.warning("rate limit of key %s not checked: Redis: %s", key_id, exc)
            return 0.0
        return int(waited) / 1000

    async def check(self) -> None:
        """Reach Redis once (at start-up); raises ConnectionError saying where it looked."""
        import redis

        try:
            await self._redis.ping()
        except redis.RedisError as exc:
            raise ConnectionError(f"Redis for rate limits does not answer: {exc}") from None

    async def close(self) -> None:
        await self._redis.aclose()


class SpendMeter:
    """Charges a key what the gateway spent for it while it has work in flight.

    A key's window opens when its first flow-running request or run starts and closes
    when its last one ends; the growth of `cost_of(key)` meanwhile is the key's. With the
    gateway's per-key totals (each call carries the key it was made for) that is exact,
    whatever other keys do at the same time.
    """

    def __init__(self, cost_of: Callable[[str], float]) -> None:
        self._total = cost_of
        self._open: dict[str, tuple[int, float]] = {}  # key -> (works in flight, cost then)

    def enter(self, key_id: str) -> None:
        count, start = self._open.get(key_id, (0, 0.0))
        self._open[key_id] = (count + 1, self._total(key_id) if count == 0 else start)

    def leave(self, key_id: str) -> float:
        """Close one work; the cost to charge when it was the key's last, else 0."""
        count, start = self._open.pop(key_id, (0, 0.0))
        if count > 1:
            self._open[key_id] = (count - 1, start)
            return 0.0
        return max(0.0, self._total(key_id) - start) if count == 1 else 0.0

    def pending(self, key_id: str) -> float:
        """Cost of the key's open window so far (not yet charged)."""
        if key_id not in self._open:
            return 0.0
        return max(0.0, self._total(key_id) - self._open[key_id][1])
