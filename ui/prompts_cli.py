"""`flowloom prompts ...` and `flowloom export`: the data dir's versioned prompts (the store
the server uses), and flow files made reproducible by carrying the versions they use.

    $ flowloom prompts push support-system system.txt --notes "warmer tone"
    support-system@2
    $ flowloom prompts list
    $ flowloom prompts show support-system@1
    $ flowloom export my_flow.json -o shared.json     # refs pinned, versions carried
    $ flowloom prompts import shared.json              # elsewhere: add them to the store
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from flowloom.ui.errors import UsageError

__all__ = ["export", "prompts_app"]

prompts_app = typer.Typer(help="Versioned prompts of the data dir: list, show, push, import.",
                          no_args_is_help=True)


@prompts_app.callback()
def _group() -> None:
    """Versioned prompts of the data dir: list, show, push, import."""


def _store() -> Any:
    from flowloom.flows.home import flowloom_home
    from flowloom.flows.prompts import PromptStore

    return PromptStore(flowloom_home() / "prompts")


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


@prompts_app.command("list")
def list_prompts(as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
                 ) -> None:
    """Every prompt with its latest version."""
    store = _store()
    rows = []
    for name in store.names():
        versions = store.versions(name)
        if versions:
            latest = store.get(f"{name}@{versions[-1]}")
            rows.append({"name": name, "latest": latest.ref, "versions": versions,
                         "created_at": latest.created_at, "notes": latest.notes})
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        typer.echo("no prompts yet: add one with `flowloom prompts push NAME FILE`", err=True)
    for row in rows:
        count = len(row["versions"])
        typer.echo(f"{row['latest']:<28} {count} version{'s' if count != 1 else ''}  "
                   f"{row['created_at'][:19]}  {_first_line(row['notes'])}".rstrip())


@prompts_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: latest).",
                                       show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """A version's text, variables, notes and creation time."""
    try:
        prompt = _store().get(ref)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if as_json:
        _echo_json(prompt.to_dict())
        return
    typer.echo(f"{prompt.ref}  created {prompt.created_at}")
    typer.echo(f"variables: {', '.join(prompt.variables) or 'none'}")
    if prompt.notes:
        typer.echo(f"notes: {prompt.notes}")
    typer.echo("")
    typer.echo(prompt.text.rstrip("\n"))


def _read_text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{source}: is a directory, not a text file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{source}: cannot read: {exc}") from None


@prompts_app.command("push")
def push(
    name: Annotated[str, typer.Argument(help="Prompt name (lower-case, digits, _ and -).",
                                        show_default=False)],
    source: Annotated[str, typer.Argument(help="Text file, or - for stdin.",
                                          show_default=False)],
    notes: Annotated[str, typer.Option("--notes", help="What changed, and why.")] = "",
) -> None:
    """Store the text as the next version of NAME; prints its ref (NAME@VERSION)."""
    text = _read_text(source)
    if not text.strip():
        raise UsageError(f"{'stdin' if source == '-' else source}: the prompt text is empty")
    prompt = _store().save(name, text, notes)
    typer.echo(prompt.ref)
    typer.echo(f"stored {prompt.ref} (variables: {', '.join(prompt.variables) or 'none'})",
               err=True)


@prompts_app.command("import")
def import_cmd(
    flow: Annotated[Path, typer.Argument(help="Flow JSON file (as `flowloom export` writes "
                                              "it).", show_default=False)],
) -> None:
    """Add the prompt versions a flow file carries to the store. A version the store has
    with other text is refused, and then nothing is added."""
    from flowloom.flows.loader import load_flow
    from flowloom.flows.prompts import import_prompts

    loaded = load_flow(flow).flow
    added = import_prompts(loaded, _store())
    typer.echo(f"{flow}: {len(added)} of {len(loaded.prompts)} carried prompt versions added"
               + (f": {', '.join(added)}" if added else ""))


def export(
    flow: Annotated[Path, typer.Argument(help="Flow JSON file.", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of "
                                             "stdout.")] = None,
) -> None:
    """Print the flow for sharing: every prompt ref pinned to the version it resolves to
    in the data dir's store, and those versions carried in `prompts`."""
    from flowloom.flows.format import Flow, dump_flow
    from flowloom.flows.loader import load_flow
    from flowloom.flows.prompts import pin_prompts

    loaded = load_flow(flow)
    text = dump_flow(Flow.model_validate(pin_prompts(loaded.flow.model_dump(mode="json"),
                                                     _store())))
    if out is None:
        typer.echo(text, nl=False)
        return
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write: {exc}") from None
    typer.echo(f"wrote {out}", err=True)
