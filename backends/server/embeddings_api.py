"""`POST /v1/embeddings`: OpenAI's embeddings API over the gateway's embedding aliases.

`model` is an alias whose deployments have `model_info.mode: embedding` in the models file
(`local-embed` by default); `input` is a text or a list of texts (token arrays are
refused: an alias's tokenizer is its provider's). `encoding_format` `float` answers
lists of numbers, `base64` little-endian float32 bytes (the openai client asks for base64
unless told otherwise, and decodes it). `dimensions` is refused: an alias answers its
model's own size. Usage is what the provider reported.

Example:
    >>> OpenAI(base_url="http://127.0.0.1:8123/v1", api_key="-").embeddings.create(
    ...     model="local-embed", input=["a", "b"]).data[0].embedding[:2]
    [0.0123, -0.0456]
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowloom.backends.errors import BackendError
from flowloom.backends.gateway.errors import GatewayError
from flowloom.backends.server._openai_errors import OpenAIRequestError
from flowloom.backends.server._openai_route import ERRORS, OpenAIRoute
from flowloom.backends.server._usage import gateway_of
from flowloom.backends.server.catalog import FlowCatalog
from flowloom.backends.server.tenancy import access
from flowloom.flows.context import BuildContext

__all__ = ["EmbeddingRequest", "embedding_aliases", "embeddings_router", "encode"]

MAX_INPUTS = 2048


class EmbeddingRequest(BaseModel):
    """An OpenAI embeddings request (`user` is accepted and not used)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., min_length=1, description="An embedding alias of the gateway.")
    input: str | list[str] = Field(..., description="A text or a list of texts.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, description="Not supported: leave it out.")
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        if not isinstance(value, str | list):
            raise ValueError("must be a text or a list of texts")
        if isinstance(value, list) and value and all(
                isinstance(v, int) or (isinstance(v, list) and all(isinstance(t, int)
                                                                    for t in v))
                for v in value):
            raise ValueError("token arrays are not supported: send the text")
        if isinstance(value, list) and not value:
            raise ValueError("needs at least one text")
        if isinstance(value, list) and len(value) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} texts per request, not {len(value)}")
        if isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    raise ValueError(f"item {i} is not a text")
        return value

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        for i, text in enumerate(texts):
            if not text:
                where = "" if isinstance(value, str) else f" (item {i})"
                raise ValueError(f"an empty text cannot be embedded{where}")
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


def embedding_aliases(ctx: BuildContext) -> tuple[list[str], list[str]]:
    """(the aliases `/v1/embeddings` accepts, every alias): through a gateway, those whose
    deployments are in embedding mode; other providers (scripted models) say no mode, so
    all of theirs."""
    models = ctx.models
    if models is None:
        return [], []
    every = list(models.aliases())
    gateway = gateway_of(ctx)
    if gateway is None:
        return every, every
    modes = {d.model_name: d.model_info.mode for d in gateway.config.model_list}
    return [a for a in every if modes.get(a) == "embedding"], every


def encode(vector: list[float], encoding_format: str) -> list[float] | str:
    """A vector as OpenAI sends it: numbers, or base64 of little-endian float32."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def embeddings_router(get_catalog: Callable[[], FlowCatalog]) -> APIRouter:
    """`POST /embeddings` (mounted under `/v1` by `openai_router`)."""
    router = APIRouter(tags=["openai"], route_class=OpenAIRoute)

    @router.post("/embeddings", summary="Embed texts with an embedding alias",
                 responses=ERRORS, response_model=None, openapi_extra=access("user"))
    async def create_embeddings(body: EmbeddingRequest) -> dict[str, Any]:
        ctx = get_catalog().ctx
        allowed, every = embedding_aliases(ctx)
        if body.model not in allowed:
            kind = "a chat model, not an embedding model" if body.model in every \
                else "not a model of this server"
            raise OpenAIRequestError(
                f"model '{body.model}' is {kind}; embedding models: "
                f"{', '.join(allowed) or 'none'}", status=404 if body.model not in every
                else 400, param="model", code="model_not_found")
        if body.dimensions is not None:
            raise OpenAIRequestError(
                "dimensions: not supported; an embedding alias answers its model's own size "
                "(leave dimensions out)", param="dimensions", code="unsupported_parameter")
        gateway = gateway_of(ctx)
        try:
            if gateway is not None:
                vectors, tokens = await gateway.aembed_counted(body.model, body.texts)
            else:
                assert ctx.models is not None  # `allowed` is empty without models
                vectors, tokens = await ctx.models.aembed(body.model, body.texts), 0
        except (BackendError, GatewayError) as exc:
            raise OpenAIRequestError(str(exc)[:2000], status=502, type="server_error",
                                     code="model_failed") from exc
        data = [{"object": "embedding", "index": i,
                 "embedding": encode(list(vector), body.encoding_format)}
                for i, vector in enumerate(vectors)]
        return {"object": "list", "data": data, "model": body.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    return router
