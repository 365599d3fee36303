"""Usage and cost of model calls: a bounded ring of recent calls plus running totals.

Recording is a deque append and a few additions, done after the call returns, so it
adds microseconds, not milliseconds, to a call.

Each record carries the `call_owner` of the context that made the call (the API server
sets it to the requesting key's id), so the calls and totals of one owner can be read
apart from everyone else's.
"""

from __future__ import annotations

from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = ["CallKind", "CallLog", "CallRecord", "UsageSummary", "UsageTotals", "call_owner"]

call_owner: ContextVar[str | None] = ContextVar("flowloom_call_owner", default=None)
"""Who the model calls made in this context are for (an API key's id); None: nobody."""

CallKind = Literal["completion", "stream", "embedding"]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call through the gateway.

    `model` is the alias asked for; `deployment` the id of the deployment that answered
    (`local#0`), which names another alias when a fallback served the call. Times are in
    milliseconds; `ttft_ms` (time to first token) is set for streams only; `at` is the
    wall-clock end of the call (seconds since the epoch).
    """

    model: str
    deployment: str | None
    kind: CallKind
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    latency_ms: float
    ttft_ms: float | None
    ok: bool
    error: str | None
    at: float
    owner: str | None = None  # `call_owner` when the call was made


@dataclass(slots=True)
class UsageTotals:
    """Running totals over calls (of one alias, or of all)."""

    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0

    @property
    def mean_latency_ms(self) -> float:
        return self.latency_ms / self.calls if self.calls else 0.0

    def add(self, record: CallRecord) -> None:
        self.calls += 1
        self.errors += not record.ok
        self.prompt_tokens += record.prompt_tokens or 0
        self.completion_tokens += record.completion_tokens or 0
        self.cost += record.cost or 0.0
        self.latency_ms += record.latency_ms


@dataclass(frozen=True)
class UsageSummary:
    """A snapshot of the totals: over all calls, and per alias asked for."""

    total: UsageTotals
    by_model: dict[str, UsageTotals] = field(default_factory=dict)


class CallLog:
    """The last `maxlen` call records and totals over every call since start."""

    def __init__(self, maxlen: int = 1000) -> None:
        self._recent: deque[CallRecord] = deque(maxlen=maxlen)
        self._total = UsageTotals()
        self._by_model: dict[str, UsageTotals] = {}
        # the same totals per owner (a handful of API keys: one small entry each)
        self._owners: dict[str | None, tuple[UsageTotals, dict[str, UsageTotals]]] = {}

    def add(self, record: CallRecord) -> None:
        if record.owner is None and (owner := call_owner.get()) is not None:
            record = replace(record, owner=owner)
        self._recent.append(record)
        _count(self._total, self._by_model, record)
        mine = self._owners.get(record.owner)
        if mine is None:
            mine = self._owners[record.owner] = (UsageTotals(), {})
        _count(*mine, record)

    def recent(self, limit: int | None = None, *, owner: str | None = None,
               every_owner: bool = True) -> list[CallRecord]:
        """The most recent records, oldest first (at most `limit` of them); with
        `every_owner` False, only `owner`'s."""
        records = list(self._recent)
        if not every_owner:
            records = [r for r in records if r.owner == owner]
        return records[-limit:] if limit else records

    def summary(self, *, owner: str | None = None, every_owner: bool = True) -> UsageSummary:
        """Totals since start, of every call or (`every_owner` False) of `owner`'s."""
        if every_owner:
            total, by_model = self._total, self._by_model
        else:
            total, by_model = self._owners.get(owner, (UsageTotals(), {}))
        return UsageSummary(
            total=replace(total),
            by_model={name: replace(t) for name, t in by_model.items()},
        )


def _count(total: UsageTotals, by_model: dict[str, UsageTotals], record: CallRecord) -> None:
    total.add(record)
    totals = by_model.get(record.model)
    if totals is None:
        totals = by_model[record.model] = UsageTotals()
    totals.add(record)
