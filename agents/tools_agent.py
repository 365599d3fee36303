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
from langgraph.func import task
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from flowloom.agents._jsonreply import JsonReplies
from flowloom.agents._semantic import NO_TOOL_EXAMPLES, SemanticChoice
from flowloom.agents._toolcalls import ToolCall, json_objects, parse_tool_calls
from flowloom.agents.approve import ask
from flowloom.flows.errors import FlowBuildError
from flowloom.flows.nodes._common import (
    check_prompt_ref,
    check_template,
    prompt_ref_field,
    repeated,
    require_model,
    resolve_text,
    template_refs,
)
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import Template, message_text
from flowloom.tools.catalog import TOOL_TYPES, ToolFailed

__all__ = ["NODE_TYPE", "Params", "ToolUse", "build"]

ToolName = Literal[tuple(TOOL_TYPES)]  # type: ignore[valid-type]
_TAGS = ["nostream"]  # the steps' raw replies (JSON calls) are not streamed as the answer
OBSERVATION_CHARS = 2000
_CALL_TEXT = re.compile(r"^\s*\w+\(\s*\{")  # `kb_search({"query": ...})` is not an answer


class ToolExample(BaseModel):
    """A request and the arguments the tool should get for it."""

    model_config = ConfigDict(extra="forbid")

    request: str = Field(..., min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)


class ToolUse(BaseModel):
    """One tool the agent may call, with its config (see the tool's config schema)."""

    model_config = ConfigDict(extra="forbid")

    name: ToolName = Field(..., description="Tool from the catalogue.")  # type: ignore[valid-type]
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="The tool's settings (resource names).")
    description: str = Field("", description="What this tool is for here (e.g. what the "
                             "knowledge base holds); default: the tool's own description.")
    examples: list[str | ToolExample] = Field(
        default_factory=list,
        description="Requests this tool answers (they guide the embedding selector); with "
                    "`args`, also shown to the model as worked examples of its arguments.")

    def requests(self) -> list[str]:
        return [e if isinstance(e, str) else e.request for e in self.examples]

    def worked(self) -> list[ToolExample]:
        return [e for e in self.examples if isinstance(e, ToolExample)]

    @model_validator(mode="after")
    def _check(self) -> ToolUse:
        TOOL_TYPES[self.name].config(**self.config)  # its errors name config.<field>
        for i, example in enumerate(self.examples):
            if isinstance(example, str):
                continue
            try:
                TOOL_TYPES[self.name].args(**example.args)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                     for e in exc.errors())
                raise ValueError(f"examples[{i}].args: {problems}") from None
        return self


class OutputField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["string", "number", "integer", "boolean", "array", "object"] = "string"
    description: str = ""
    required: bool = True


