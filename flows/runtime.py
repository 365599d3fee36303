"""Running a compiled flow on one input, on a thread, streamed or not.

`FlowRunner` owns the small amount of glue between a user's input and the graph: turning
text into the flow's input field (a user message for chat flows), seeding declared
defaults on a new thread, and reading the answer back out of the final state.

Example:
    >>> runner = FlowRunner(flow, compile_flow(flow, ctx=ctx, checkpointer=saver))
    >>> (await runner.ainvoke("What is the capital of France?", thread_id="t1")).output
    'The capital of France is Paris.'
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StreamMode

from flowloom.flows.errors import FlowRunError
from flowloom.flows.format import Flow
from flowloom.flows.templates import message_text

__all__ = ["FlowRunner", "RunEvent", "RunResult", "make_input", "output_of"]


def make_input(flow: Flow, value: str | dict[str, Any] | None) -> dict[str, Any]:
    """The graph input for `value`: a dict is taken as state fields; text goes to the
    flow's input field (as a user message when that field holds messages)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        unknown = [k for k in value if k not in flow.state]
        if unknown:
            raise FlowRunError(
                f"input has fields the flow does not declare: {', '.join(unknown)}; "
                f"declared: {', '.join(flow.state) or 'none'}"
            )
        return value
    name = flow.input_field
    if name is None:
        raise FlowRunError(
            "this flow has no input field (no `io.input` and no `messages`); pass the input "
            "as a JSON object of state fields"
        )
    if flow.state[name].type == "messages":
        return {name: [HumanMessage(value)]}
    return {name: value}


def output_of(flow: Flow, values: dict[str, Any]) -> Any:
    """The answer in a final state: the last AI message's text, or the output field."""
    name = flow.output_field
    if name is None:
        return values
    value = values.get(name)
    if flow.state[name].type == "messages":
        for message in reversed(value or []):
            if isinstance(message, AIMessage):
                return message_text(message)
        return ""
    return value


@dataclass(frozen=True)
class RunResult:
    thread_id: str | None
    values: dict[str, Any]
    output: Any
    seconds: float
    node_seconds: dict[str, float] = field(default_factory=dict)
    # what the run paused for (interrupt values: an approval request, ...); resume the
    # thread with `resume=` to go on
    interrupts: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class RunEvent:
    """`kind` is 'token' (text), 'update' (node, data), or 'done' (result)."""

    kind: str
    node: str | None = None
    text: str = ""
    data: Any = None
    result: RunResult | None = None


class FlowRunner:
    """Runs one compiled flow; threads need the graph to have a checkpointer."""

    def __init__(self, flow: Flow, graph: CompiledStateGraph) -> None:
        self.flow = flow
        self.graph = graph
        self._node_ids = frozenset(flow.node_ids())
        self._defaults = {
            name: spec.default for name, spec in flow.state.items() if spec.default is not None
        }

    @property
    def has_checkpointer(self) -> bool:
        return self.graph.checkpointer is not None

    async def _prepare(
        self, value: str | dict[str, Any] | None, thread_id: str | None
    ) -> tuple[dict[str, Any], RunnableConfig, str | None]:
        graph_input = make_input(self.flow, value)
        if self.has_checkpointer:
            thread_id = thread_id or str(uuid.uuid4())
        elif thread_id is not None:
            raise FlowRunError("threads need a checkpointer; this runner has none")
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}} if thread_id else {}
        graph_input = await self.with_defaults(graph_input, config,
                                               new_thread=True if thread_id is None else None)
        return graph_input, config, thread_id

    async def with_defaults(self, graph_input: Any, config: RunnableConfig, *,
                            new_thread: bool | None = None) -> Any:
        """`graph_input` (state fields) over the flow's declared defaults when the run
        starts a thread: one with no state yet (`new_thread`: when the caller knows). Every
        run path seeds them here: the CLI, `/runs` and `/v1`. Other input (None, a
        Command) is left as it is."""
        if not self._defaults or not isinstance(graph_input, dict):
            return graph_input
        if new_thread is None:
            new_thread = not (await self.graph.aget_state(config)).values
        return {**self._defaults, **graph_input} if new_thread else graph_input

    async def ainvoke(
        self, value: str | dict[str, Any] | None, *, thread_id: str | None = None,
        resume: Any = None,
    ) -> RunResult:
        result = None
        async for event in self.astream(value, thread_id=thread_id, tokens=False,
                                        resume=resume):
            if event.kind == "done":
                result = event.result
        assert result is not None  # astream always ends with "done"
        return result

    async def astream(
        self,
        value: str | dict[str, Any] | None,
        *,
        thread_id: str | None = None,
        tokens: bool = True,
        config: dict[str, Any] | None = None,
        resume: Any = None,
    ) -> AsyncIterator[RunEvent]:
        """Stream node updates (and model tokens), then a final 'done' event. `config`:
        more LangGraph config for the run (callbacks, metadata, configurable values), never
        its thread.
        `resume`: the answer to what the thread is paused for (no `value` then)."""
        graph_input: Any
        if resume is not None:
            if value is not None:
                raise FlowRunError("give an input or a resume value, not both")
            if thread_id is None or not self.has_checkpointer:
                raise FlowRunError("resuming needs the thread that paused (and its "
                                   "checkpoints)")
            config_of: RunnableConfig = {"configurable": {"thread_id": thread_id}}
            if not (await self.graph.aget_state(config_of)).interrupts:
                raise FlowRunError(f"thread {thread_id} is not waiting for anything")
            graph_input, thread_config = Command(resume=resume), config_of
        else:
            graph_input, thread_config, thread_id = await self._prepare(value, thread_id)
        run_config = cast(RunnableConfig, {
            **(config or {}), **thread_config,
            # the caller's configurable values too (a node's request overrides, a checkpoint
            # to go on from); the thread is always this run's
            "configurable": {**(config or {}).get("configurable", {}),
                             **thread_config.get("configurable", {})}})
        modes: list[StreamMode] = ["updates", "values"]
        if tokens:
            modes.append("messages")
        started = last = time.perf_counter()
        node_seconds: dict[str, float] = {}
        values: dict[str, Any] = {}
        interrupts: list[Any] = []
        parts: AsyncIterator[Any] = self.graph.astream(graph_input, run_config,
                                                       stream_mode=modes)
        async for mode, chunk in parts:
            if mode == "messages":
                message, _meta = chunk
                if isinstance(message, AIMessageChunk) and message.content:
                    yield RunEvent("token", _meta.get("langgraph_node"), message_text(message))
            elif mode == "updates":
                now = time.perf_counter()
                for node, update in chunk.items():
                    if node == "__interrupt__":
                        interrupts.extend(getattr(i, "value", i) for i in update)
                    if node not in self._node_ids:  # __interrupt__, a node's own tasks
                        continue
                    node_seconds[node] = node_seconds.get(node, 0.0) + now - last
                    yield RunEvent("update", node, data=update)
                last = now
            else:
                values = chunk
        result = RunResult(
            thread_id,
            values,
            output_of(self.flow, values),
            time.perf_counter() - started,
            node_seconds,
            interrupts,
        )
        yield RunEvent("done", result=result)
