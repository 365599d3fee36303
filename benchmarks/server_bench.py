"""flowloom's API server vs bare LangGraph and the reference LangGraph in-memory server.

    /work/main/.venv/bin/python benchmarks/server_bench.py \
        [--only reference|bare|flowloom|postgres] [--concurrency 16 64] [--quick]

The floor is bare LangGraph: the very graph the servers serve (the reference's
`graph.py`, imported into this process) driven by `await graph.ainvoke(...)` (or
`astream`), no HTTP, an `InMemorySaver` for the workloads on a thread. flowloom's overhead
per run is its sequential p50 minus bare LangGraph's (goal < 2 ms); it includes
everything a server adds: the client SDK, HTTP over loopback, the server's bookkeeping
and its checkpointer on disk.

flowloom is measured twice: on its default SQLite and on Postgres (`--postgres URL`, a
database of its own made there for the run; the Postgres/SQLite ratio goal is >= 0.7),
and beside Aegra (`aegra-api`, an open LangGraph-protocol server on Postgres, in its own
Python 3.12 venv; goal: flowloom on Postgres >= 3x its runs/s).

Both servers serve the same two-node graph (START -> a -> b -> END, input `{"x": 1}`,
answer `{"x": 4, "log": ["a", "b"]}`) and are driven by the same client,
`langgraph_sdk.get_client` (async). Workloads: `runs.wait` without a thread, `runs.wait`
on a thread, `runs.stream` (stream_mode "values"), each one client at a time and then
with 16 and 64 concurrent clients (`--concurrency`). Every answer is checked, warm-up and
timed runs alike. Goal: flowloom's runs/s >= 3x every other server's at 16 clients.

The reference (`langgraph dev`, langgraph-cli[inmem]) runs from its own venv,
`.bench/ref-venv`, so it never touches the project's venv:

    python3 -m venv .bench/ref-venv && .bench/ref-venv/bin/pip install "langgraph-cli[inmem]"

It is only run, never imported or copied (Elastic License). The servers run one at a
time, so neither competes with the other for the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

REPO = Path(__file__).resolve().parent.parent
REF_VENV = REPO / ".bench" / "ref-venv"
AEGRA_VENV = REPO / ".bench" / "aegra-venv"
MAIN_PYTHON = REPO / ".venv" / "bin" / "python"
GRAPH_ID = "two"
INPUT = {"x": 1}
EXPECTED = {"x": 4, "log": ["a", "b"]}
READY_PREFIX = "FLOWLOOM_SERVER_READY "
START_TIMEOUT_S = 120.0

Stop = Callable[[], Awaitable[None]]

REF_GRAPH_PY = '''\
import operator
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    x: int
    log: Annotated[list[str], operator.add]


def a(state: State) -> dict:
    return {"x": state["x"] + 1, "log": ["a"]}


def b(state: State) -> dict:
    return {"x": state["x"] * 2, "log": ["b"]}


builder = StateGraph(State)
builder.add_node("a", a)
builder.add_node("b", b)
builder.add_edge(START, "a")
builder.add_edge("a", "b")
builder.add_edge("b", END)
graph = builder.compile()
'''

# state.set@1 writes constants only, so the flowloom nodes write the values the
# reference computes from input {"x": 1}: a -> x=2, b -> x=4.
FLOWLOOM_FLOW: dict[str, Any] = {
    "schema_version": 1,
    "id": GRAPH_ID,
    "name": "Two steps",
    "description": "Benchmark graph: two state.set nodes in a row.",
    "state": {
        "x": {"type": "integer"},
        "log": {"type": "array", "reducer": "append"},
    },
    "nodes": [
        {"id": "a", "type": "state.set@1", "params": {"values": {"x": 2, "log": "a"}}},
        {"id": "b", "type": "state.set@1", "params": {"values": {"x": 4, "log": "b"}}},
    ],
    "edges": [
        {"source": "START", "target": "a"},
        {"source": "a", "target": "b"},
        {"source": "b", "target": "END"},
    ],
}


class ServerUnavailable(Exception):
    """A server could not be started; the message says why."""


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGGRAPH_API_KEY"}}
    env.update({
        "LANGSMITH_TRACING": "false",
        "LANGSMITH_TRACING_V2": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stopper(proc: asyncio.subprocess.Process, extra: list[asyncio.Task[None]]) -> Stop:
    async def stop() -> None:
        """SIGTERM the whole process group, wait until every member is gone, then SIGKILL."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        for task in extra:
            task.cancel()
    return stop


