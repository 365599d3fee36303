"""How often a part that died is started again: a budget of restarts within a window, with
a backoff that doubles (`flowloom up` for its parts, `flowloom serve` for the model service
it started)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

__all__ = ["RestartBudget", "RestartPolicy"]


@dataclass(frozen=True)
class RestartPolicy:
    """How often a part that died is started again: at most `max_restarts` within
    `window_s` seconds, after a pause of `backoff_s` doubling with each recent restart
    (at most `max_backoff_s`)."""

    max_restarts: int = 5
    window_s: float = 600.0
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0


@dataclass
class RestartBudget:
    """The restarts one part has had lately, against its policy.

    >>> budget = RestartBudget(RestartPolicy(max_restarts=2, window_s=60))
    >>> budget.take(now=0.0), budget.take(now=1.0), budget.take(now=2.0)
    (1, 2, None)
    >>> budget.take(now=61.5)  # the first two have left the window
    1
    """

    policy: RestartPolicy
    times: deque[float] = field(default_factory=deque)

    def _forget(self, now: float) -> None:
        while self.times and now - self.times[0] > self.policy.window_s:
            self.times.popleft()

    def take(self, now: float | None = None) -> int | None:
        """Count a restart; its number within the window, or None when none is left."""
        now = time.monotonic() if now is None else now
        self._forget(now)
        if len(self.times) >= self.policy.max_restarts:
            return None
        self.times.append(now)
        return len(self.times)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before restart number `attempt` (1, 2, 4, ... capped)."""
        return min(self.policy.backoff_s * 2 ** max(0, attempt - 1), self.policy.max_backoff_s)