class StructuredOutput(BaseModel):
    """The answer as data: a JSON object with `fields`, validated, written to `output`."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[str, OutputField] = Field(..., min_length=1)
    output: str = Field("answer_data", description="State field for the object.",
                        json_schema_extra={"x-flowloom-state": "write"})

    @model_validator(mode="after")
    def _names(self) -> StructuredOutput:
        bad = [n for n in self.fields if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", n)]
        if bad:
            raise ValueError(f"field names must be identifiers: {', '.join(bad)}")
        return self

    def model(self) -> type[BaseModel]:
        types: dict[str, Any] = {"string": str, "number": float, "integer": int,
                                 "boolean": bool, "array": list, "object": dict}
        return create_model(  # type: ignore[call-overload, no-any-return]
            "Answer", __config__=ConfigDict(extra="ignore"),
            **{name: (types[f.type] if f.required else types[f.type] | None,
                      Field(... if f.required else None, description=f.description))
               for name, f in self.fields.items()})


class Params(BaseModel):
    """Answer the conversation's last message, calling tools as needed."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("local", description="Model alias from the gateway config.",
                       json_schema_extra={"x-flowloom-choices": "models"})
    system: str = Field("You are a helpful assistant. Use a tool when the question needs "
                        "data you do not have; answer briefly.",
                        description="System prompt (template over state fields).")
    system_prompt: str | None = prompt_ref_field(
        "Stored system prompt instead of `system`: name@version or name@latest.")
    tools: list[ToolUse] = Field(..., min_length=1, description="The tools it may call.")
    mode: Literal["choose", "react"] = Field(
        "choose", description="choose: each step the model first names a tool (or none), "
        "then writes its arguments, and answers from the results with no tools on offer "
        "(reliable with small local models); react: one prompt lists the tools and the "
        "model replies with a JSON call or the answer (for capable models).")
    select: Literal["auto", "embedding", "model"] = Field(
        "auto", description="choose mode: how the tool is picked. embedding: the request is "
        "compared with each tool's description and examples (and with requests that need "
        "no tool) by the embedding model, one tool per turn; model: the chat model names "
        "the tool, step by step; auto: embedding when `embed_model` is configured.")
    embed_model: str = Field("local-embed", description="Embedding model alias (select).",
                             json_schema_extra={"x-flowloom-choices": "embedding_models"})
    max_steps: int = Field(4, ge=1, le=20, description="Most tool calls before it stops.")
    tool_timeout_s: float = Field(60.0, gt=0, le=600, description="Time limit of one call.")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(256, ge=16, le=8192)
    history: int = Field(8, ge=1, le=100, description="Messages of the conversation shown.")
    trace: str = Field("agent_steps", description="State field for the steps taken.",
                       json_schema_extra={"x-flowloom-state": "write"})
    approve_tools: list[ToolName] = Field(  # type: ignore[valid-type]
        default_factory=list,
        description="Tools whose calls wait for a person's approval: the run pauses with "
                    "the pending call (tool and arguments) until the thread is resumed "
                    "with a decision, which may edit the arguments.")
    structured: StructuredOutput | None = Field(
        None, description="Also write the answer as a JSON object with these fields.")

    @field_validator("system_prompt")
    @classmethod
    def _check_ref(cls, value: str | None, info: ValidationInfo) -> str | None:
        system = info.data.get("system", "")
        inline = "" if system == cls.model_fields["system"].default else system
        return check_prompt_ref(value, inline=inline, inline_name="system",
                                ref_name="system_prompt")

    @model_validator(mode="after")
    def _unique(self) -> Params:
        names = [t.name for t in self.tools]
        if dupes := repeated(names):
            raise ValueError(f"each tool once; repeated: {', '.join(dupes)}")
        stray = [n for n in self.approve_tools if n not in names]
        if stray:
            raise ValueError(f"approve_tools names tools the agent does not have: "
                             f"{', '.join(stray)}; its tools: {', '.join(names)}")
        check_template(self.system)
        return self


def state_refs(params: Params) -> Iterator[StateRef]:
    yield from template_refs("system", params.system)
    yield StateRef("answer", "messages", "write", "messages")
    yield StateRef("trace", params.trace, "write", "array")
    if params.structured is not None:
        yield StateRef("structured.output", params.structured.output, "write", "object")


def tools_prompt(uses: list[ToolUse], schemas: dict[str, dict[str, Any]]) -> str:
    """The tools and how to call them, for the system prompt."""
    lines = ["You can call these tools:"]
    for use in uses:
        spec = TOOL_TYPES[use.name]
        props = schemas[use.name].get("properties", {})
        args = ", ".join(f"\"{k}\": <{v.get('type', 'string')}: {v.get('description', '')}>"
                         for k, v in props.items())
        lines.append(f"- {spec.name}: {use.description or spec.description} "
                     f"Arguments: {{{args}}}")
    lines += ["To call a tool, reply with only a JSON object:",
              '{"name": "<tool name>", "arguments": {<the arguments>}}',
              "Pick the tool whose description fits the question. After a tool's result, "
              "call another tool or answer. When you can answer, or no tool helps, reply "
              "with the answer in plain words, not JSON."]
    return "\n".join(lines)


def _arg_help(prop: dict[str, Any]) -> str:
    """An argument's description, with its allowed values when the schema lists them."""
    choices = prop.get("enum") or next((b["enum"] for b in prop.get("anyOf", [])
                                        if "enum" in b), None)
    text = str(prop.get("description", ""))
    return f"{text}; one of: {', '.join(map(str, choices))}" if choices else text


