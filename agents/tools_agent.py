"""`agent.tools@1`: a tool-calling agent: model → tool → observation → ... → answer.

Each step the model either calls one of the node's tools or answers. The tools come from
the catalogue (`flowloom.tools.catalog`), named in `tools` with their config (resource
names such as a knowledge base or a connection, never secrets). The model is told the
tools and their arguments in the system prompt and asked to reply with a JSON call, so
the same flow works with the bundled model, which writes calls in its content, and with
providers; a reply's native `tool_calls` are used when there are any. A tool's failure,
bad arguments or time-out goes back to the model as the observation; after `max_steps`
tool calls the agent stops and says so. The answer is appended to `messages`; the steps
(tool, args, result or error, seconds) go to `trace`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flowloom.agents._toolcalls import ToolCall, parse_tool_calls
from flowloom.flows.errors import FlowBuildError
from flowloom.flows.nodes._common import check_template, require_model, template_refs
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import Template, message_text
from flowloom.tools.catalog import TOOL_TYPES, ToolFailed

__all__ = ["NODE_TYPE", "Params", "ToolUse", "build"]

ToolName = Literal[tuple(TOOL_TYPES)]  # type: ignore[valid-type]
_TAGS = ["nostream"]  # the steps' raw replies (JSON calls) are not streamed as the answer
OBSERVATION_CHARS = 2000
_CALL_TEXT = re.compile(r"^\s*\w+\(\s*\{")  # `kb_search({"query": ...})` is not an answer


class ToolUse(BaseModel):
    """One tool the agent may call, with its config (see the tool's config schema)."""

    model_config = ConfigDict(extra="forbid")

    name: ToolName = Field(..., description="Tool from the catalogue.")  # type: ignore[valid-type]
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="The tool's settings (resource names).")

    @model_validator(mode="after")
    def _check(self) -> ToolUse:
        TOOL_TYPES[self.name].config(**self.config)  # its errors name config.<field>
        return self


