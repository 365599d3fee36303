"""Load, memory and start-up of `flowloom serve`, measured on real processes.

    .venv/bin/python benchmarks/hardening_bench.py load     [--levels 16,64,256] [--runs N]
    .venv/bin/python benchmarks/hardening_bench.py memory   [--runs 10000] [--threads 1000]
    .venv/bin/python benchmarks/hardening_bench.py startup  [--repeat 5]

- load: langgraph-sdk clients (async), each on its own thread doing `runs.wait` of a
  two-node no-LLM flow, at each concurrency level; on one server (SQLite, the embedded
  default) and on two replicas sharing a Postgres database behind a local TCP round-robin
  (each new connection to the next replica). A reader polls `GET /threads/{id}` while
  the runs are in flight (reads must keep being served). After each level every thread's
  state is checked: its `log` holds exactly two entries per run the client was answered
  for, so a run lost or run twice (across replicas too) is counted.
- memory: the server's RSS every 1,000 runs over 10,000 runs (slope per 1k runs after the
  first 2k, by least squares), and over 1,000 threads created, run once and deleted.
- startup: process start to `GET /ok` answering, cold (a new data dir) and warm.

Printed as markdown tables for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from langgraph_sdk import get_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_bench import (  # noqa: E402
    FLOWLOOM_FLOW,
    MAIN_PYTHON,
    READY_PREFIX,
    REPO,
    ServerUnavailable,
    _stopper,
    _wait_ok,
    offline_env,
)

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
GRAPH = FLOWLOOM_FLOW["id"]
Stop = Callable[[], Awaitable[None]]


# -- servers ------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    pid: int
    stop: Stop


async def start_server(home: Path, flows: Path, database: str | None = None) -> Server:
    args = [str(MAIN_PYTHON), "-m", "flowloom.ui.cli", "serve", "--port", "0",
            "--flows", str(flows)]
    if database:
        args += ["--database", database]
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=REPO, env={**offline_env(), "FLOWLOOM_HOME": str(home)},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    assert proc.stdout is not None
    log = home.parent / f"{home.name}.log"
    stdout = proc.stdout
    found: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def drain() -> None:
        with log.open("ab") as out:
            async for raw in stdout:
                out.write(raw)
                line = raw.decode(errors="replace").strip()
                if line.startswith(READY_PREFIX) and not found.done():
                    found.set_result(line[len(READY_PREFIX):].strip())
        if not found.done():
            found.set_exception(ServerUnavailable(f"exited: see {log}"))

    drainer = asyncio.create_task(drain())
    stop = _stopper(proc, [drainer])
    try:
        url = await asyncio.wait_for(asyncio.shield(found), 120)
        await _wait_ok(url, proc, log)
    except BaseException:
        await stop()  # never leave a half-started server behind
        raise
    return Server(url, proc.pid, stop)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RoundRobin:
    """A TCP proxy on 127.0.0.1 handing each new connection to the next backend."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = [(httpx.URL(u).host, httpx.URL(u).port) for u in backends]
        self.next = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.backends[self.next % len(self.backends)]
        self.next += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(ConnectionError, OSError):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@contextlib.asynccontextmanager
async def postgres_database():  # type: ignore[no-untyped-def]
    import psycopg

    name = f"fl_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def flows_dir(root: Path) -> Path:
    folder = root / "flows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{GRAPH}.json").write_text(json.dumps(FLOWLOOM_FLOW))
    return folder


# -- load ---------------------------------------------------------------------------------


@dataclass
class Level:
    clients: int
    latencies: list[float] = field(default_factory=list)
    reads: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answered: dict[str, int] = field(default_factory=dict)  # thread -> runs answered
    lost: int = 0
    doubled: int = 0
    seconds: float = 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(url: str, clients: int, runs_each: int) -> Level:
    level = Level(clients)
    client = get_client(url=url, api_key=None, timeout=120)
    threads = [t["thread_id"] for t in await asyncio.gather(
        *(client.threads.create() for _ in range(clients)))]
    done = asyncio.Event()

    async def worker(thread_id: str) -> None:
        level.answered[thread_id] = 0
        for _ in range(runs_each):
            started = time.perf_counter()
            try:
                result = await client.runs.wait(thread_id, GRAPH, input={"x": 1})
            except Exception as exc:  # counted, never hidden
                level.errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
                continue
            level.latencies.append(time.perf_counter() - started)
            if isinstance(result, dict) and result.get("x") == 4:
                level.answered[thread_id] += 1
            else:
                level.errors.append(f"wrong answer: {str(result)[:120]}")

    async def reader() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while not done.is_set():
                started = time.perf_counter()
                answer = await http.get(f"/threads/{threads[0]}")
                if answer.status_code == 200:
                    level.reads.append(time.perf_counter() - started)
                else:
                    level.errors.append(f"read {answer.status_code}")
                await asyncio.sleep(0.05)

    reading = asyncio.create_task(reader())
    started = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in threads))
    level.seconds = time.perf_counter() - started
    done.set()
    await reading
    for thread_id, answered in level.answered.items():
        state = await client.threads.get_state(thread_id)
        logged = len((state.get("values") or {}).get("log") or [])
        level.lost += max(0, 2 * answered - logged) // 2
        level.doubled += max(0, logged - 2 * answered) // 2
    return level


