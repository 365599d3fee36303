"""`retriever.search@1`: find the chunks of a knowledge base that answer a question and
write them, numbered and with their sources, into a state field.

The documents it writes (`[{"n": 1, "text": ..., "source": ..., "filename": ...,
"section": ..., "page": ..., "score": ..., "chunk_id": ..., "doc_id": ...}, ...]`) are what
`llm.chat`'s `context` param renders as numbered sources the answer cites as [1], [2].
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowloom.flows.errors import FlowRunError
from flowloom.flows.home import flowloom_home
from flowloom.flows.nodes._common import check_template, template_refs
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import Template

__all__ = ["NODE_TYPE", "Params", "build", "documents_from_hits", "public_source"]

FilterValue = str | int | float | bool | list[str | int | float | bool]


class Params(BaseModel):
    """Search knowledge base `kb` for `query` and write the `top_k` best chunks to
    `output`."""

    model_config = ConfigDict(extra="forbid")

    kb: str = Field(..., min_length=1, description="Knowledge base name (flowloom kb list).",
                    json_schema_extra={"x-flowloom-choices": "knowledge_bases"})
    query: str = Field("{{ last_message }}",
                       description="What to search for (template over state fields).")
    top_k: int = Field(5, ge=1, le=50, description="How many chunks to return.")
    mode: Literal["dense", "lexical", "hybrid"] = Field(
        "hybrid", description="dense (embeddings), lexical (BM25) or hybrid (both, fused).")
    filters: dict[str, FilterValue] = Field(
        default_factory=dict,
        description="Metadata equality filters, e.g. {\"filetype\": \"pdf\"}; a list means "
                    "any of.")
    output: str = Field("documents", description="State field that receives the chunks.",
                        json_schema_extra={"x-flowloom-state": "write"})

    @field_validator("query")
    @classmethod
    def _check(cls, value: str) -> str:
        return check_template(value)


def state_refs(params: Params) -> Iterator[StateRef]:
    yield from template_refs("query", params.query)
    yield StateRef("output", params.output, "write", "array")


def public_source(source: str) -> str:
    """A document's source as clients see it: a local path is reduced to the file's name
    (the server's folders are nobody's business), a URL stays as it is."""
    if not source or "://" in source:
        return source
    return PurePath(source).name or source


def documents_from_hits(hits: Any) -> list[dict[str, Any]]:
    """Search hits as the JSON documents the node writes, numbered from 1."""
    docs = []
    for n, hit in enumerate(hits, start=1):
        meta = hit.metadata or {}
        docs.append({
            "n": n, "text": hit.text, "score": round(float(hit.score), 6),
            "source": public_source(str(meta.get("source") or "")),
            "filename": meta.get("filename", ""),
            "section": meta.get("section", ""), "page": meta.get("page"),
            "chunk_id": hit.chunk_id, "doc_id": hit.doc_id,
        })
    return docs


def build(params: Params, ctx: NodeContext) -> Any:
    from flowloom.retrievers.errors import KnowledgeError
    from flowloom.retrievers.kb import knowledge_bases

    kbs = ctx.build.extras.get("knowledge_bases") or knowledge_bases(
        ctx.build.data_dir or flowloom_home(), ctx.build.models)
    query = Template(params.query)
    node_id = ctx.node_id

    async def retriever_search(state: dict[str, Any]) -> dict[str, Any]:
        text = query.render(state).strip()
        if not text:
            return {params.output: []}
        try:
            hits = await kbs.asearch(params.kb, text, top_k=params.top_k, mode=params.mode,
                                     filters=params.filters or None)
        except KnowledgeError as exc:
            raise FlowRunError(str(exc), node_id=node_id) from None
        return {params.output: documents_from_hits(hits)}

    return retriever_search


NODE_TYPE = NodeType(
    name="retriever.search",
    version=1,
    params=Params,
    build=build,
    category="retrieval",
    description="Search a knowledge base (dense, BM25 or hybrid) and write the best chunks "
                "with their sources to state.",
    state_refs=state_refs,
)