class Params(BaseModel):
    """Answer the conversation's last message, calling tools as needed."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("local", description="Model alias from the gateway config.")
    system: str = Field("You are a helpful assistant. Use a tool when the question needs "
                        "data you do not have; answer briefly.",
                        description="System prompt (template over state fields).")
    tools: list[ToolUse] = Field(..., min_length=1, description="The tools it may call.")
    mode: Literal["choose", "react"] = Field(
        "choose", description="choose: each step the model first names a tool (or none), "
        "then writes its arguments, and answers from the results with no tools on offer "
        "(reliable with small local models); react: one prompt lists the tools and the "
        "model replies with a JSON call or the answer (for capable models).")
    max_steps: int = Field(4, ge=1, le=20, description="Most tool calls before it stops.")
    tool_timeout_s: float = Field(60.0, gt=0, le=600, description="Time limit of one call.")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(256, ge=16, le=8192)
    history: int = Field(8, ge=1, le=100, description="Messages of the conversation shown.")
    trace: str = Field("agent_steps", description="State field for the steps taken.")

    @model_validator(mode="after")
    def _unique(self) -> Params:
        names = [t.name for t in self.tools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"each tool once; repeated: {', '.join(dupes)}")
        check_template(self.system)
        return self


def state_refs(params: Params) -> Iterator[StateRef]:
    yield from template_refs("system", params.system)
    yield StateRef("answer", "messages", "write")
    yield StateRef("trace", params.trace, "write")


def tools_prompt(uses: list[ToolUse]) -> str:
    """The tools and how to call them, for the system prompt."""
    lines = ["You can call these tools:"]
    for use in uses:
        spec = TOOL_TYPES[use.name]
        props = spec.args.model_json_schema().get("properties", {})
        args = ", ".join(f"\"{k}\": <{v.get('type', 'string')}: {v.get('description', '')}>"
                         for k, v in props.items())
        lines.append(f"- {spec.name}: {spec.description} Arguments: {{{args}}}")
    lines += ["To call a tool, reply with only a JSON object:",
              '{"name": "<tool name>", "arguments": {<the arguments>}}',
              "Pick the tool whose description fits the question. After a tool's result, "
              "call another tool or answer. When you can answer, or no tool helps, reply "
              "with the answer in plain words, not JSON."]
    return "\n".join(lines)


def _observation(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str,
                                                           ensure_ascii=False)
    return text if len(text) <= OBSERVATION_CHARS else text[:OBSERVATION_CHARS] + " …(cut)"


def _results(steps: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"- {s['tool']}({json.dumps(s['args'], ensure_ascii=False)}): "
        + (f"error: {s['error']}" if "error" in s else _observation(s.get("result")))
        for s in steps if "skipped" not in s)


def _first_object(text: str) -> dict[str, Any] | None:
    from flowloom.agents._toolcalls import json_objects

    return next((v for v in json_objects(text) if isinstance(v, dict)), None)


def _calls(reply: AIMessage, known: set[str]) -> list[ToolCall]:
    native = [ToolCall(c["name"], dict(c.get("args") or {}))
              for c in getattr(reply, "tool_calls", None) or [] if c.get("name") in known]
    return native or parse_tool_calls(message_text(reply), known)


def build(params: Params, ctx: NodeContext) -> Any:
    models = require_model(ctx, params.model)
    chat = models.chat_model(params.model, temperature=params.temperature,
                             max_tokens=params.max_tokens, streaming=False)
    runs = {}
    for i, use in enumerate(params.tools):
        spec = TOOL_TYPES[use.name]
        try:
            runs[use.name] = spec.bind(spec.config(**use.config), ctx)
        except FlowBuildError as exc:
            raise FlowBuildError(f"tools[{i}] ({use.name}): {exc}", node_id=ctx.node_id) \
                from None
    system = Template(params.system)
    tool_text = tools_prompt(params.tools)
    known = set(runs)

    async def call_tool(call: ToolCall) -> tuple[str, dict[str, Any]]:
        spec = TOOL_TYPES[call.name]
        started = time.perf_counter()
        step: dict[str, Any] = {"tool": call.name, "args": call.args}
        try:
            args = spec.args(**call.args)
            result = await asyncio.wait_for(runs[call.name](args), params.tool_timeout_s)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                                 for e in exc.errors())
            step["error"] = f"bad arguments for {call.name}: {problems}"
        except TimeoutError:
            step["error"] = f"{call.name} took longer than {params.tool_timeout_s:g} s"
        except ToolFailed as exc:
            step["error"] = str(exc)
        except Exception as exc:  # a tool's failure is the model's observation
            step["error"] = f"{call.name} failed: {type(exc).__name__}: {exc}"
        else:
            step["result"] = result
        step["seconds"] = round(time.perf_counter() - started, 3)
        seen = (f"Error: {step['error']}" if "error" in step
                else _observation(step["result"]))
        return f"Result of {call.name}: {seen}", step

    async def final_answer(state: dict[str, Any], conversation: list[BaseMessage],
                           steps: list[dict[str, Any]]) -> str:
        found = _results(steps)
        prompt = system.render(state).strip()
        if found:
            prompt += ("\n\nAnswer the user's last message in plain words from these tool "
                       f"results; say so if they do not answer it.\n{found}")
        reply = await chat.ainvoke([SystemMessage(prompt), *conversation],
                                   config={"tags": _TAGS})
        text = message_text(reply).strip()
        if not text or parse_tool_calls(text, known) or _CALL_TEXT.search(text):
            return (f"I could not finish: after {len(steps)} tool call"
                    f"{'s' if len(steps) != 1 else ''} I had no answer.")
        return text

    menu = "\n".join(f"- {u.name}: {TOOL_TYPES[u.name].description}" for u in params.tools)

    async def choose(state: dict[str, Any], conversation: list[BaseMessage],
                     steps: list[dict[str, Any]]) -> str | None:
        """The tool the model names for the next step, None for "answer now"."""
        done = _results(steps)
        reply = await chat.ainvoke([
            SystemMessage(f"{system.render(state).strip()}\n\nTools:\n{menu}\n- none: "
                          "no tool is needed" + (" (the results below answer it)" if steps
                                                 else "") + "\n"
                          + (f"Results so far:\n{done}\n" if steps else "")
                          + "Which tool should be used for the user's last message? Reply "
                          "with only the tool name."),
            *conversation], config={"tags": _TAGS})
        text = message_text(reply).lower()
        named = [(text.find(n), n) for n in known if n in text]
        return min(named)[1] if named else None

    async def fill(state: dict[str, Any], conversation: list[BaseMessage], name: str
                   ) -> dict[str, Any]:
        """The arguments the model writes for `name`; the user's message for a tool of one
        text argument when its reply is not a JSON object."""
        spec = TOOL_TYPES[name]
        props = spec.args.model_json_schema().get("properties", {})
        keys = ", ".join(f'"{k}" ({v.get("description", "")})' for k, v in props.items())
        reply = await chat.ainvoke([
            SystemMessage(f"Write the arguments for the tool {name} ({spec.description}) "
                          f"as one JSON object with the keys {keys}, for the user's last "
                          "message. Reply with only the JSON object."),
            *conversation[-1:]], config={"tags": _TAGS})
        text = message_text(reply)
        args = {k: v for k, v in (_first_object(text) or {}).items() if k in props}
        if args:  # keys the tool does not take are dropped (the small model adds some)
            return args
        last = message_text(conversation[-1]) if conversation else ""
        return {next(iter(props)): last} if len(props) == 1 else {}

    async def agent_choose(state: dict[str, Any]) -> dict[str, Any]:
        conversation: list[BaseMessage] = list(state.get("messages") or [])[-params.history:]
        steps: list[dict[str, Any]] = []
        while len(steps) < params.max_steps:
            name = await choose(state, conversation, steps)
            if name is None:
                break
            args = await fill(state, conversation, name)
            if any(s["tool"] == name and s["args"] == args for s in steps):
                steps.append({"tool": name, "args": args, "skipped": "repeated"})
                break
            _observation_text, step = await call_tool(ToolCall(name, args))
            steps.append(step)
            if "error" not in step and len(params.tools) == 1:
                break  # one tool, and it answered: nothing left to choose
        answer = await final_answer(state, conversation, steps)
        return {"messages": [AIMessage(answer)], params.trace: steps}

    async def agent_tools(state: dict[str, Any]) -> dict[str, Any]:
        conversation: list[BaseMessage] = list(state.get("messages") or [])[-params.history:]
        messages: list[BaseMessage] = [
            SystemMessage(f"{system.render(state).strip()}\n\n{tool_text}"), *conversation]
        steps: list[dict[str, Any]] = []
        answer = ""
        while True:
            reply = await chat.ainvoke(messages, config={"tags": _TAGS})
            calls = _calls(reply, known)
            if not calls:
                answer = message_text(reply).strip()
                break
            call = calls[0]  # one at a time: each result can change the next call
            repeated = any(s["tool"] == call.name and s["args"] == call.args for s in steps)
            if len(steps) >= params.max_steps or repeated:
                # out of steps, or a call whose result it already has: it answers from
                # what the tools said, with no tools on offer
                answer = await final_answer(state, conversation, steps)
                steps.append({"tool": call.name, "args": call.args, "skipped":
                              "repeated" if repeated else f"max_steps ({params.max_steps})"})
                break
            said = AIMessage(json.dumps({"name": call.name, "arguments": call.args}))
            observation, step = await call_tool(call)
            steps.append(step)
            messages += [said, HumanMessage(
                f"{observation}\n\nIf this answers the question, reply with the answer in "
                "plain words; call another tool only if it does not.")]
        return {"messages": [AIMessage(answer or "(no answer)")], params.trace: steps}

    return agent_choose if params.mode == "choose" else agent_tools


NODE_TYPE = NodeType(
    name="agent.tools",
    version=1,
    params=Params,
    build=build,
    category="agents",
    description="A tool-calling agent: the model calls tools from the catalogue (knowledge "
                "base search, SQL, ...) step by step, sees each result, then answers.",
    state_refs=state_refs,
)
