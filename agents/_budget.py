"""The slow-path budget of `router.adaptive`: sliding-window token buckets and decision
counters, one of each per (flow id, node id), shared by every thread and run in the
process.

A bucket holds `burst` tokens; a request that goes slow spends one, and the token comes
back `window` requests later (not after a time), so in every `window` consecutive requests
at most `burst` spend one. It is a sliding window of the last `window` requests that
remembers the sequence numbers of its spends: at most `burst` of them, whatever `window`.

Example:
    >>> bucket = SlidingWindowBucket(burst=1, window=3)
    >>> [bucket.take(want=True).granted for _ in range(4)]
    [True, False, False, True]
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "SlidingWindowBucket",
    "Take",
    "bucket_for",
    "count_decision",
    "decision_counts",
    "forget_flow",
    "reset_buckets",
    "window_size",
]


def window_size(burst: int, budget: float) -> int:
    """`ceil(burst / budget)`, computed on the decimal the budget was written as (0.1, not
    the float just above it), so that `burst / window <= budget` holds exactly."""
    if not 0 < budget < 1 or burst < 1:
        raise ValueError("a window needs 0 < budget < 1 and burst >= 1")
    return math.ceil(Fraction(burst) / Fraction(repr(float(budget))))


@dataclass(frozen=True)
class Take:
    """One request's pass through a bucket."""

    granted: bool  # the request may go slow
    spent: bool  # it took a token (a forced slow past an empty bucket takes none)
    level: int  # tokens left after this request
    sequence: int  # the request's number at this node, from 0


class SlidingWindowBucket:
    """`burst` tokens; each spent one returns `window` requests after it was spent.

    Every request through the node must call `take` (confident ones with `want=False`),
    since the window counts requests, not time. Thread-safe.
    """

    def __init__(self, burst: int, window: int) -> None:
        if burst < 1 or window < 1:
            raise ValueError("burst and window must be at least 1")
        self.burst = burst
        self.window = window
        self._spent: deque[int] = deque()
        self._next = 0
        self._lock = threading.Lock()

    def take(self, *, want: bool, force: bool = False) -> Take:
        """Count one request; spend a token when `want` and one is left. `force` grants
        the request even with none left (it then spends nothing)."""
        with self._lock:
            seq = self._next
            self._next += 1
            # A token spent at request s is back for request s + window.
            while self._spent and self._spent[0] <= seq - self.window:
                self._spent.popleft()
            spent = want and len(self._spent) < self.burst
            if spent:
                self._spent.append(seq)
            return Take(spent or (want and force), spent, self.burst - len(self._spent), seq)

    def level(self) -> int:
        """Tokens the next request would find (before any expire at it)."""
        with self._lock:
            return self.burst - len(self._spent)


_BucketKey = tuple[str, str]
_buckets: dict[_BucketKey, SlidingWindowBucket] = {}
_buckets_lock = threading.Lock()
_counts: Counter[tuple[str, str, str, str]] = Counter()
_counts_lock = threading.Lock()


def bucket_for(flow_id: str, node_id: str, burst: int, window: int) -> SlidingWindowBucket:
    """The process's bucket of one node. A flow rebuilt with the same budget keeps its
    bucket (and the window's history); a changed budget starts a new one."""
    key = (flow_id, node_id)
    with _buckets_lock:
        bucket = _buckets.get(key)
        if bucket is None or (bucket.burst, bucket.window) != (burst, window):
            bucket = _buckets[key] = SlidingWindowBucket(burst, window)
        return bucket


def count_decision(flow_id: str, node_id: str, route: str, reason: str) -> None:
    with _counts_lock:
        _counts[(flow_id, node_id, route, reason)] += 1


def decision_counts() -> dict[tuple[str, str, str, str], int]:
    """Decisions so far in this process, by (flow id, node id, route, reason): a copy,
    for the server's /metrics."""
    with _counts_lock:
        return dict(_counts)


def forget_flow(flow_id: str) -> None:
    """Drop one flow's buckets and counts (a simulation's, once it is done)."""
    with _buckets_lock:
        for key in [k for k in _buckets if k[0] == flow_id]:
            del _buckets[key]
    with _counts_lock:
        for counted in [k for k in _counts if k[0] == flow_id]:
            del _counts[counted]


def reset_buckets() -> None:
    """Forget every bucket and every count (for tests)."""
    with _buckets_lock:
        _buckets.clear()
    with _counts_lock:
        _counts.clear()
