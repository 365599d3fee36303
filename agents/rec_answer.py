"""`rec.answer@1`: answer with a recommendation: System 1's ranking as it is (the fast
path), or reranked by an LLM that explains its choice (the slow path).

The node reads a recommendation (state field `source`, as `tool.recommend` writes it:
`{"items": [{"id", "title", "score"}, ...], "history": [{"id", "title"}, ...], ...}`).
With `rerank`, the model sees the user's recent items and System 1's top `candidates`,
and answers with structured output, `{"ranking": [candidate numbers], "explanation"}`,
constrained to a JSON Schema where the engine can. The answer is checked against the
candidate list: every entry a candidate (by number, or by its exact title), none twice.
An answer that fails the check, or a model that fails, falls back to System 1's ranking,
which the decision says (`fallback`) and `rerank_counts()` counts.

The node writes the chosen items to `output` (`{"items", "source": "system1"|"llm",
"explanation", "fallback"}`) and says them as an AI message.

>>> rerank_counts()                                                  # doctest: +SKIP
{'reranked': 41, 'fallback_invalid': 2, 'fallback_error': 0}
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowloom.agents._jsonreply import JsonReplies
from flowloom.agents._toolcalls import json_objects
from flowloom.flows.registry import NodeContext, NodeType, StateRef

__all__ = ["NODE_TYPE", "Params", "build", "check_ranking", "rerank_counts",
           "reset_rerank_counts"]

OUTCOMES = ("reranked", "fallback_invalid", "fallback_error", "fallback_empty")
_counts: Counter[str] = Counter()
_counts_lock = threading.Lock()

SYSTEM = ("You recommend items to a user. You get the items the user chose recently, and "
          "numbered candidates from a recommender. Choose the {k} candidates this user "
          "would like most, best first, and explain the choice in one or two sentences. "
          "Reply with JSON only: {{\"ranking\": [candidate numbers], \"explanation\": "
          "\"...\"}}.")


class Params(BaseModel):
    """Say a recommendation, as it is or reranked by a model."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field("recommendation", description="State field holding the "
                        "recommendation (tool.recommend's output).",
                        json_schema_extra={"x-flowloom-state": "read"})
    rerank: bool = Field(False, description="Rerank System 1's candidates with the model "
                         "and explain (the slow path).")
    model: str = Field("local", description="Model alias for reranking.",
                       json_schema_extra={"x-flowloom-choices": "models"})
    k: int = Field(5, ge=1, le=50, description="Items in the answer.")
    candidates: int = Field(10, ge=1, le=50, description="System 1's top items the model "
                            "chooses from.")
    recent: int = Field(5, ge=0, le=50, description="The user's latest items shown to the "
                        "model as context.")
    max_tokens: int = Field(160, ge=16, le=2048, description="Tokens for the model's reply.")
    output: str = Field("ranking", description="State field that receives the answer's "
                        "items, source, explanation and fallback.",
                        json_schema_extra={"x-flowloom-state": "write"})
    reply: bool = Field(True, description="Also say the answer as an AI message.")

    @model_validator(mode="after")
    def _check(self) -> Params:
        if self.rerank and self.candidates < self.k:
            raise ValueError(f"candidates ({self.candidates}) must be at least k ({self.k}) "
                             f"when reranking")
        return self


def rerank_counts() -> dict[str, int]:
    """How reranks ended, in this process: reranked, or which fallback."""
    with _counts_lock:
        return {outcome: _counts[outcome] for outcome in OUTCOMES}


def reset_rerank_counts() -> None:
    with _counts_lock:
        _counts.clear()


def _count(outcome: str) -> None:
    with _counts_lock:
        _counts[outcome] += 1


def check_ranking(answer: Any, candidates: list[dict[str, Any]], k: int
                  ) -> tuple[list[int] | None, str]:
    """Positions (0-based) of the candidates a model's `ranking` names, best first, or
    None and why not. Entries are candidate numbers (1-based) or exact titles; a shorter
    list than `k` is topped up in System 1's order."""
    if not isinstance(answer, dict) or not isinstance(answer.get("ranking"), list):
        return None, "the reply has no 'ranking' list"
    titles = {str(c.get("title", "")).strip().lower(): i for i, c in enumerate(candidates)}
    chosen: list[int] = []
    for entry in answer["ranking"]:
        if isinstance(entry, bool):
            return None, f"ranking entry {entry!r} is not a candidate"
        if isinstance(entry, int | float) and float(entry).is_integer():
            position = int(entry) - 1
        elif isinstance(entry, str) and entry.strip().isdigit():
            position = int(entry.strip()) - 1
        elif isinstance(entry, str) and entry.strip().lower() in titles:
            position = titles[entry.strip().lower()]
        else:
            return None, f"ranking entry {entry!r} is not a candidate"
        if not 0 <= position < len(candidates):
            return None, f"ranking entry {entry!r} is not one of the {len(candidates)} " \
                         f"candidates"
        if position in chosen:
            return None, f"ranking names candidate {position + 1} twice"
        chosen.append(position)
    if not chosen:
        return None, "the ranking is empty"
    chosen = chosen[:k]
    for position in range(len(candidates)):  # top up in System 1's order
        if len(chosen) >= min(k, len(candidates)):
            break
        if position not in chosen:
            chosen.append(position)
    return chosen, ""