async def _wait_ok(url: str, proc: asyncio.subprocess.Process, log: Path,
                   path: str = "/ok") -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise ServerUnavailable(f"exited with {proc.returncode}: {_last_line(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}{path}")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise ServerUnavailable(f"GET {url}/ok not answered in {START_TIMEOUT_S:.0f} s")


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


async def launch_reference(project: Path) -> tuple[str, Stop]:
    """`langgraph dev` in `project`, from its own venv; returns once GET /ok answers."""
    exe = REF_VENV / "bin" / "langgraph"
    if not exe.exists():
        raise ServerUnavailable(f"{exe} missing; install langgraph-cli[inmem] there")
    log = project / "server.log"
    reason = "not started"
    for _ in range(3):  # the free port can be taken between probe and bind
        port = free_port()
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                str(exe), "dev", "--no-browser", "--no-reload",
                "--host", "127.0.0.1", "--port", str(port),
                cwd=project, env=offline_env(), stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        stop = _stopper(proc, [])
        url = f"http://127.0.0.1:{port}"
        try:
            await _wait_ok(url, proc, log)
            return url, stop
        except ServerUnavailable as exc:
            await stop()
            reason = str(exc)
    raise ServerUnavailable(reason)


async def launch_aegra(project: Path, database: str) -> tuple[str, Stop]:
    """Aegra (`aegra-api`, an open LangGraph-protocol server on Postgres) serving the
    reference graph from `project`, from its own Python 3.12 venv (`.bench/aegra-venv`):

        python3.12 -m venv .bench/aegra-venv && .bench/aegra-venv/bin/pip install aegra-api
    """
    python = AEGRA_VENV / "bin" / "python"
    if not python.exists():
        raise ServerUnavailable(f"{python} missing; install aegra-api there")
    (project / "aegra.json").write_text(json.dumps({"graphs": {GRAPH_ID: "./graph.py:graph"}}))
    log = project / "aegra.log"
    port = free_port()
    env = {**offline_env(), "DATABASE_URL": database, "PORT": str(port), "HOST": "127.0.0.1",
           "AEGRA_CONFIG": str(project / "aegra.json"), "LOG_LEVEL": "WARNING"}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(python), "-m", "aegra_api.main", cwd=project, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
    stop = _stopper(proc, [])
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ok(url, proc, log, path="/health")
    except BaseException:
        await stop()
        raise
    return url, stop


async def launch_flowloom(flow_path: Path, database: str | None = None) -> tuple[str, Stop]:
    """`flowloom serve` on the flow's folder (on `database`: default the data dir's SQLite);
    returns on its FLOWLOOM_SERVER_READY line."""
    log = flow_path.parent.parent / f"flowloom-server-{'pg' if database else 'sqlite'}.log"
    proc = await asyncio.create_subprocess_exec(
        str(MAIN_PYTHON), "-m", "flowloom.ui.cli", "serve",
        "--port", "0", "--flows", str(flow_path.parent),
        *(["--database", database] if database else []),
        cwd=REPO, env=offline_env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True)
    assert proc.stdout is not None
    stdout = proc.stdout
    found: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def drain() -> None:  # keep reading so a chatty server never blocks on the pipe
        with log.open("wb") as out:
            async for raw in stdout:
                out.write(raw)
                out.flush()
                line = raw.decode(errors="replace").strip()
                if line.startswith(READY_PREFIX) and not found.done():
                    found.set_result(line[len(READY_PREFIX):].strip().rstrip("/"))
        if not found.done():
            found.set_exception(ServerUnavailable(
                f"exited with {await proc.wait()}: {_last_line(log)}"))

    drainer = asyncio.create_task(drain())
    stop = _stopper(proc, [drainer])
    try:
        url = await asyncio.wait_for(asyncio.shield(found), START_TIMEOUT_S)
        await _wait_ok(url, proc, log)
    except TimeoutError:
        await stop()
        raise ServerUnavailable(f"no {READY_PREFIX.strip()} line in {START_TIMEOUT_S:.0f} s") \
            from None
    except BaseException:
        await stop()
        raise
    return url, stop


