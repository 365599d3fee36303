"""Parsing and embedding as a Ray Data pipeline (`flowloom ingest --ray`), for corpora
too big for one process: files are parsed by `flat_map` tasks on every CPU Ray has, and
chunks embedded by `map_batches` actors that each call the model gateway (the embedded
model service, a vLLM server or a provider) in batches. The driver gets each document's
chunks and vectors back and writes them as a local ingestion does (catalog first, so
idempotence and crash safety are the same). Against a Milvus server many drivers can write
at once; Milvus Lite keeps one writer.

Ray starts locally (`ray.init()`), or joins a cluster when `RAY_ADDRESS` is set; its
usage statistics are turned off.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llama_index.core.schema import TextNode

__all__ = ["ParsedDocument", "ray_parse_and_embed"]

ParsedDocument = tuple[Path, list[TextNode] | None, list[list[float]] | None, str | None]
FORWARDED_ENV = ("FLOWLOOM_MODEL_URL", "FLOWLOOM_MODELS", "FLOWLOOM_HOME",
                 "LITELLM_LOCAL_MODEL_COST_MAP", "DO_NOT_TRACK", "HF_HUB_OFFLINE",
                 "OPENAI_API_KEY", "DEEPSEEK_API_KEY")


def _parse_rows(row: dict[str, Any], settings: dict[str, int]) -> list[dict[str, Any]]:
    from flowloom.retrievers.parse import ChunkSettings, ParseError, parse_file

    try:
        nodes = parse_file(Path(row["path"]), ChunkSettings(**settings))
    except ParseError as exc:
        return [{"path": row["path"], "n": 0, "i": -1, "text": "", "meta": "{}",
                 "error": exc.reason}]
    return [{"path": row["path"], "n": len(nodes), "i": i, "text": node.text,
             "meta": json.dumps(node.metadata), "error": ""} for i, node in enumerate(nodes)]


class _Embed:
    """A Ray actor: one gateway per worker process, reused for every batch."""

    def __init__(self, embed_model: str, models_config: str | None, home: str) -> None:
        from flowloom.backends.gateway import GatewayModels, load_gateway

        self.models = GatewayModels(load_gateway(Path(models_config) if models_config else None,
                                                 home=Path(home)))
        self.alias = embed_model

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        texts = [str(t) for t, e in zip(batch["text"], batch["error"], strict=True) if not e]
        vectors = iter(asyncio.run(self.models.aembed(self.alias, texts, input_type="passage"))
                       if texts else [])
        batch["vector"] = [json.dumps(next(vectors)) if not e else "[]"
                           for e in batch["error"]]
        return batch


def ray_parse_and_embed(paths: Sequence[Path], *, settings: Any, embed_model: str,
                        models_config: Path | None, home: Path, batch_size: int = 64,
                        embed_actors: int = 2) -> Iterator[ParsedDocument]:
    """Yield `(path, nodes, vectors, error)` per file as soon as all its chunks are back
    (order not kept). Blocking: iterate it in a thread from async code."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    _start_embedded_service(models_config, home)
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {**env, "RAY_USAGE_STATS_ENABLED": "0"}})
    items = [{"path": str(p)} for p in paths]
    if not items:
        return
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller shows its own progress
    context.print_on_execution_start = False
    dataset = (ray.data.from_items(items)
               .flat_map(_parse_rows,  # type: ignore[arg-type]  # fn_kwargs gives settings
                         fn_kwargs={"settings": asdict(settings)})
               .map_batches(_Embed, batch_size=batch_size, batch_format="numpy",
                            fn_constructor_kwargs={
                                "embed_model": embed_model, "home": str(home),
                                "models_config": str(models_config) if models_config else None},
                            # I/O-bound (they wait on the model server): they must not
                            # take the CPUs the parse tasks need, or the pipeline stalls
                            num_cpus=0.25,
                            compute=ray.data.ActorPoolStrategy(size=embed_actors)))
    pending: dict[str, dict[int, tuple[str, dict[str, Any], list[float]]]] = {}
    for row in _rows(dataset):
        path = str(row["path"])
        if row["error"]:
            yield Path(path), None, None, str(row["error"])
            continue
        chunks = pending.setdefault(path, {})
        chunks[int(row["i"])] = (str(row["text"]), json.loads(row["meta"]),
                                 json.loads(row["vector"]))
        if len(chunks) == int(row["n"]):
            del pending[path]
            nodes, vectors = [], []
            for i in sorted(chunks):
                text, meta, vector = chunks[i]
                nodes.append(_node(text, meta))
                vectors.append(vector)
            yield Path(path), nodes, vectors, None


def _start_embedded_service(models_config: Path | None, home: Path) -> None:
    """Start the embedded model service here, in the driver, when the models use it: its
    URL goes to every worker (FLOWLOOM_MODEL_URL), so no worker starts one of its own,
    whose end (Ray retires and replaces workers) would take it from the others."""
    if os.environ.get("FLOWLOOM_MODEL_URL"):
        return
    from flowloom.backends.gateway import load_gateway
    from flowloom.backends.model_launcher import ensure_model_service

    config = load_gateway(models_config, home=home).config  # connects nowhere
    if any(d.model_info.embedded for d in config.model_list):
        ensure_model_service(home)


def _rows(dataset: Any) -> Iterator[dict[str, Any]]:
    """The pipeline's rows; a failure inside Ray is said as its cause, in one line (Ray's
    own exception carries the worker's traceback as its message)."""
    from flowloom.retrievers.errors import KnowledgeError

    try:
        yield from dataset.iter_rows()
    except Exception as exc:
        cause: BaseException = exc
        while getattr(cause, "cause", None) is not None or cause.__cause__ is not None:
            cause = getattr(cause, "cause", None) or cause.__cause__  # type: ignore[assignment]
        reason = str(cause).strip().splitlines()[-1] if str(cause).strip() else ""
        raise KnowledgeError(f"the Ray ingestion pipeline failed: {type(cause).__name__}"
                             + (f": {reason[:300]}" if reason else "")) from None


def _node(text: str, metadata: dict[str, Any]) -> TextNode:
    keys = list(metadata)
    return TextNode(text=text, metadata=metadata, excluded_embed_metadata_keys=keys,
                    excluded_llm_metadata_keys=keys)


def shutdown() -> None:
    """Stop the local Ray this process started (a no-op when none)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