def _observation(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str,
                                                           ensure_ascii=False)
    return text if len(text) <= OBSERVATION_CHARS else text[:OBSERVATION_CHARS] + " …(cut)"


def _first_object(text: str) -> dict[str, Any] | None:
    return next((v for v in json_objects(text) if isinstance(v, dict)), None)


def _calls(reply: AIMessage, known: set[str]) -> list[ToolCall]:
    native = [ToolCall(c["name"], dict(c.get("args") or {}))
              for c in getattr(reply, "tool_calls", None) or [] if c.get("name") in known]
    return native or parse_tool_calls(message_text(reply), known)


def _declined(step: dict[str, Any]) -> str:
    why = f": {step['declined']}" if step["declined"] else ""
    return f"the user declined this call{why}"


def _for_answer(result: Any) -> Any:
    """A result as the model answers from it: a query's rows, not its SQL (which a small
    model copies out as if it were the answer)."""
    if isinstance(result, dict) and "sql" in result and "rows" in result:
        return {k: v for k, v in result.items() if k != "sql"}
    return result


def _results(steps: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"- {s['tool']}({json.dumps(s['args'], ensure_ascii=False)}): "
        + (f"error: {s['error']}" if "error" in s else _declined(s) if "declined" in s
           else _observation(_for_answer(s.get("result"))))
        for s in steps if "skipped" not in s)


_SQL_TEXT = re.compile(r"^\s*(```\w*\s*)?(SELECT|WITH)\b", re.IGNORECASE)


def _plain_result(steps: list[dict[str, Any]]) -> str | None:
    """The last result said plainly, when the model's answer was unusable: a query's
    rows as `column: value`, a reading, or the result as JSON."""
    found = [s["result"] for s in steps if "result" in s]
    if not found:
        return None
    last = found[-1]
    if isinstance(last, dict) and "rows" in last and "columns" in last:
        rows = last["rows"][:5]
        lines = ["; ".join(f"{c}: {v}" for c, v in zip(last["columns"], row, strict=False))
                 for row in rows]
        return "Result: " + " | ".join(lines) if lines else "The query returned no rows."
    if isinstance(last, dict) and isinstance(last.get("reading"), str):
        return str(last["reading"])
    return f"Result: {_observation(last)}"