@contextlib.asynccontextmanager
async def _postgres(admin_url: str) -> AsyncIterator[str]:
    """A database of its own on the Postgres server of `admin_url`, dropped afterwards."""
    import uuid

    import psycopg

    name = f"fl_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# ---------------------------------------------------------------- workloads


def check(values: Any, *, on_thread: bool = False) -> None:
    """Raise unless `values` is the graph's answer (on a thread, `log` keeps growing)."""
    ok = isinstance(values, dict) and values.get("x") == EXPECTED["x"]
    log = values.get("log") if isinstance(values, dict) else None
    if on_thread:
        ok = ok and isinstance(log, list) and len(log) % 2 == 0 and log[-2:] == EXPECTED["log"]
    else:
        ok = ok and log == EXPECTED["log"]
    if not ok:
        raise RuntimeError(f"wrong answer: {values!r}, expected {EXPECTED!r}")


Call = Callable[[], Awaitable[None]]


async def make_call(kind: str, client: LangGraphClient) -> Call:
    """One run of workload `kind` on `client`, checked; a thread is created up front."""
    if kind == "wait":
        async def wait() -> None:
            check(await client.runs.wait(None, GRAPH_ID, input=INPUT))
        return wait
    if kind == "wait-thread":
        thread_id = (await client.threads.create())["thread_id"]

        async def wait_thread() -> None:
            check(await client.runs.wait(thread_id, GRAPH_ID, input=INPUT), on_thread=True)
        return wait_thread
    if kind == "wait-thread-exit":
        thread_id = (await client.threads.create())["thread_id"]

        async def wait_thread_exit() -> None:
            check(await client.runs.wait(thread_id, GRAPH_ID, input=INPUT, durability="exit"),
                  on_thread=True)
        return wait_thread_exit

    async def stream() -> None:
        last: Any = None
        async for part in client.runs.stream(None, GRAPH_ID, input=INPUT, stream_mode="values"):
            if part.event == "values":
                last = part.data
            elif part.event == "error":
                raise RuntimeError(f"stream error: {part.data!r}")
        check(last)
    return stream


@dataclass(frozen=True)
class Result:
    runs: int
    seconds: float
    latencies: list[float]
    client_cpu: float = float("nan")  # CPU seconds this (client) process spent, in all

    @property
    def rate(self) -> float:
        return self.runs / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)  # nearest rank
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


async def timed(call: Call, latencies: list[float]) -> None:
    start = time.perf_counter()
    await call()
    latencies.append(time.perf_counter() - start)


@contextlib.asynccontextmanager
async def clients(url: str, n: int) -> AsyncIterator[list[LangGraphClient]]:
    made = [get_client(url=url, api_key=None) for _ in range(n)]
    try:
        yield made
    finally:
        for client in made:
            await client.aclose()


async def drive(calls: list[Call], *, runs: int, warmup: int) -> Result:
    """`warmup` untimed rounds of every call, then `runs` timed runs shared by the calls."""
    for _ in range(warmup):
        await asyncio.gather(*(call() for call in calls))
    latencies: list[float] = []
    remaining = runs

    async def worker(call: Call) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await timed(call, latencies)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(call) for call in calls))
    return Result(runs, time.perf_counter() - start, latencies, time.process_time() - cpu)


async def run_workload(url: str, kind: str, *, runs: int, concurrency: int,
                       warmup: int) -> Result:
    async with clients(url, concurrency) as made:
        calls = [await make_call(kind, client) for client in made]
        return await drive(calls, runs=runs, warmup=warmup)


# ------------------------------------------------------- bare LangGraph (the floor)


