"""The builder's run panel logic: a run's input from the user's text, and a trace of the
run's stream events (each node's output and timing, errors) as they arrive.

Example:
    >>> trace = RunTrace()
    >>> trace.feed("updates", {"answer": {"text": "hi"}}, at=1.5)
    >>> trace.steps[0].name, trace.steps[0].output
    ('answer', {'text': 'hi'})
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowloom.ui.app._approval import Pending, pending_from_event

__all__ = ["NodeRun", "RunTrace", "run_input"]

STREAM_MODES = ["updates", "debug"]


def run_input(doc: dict[str, Any], text: str, *, as_json: bool = False) -> Any:
    """The run's input: the text as a user message when the flow has a `messages` input
    field, else the text in the flow's input field; `as_json` takes the text as the whole
    input. ValueError says why there is none."""
    if as_json:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the input is not valid JSON: {exc.msg} at line {exc.lineno} "
                             f"column {exc.colno}") from None
    state = doc.get("state") or {}
    io = doc.get("io") or {}
    field_name = io.get("input") or ("messages" if "messages" in state else None)
    if field_name is None:
        strings = [k for k, v in state.items() if isinstance(v, dict)
                   and v.get("type") in ("string", "any")]
        if not strings:
            raise ValueError("the flow declares no input field: set io.input in the flow "
                             "settings, or give the input as JSON")
        field_name = strings[0]
    spec = state.get(field_name) or {}
    if isinstance(spec, dict) and spec.get("type") == "messages":
        return {field_name: [{"role": "user", "content": text}]}
    return {field_name: text}


@dataclass
class NodeRun:
    """One node's execution as the stream told it (times in seconds)."""

    name: str
    task_id: str | None = None
    started: float | None = None
    finished: float | None = None
    output: Any = None
    error: str | None = None
    has_output: bool = False
    waiting: bool = False  # paused inside the node, for a person's approval

    @property
    def duration_ms(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return max(0.0, (self.finished - self.started) * 1000)


def _ts(value: Any, fallback: float) -> float:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return fallback
    return fallback


@dataclass
class RunTrace:
    """Folds a run's server-sent events into per-node rows.

    Timing comes from `debug` events (task start to task result, by task id) when the
    run streams them, else from arrival times (`tasks` events, or the gap between
    `updates`)."""

    steps: list[NodeRun] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    run_id: str | None = None
    interrupts: list[Pending] = field(default_factory=list)  # what the run waits on
    started_at: float | None = None
    last_at: float | None = None
    done: bool = False

    def _open(self, name: str) -> NodeRun | None:
        for step in reversed(self.steps):
            if step.name == name and not step.has_output and step.error is None:
                return step
        return None

    def _by_task(self, task_id: Any) -> NodeRun | None:
        return next((s for s in self.steps if task_id and s.task_id == task_id), None)

    def feed(self, event: str, data: Any, at: float) -> None:
        if self.started_at is None:
            self.started_at = at
        previous = self.last_at if self.last_at is not None else at
        self.last_at = at
        if "|" in event:  # a subgraph's event: the parent's node covers it
            return
        if (paused := pending_from_event(event, data)) is not None:
            self.interrupts = paused
            self._mark_waiting(paused)
        if event == "metadata" and isinstance(data, dict):
            self.run_id = data.get("run_id")
        elif event == "error":
            if isinstance(data, dict):
                self.errors.append(f"{data.get('error', 'Error')}: {data.get('message', '')}")
            else:
                self.errors.append(str(data))
        elif event == "updates" and isinstance(data, dict):
            for name, update in data.items():
                if name.startswith("__"):  # __interrupt__ and friends
                    continue
                step = self._open(name)
                if step is None:
                    step = NodeRun(name, started=previous)
                    self.steps.append(step)
                step.output, step.has_output = update, True
                if step.finished is None:
                    step.finished = at
        elif event == "debug" and isinstance(data, dict):
            self._task(data.get("type"), data.get("payload") or {},
                       _ts(data.get("timestamp"), at))
        elif event == "tasks" and isinstance(data, dict):
            kind = "task_result" if ("result" in data or "error" in data) else "task"
            self._task(kind, data, at)
        elif event == "end":
            self.done = True

    @property
    def paused(self) -> bool:
        """The run stopped to wait for a person's approval (not done, not failed)."""
        return bool(self.interrupts) and not self.errors

    def _mark_waiting(self, requests: list[Pending]) -> None:
        for request in requests:
            if request.node and (step := self._open(request.node)) is not None:
                step.waiting = True
            elif request.node and not any(s.name == request.node and s.waiting
                                          for s in self.steps):
                self.steps.append(NodeRun(request.node, started=self.last_at, waiting=True))

    def _task(self, kind: Any, payload: dict[str, Any], at: float) -> None:
        name = str(payload.get("name") or "?")
        if name.startswith("__"):
            return
        if kind == "task":
            self.steps.append(NodeRun(name, task_id=payload.get("id"), started=at))
        elif kind == "task_result":
            step = self._by_task(payload.get("id")) or self._open(name)
            if step is None:
                step = NodeRun(name, task_id=payload.get("id"), started=at)
                self.steps.append(step)
            if payload.get("interrupts"):  # paused, not finished: nothing it wrote yet
                step.waiting = True
                return
            step.finished = at
            if payload.get("error"):
                step.error = str(payload["error"])
            if not step.has_output and payload.get("result") is not None:
                result = payload["result"]
                if isinstance(result, list) and all(
                        isinstance(r, list | tuple) and len(r) == 2 for r in result):
                    result = {str(k): v for k, v in result}
                step.output, step.has_output = result, True
