"""Tool choice of `agent.tools` on a set of questions (`agent_eval_questions.jsonl`).

Each question (18 for the database, 18 for the docs, 10 for the causal dataset, 12 that
need no tool) names the tool a good agent calls first (`none`: it should answer without
one). The agent is the analyst's (every tool the catalogue has, with its resources), with
all its tools in `approve_tools`: the run pauses at its first call with the tool and the
arguments it wrote, which is what is scored — the tool is never run, so this measures the
agent's decision alone, not the tools. A run that ends without pausing chose `none`.

Scored per mode: `choose:embedding` (the default with the bundled models: the tool, or
none, whose description and examples are most similar to the question, by the embedding
model; the chat model writes the arguments), `choose:model` (the chat model names the
tool, then writes the arguments) and `react` (one prompt lists the tools; the reply is a
JSON call or the answer):
  - right tool:  the first call's tool (or none) is the expected one;
  - valid args:  of the calls made, the share whose arguments the tool's args model
                 accepts (and whose text is not empty);
  - seconds per question (model time; the tools do not run);
  - args exact: for the questions that give the arguments that matter (the causal ones:
    kind, treatment, outcome, row), how many calls got all of them.

Any model alias is a flag away: `--model gpt-4o` after adding that `model_name` to the
gateway's models.yaml (LiteLLM's format; `--models FILE` or ~/.flowloom/models.yaml).

    $ LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 nice -n 10 \\
      .venv/bin/python benchmarks/agent_eval.py --out /tmp/agent_eval.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from pydantic import ValidationError

from flowloom.backends.context import default_build_context
from flowloom.flows.compiler import compile_flow
from flowloom.flows.loader import examples_dir, load_flow
from flowloom.tools.catalog import TOOL_TYPES
from flowloom.tools.causal_tool import demo_dir

HERE = Path(__file__).parent
DEMO = demo_dir()


def agent_doc(mode: str, model: str) -> dict[str, Any]:
    """The analyst example's agent in `mode` (`react`, or `choose:<select>`), every call
    paused for approval."""
    doc = json.loads((examples_dir() / "analyst.json").read_text())
    params = doc["nodes"][0]["params"]
    kind, _, select = mode.partition(":")
    params.update(mode=kind, model=model,
                  approve_tools=[t["name"] for t in params["tools"]])
    if select:
        params["select"] = select
    return doc


def valid_args(tool: str, args: Any) -> bool:
    if tool not in TOOL_TYPES or not isinstance(args, dict):
        return False
    try:
        parsed = TOOL_TYPES[tool].args.model_validate(args)
    except ValidationError:
        return False
    if tool == "causal_query":  # columns of the demo dataset; the kinds that set one need it
        columns = {n for line in (DEMO / "churn.graph").read_text().splitlines()
                   if "->" in line and not line.startswith("#") for n in
                   (p.strip() for p in line.split("->"))}
        needs_treatment = parsed.kind in ("effect", "intervene", "counterfactual", "refute")
        needs_unit = parsed.kind in ("counterfactual", "abduce")
        return (parsed.outcome in columns
                and (parsed.treatment in columns if needs_treatment else True)
                and (parsed.unit is not None if needs_unit else True))
    return all(str(v).strip() for v in parsed.model_dump().values() if v is not None)


async def decide(graph: Any, question: str) -> tuple[str, dict[str, Any] | None, float]:
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    started = time.perf_counter()
    out = await graph.ainvoke({"messages": [("user", question)]}, config)
    seconds = time.perf_counter() - started
    pending = out.get("__interrupt__") or []
    if not pending:
        return "none", None, seconds
    value = pending[0].value
    return value["tool"], value["args"], seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=HERE / "agent_eval_questions.jsonl")
    parser.add_argument("--modes", default="choose:embedding,choose:model,react")
    parser.add_argument("--model", default="local", help="gateway model alias")
    parser.add_argument("--models", type=Path, default=None, help="models.yaml to use")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="per-question JSONL")
    args = parser.parse_args()

    questions = [json.loads(line) for line in args.questions.read_text().splitlines()
                 if line.strip()]
    if args.limit:
        questions = questions[:args.limit]
    ctx = default_build_context(models_config=args.models)
    rows: list[dict[str, Any]] = []
    for mode in args.modes.split(","):
        flow = load_flow(agent_doc(mode, args.model)).flow
        graph = compile_flow(flow, ctx=ctx, checkpointer=InMemorySaver())
        await decide(graph, "Hello")  # warm the model service (not scored)
        for item in questions:
            tool, call_args, seconds = await decide(graph, item["q"])
            want = item.get("args")  # the arguments that matter, where the set gives them
            rows.append({"mode": mode, "q": item["q"], "expected": item["tool"],
                         "tool": tool, "args": call_args, "seconds": round(seconds, 2),
                         "right": tool == item["tool"],
                         "valid_args": None if tool == "none" else valid_args(tool, call_args),
                         "args_right": None if want is None else bool(
                             tool == item["tool"] and isinstance(call_args, dict)
                             and all(call_args.get(k) == v for k, v in want.items()))})
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    if args.out:
        args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    expected = Counter(q["tool"] for q in questions)
    print(f"\n{len(questions)} questions: "
          + ", ".join(f"{n} {tool}" for tool, n in sorted(expected.items()))
          + f"; model {args.model}")
    print(f"{'mode':16} {'right tool':>12} " + " ".join(f"{t:>10}" for t in sorted(expected))
          + f" {'valid args':>12} {'s/question':>11} {'args exact':>12}")
    for mode in args.modes.split(","):
        mine = [r for r in rows if r["mode"] == mode]
        per_tool = [sum(r["right"] for r in mine if r["expected"] == t) / expected[t]
                    for t in sorted(expected)]
        calls = [r for r in mine if r["valid_args"] is not None]
        valid = sum(r["valid_args"] for r in calls) / len(calls) if calls else 0.0
        right = sum(r["right"] for r in mine) / len(mine)
        graded = [r for r in mine if r["args_right"] is not None]
        exact = (f" {sum(r['args_right'] for r in graded)}/{len(graded)}" if graded else "")
        print(f"{mode:16} {right:>11.1%} " + " ".join(f"{p:>10.1%}" for p in per_tool)
              + f" {valid:>11.1%} {statistics.mean(r['seconds'] for r in mine):>11.2f}"
              + f" {exact:>12}")
        confusion = Counter((r["expected"], r["tool"]) for r in mine if not r["right"])
        if confusion:
            print("                 wrong: " + ", ".join(f"{e}→{t} ×{n}"
                                                for (e, t), n in confusion.most_common()))


if __name__ == "__main__":
    asyncio.run(main())