def load_graph_module(path: Path) -> ModuleType:
    """Import the reference's `graph.py` (the graph the servers serve) into this process."""
    spec = importlib.util.spec_from_file_location("server_bench_graph", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_bare_calls(kind: str, module: ModuleType, concurrency: int) -> list[Call]:
    """`concurrency` callers of workload `kind` on the graph in-process, no HTTP. On a
    thread: one `InMemorySaver` shared by the callers, one thread per caller, as on the
    servers (one thread per client)."""
    from langgraph.checkpoint.memory import InMemorySaver

    graph: Any = module.graph
    if kind == "wait":
        async def wait() -> None:
            check(await graph.ainvoke(INPUT))
        return [wait for _ in range(concurrency)]
    if kind in ("wait-thread", "wait-thread-exit"):
        saved: Any = module.builder.compile(checkpointer=InMemorySaver())
        durability = "exit" if kind == "wait-thread-exit" else None

        def on_thread(n: int) -> Call:
            config = {"configurable": {"thread_id": f"bare-{kind}-{n}"}}

            async def wait_thread() -> None:
                check(await saved.ainvoke(INPUT, config, durability=durability),
                      on_thread=True)
            return wait_thread
        return [on_thread(n) for n in range(concurrency)]

    async def stream() -> None:
        last: Any = None
        async for part in graph.astream(INPUT, stream_mode="values"):
            last = part
        check(last)
    return [stream for _ in range(concurrency)]


# ---------------------------------------------------------------- driver

KINDS = {"wait": "runs.wait, no thread", "wait-thread": "runs.wait on a thread",
         "wait-thread-exit": "runs.wait on a thread, durability=exit",
         "stream": "runs.stream values"}
BARE = "bare-langgraph"
FLOWLOOMS = ("flowloom", "flowloom-postgres")
OTHER_SERVERS = ("reference", "aegra")
OVERHEAD_GOAL_MS = 2.0
OVERHEAD_KINDS = ("wait", "wait-thread")  # the overhead goal's workloads
RATIO_GOAL = 3.0
RATIO_GOAL_CLIENTS = 16


@dataclass
class Side:
    name: str
    ready_s: float = float("nan")
    results: dict[str, Result] | None = None
    unavailable: str | None = None
    failed: dict[str, str] = field(default_factory=dict)  # workload/clients -> why

    def get(self, kind: str, n_clients: int) -> Result | None:
        return (self.results or {}).get(f"{kind}/{n_clients}")


@dataclass(frozen=True)
class Plan:
    seq_runs: int
    conc_runs: Callable[[int], int]  # clients -> runs in all
    concurrency: list[int]
    warmup: int

    def levels(self) -> list[tuple[int, int]]:
        return [(1, self.seq_runs), *((n, self.conc_runs(n)) for n in self.concurrency)]


async def measure(name: str, launch: Callable[[], Awaitable[tuple[str, Stop]]],
                  plan: Plan) -> Side:
    side = Side(name)
    start = time.perf_counter()
    try:
        url, stop = await launch()
    except ServerUnavailable as exc:
        side.unavailable = str(exc)
        print(f"  {name}: not available: {exc}", file=sys.stderr, flush=True)
        return side
    side.ready_s = time.perf_counter() - start
    try:
        results: dict[str, Result] = {}
        for conc, runs in plan.levels():
            for kind in KINDS:
                key = f"{kind}/{conc}"
                print(f"  {name}: {kind} x{conc}, {runs} runs ...", file=sys.stderr, flush=True)
                try:
                    results[key] = await run_workload(
                        url, kind, runs=runs, concurrency=conc, warmup=plan.warmup)
                except Exception as exc:  # a server failing under load is a result, too
                    side.failed[key] = f"{type(exc).__name__}: {exc}"[:160]
                    print(f"  {name}: {kind} x{conc} failed: {side.failed[key]}",
                          file=sys.stderr, flush=True)
        side.results = results
    finally:
        await stop()
    return side


async def measure_bare(graph_py: Path, plan: Plan) -> Side:
    """The floor: the servers' graph in this process, `ainvoke`/`astream`, no HTTP."""
    side = Side(BARE)
    module = load_graph_module(graph_py)
    results: dict[str, Result] = {}
    for conc, runs in plan.levels():
        for kind in KINDS:
            print(f"  {BARE}: {kind} x{conc}, {runs} runs ...", file=sys.stderr, flush=True)
            results[f"{kind}/{conc}"] = await drive(
                make_bare_calls(kind, module, conc), runs=runs, warmup=plan.warmup)
    side.results = results
    return side


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "NOT MET"


def report(sides: list[Side], concurrency: list[int]) -> None:
    for side in sides:
        if side.unavailable is not None:
            print(f"{side.name} server not available: {side.unavailable}")
    ready = [s for s in sides if s.results is not None]
    if not ready:
        return
    servers = [s for s in ready if not math.isnan(s.ready_s)]
    if servers:
        print("time to ready (process start -> GET /ok 200): "
              + "; ".join(f"{s.name} {s.ready_s:.2f} s" for s in servers))
    print()
    print("| workload | clients | server | runs | runs/s | p50 ms | p99 ms | client CPU ms/run |")
    print("|---|---|---|---|---|---|---|---|")
    for conc in (1, *concurrency):
        for kind, label in KINDS.items():
            for side in ready:
                res = side.get(kind, conc)
                if res is None:
                    why = side.failed.get(f"{kind}/{conc}", "not run").replace("|", "/")
                    print(f"| {label} | {conc} | {side.name} | failed: {why} | | | | |")
                    continue
                print(f"| {label} | {conc} | {side.name} | {res.runs} | {res.rate:.1f} "
                      f"| {res.pct(50):.1f} | {res.pct(99):.1f} "
                      f"| {res.client_cpu / res.runs * 1000:.2f} |")
    if any(s.name == BARE for s in ready):
        print(f"({BARE}: the graph in the benchmark's own process, no HTTP; its 'client CPU' "
              "is the whole run's)")

    print()
    print("summary: sequential p50 and runs/s by concurrent clients")
    print()
    print("| server | workload | sequential p50 ms | "
          + " | ".join(f"runs/s, {n} clients" for n in concurrency) + " |")
    print("|---|---|---|" + "---|" * len(concurrency))
    for side in ready:
        for kind, label in KINDS.items():
            cells = []
            for n in (1, *concurrency):
                res = side.get(kind, n)
                cells.append("failed" if res is None
                             else f"{res.pct(50):.2f}" if n == 1 else f"{res.rate:.1f}")
            print(f"| {side.name} | {label} | " + " | ".join(cells) + " |")

    by_name = {s.name: s for s in ready}
    if {"flowloom-postgres", "aegra"} <= by_name.keys():
        pg, aegra = by_name["flowloom-postgres"], by_name["aegra"]
        print()
        for key, res in (pg.results or {}).items():
            other = (aegra.results or {}).get(key)
            if other is None:
                continue
            kind, n_clients = key.split("/")
            print(f"flowloom Postgres/Aegra {KINDS[kind]}, {n_clients} client(s): runs/s "
                  f"{res.rate / other.rate:.2f} (goal >= 3)")
    if {"flowloom", "flowloom-postgres"} <= by_name.keys():
        sqlite, pg = by_name["flowloom"], by_name["flowloom-postgres"]
        print()
        for key, res in (pg.results or {}).items():
            other = (sqlite.results or {}).get(key)
            if other is None:
                continue
            kind, n_clients = key.split("/")
            print(f"flowloom Postgres/SQLite {KINDS[kind]}, {n_clients} client(s): runs/s "
                  f"{res.rate / other.rate:.2f} (goal >= 0.70)")
    if {"flowloom", "reference"} <= by_name.keys():
        fl, ref = by_name["flowloom"], by_name["reference"]
        print()
        print(f"flowloom/reference time to ready: {fl.ready_s / ref.ready_s:.2f}")
        for key, res in (fl.results or {}).items():
            base = (ref.results or {}).get(key)
            if base is None:
                continue
            kind, n_clients = key.split("/")
            print(f"flowloom/reference {KINDS[kind]}, {n_clients} client(s): "
                  f"runs/s {res.rate / base.rate:.2f}, p50 {res.pct(50) / base.pct(50):.2f}, "
                  f"p99 {res.pct(99) / base.pct(99):.2f}")
        # The client is one Python process: at best one core. Its own CPU per run bounds
        # the runs/s it can drive against any server, however fast.
        print()
        for key, res in (fl.results or {}).items():
            kind, n_clients = key.split("/")
            base = (ref.results or {}).get(key)
            if n_clients == "1" or base is None:
                continue
            ceiling = res.runs / res.client_cpu
            print(f"client ceiling {KINDS[kind]}, {n_clients} clients: "
                  f"{res.client_cpu / res.runs * 1000:.2f} ms of client CPU per run -> at most "
                  f"{ceiling:.0f} runs/s with a whole core and a server costing nothing = "
                  f"{ceiling / base.rate:.2f}x the reference")
    report_goals(sides, by_name, concurrency)


def report_goals(sides: list[Side], by_name: dict[str, Side], concurrency: list[int]) -> None:
    """Issue 21's goals: overhead over bare LangGraph < 2 ms a run (sequential p50s), and
    flowloom's runs/s >= 3x every other server's at 16 clients."""
    print()
    print("goal checks")
    flowlooms = [by_name[n] for n in FLOWLOOMS if n in by_name]
    if not flowlooms:
        print("  no flowloom side measured: nothing to check")
        return
    bare = by_name.get(BARE)
    print()
    if bare is None:
        print(f"  overhead over bare LangGraph: not checked ({BARE} not measured)")
    for fl in flowlooms if bare is not None else []:
        assert bare is not None
        met = True
        for kind, label in KINDS.items():
            f, b = fl.get(kind, 1), bare.get(kind, 1)
            if f is None or b is None:
                print(f"  {fl.name} overhead, {label}: not measured")
                met = met and kind not in OVERHEAD_KINDS
                continue
            over = f.pct(50) - b.pct(50)
            ok = over < OVERHEAD_GOAL_MS
            if kind in OVERHEAD_KINDS:
                met = met and ok
            print(f"  {fl.name} overhead over bare LangGraph, {label}: p50 {f.pct(50):.2f} - "
                  f"{b.pct(50):.2f} = {over:.2f} ms per run (goal < {OVERHEAD_GOAL_MS:g} ms): "
                  f"{_verdict(ok)}; client process CPU {f.client_cpu / f.runs * 1000:.2f} "
                  f"ms/run of it")
        print(f"  => {fl.name} overhead < {OVERHEAD_GOAL_MS:g} ms per run "
              f"({', '.join(KINDS[k] for k in OVERHEAD_KINDS)}): {_verdict(met)}")

    print()
    missing = [s for s in sides if s.name in OTHER_SERVERS and s.results is None]
    for side in missing:
        print(f"  {side.name} not measured ({side.unavailable}): not in the ratios below")
    others = [by_name[n] for n in OTHER_SERVERS if n in by_name]
    if not others:
        print("  runs/s ratios: no other server measured")
        return
    if RATIO_GOAL_CLIENTS not in concurrency:
        print(f"  runs/s goal is at {RATIO_GOAL_CLIENTS} clients, not measured "
              f"(--concurrency {' '.join(map(str, concurrency))})")
    for fl in flowlooms:
        met = RATIO_GOAL_CLIENTS in concurrency
        worst = math.inf
        for n in concurrency:
            for kind, label in KINDS.items():
                for other in others:
                    f, o = fl.get(kind, n), other.get(kind, n)
                    if f is None or o is None:
                        print(f"  {fl.name}/{other.name} {label}, {n} clients: not measured")
                        if n == RATIO_GOAL_CLIENTS and f is None:
                            met = False
                        continue
                    ratio = f.rate / o.rate
                    mark = "(not a goal)"
                    if n == RATIO_GOAL_CLIENTS:
                        ok = ratio >= RATIO_GOAL
                        met, worst = met and ok, min(worst, ratio)
                        mark = f"(goal >= {RATIO_GOAL:g}): {_verdict(ok)}"
                    print(f"  {fl.name}/{other.name} runs/s, {label}, {n} clients: "
                          f"{f.rate:.1f}/{o.rate:.1f} = {ratio:.2f} {mark}")
        against = ", ".join(o.name for o in others)
        print(f"  => {fl.name} runs/s >= {RATIO_GOAL:g}x every other server measured "
              f"({against}) at {RATIO_GOAL_CLIENTS} clients: {_verdict(met)}"
              + (f" (lowest ratio {worst:.2f})" if math.isfinite(worst) else ""))


async def amain(args: argparse.Namespace) -> None:
    concurrency: list[int] = args.concurrency
    per_client = 4 if args.quick else 20

    def conc_runs(n: int) -> int:
        if args.concurrent_runs is not None:
            return int(args.concurrent_runs)
        return max(64 if args.quick else 320, (per_client if n <= 16 else per_client // 2) * n)

    plan = Plan(args.runs, conc_runs, concurrency, args.warmup)
    ref_plan = Plan(args.ref_runs, conc_runs, concurrency, args.warmup)
    print(f"graph: START -> a -> b -> END, input {INPUT}, expected {EXPECTED}. reference "
          "nodes compute x+1 and x*2; flowloom's are state.set@1 writing the constants "
          "x=2 then x=4 (state.set can't do arithmetic); log appends 'a', 'b' on both.")
    print(f"sequential: flowloom and bare LangGraph {args.runs} runs, reference and Aegra "
          f"{args.ref_runs} runs per workload (reference takes ~1 s a run); concurrent: "
          + ", ".join(f"{n} clients {conc_runs(n)} runs" for n in concurrency)
          + " in all per workload, one thread per client on 'on a thread'. "
          f"{args.warmup} warm-up run(s) per client, untimed. "
          "p99 is nearest-rank (the max below 100 runs).")
    print("bare LangGraph: the reference's graph.py imported here, graph.ainvoke/astream, "
          "an InMemorySaver on a thread; no HTTP, no server.")
    with tempfile.TemporaryDirectory(prefix="server_bench_") as tmp:
        root = Path(tmp)
        sides: list[Side] = []
        if args.only in (None, "reference"):
            project = root / "reference"
            project.mkdir()
            (project / "langgraph.json").write_text(json.dumps(
                {"dependencies": ["."], "graphs": {GRAPH_ID: "./graph.py:graph"}}))
            (project / "graph.py").write_text(REF_GRAPH_PY)
            sides.append(await measure(
                "reference", lambda: launch_reference(project), ref_plan))
        if args.only in (None, "bare", "flowloom"):
            bare_py = root / "bare" / "graph.py"
            bare_py.parent.mkdir()
            bare_py.write_text(REF_GRAPH_PY)
            sides.append(await measure_bare(bare_py, plan))
        flow_path = root / "flowloom" / "flows" / f"{GRAPH_ID}.json"
        flow_path.parent.mkdir(parents=True)
        flow_path.write_text(json.dumps(FLOWLOOM_FLOW, indent=2) + "\n")
        if args.only in (None, "flowloom"):
            sides.append(await measure(
                "flowloom", lambda: launch_flowloom(flow_path), plan))
        if args.only in (None, "flowloom", "postgres") and args.postgres:
            async with _postgres(args.postgres) as database:
                sides.append(await measure(
                    "flowloom-postgres", lambda: launch_flowloom(flow_path, database), plan))
        if args.only in (None, "postgres") and args.postgres:
            project = root / "aegra"
            project.mkdir()
            (project / "graph.py").write_text(REF_GRAPH_PY)
            async with _postgres(args.postgres) as database:
                sides.append(await measure(
                    "aegra", lambda: launch_aegra(project, database), ref_plan))
        print()
        if args.only is not None:
            print(f"only {args.only} measured (--only {args.only})")
        report(sides, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["reference", "bare", "flowloom", "postgres"],
                        help="one side: 'flowloom' includes bare LangGraph (the floor) and "
                             "flowloom on Postgres; 'postgres' is flowloom on Postgres and "
                             "Aegra")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a server to measure flowloom on Postgres too (a database of "
                             "its own is made there and dropped); '' to skip")
    parser.add_argument("--quick", action="store_true",
                        help="fewer runs (each unless given): --runs 50 --ref-runs 10 "
                             "--warmup 1, 4 runs a client concurrently (at least 64)")
    parser.add_argument("--runs", type=int,
                        help="sequential runs per workload for flowloom and bare LangGraph "
                             "(default 200)")
    parser.add_argument("--ref-runs", type=int,
                        help="sequential runs per workload for the reference and Aegra "
                             "(default 30)")
    parser.add_argument("--concurrent-runs", type=int,
                        help="runs in all per concurrent workload, every side (default 20 "
                             "a client up to 16 clients, 10 a client above, at least 320: "
                             "320 at 16, 640 at 64)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64],
                        help="concurrent clients, one or more levels (default 16 64)")
    parser.add_argument("--warmup", type=int, help="warm-up runs per client (default 2)")
    args = parser.parse_args()
    for name, full, quick in (("runs", 200, 50), ("ref_runs", 30, 10), ("warmup", 2, 1)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
