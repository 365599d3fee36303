"""The `flowloom` command line.

Every user mistake ends with a message and exit code 2, never a traceback:
    $ flowloom validate broken.json
    broken.json: 3 problems in flow
      - nodes[1].type: unknown node type 'llm.chatt@1'; valid: llm.chat@1, ...
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from flowloom.ui.errors import UsageError

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DO_NOT_TRACK", "1")

__all__ = ["app", "main"]

app = typer.Typer(
    name="flowloom",
    help="Flows that are real LangGraph graphs: validate, run and serve them offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

FlowPath = Annotated[Path, typer.Argument(help="Flow JSON file.", show_default=False)]
ModelsOpt = Annotated[
    Path | None, typer.Option("--models", help="LiteLLM-format model config (YAML).")
]



def _err(text: str) -> None:
    typer.echo(text, err=True)


def _dump(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@app.command()
def validate(
    flows: Annotated[list[Path], typer.Argument(help="Flow JSON files.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Problems as JSON.")] = False,
) -> None:
    """Check flow files; print every problem with its JSON path. Exit 2 if any."""
    from flowloom.flows.errors import FlowLoadError
    from flowloom.flows.loader import check_flow

    report, failed = [], False
    for path in flows:
        try:
            loaded, problems = check_flow(path)
        except FlowLoadError as exc:
            failed = True
            report.append({"file": str(path), "ok": False, "error": str(exc), "problems": []})
            if not as_json:
                _err(str(exc))
            continue
        failed |= bool(problems)
        entry: dict[str, Any] = {"file": str(path), "ok": not problems,
                                 "problems": [p.to_dict() for p in problems]}
        if loaded is not None and loaded.migrated_from is not None:
            entry["migrated_from"] = loaded.migrated_from
        report.append(entry)
        if as_json:
            continue
        if problems:
            _err(f"{path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
            for problem in problems:
                _err(f"  - {problem}")
        else:
            assert loaded is not None
            note = (f" (schema v{loaded.migrated_from}, migrates to the current version)"
                    if loaded.migrated_from is not None else "")
            typer.echo(f"ok: {path} ({loaded.flow.id}, {len(loaded.flow.nodes)} nodes){note}")
    if as_json:
        _dump(report)
    if failed:
        raise typer.Exit(2)


@app.command()
def schema() -> None:
    """Print the flow document's JSON Schema (with every node type's params)."""
    from flowloom.flows.schema import flow_json_schema

    _dump(flow_json_schema())


@app.command("node-types")
def node_types(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the registered node types with their params."""
    from flowloom.flows.registry import default_registry

    catalogue = default_registry().catalogue()
    if as_json:
        _dump(catalogue)
        return
    for entry in catalogue:
        params = ", ".join(entry["params_schema"].get("properties", {}))
        typer.echo(f"{entry['type']:<22} {entry['category']:<9} {entry['description']}")
        typer.echo(f"{'':<32} params: {params}")


