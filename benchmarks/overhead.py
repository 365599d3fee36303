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


def _graph_line(label: str, res: dict[str, float]) -> str:
    base = res["langgraph"]
    return (f"{label}: langgraph {fmt_ms(base)}, flowloom {fmt_ms(res['flowloom'])}, ratio "
            f"{res['flowloom'] / base:.3f} (goal <= 1.05); noise floor: a second hand-written "
            f"copy {res['langgraph-copy'] / base:.3f}")


async def bench_graphs(quick: bool) -> list[str]:
    """A flowloom flow vs the same graph written by hand (and vs a second hand-written
    copy, so the line shows how much of a ratio is noise)."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    flow = load_flow(FLOW).flow
    n, rounds = (100, 5) if quick else (300, 15)
    ours, theirs, copy = compile_flow(flow), hand_written(), hand_written()
    assert await ours.ainvoke({}) == await theirs.ainvoke({}) == {"a": "A", "b": "B", "c": "C"}
    res = await compare_async(
        {"langgraph": lambda: theirs.ainvoke({}), "flowloom": lambda: ours.ainvoke({}),
         "langgraph-copy": lambda: copy.ainvoke({})},
        n=n, rounds=rounds,
    )
    lines = [_graph_line("3 pure nodes, no checkpointer", res)]
    with tempfile.TemporaryDirectory() as tmp:
        async with AsyncSqliteSaver.from_conn_string(f"{tmp}/a.sqlite") as s1, \
                AsyncSqliteSaver.from_conn_string(f"{tmp}/b.sqlite") as s2, \
                AsyncSqliteSaver.from_conn_string(f"{tmp}/c.sqlite") as s3:
            ours, theirs, copy = (compile_flow(flow, checkpointer=s1), hand_written(s2),
                                  hand_written(s3))
            counter = iter(range(10**9))

            def cfg() -> Any:
                return {"configurable": {"thread_id": str(next(counter) % 50)}}

            res = await compare_async(
                {"langgraph": lambda: theirs.ainvoke({}, cfg()),
                 "flowloom": lambda: ours.ainvoke({}, cfg()),
                 "langgraph-copy": lambda: copy.ainvoke({}, cfg())},
                n=max(n // 5, 20), rounds=rounds * 2,
            )
    lines.append(_graph_line("3 pure nodes, SQLite checkpointer on disk", res))
    return lines


_FAKE_SERVER = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
import uvicorn
from tests.backends.conftest import FakeOpenAI, make_app

server = FakeOpenAI(host="127.0.0.1", port=0)
server.requests = type("NoLog", (), {"append": staticmethod(lambda item: None)})()
uv = uvicorn.Server(uvicorn.Config(make_app(server), host="127.0.0.1", port=0,
                                   log_level="warning", lifespan="off", access_log=False))

async def main():
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        await asyncio.sleep(0.01)
    print(uv.servers[0].sockets[0].getsockname()[1], flush=True)
    await task

asyncio.run(main())
"""


async def bench_gateway(quick: bool) -> list[str]:
    """Same local OpenAI-compatible server (own process), three ways of calling it."""
    import subprocess

    import httpx
    import litellm

    from flowloom.backends.gateway import Gateway, load_gateway_config
    from flowloom.backends.gateway.routes import plan_deployments

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", _FAKE_SERVER, str(root)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base = f"http://127.0.0.1:{int(proc.stdout.readline())}/ok/v1"
        # the shipped config, pointed at the fake server; the bare Router gets exactly the
        # model list and settings the gateway hands LiteLLM
        os.environ["FLOWLOOM_MODEL_URL"] = base
        config = load_gateway_config(root / "backends" / "models.yaml")
        gateway = Gateway(config)
        router = litellm.Router(
            model_list=[p.entry for p in plan_deployments(config)],
            **config.router_settings.router_kwargs(),
        )
        messages = [{"role": "user", "content": "Hi"}]
        async with httpx.AsyncClient() as client:

            async def direct() -> object:
                r = await client.post(f"{base}/chat/completions",
                                      json={"model": "local", "messages": messages},
                                      headers={"Authorization": "Bearer sk-local"})
                return r.json()

            res = await compare_async(
                {"http": direct,
                 "litellm": lambda: router.acompletion(model="local", messages=messages),
                 "flowloom": lambda: gateway.acompletion("local", messages)},
                n=20 if quick else 50, rounds=5 if quick else 10,
            )
    finally:
        proc.terminate()
        proc.wait(10)
    return [
        f"chat call to a local OpenAI-compatible server: direct HTTP {fmt_ms(res['http'])}, "
        f"bare LiteLLM Router {fmt_ms(res['litellm'])}, flowloom gateway "
        f"{fmt_ms(res['flowloom'])}",
        f"  LiteLLM adds {fmt_ms(res['litellm'] - res['http'])} over HTTP; flowloom adds "
        f"{fmt_ms(res['flowloom'] - res['litellm'])} over LiteLLM (goal < 1 ms), ratio "
        f"{res['flowloom'] / res['litellm']:.3f}",
    ]