def _listing(items: list[dict[str, Any]]) -> str:
    return "\n".join(f"{i}. {item.get('title') or item.get('id')}"
                     for i, item in enumerate(items, 1))


def _say(items: list[dict[str, Any]], explanation: str, note: str) -> str:
    text = "Recommended for you:\n" + _listing(items) if items else \
        "I have nothing to recommend yet: tell me a few items you liked."
    if explanation:
        text += f"\n\n{explanation}"
    if note:
        text += f"\n\n({note})"
    return text


def build(params: Params, ctx: NodeContext) -> Any:
    source, output, k = params.source, params.output, params.k

    def fast(state: dict[str, Any]) -> dict[str, Any]:
        rec = state.get(source) or {}
        items = list(rec.get("items") or [])[:k]
        result = {"items": items, "source": "system1", "explanation": "", "fallback": None}
        update: dict[str, Any] = {output: result}
        if params.reply:
            update["messages"] = [AIMessage(_say(items, "", ""))]
        return update

    if not params.rerank:
        return fast

    chat = ctx.require_models().chat_model(params.model, temperature=0.0,
                                           max_tokens=params.max_tokens, streaming=False)
    replies = JsonReplies(chat)
    system = SYSTEM.format(k=k)

    async def rerank(state: dict[str, Any]) -> dict[str, Any]:
        rec = state.get(source) or {}
        candidates = list(rec.get("items") or [])[: params.candidates]
        if not candidates:
            _count("fallback_empty")
            return fast(state)
        history = list(rec.get("history") or [])[-params.recent:] if params.recent else []
        schema = {"type": "object", "properties": {
            "ranking": {"type": "array", "minItems": 1, "maxItems": k,
                        "items": {"type": "integer", "minimum": 1,
                                  "maximum": len(candidates)}},
            "explanation": {"type": "string"}}, "required": ["ranking", "explanation"]}
        prompt = ("Recently chosen:\n" + (_listing(history) if history else "(nothing yet)")
                  + "\n\nCandidates:\n" + _listing(candidates))
        fallback, explanation, order = None, "", None
        try:
            reply = await replies.call([SystemMessage(system), HumanMessage(prompt)],
                                       ("ranking", schema), tags=["nostream"])
        except Exception as exc:  # the model's failure is the fast path's answer
            fallback = f"the model failed ({type(exc).__name__})"
            _count("fallback_error")
        else:
            answer = next((v for v in json_objects(reply.text) if isinstance(v, dict)), None)
            order, why = check_ranking(answer, candidates, k)
            if order is None:
                fallback = f"the model's ranking was invalid: {why}"
                _count("fallback_invalid")
            else:
                explanation = str((answer or {}).get("explanation") or "").strip()
                _count("reranked")
        if order is None:
            items = candidates[:k]
            result = {"items": items, "source": "system1", "explanation": "",
                      "fallback": fallback}
            note = f"{fallback}; showing the recommender's own ranking"
        else:
            items = [candidates[i] for i in order]
            result = {"items": items, "source": "llm", "explanation": explanation,
                      "fallback": None}
            note = ""
        update: dict[str, Any] = {output: result}
        if params.reply:
            update["messages"] = [AIMessage(_say(items, explanation, note))]
        return update

    return rerank


def state_refs(params: Params) -> Iterator[StateRef]:
    yield StateRef("source", params.source)
    yield StateRef("output", params.output, "write", "object")
    if params.reply:
        yield StateRef("reply", "messages", "write", "messages")


NODE_TYPE = NodeType(
    name="rec.answer",
    version=1,
    params=Params,
    build=build,
    category="agents",
    description="Answer with a recommendation: System 1's ranking, or reranked and "
                "explained by an LLM, checked against the candidates (else System 1's).",
    state_refs=state_refs,
)