@app.command()
def migrate(
    flow: FlowPath,
    write: Annotated[bool, typer.Option("--write", help="Rewrite the file in place.")] = False,
) -> None:
    """Upgrade a flow file to the current schema version."""
    from flowloom.flows.format import dump_flow
    from flowloom.flows.loader import load_flow

    loaded = load_flow(flow)
    text = dump_flow(loaded.flow)
    for note in loaded.notes:
        _err(f"{flow}: {note}")
    if write:
        tmp = flow.with_name(flow.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(flow)
    else:
        typer.echo(text, nl=False)


@app.command()
def run(
    flow: FlowPath,
    input: Annotated[str | None, typer.Option("--input", "-i", help="Input text.")] = None,
    input_json: Annotated[
        str | None, typer.Option("--input-json", help="Input as a JSON object of state fields.")
    ] = None,
    thread: Annotated[
        str | None, typer.Option("--thread", "-t", help="Thread id: continue a conversation.")
    ] = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Print tokens as they come.")]
    = False,
    database: Annotated[
        str | None, typer.Option("--database", help="Checkpoints: sqlite:///PATH or postgresql://")
    ] = None,
    models: ModelsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    resume: Annotated[str | None, typer.Option(
        "--resume", help="Answer what the thread waits for (with --thread), as JSON: "
                         "true, false, or {\"approved\": true, \"comment\": \"...\"}.")]
    = None,
) -> None:
    """Run a flow on one input. The thread id is printed so the next run can continue it.

    A run that pauses for approval prints the request and how to resume it."""
    if input is not None and input_json is not None:
        raise UsageError("give --input or --input-json, not both")
    resume_value: Any = None
    if resume is not None:
        if input is not None or input_json is not None:
            raise UsageError("--resume answers a paused thread: give no --input with it")
        if thread is None:
            raise UsageError("--resume needs --thread, the thread that paused")
        try:
            resume_value = json.loads(resume)
        except json.JSONDecodeError:
            resume_value = resume  # a bare word: approve, reject
        asyncio.run(_run(flow, None, thread, stream, database, models, as_json,
                         resume_value))
        return
    value: Any = input
    if input_json is not None:
        try:
            value = json.loads(input_json)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--input-json is not valid JSON: {exc.msg}") from None
        if not isinstance(value, dict):
            raise UsageError("--input-json must be a JSON object of state fields")
    asyncio.run(_run(flow, value, thread, stream, database, models, as_json))


async def _run(
    path: Path, value: Any, thread: str | None, stream: bool, database: str | None,
    models: Path | None, as_json: bool, resume: Any = None,
) -> None:
    from flowloom.backends.context import default_build_context
    from flowloom.flows.checkpoint import open_checkpointer
    from flowloom.flows.compiler import compile_flow
    from flowloom.flows.loader import FolderFlows, examples_dir, load_flow
    from flowloom.flows.runtime import FlowRunner

    loaded = load_flow(path)
    for note in loaded.notes:
        _err(f"note: {path}: {note}")
    # a supervisor's sub-flows: beside the flow file first, then the examples
    ctx = replace(default_build_context(models_config=models),
                  flows=FolderFlows(path.parent, examples_dir()))
    async with open_checkpointer(database) as saver:
        runner = FlowRunner(loaded.flow, compile_flow(loaded.flow, ctx=ctx, checkpointer=saver))
        streamed = False
        result = None
        async for event in runner.astream(value, thread_id=thread, tokens=stream,
                                          resume=resume):
            if event.kind == "token" and not as_json:
                streamed = True
                typer.echo(event.text, nl=False)
                sys.stdout.flush()
            elif event.kind == "done":
                result = event.result
    assert result is not None
    if as_json:
        _dump({"thread_id": result.thread_id, "output": result.output,
               "seconds": round(result.seconds, 3),
               "node_seconds": {k: round(v, 3) for k, v in result.node_seconds.items()},
               **({"waiting": result.interrupts} if result.interrupts else {})})
        return
    if streamed:
        typer.echo()
    elif result.interrupts:
        for request in result.interrupts:
            typer.echo(f"waiting: {_request_text(request)}")
        typer.echo(f"resume: flowloom run {path} --thread {result.thread_id} "
                   "--resume '{\"approved\": true}'   (or false, with a \"comment\")")
    else:
        output = result.output
        typer.echo(output if isinstance(output, str) else json.dumps(output, default=str))
    _err(f"thread: {result.thread_id}")


def _request_text(request: Any) -> str:
    """A pause's request in a line: the message, with the pending tool call or values."""
    if not isinstance(request, dict):
        return json.dumps(request, default=str)
    text = str(request.get("message") or request.get("kind") or "input needed")
    if request.get("error"):
        text += f" ({request['error']})"
    if request.get("values"):
        text += f" {json.dumps(request['values'], default=str, ensure_ascii=False)}"
    return text


@app.command("models")
def models_cmd(
    models: ModelsOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Probe each deployment's health.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the gateway's model routes (and their health with --check)."""
    from flowloom.backends.gateway import MODEL_URL_ENV, load_gateway
    from flowloom.backends.model_launcher import running_service_url
    from flowloom.flows.home import flowloom_home

    running = running_service_url(flowloom_home())
    if running and not os.environ.get(MODEL_URL_ENV):
        os.environ[MODEL_URL_ENV] = running  # show and probe the service already up
    service_known = bool(os.environ.get(MODEL_URL_ENV))
    gateway = load_gateway(models)
    routes = {alias: [asdict(r) for r in deps] for alias, deps in gateway.routes().items()}
    health = {h.deployment: asdict(h) for h in asyncio.run(gateway.ahealth())} if check else {}
    if as_json:
        _dump({"routes": routes, "health": list(health.values()) if check else None})
        return
    for alias, deployments in routes.items():
        typer.echo(alias)
        for dep in deployments:
            line = f"  {dep['id']:<12} {dep['model']:<28} {dep['api_base'] or ''}"
            if dep["embedded"] and not service_known:
                line += "  (embedded model service: not running, starts on first use)"
            elif dep["missing_env"]:
                line += f"  (left out: {', '.join(dep['missing_env'])} not set)"
            if dep["id"] in health and (service_known or not dep["embedded"]):
                h = health[dep["id"]]
                latency = f" {h['latency_ms']:.0f} ms" if h["latency_ms"] is not None else ""
                line += f"  [{h['status']}{latency}{': ' + h['error'] if h['error'] else ''}]"
            typer.echo(line)


@app.command("serve-model")
def serve_model(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 0,
    engine: Annotated[str, typer.Option(help="llama.cpp (CPU) or vllm (GPU).")] = "llama.cpp",
) -> None:
    """Serve the embedded model (chat + embeddings) on an OpenAI-compatible API."""
    from flowloom.backends.model_service import serve
    from flowloom.flows.home import flowloom_home

    if engine not in ("llama.cpp", "vllm"):
        raise UsageError(f"--engine must be llama.cpp or vllm, not {engine!r}")
    serve(host, port, home=flowloom_home(), engine=engine)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 8123,
    database: Annotated[
        str | None, typer.Option("--database", help="sqlite:///PATH or postgresql://...")
    ] = None,
    flows: Annotated[
        list[Path] | None, typer.Option("--flows", help="Folder of flow files (repeatable).")
    ] = None,
    models: ModelsOpt = None,
    demo_kb: Annotated[bool, typer.Option(
        "--demo-kb/--no-demo-kb", help="Build the 'demo' knowledge base (flowloom's docs) "
        "for the rag_chat example, in the background; flowloom up does).")] = False,
    metrics_role: Annotated[str, typer.Option(
        "--metrics-role", help="Who may read /metrics once API keys exist: admin (default; "
        "it shows every key's traffic) or user.")] = "admin",
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="A browser origin allowed to call the API besides loopback "
        "ones, e.g. https://studio.example.com (repeatable).")] = None,
    redis: Annotated[str | None, typer.Option(
        "--redis", help="redis://host:6379/0 shared by the servers behind one address: "
        "each API key's rate limit is counted across them all.")] = None,
) -> None:
    """Serve every flow over the LangGraph API (langgraph-sdk) and an OpenAI-style API."""
    from flowloom.backends.server import ServerSettings
    from flowloom.backends.server import serve as run_server
    from flowloom.flows.loader import examples_dir

    folders = tuple(flows) if flows else (examples_dir(),)
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"--flows {folder}: not a folder")
    if metrics_role not in ("admin", "user"):
        raise UsageError(f"--metrics-role {metrics_role}: must be admin or user")
    run_server(ServerSettings(host=host, port=port, database=database, models=models,
                              flows_dirs=folders, demo_kb=demo_kb,
                              metrics_role=metrics_role,  # type: ignore[arg-type]
                              cors_origins=tuple(cors_origin or ()), redis_url=redis))


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address of the API server and the UI.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API server port (0: any free port).")] = 8123,
    ui_port: Annotated[int, typer.Option("--ui-port", help="UI port (0: any free port).")]
    = 8501,
    database: Annotated[
        str | None, typer.Option("--database", help="sqlite:///PATH or postgresql://...")
    ] = None,
    flows: Annotated[
        list[Path] | None, typer.Option("--flows", help="Folder of flow files (repeatable).")
    ] = None,
    models: ModelsOpt = None,
    model_service: Annotated[
        bool, typer.Option("--model-service/--no-model-service",
                           help="Start the embedded model now (else: on first use).")
    ] = True,
    demo_kb: Annotated[bool, typer.Option(
        "--demo-kb/--no-demo-kb", help="Build the 'demo' knowledge base (flowloom's docs) "
        "for the rag_chat example, in the background.")] = True,
    max_restarts: Annotated[int, typer.Option(
        "--max-restarts", min=0, help="How often a part that dies (model service, API "
        "server, UI) is restarted within 10 minutes before everything stops (0: never).")
    ] = 5,
) -> None:
    """Start the API server and the visual builder / chat UI (and the embedded model),
    restart a part that dies (and say so); Ctrl-C stops everything."""
    from flowloom.flows.home import flowloom_home
    from flowloom.ui.launcher import (
        READY_PREFIX,
        LaunchError,
        RestartPolicy,
        UpSettings,
        run_until_stopped,
    )
    from flowloom.ui.launcher import up as start

    for folder in flows or ():
        if not folder.is_dir():
            raise UsageError(f"--flows {folder}: not a folder")
    if models is not None and not models.is_file():
        raise UsageError(f"--models {models}: no such file")
    settings = UpSettings(home=flowloom_home(), host=host, port=port, ui_port=ui_port,
                          database=database, flows_dirs=tuple(flows or ()), models=models,
                          model_service=model_service, demo_kb=demo_kb,
                          restart=RestartPolicy(max_restarts=max_restarts))
    try:
        with start(settings, say=_err) as stack:
            typer.echo(f"flowloom is up\n  UI:  {stack.ui_url}\n  API: {stack.api_url}"
                       f"\n  logs: {settings.home / 'logs'}\nCtrl-C stops everything.")
            typer.echo(f"{READY_PREFIX} ui={stack.ui_url} api={stack.api_url}", err=True)
            code = run_until_stopped(stack, say=_err)
    except LaunchError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(1) from None
    if code:
        raise typer.Exit(code)


from flowloom.ui.kb_cli import ingest, kb_app  # noqa: E402  (after `app`: commands below)

app.add_typer(kb_app, name="kb")
app.command("ingest")(ingest)

from flowloom.ui.sql_cli import sql_app  # noqa: E402

app.add_typer(sql_app, name="sql")

from flowloom.ui.causal_cli import causal_app  # noqa: E402

app.add_typer(causal_app, name="causal")

from flowloom.ui.rec_cli import rec_app  # noqa: E402
from flowloom.ui.route_sim_cli import add_route_sim  # noqa: E402

add_route_sim(rec_app)  # `flowloom rec route-sim`: the adaptive router under a burst
app.add_typer(rec_app, name="rec")

from flowloom.ui.prompts_cli import export, prompts_app  # noqa: E402

app.add_typer(prompts_app, name="prompts")
app.command("export")(export)

keys_app = typer.Typer(help="API keys of the server: create, list, revoke.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
DatabaseOpt = Annotated[
    str | None, typer.Option("--database", help="sqlite:///PATH or postgresql://... "
                             "(default: the data dir's server.sqlite, as for serve)")
]


def _with_keys(database: str | None, work: Any) -> Any:
    """Run `await work(store)` on the server database's key store."""
    from flowloom.backends.server.db import open_database
    from flowloom.backends.server.errors import ServerError
    from flowloom.backends.server.keys import KeyStore

    async def go() -> Any:
        async with open_database(database) as db:
            store = KeyStore(db)
            await store.setup()
            return await work(store)

    try:
        return asyncio.run(go())
    except ServerError as exc:
        raise UsageError(str(exc)) from None


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option("--role", help="admin (also manages flows) or user.")],
    name: Annotated[str, typer.Option("--name", help="A label for listings.")] = "",
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")] = None,
    budget: Annotated[float | None, typer.Option("--budget", help="Model budget, USD.")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Create a key and print it; only its hash is stored, so it is shown this once."""
    key, secret = _with_keys(database, lambda s: s.create(role, name=name, rpm=rpm,
                                                            budget_usd=budget))
    typer.echo(secret)
    _err(f"key {key.key_id} ({key.role}) created; it is not shown again")


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
    database: DatabaseOpt = None,
) -> None:
    """List keys (ids, roles, limits, spend; never the keys)."""
    keys = [k.public() for k in _with_keys(database, lambda s: s.list())]
    if as_json:
        _dump(keys)
        return
    for k in keys:
        state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "active"
        budget = "-" if k["budget_usd"] is None else f"${k['budget_usd']:g}"
        typer.echo(f"{k['key_id']}  {k['role']:<5}  {k['name'] or '-'}  rpm={k['rpm'] or '-'}  "
                   f"budget={budget}  spent=${k['spent_usd']:.6f}  {state}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (from `keys list`).")],
    database: DatabaseOpt = None,
) -> None:
    """Revoke a key: refused by servers within seconds."""
    key = _with_keys(database, lambda s: s.revoke(key_id))
    typer.echo(f"key {key.key_id} revoked")


def main() -> None:
    """Entry point: run the app and turn domain errors into messages and exit codes."""
    from flowloom.flows.errors import FlowError
    from flowloom.flows.templates import TemplateError
    from flowloom.retrievers.errors import KnowledgeError
    from flowloom.retrievers.index import KnowledgeIndexError

    try:
        backend_errors: tuple[type[BaseException], ...] = ()
        config_errors: tuple[type[BaseException], ...] = ()
        try:
            from flowloom.backends.errors import BackendError
            from flowloom.backends.gateway.errors import GatewayConfigError, GatewayError

            backend_errors = (BackendError, GatewayError)
            config_errors = (GatewayConfigError,)  # the user's models file: exit 2
        except ImportError:
            pass
        try:
            code = app(standalone_mode=False)
            if isinstance(code, int) and code:
                sys.exit(code)
        except (FlowError, UsageError, KnowledgeError, TemplateError,
                *config_errors) as exc:
            _err(f"error: {exc}" if not str(exc).count("\n") else str(exc))
            sys.exit(2)
        except (*backend_errors, KnowledgeIndexError) as exc:
            _err(f"error: {exc}")
            sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # usage errors (typer's own click), and anything unforeseen
        show = getattr(exc, "show", None)
        if isinstance(exc, typer.TyperException) and callable(show):
            show()  # the command's usage line and what was wrong: no traceback
            sys.exit(int(getattr(exc, "exit_code", 2)) or 2)
        if os.environ.get("FLOWLOOM_DEBUG"):
            raise
        text = str(exc).encode("utf-8", "backslashreplace").decode("utf-8")[:2000]
        _err(f"error: {type(exc).__name__}: {text}" if text else
             f"error: {type(exc).__name__}")
        _err("(this is a flowloom bug if the input was valid: set FLOWLOOM_DEBUG=1 to see "
             "where it happened)")
        sys.exit(1)


if __name__ == "__main__":
    main()
