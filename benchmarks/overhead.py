"""flowloom's overhead, each figure against its baseline in the same run.

1. A flow of 3 pure-function nodes compiled by flowloom vs the same graph hand-written in
   LangGraph (goal: ratio <= 1.05), bare and with a SQLite checkpointer on disk.
2. A gateway call vs a bare LiteLLM Router call vs a direct HTTP call to the same local
   OpenAI-compatible server (goal: flowloom adds < 1 ms on top of LiteLLM).
3. The embedded model: time to first token and tokens/s, streamed through the gateway.

    python benchmarks/overhead.py [--quick] [--skip-model]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, TypedDict

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DO_NOT_TRACK", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import compare_async, fmt_ms  # noqa: E402

from flowloom.flows.compiler import compile_flow  # noqa: E402
from flowloom.flows.loader import load_flow  # noqa: E402

FLOW = {
    "schema_version": 1, "id": "three", "name": "Three pure nodes",
    "state": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}},
    "nodes": [{"id": n, "type": "state.set@1", "params": {"values": {n: n.upper()}}}
              for n in "abc"],
    "edges": [{"source": "START", "target": "a"}, {"source": "a", "target": "b"},
              {"source": "b", "target": "c"}, {"source": "c", "target": "END"}],
}


def hand_written(checkpointer: Any = None) -> Any:
    from langgraph.graph import END, START, StateGraph

    class State(TypedDict, total=False):
        a: str
        b: str
        c: str

    graph = StateGraph(State)
    graph.add_node("a", lambda s: {"a": "A"})
    graph.add_node("b", lambda s: {"b": "B"})
    graph.add_node("c", lambda s: {"c": "C"})
    graph.add_edge(START, "a")
    graph.add_edge("a", "b")
    graph.add_edge("b", "c")
    graph.add_edge("c", END)
    return graph.compile(checkpointer=checkpointer)


async def bench_graphs(quick: bool) -> list[str]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    flow = load_flow(FLOW).flow
    n, rounds = (100, 5) if quick else (300, 15)
    lines = []
    ours, theirs = compile_flow(flow), hand_written()
    assert await ours.ainvoke({}) == await theirs.ainvoke({}) == {"a": "A", "b": "B", "c": "C"}
    res = await compare_async(
        {"langgraph": lambda: theirs.ainvoke({}), "flowloom": lambda: ours.ainvoke({})},
        n=n, rounds=rounds,
    )
    lines.append(f"3 pure nodes, no checkpointer: langgraph {fmt_ms(res['langgraph'])}, "
                 f"flowloom {fmt_ms(res['flowloom'])}, ratio "
                 f"{res['flowloom'] / res['langgraph']:.3f} (goal <= 1.05)")
    with tempfile.TemporaryDirectory() as tmp:
        async with AsyncSqliteSaver.from_conn_string(f"{tmp}/a.sqlite") as s1, \
                AsyncSqliteSaver.from_conn_string(f"{tmp}/b.sqlite") as s2:
            ours, theirs = compile_flow(flow, checkpointer=s1), hand_written(s2)
            counter = iter(range(10**9))

            def cfg() -> dict[str, Any]:
                return {"configurable": {"thread_id": str(next(counter) % 50)}}

            res = await compare_async(
                {"langgraph": lambda: theirs.ainvoke({}, cfg()),
                 "flowloom": lambda: ours.ainvoke({}, cfg())},
                n=max(n // 5, 20), rounds=rounds,
            )
    lines.append(f"3 pure nodes, SQLite checkpointer on disk: langgraph "
                 f"{fmt_ms(res['langgraph'])}, flowloom {fmt_ms(res['flowloom'])}, ratio "
                 f"{res['flowloom'] / res['langgraph']:.3f} (goal <= 1.05)")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--skip-model", action="store_true", help="skip the embedded model")
    args = parser.parse_args()
    for line in await bench_graphs(args.quick):
        print(line, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