def level_row(name: str, level: Level) -> str:
    runs = len(level.latencies)
    ms = [v * 1000 for v in level.latencies]
    reads = [v * 1000 for v in level.reads]
    return (f"| {name} | {level.clients} | {runs} | {runs / level.seconds:.1f} | "
            f"{pct(ms, .5):.1f} / {pct(ms, .95):.1f} / {pct(ms, .99):.1f} | "
            f"{pct(reads, .5):.1f} / {pct(reads, .99):.1f} | {len(level.errors)} | "
            f"{level.lost} | {level.doubled} |")


async def bench_load(levels: list[int], runs_total: int) -> None:
    print("| setup | clients | runs | runs/s | run p50 / p95 / p99 ms | read p50 / p99 ms "
          "| errors | lost | run twice |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        flows = flows_dir(root)
        single = await start_server(root / "single", flows)
        try:
            for clients in levels:
                level = await drive(single.url, clients, max(1, runs_total // clients))
                print(level_row("1 server, SQLite", level), flush=True)
                for error in sorted(set(level.errors))[:3]:
                    print(f"|   error: {error} |||||||||")
        finally:
            await single.stop()
        async with postgres_database() as database:
            replicas = [await start_server(root / f"replica{i}", flows, database)
                        for i in range(2)]
            proxy = RoundRobin([r.url for r in replicas])
            url = await proxy.start()
            try:
                for clients in levels:
                    level = await drive(url, clients, max(1, runs_total // clients))
                    print(level_row("2 replicas, Postgres", level), flush=True)
                    for error in sorted(set(level.errors))[:3]:
                        print(f"|   error: {error} |||||||||")
            finally:
                await proxy.stop()
                for replica in replicas:
                    await replica.stop()


# -- memory -------------------------------------------------------------------------------


def slope(points: list[tuple[float, float]]) -> float:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


async def bench_model_memory(rag: int, chat: int) -> None:
    """The bundled model's side: a server with the `demo` knowledge base answering `rag`
    searches (query embedded by the model service, then hybrid search), the server's RSS
    sampled; then `chat` one-token chat calls straight to the model service, its RSS
    sampled."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "home"
        args = [str(MAIN_PYTHON), "-m", "flowloom.ui.cli", "serve", "--port", "0",
                "--demo-kb"]
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=REPO, env={**offline_env(), "FLOWLOOM_HOME": str(home)},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
        stop = _stopper(proc, [])
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
            url = line.split()[1]
            async with httpx.AsyncClient(base_url=url, timeout=300) as http:
                deadline = time.monotonic() + 600
                while (await http.get("/kbs/demo")).json().get("chunks", 0) < 10 or \
                        (await http.post("/kbs/demo/search", json={"query": "x"})).status_code \
                        != 200:
                    assert time.monotonic() < deadline, "the demo KB was not built"
                    await asyncio.sleep(1)
                questions = ["How do I run flowloom offline?", "What is a flow?",
                             "How are knowledge bases searched?", "Which models are used?"]
                points: list[tuple[float, float]] = []
                start = rss_mb(proc.pid)
                for i in range(rag):
                    found = await http.post("/kbs/demo/search", json={
                        "query": f"{questions[i % 4]} ({i})", "top_k": 5})
                    assert found.status_code == 200 and found.json()["hits"], found.text
                    if (i + 1) % 100 == 0:
                        points.append(((i + 1) / 1000, rss_mb(proc.pid)))
            print("| workload | RSS start MB | RSS end MB | slope MB per 1k |")
            print("|---|---|---|---|")
            print(f"| server: {rag:,} RAG searches of the demo KB | {start:.1f} | "
                  f"{points[-1][1]:.1f} | {slope(points[len(points) // 5:]):+.2f} |")
            state = json.loads((home / "run" / "model-service.json").read_text())
            service, base = int(state["pid"]), state["url"]
            async with httpx.AsyncClient(base_url=base, timeout=120) as http:
                points, start = [], rss_mb(service)
                for i in range(chat):
                    answer = await http.post("/chat/completions", json={
                        "model": "local", "max_tokens": 1,
                        "messages": [{"role": "user", "content": f"Say a number: {i}"}]})
                    assert answer.status_code == 200, answer.text
                    if (i + 1) % 100 == 0:
                        points.append(((i + 1) / 1000, rss_mb(service)))
            print(f"| model service: {chat:,} chat calls (1 token each) | {start:.1f} | "
                  f"{points[-1][1]:.1f} | {slope(points[len(points) // 5:]):+.2f} |")
        finally:
            await stop()


async def bench_memory(runs: int, threads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = await start_server(root / "home", flows_dir(root))
        client = get_client(url=server.url, api_key=None, timeout=120)
        try:
            start_rss = rss_mb(server.pid)
            samples: list[tuple[float, float]] = []
            batch, clients = 1000, 8
            for done in range(0, runs, batch):
                async def some(n: int) -> None:
                    for _ in range(n):
                        await client.runs.wait(None, GRAPH, input={"x": 1})
                await asyncio.gather(*(some(batch // clients) for _ in range(clients)))
                samples.append(((done + batch) / 1000, rss_mb(server.pid)))
            settled = [p for p in samples if p[0] > 2] or samples
            print("| workload | RSS start MB | RSS end MB | slope MB per 1k after 2k |")
            print("|---|---|---|---|")
            print(f"| {runs:,} stateless runs (8 clients) | {start_rss:.1f} | "
                  f"{samples[-1][1]:.1f} | {slope(settled):+.2f} |")
            print("<!-- samples (k runs, MB): "
                  + ", ".join(f"{k:.0f}:{mb:.1f}" for k, mb in samples) + " -->")
            before = rss_mb(server.pid)
            points: list[tuple[float, float]] = []
            for i in range(threads):
                thread = await client.threads.create()
                await client.runs.wait(thread["thread_id"], GRAPH, input={"x": 1})
                await client.threads.delete(thread["thread_id"])
                if (i + 1) % 100 == 0:
                    points.append(((i + 1) / 1000, rss_mb(server.pid)))
            print(f"| {threads:,} threads created, run, deleted | {before:.1f} | "
                  f"{points[-1][1]:.1f} | {slope(points):+.2f} |")
        finally:
            await server.stop()


# -- start-up -------------------------------------------------------------------------------


async def bench_startup(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        flows = REPO / "flows" / "examples"
        cold, warm = [], []
        for i in range(repeat):
            home = root / f"home{i}"
            for series in (cold, warm):  # a new data dir, then the same one again
                started = time.perf_counter()
                server = await start_server(home, flows)
                series.append(time.perf_counter() - started)
                await server.stop()
        print("| start-up (process start to GET /ok), example flows | median s | max s |")
        print("|---|---|---|")
        print(f"| cold (new data dir), n={repeat} | {statistics.median(cold):.2f} | "
              f"{max(cold):.2f} |")
        print(f"| warm (same data dir), n={repeat} | {statistics.median(warm):.2f} | "
              f"{max(warm):.2f} |")
        ups = [await time_up(root / f"up{i}") for i in range(max(1, repeat // 2))]
        print(f"| flowloom up to a usable UI (API /ok and the UI's page served; no model "
              f"service, no demo KB), n={len(ups)} | {statistics.median(ups):.2f} | "
              f"{max(ups):.2f} |")


async def time_up(home: Path) -> float:
    """`flowloom up --no-model-service --no-demo-kb` until the API answers /ok and the UI
    serves its page (Streamlit's health check and its index)."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        str(MAIN_PYTHON), "-m", "flowloom.ui.cli", "up", "--port", "0", "--ui-port", "0",
        "--no-model-service", "--no-demo-kb", cwd=REPO,
        env={**offline_env(), "FLOWLOOM_HOME": str(home)}, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)
    stop = _stopper(proc, [])
    try:
        assert proc.stderr is not None
        urls: dict[str, str] = {}
        while not urls:
            line = (await asyncio.wait_for(proc.stderr.readline(), 120)).decode()
            if not line:
                raise ServerUnavailable("flowloom up exited before it was ready")
            if line.startswith("FLOWLOOM_UP "):
                urls = dict(part.split("=", 1) for part in line.split()[1:])
        async with httpx.AsyncClient(timeout=5) as http:
            for url in (f"{urls['api']}/ok", f"{urls['ui']}/_stcore/health", urls["ui"]):
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(url)).status_code == 200:
                            break
                    await asyncio.sleep(0.05)
        return time.perf_counter() - started
    finally:
        await stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    load = sub.add_parser("load")
    load.add_argument("--levels", default="16,64,256")
    load.add_argument("--runs", type=int, default=2048, help="runs per level (all clients)")
    memory = sub.add_parser("memory")
    memory.add_argument("--runs", type=int, default=10_000)
    memory.add_argument("--threads", type=int, default=1000)
    memory.add_argument("--rag", type=int, default=0,
                        help="also: RAG searches with the bundled embedder (e.g. 1000)")
    memory.add_argument("--chat", type=int, default=0,
                        help="also: chat calls to the bundled model (e.g. 1000)")
    startup = sub.add_parser("startup")
    startup.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if args.what == "load":
        asyncio.run(bench_load([int(n) for n in args.levels.split(",")], args.runs))
    elif args.what == "memory":
        asyncio.run(bench_memory(args.runs, args.threads))
        if args.rag or args.chat:
            asyncio.run(bench_model_memory(args.rag, args.chat))
    else:
        asyncio.run(bench_startup(args.repeat))


if __name__ == "__main__":
    main()