async def bench_model(quick: bool) -> list[str]:
    """Time to first token and tokens/s of the bundled model, streamed through the
    gateway and, as the baseline, straight from the model service over HTTP."""
    import json
    import statistics
    import time

    import httpx

    from flowloom.backends.gateway import Gateway, load_gateway_config
    from flowloom.backends.model_launcher import ensure_model_service, stop_started_services
    from flowloom.flows.home import flowloom_home

    home = flowloom_home()
    started = time.perf_counter()
    url = ensure_model_service(home)
    ready_s = time.perf_counter() - started
    root = Path(__file__).resolve().parent.parent
    gateway = Gateway(load_gateway_config(root / "backends" / "models.yaml"), home=home)
    prompt = [{"role": "user", "content": "Write a short paragraph about the history of Paris."}]
    max_tokens = 64 if quick else 128

    async def via_http(client: httpx.AsyncClient) -> tuple[float, float, int]:
        t0 = time.perf_counter()
        first, tokens = 0.0, 0
        body = {"model": "local", "messages": prompt, "max_tokens": max_tokens,
                "temperature": 0, "stream": True}
        async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
                if delta:
                    tokens += 1
                    first = first or time.perf_counter() - t0
        return first, time.perf_counter() - t0, tokens

    async def via_gateway() -> tuple[float, float, int]:
        t0 = time.perf_counter()
        first, tokens = 0.0, 0
        async for chunk in gateway.astream("local", prompt, max_tokens=max_tokens,
                                           temperature=0):
            if chunk.choices and chunk.choices[0].delta.content:
                tokens += 1
                first = first or time.perf_counter() - t0
        return first, time.perf_counter() - t0, tokens

    results: dict[str, list[tuple[float, float, int]]] = {"http": [], "gateway": []}
    try:
        async with httpx.AsyncClient(timeout=300) as client:
            await via_http(client)  # warm-up: the first request maps the model in
            await via_gateway()
            for _ in range(2 if quick else 4):
                results["http"].append(await via_http(client))
                results["gateway"].append(await via_gateway())
    finally:
        stop_started_services(home)
    lines = [f"embedded model service ready in {ready_s:.2f} s "
             f"(threads: $FLOWLOOM_LLAMA_THREADS or cores - 1)"]
    for name, runs in results.items():
        ttft = statistics.median(r[0] for r in runs)
        rate = statistics.median(r[2] / (r[1] - r[0]) for r in runs if r[2] > 1)
        lines.append(f"bundled model streamed via {name}: time to first token "
                     f"{ttft * 1000:.0f} ms, {rate:.1f} tokens/s "
                     f"({statistics.median(r[2] for r in runs)} chunks of max {max_tokens})")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--skip-model", action="store_true", help="skip the embedded model")
    args = parser.parse_args()
    for line in await bench_graphs(args.quick):
        print(line, flush=True)
    for line in await bench_gateway(args.quick):
        print(line, flush=True)
    if not args.skip_model:
        for line in await bench_model(args.quick):
            print(line, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