def build(params: Params, ctx: NodeContext) -> Any:
    models = require_model(ctx, params.model)
    chat = models.chat_model(params.model, temperature=params.temperature,
                             max_tokens=params.max_tokens, streaming=False)
    runs = {}
    schemas: dict[str, dict[str, Any]] = {}  # each tool's args schema, for its config
    for i, use in enumerate(params.tools):
        spec = TOOL_TYPES[use.name]
        try:
            config = spec.config(**use.config)
            runs[use.name] = spec.bind(config, ctx)
            schemas[use.name] = spec.args_schema(config, ctx)
        except FlowBuildError as exc:
            raise FlowBuildError(f"tools[{i}] ({use.name}): {exc}", node_id=ctx.node_id) \
                from None
    system = Template(resolve_text(ctx, "system_prompt", params.system, params.system_prompt))
    tool_text = tools_prompt(params.tools, schemas)
    known = set(runs)
    node_id = ctx.node_id
    approve = set(params.approve_tools)
    answer_model = params.structured.model() if params.structured is not None else None

    replies = JsonReplies(chat)

    async def _model_call(messages: list[BaseMessage],
                          schema: tuple[str, dict[str, Any]] | None = None) -> AIMessage:
        return await replies.call(messages, schema, tags=_TAGS)

    async def _tool_call(name: str, args: dict[str, Any]) -> dict[str, Any]:
        spec = TOOL_TYPES[name]
        started = time.perf_counter()
        step: dict[str, Any] = {"tool": name, "args": args}
        try:
            parsed = spec.args(**args)
            result = await asyncio.wait_for(runs[name](parsed), params.tool_timeout_s)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                                 for e in exc.errors())
            step["error"] = f"bad arguments for {name}: {problems}"
        except TimeoutError:
            step["error"] = f"{name} took longer than {params.tool_timeout_s:g} s"
        except ToolFailed as exc:
            step["error"] = str(exc)
        except Exception as exc:  # a tool's failure is the model's observation
            step["error"] = f"{name} failed: {type(exc).__name__}: {exc}"
        else:
            step["result"] = result
        step["seconds"] = round(time.perf_counter() - started, 3)
        return step

    if approve:
        # The run can pause inside this node (a call waiting for approval) and, resumed,
        # runs the node again from the start: as LangGraph tasks, the model's replies and
        # the tools' results so far are checkpointed and replayed, not asked again, so
        # the call the person approved is the call that runs.
        model_call: Any = task(name=f"{node_id}.model")(_model_call)  # type: ignore[arg-type]
        tool_call: Any = task(name=f"{node_id}.tool")(_tool_call)  # type: ignore[arg-type]
    else:
        model_call, tool_call = _model_call, _tool_call

    async def call_tool(call: ToolCall) -> tuple[str, dict[str, Any]]:
        """Run `call` (after its approval, where asked) → (observation, step)."""
        args = call.args
        if call.name in approve:
            decision = ask({"kind": "tool_approval", "node": node_id, "tool": call.name,
                            "args": args, "message": f"The agent wants to call {call.name} "
                            f"with {json.dumps(args, ensure_ascii=False)}. Approve?"},
                           allow_args=True)
            if not decision.approved:
                step = {"tool": call.name, "args": args, "declined": decision.comment}
                return f"Result of {call.name}: {_declined(step)}", step
            if decision.args is not None:
                args = decision.args
        step = await tool_call(call.name, args)
        seen = (f"Error: {step['error']}" if "error" in step
                else _observation(step["result"]))
        return f"Result of {call.name}: {seen}", step

    async def structured_answer(text: str, conversation: list[BaseMessage],
                                steps: list[dict[str, Any]]) -> dict[str, Any]:
        """`text` as the structured object: the model fills it (constrained to its JSON
        Schema where the engine can), validated, asked once more with the errors."""
        assert answer_model is not None and params.structured is not None
        schema = answer_model.model_json_schema()
        fields = ", ".join(f'"{k}" ({v.type}{": " + v.description if v.description else ""})'
                           for k, v in params.structured.fields.items())
        prompt = [SystemMessage(f"Write the answer below as one JSON object with the keys "
                                f"{fields}. Reply with only the JSON object.\n\nAnswer: "
                                f"{text}\n" + (f"Tool results:\n{_results(steps)}"
                                                if steps else "")), *conversation[-1:]]
        problems = ""
        for _attempt in range(2):
            reply = await model_call(prompt, ("answer", schema))
            found = _first_object(message_text(reply))
            try:
                return {"value": answer_model.model_validate(found or {}).model_dump()}
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'object'}: "
                                     f"{e['msg']}" for e in exc.errors())
                prompt = [*prompt, reply, HumanMessage(f"That is not valid: {problems}. "
                                                       "Reply with the corrected object.")]
        return {"error": f"no valid structured answer: {problems}"}

    async def finish(answer: str, conversation: list[BaseMessage],
                     steps: list[dict[str, Any]]) -> dict[str, Any]:
        update: dict[str, Any] = {"messages": [AIMessage(answer)], params.trace: steps}
        if params.structured is not None:
            found = await structured_answer(answer, conversation, steps)
            update[params.structured.output] = found.get("value")
            if "error" in found:
                update[params.trace] = [*steps, {"structured": found["error"]}]
        return update

    async def final_answer(state: dict[str, Any], conversation: list[BaseMessage],
                           steps: list[dict[str, Any]]) -> str:
        found = _results(steps)
        prompt = system.render(state).strip()
        if found:
            prompt += ("\n\nAnswer the user's last message in plain words from these tool "
                       f"results; say so if they do not answer it.\n{found}")
        reply = await model_call([SystemMessage(prompt), *conversation])
        text = message_text(reply).strip()
        if not text or parse_tool_calls(text, known) or _CALL_TEXT.search(text) \
                or _SQL_TEXT.search(text):
            return _plain_result(steps) or (
                f"I could not finish: after {len(steps)} tool call"
                f"{'s' if len(steps) != 1 else ''} I had no answer.")
        return text

    descriptions = {u.name: u.description or TOOL_TYPES[u.name].description
                    for u in params.tools}
    worked = {u.name: u.worked() for u in params.tools}
    menu = "\n".join(f"- {name}: {text}" for name, text in descriptions.items())
    selector = None
    if params.mode == "choose" and (
            params.select == "embedding"
            or (params.select == "auto" and params.embed_model in models.aliases())):
        require_model(ctx, params.embed_model)
        selector = SemanticChoice(models, params.embed_model, {
            **{u.name: [u.description or TOOL_TYPES[u.name].description,
                        *TOOL_TYPES[u.name].examples, *u.requests()] for u in params.tools},
            "none": NO_TOOL_EXAMPLES})

    async def choose(state: dict[str, Any], conversation: list[BaseMessage],
                     steps: list[dict[str, Any]]) -> str | None:
        """The tool the model names for the next step, None for "answer now"."""
        done = _results(steps)
        reply = await model_call([
            SystemMessage(f"{system.render(state).strip()}\n\nTools:\n{menu}\n- none: "
                          "no tool is needed" + (" (the results below answer it)" if steps
                                                 else "") + "\n"
                          + (f"Results so far:\n{done}\n" if steps else "")
                          + "Which tool should be used for the user's last message? Reply "
                          "with only the tool name."),
            *conversation])
        text = message_text(reply).lower()
        named = [(text.find(n), n) for n in known if n in text]
        return min(named)[1] if named else None

    async def fill(state: dict[str, Any], conversation: list[BaseMessage], name: str
                   ) -> dict[str, Any]:
        """The arguments the model writes for `name` (constrained to the tool's args
        schema where the engine can); the user's message for a tool of one text argument
        when its reply is not a JSON object."""
        schema = schemas[name]
        props = schema.get("properties", {})
        keys = ", ".join(f'"{k}" ({_arg_help(v)})' for k, v in props.items())
        shots: list[BaseMessage] = []
        for example in worked[name]:  # worked examples as earlier turns
            shots += [HumanMessage(example.request),
                      AIMessage(json.dumps(example.args, ensure_ascii=False))]
        reply = await model_call([
            SystemMessage(f"Write the arguments for the tool {name} ({descriptions[name]}) "
                          f"as one JSON object with the keys {keys}, for the user's last "
                          "message. Reply with only the JSON object."),
            *shots, *conversation[-1:]], (name, schema))
        text = message_text(reply)
        args = {k: v for k, v in (_first_object(text) or {}).items() if k in props}
        if args:  # keys the tool does not take are dropped (the small model adds some)
            return args
        last = message_text(conversation[-1]) if conversation else ""
        return {next(iter(props)): last} if len(props) == 1 else {}

    async def agent_select(state: dict[str, Any]) -> dict[str, Any]:
        """One tool per turn, picked by embedding similarity; its arguments by the model."""
        conversation: list[BaseMessage] = list(state.get("messages") or [])[-params.history:]
        steps: list[dict[str, Any]] = []
        last = message_text(conversation[-1]) if conversation else ""
        assert selector is not None
        choice = await selector.choose(last) if last.strip() else None
        if choice is not None and choice.label != "none":
            args = await fill(state, conversation, choice.label)
            _observation_text, step = await call_tool(ToolCall(choice.label, args))
            steps.append({**step, "choice": choice.scores})
        answer = await final_answer(state, conversation, steps)
        return await finish(answer, conversation, steps)

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
            if "result" in step and len(params.tools) == 1:
                break  # one tool, and it answered: nothing left to choose
        answer = await final_answer(state, conversation, steps)
        return await finish(answer, conversation, steps)

    async def agent_tools(state: dict[str, Any]) -> dict[str, Any]:
        conversation: list[BaseMessage] = list(state.get("messages") or [])[-params.history:]
        messages: list[BaseMessage] = [
            SystemMessage(f"{system.render(state).strip()}\n\n{tool_text}"), *conversation]
        steps: list[dict[str, Any]] = []
        answer = ""
        while True:
            reply = await model_call(messages)
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
        return await finish(answer or "(no answer)", conversation, steps)

    if params.mode == "react":
        return agent_tools
    return agent_choose if selector is None else agent_select


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
