"""Request bodies of the LangGraph API, as pydantic models (422s name the field)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

MAX_OFFSET = 1_000_000_000  # search offsets: past this they would overflow SQLite's integers

__all__ = [
    "AssistantCreate", "AssistantPatch", "AssistantSearch", "CancelRuns", "CheckpointRequest",
    "HistoryRequest", "RunCreate",
    "StateUpdate", "ThreadCreate", "ThreadPatch", "ThreadSearch",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # no "5" or true for numbers


class AssistantCreate(_Body):
    graph_id: str
    assistant_id: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = None
    description: str | None = None


class AssistantPatch(_Body):
    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


class AssistantSearch(_Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: str | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None


class ThreadCreate(_Body):
    thread_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    graph_id: str | None = None


class ThreadPatch(_Body):
    metadata: dict[str, Any] = Field(default_factory=dict)


class ThreadSearch(_Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    ids: list[str] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: str | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None


class StateUpdate(_Body):
    values: Any = None
    as_node: str | None = None
    checkpoint_id: str | None = None
    checkpoint: dict[str, Any] | None = None


class CheckpointRequest(_Body):
    checkpoint: dict[str, Any] = Field(default_factory=dict)
    subgraphs: StrictBool = False


class CancelRuns(_Body):
    run_ids: list[str] = Field(default_factory=list)
    thread_id: str | None = None


class HistoryRequest(_Body):
    limit: int = Field(10, ge=1, le=1000)
    before: str | dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None


StreamModeName = Literal["values", "updates", "messages", "messages-tuple", "custom", "debug",
                         "tasks", "checkpoints", "events"]


class RunCreate(_Body):
    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    stream_mode: StreamModeName | list[StreamModeName] = "values"
    stream_subgraphs: StrictBool = False
    stream_resumable: StrictBool = False
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: str | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] | None = None
    after_seconds: float | None = None
    # when checkpoints are written: "async" (default: each step, in the background),
    # "sync" (each step, before the next starts), "exit" (once, when the run ends: fastest;
    # a crashed run then resumes from its start, not from its last step)
    durability: Literal["sync", "async", "exit"] | None = None

    def modes(self) -> list[str]:
        return [self.stream_mode] if isinstance(self.stream_mode, str) else list(
            self.stream_mode or ["values"])
