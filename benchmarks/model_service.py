"""The embedded model service: start-up, first requests, embedding rate, memory.

    python benchmarks/model_service.py

Starts the service the way commands do (`ensure_model_service`) in a new data dir, so
the first start includes assembling and checking the bundled GGUF.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import httpx

from flowloom.backends.model_launcher import (
    ensure_model_service,
    read_service_state,
    stop_started_services,
)

SENTENCES = [f"Sentence number {i} about {topic}." for i, topic in enumerate(
    ["Debian packages", "the weather in Paris", "SQL joins", "neural networks"] * 64)]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed_start(home: Path) -> tuple[float, str]:
    started = time.perf_counter()
    url = ensure_model_service(home)
    return time.perf_counter() - started, url


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        first_start, _ = timed_start(home)
        stop_started_services(home)
        os.environ.pop("FLOWLOOM_MODEL_URL", None)
        warm_start, url = timed_start(home)
        pid = int(read_service_state(home)["pid"])  # type: ignore[index]
        client = httpx.Client(timeout=300)
        chat = {"model": "local", "max_tokens": 16, "temperature": 0,
                "messages": [{"role": "user", "content": "What is the capital of France?"}]}
        t0 = time.perf_counter()
        client.post(f"{url}/chat/completions", json=chat).raise_for_status()
        first_chat = time.perf_counter() - t0
        t0 = time.perf_counter()
        client.post(f"{url}/chat/completions", json=chat).raise_for_status()
        second_chat = time.perf_counter() - t0
        rss_chat = rss_mib(pid)
        t0 = time.perf_counter()
        client.post(f"{url}/embeddings", json={"model": "local-embed", "input": ["warm up"]})
        first_embed = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(0, len(SENTENCES), 64):
            reply = client.post(f"{url}/embeddings",
                                json={"model": "local-embed", "input": SENTENCES[i:i + 64]})
            reply.raise_for_status()
        rate = len(SENTENCES) / (time.perf_counter() - t0)
        rss_both = rss_mib(pid)
        client.close()
        stop_started_services(home)
    print(f"start to READY, new data dir (assembles the GGUF): {first_start:.2f} s")
    print(f"start to READY, model already assembled: {warm_start:.2f} s")
    print(f"first chat request (16 tokens): {first_chat:.2f} s; second: {second_chat:.2f} s")
    print(f"first embeddings request (loads the embedder): {first_embed:.2f} s")
    print(f"embeddings at batch 64: {rate:.0f} sentences/s")
    print(f"service RSS: {rss_chat:.0f} MiB after chat, {rss_both:.0f} MiB with the embedder")


if __name__ == "__main__":
    main()
