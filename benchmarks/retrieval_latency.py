"""Top-k dense search latency and recall on Milvus Lite: naive defaults, flowloom, FAISS.

Synthetic unit vectors (seeded) go into a Milvus Lite file twice: once the way a naive
user would (``MilvusClient.create_collection(dimension=...)``, AUTOINDEX), once through
``KnowledgeIndex.add``. After each insert the script waits until Milvus Lite's
background index build is idle (reported as "settle"), then times single-query searches:

* default — ``MilvusClient.search`` on the quick-setup collection;
* milvus-tuned — ``MilvusClient.search`` on flowloom's collection (HNSW M=16, efC=64,
  ef=64): what filtered searches get;
* flowloom — ``KnowledgeIndex.search(mode="dense")``, the product path;
* faiss-hnsw — raw ``faiss.IndexHNSWFlat`` (M=32, efSearch=64), the floor.

Recall@k is against exact inner-product search (``faiss.IndexFlatIP``).

    python benchmarks/retrieval_latency.py --rows 100000 --dim 384 --queries 300 --top-k 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np  # noqa: E402

BATCH = 5000


def settle(db_path: str, collection: str) -> None:
    """Wait for Milvus Lite's background compaction + index build to go idle.

    ``describe_index`` reports ``pending_index_rows == 0`` while the HNSW build is
    still running, so this reaches into the embedded engine (benchmark only).
    """
    from milvus_lite.server_manager import server_manager_instance

    _server, db, _port = server_manager_instance._servers[os.path.abspath(db_path)]
    db.get_collection(collection)._wait_for_bg()


def timed(
    fn: Callable[[np.ndarray], Sequence[str]], queries: np.ndarray
) -> tuple[list[float], list[list[str]]]:
    for q in queries[:10]:  # warm-up
        fn(q)
    latencies, found = [], []
    for q in queries:
        start = time.perf_counter()
        ids = fn(q)
        latencies.append(time.perf_counter() - start)
        found.append(list(ids))
    return latencies, found


def recall(found: list[list[str]], truth: list[list[str]], k: int) -> float:
    return float(
        np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)])
    )


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    n, d, k = args.rows, args.dim, args.top_k

    import faiss
    from llama_index.core.schema import TextNode
    from pymilvus import MilvusClient

    from flowloom.retrievers.index import KnowledgeIndex

    rng = np.random.default_rng(args.seed)
    xb = rng.standard_normal((n, d), dtype=np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq = rng.standard_normal((args.queries, d), dtype=np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    ids = [f"c{i}" for i in range(n)]

    flat = faiss.IndexFlatIP(d)
    flat.add(xb)
    _, exact = flat.search(xq, k)
    truth = [[ids[j] for j in row] for row in exact]

    setup: dict[str, float] = {}
    rows: dict[str, tuple[list[float], float]] = {}
    tmp = tempfile.mkdtemp(prefix="flowloom-bench-")

    # 1. Naive defaults.
    path = str(Path(tmp) / "default.db")
    client = MilvusClient(path)
    client.create_collection("bench", dimension=d, id_type="string", max_length=64)
    start = time.perf_counter()
    for i in range(0, n, BATCH):
        client.insert(
            "bench", [{"id": ids[j], "vector": xb[j].tolist()} for j in range(i, min(n, i + BATCH))]
        )
    setup["default insert"] = time.perf_counter() - start
    start = time.perf_counter()
    client.flush("bench")
    settle(path, "bench")
    setup["default settle (flush + index build)"] = time.perf_counter() - start

    def default_search(q: np.ndarray) -> list[str]:
        return [h["id"] for h in client.search("bench", [q.tolist()], limit=k)[0]]

    lat, found = timed(default_search, xq)
    rows["Milvus Lite defaults (quick setup)"] = (lat, recall(found, truth, k))
    client.drop_collection("bench")

    # 2. flowloom's KnowledgeIndex.
    index = KnowledgeIndex(str(Path(tmp) / "kb.db"), "bench", d)
    start = time.perf_counter()
    for i in range(0, n, BATCH):
        nodes = [
            TextNode(
                id_=ids[j], text=f"chunk {j}", embedding=xb[j].tolist(), metadata={"chunk_index": j}
            )
            for j in range(i, min(n, i + BATCH))
        ]
        index.add(nodes, doc_id=f"doc{i // BATCH}", generation=1)
    setup["flowloom add"] = time.perf_counter() - start
    start = time.perf_counter()
    settle(index.uri, "bench")
    setup["flowloom settle (Milvus index build)"] = time.perf_counter() - start
    start = time.perf_counter()
    index.warm()
    setup["flowloom mirror build (read vectors + FAISS HNSW)"] = time.perf_counter() - start

    kb_client = index._client

    def milvus_tuned(q: np.ndarray) -> list[str]:
        hits = kb_client.search(
            "bench",
            [q.tolist()],
            anns_field="vector",
            limit=k,
            output_fields=["doc_id", "text"],
            search_params={"metric_type": "COSINE", "params": {"ef": 64}},
        )
        return [h["id"] for h in hits[0]]

    def flowloom(q: np.ndarray) -> list[str]:
        return [
            h.chunk_id for h in index.search(text=None, vector=q.tolist(), top_k=k, mode="dense")
        ]

    lat, found = timed(milvus_tuned, xq)
    rows["Milvus Lite, flowloom's collection (HNSW M16 efC64 ef64)"] = (
        lat,
        recall(found, truth, k),
    )
    lat, found = timed(flowloom, xq)
    rows["flowloom KnowledgeIndex.search dense"] = (lat, recall(found, truth, k))
    index.drop()
    index.close()

    # 3. Floor: FAISS HNSW in-process.
    hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    start = time.perf_counter()
    hnsw.add(xb)
    setup["faiss HNSW build"] = time.perf_counter() - start
    hnsw.hnsw.efSearch = 64

    def floor(q: np.ndarray) -> list[str]:
        _, found = hnsw.search(q.reshape(1, -1), k)
        return [ids[j] for j in found[0]]

    lat, found = timed(floor, xq)
    rows["FAISS IndexHNSWFlat M32 efSearch64 (floor)"] = (lat, recall(found, truth, k))

    print(
        f"\nrows={n} dim={d} queries={args.queries} top_k={k} "
        f"threads={faiss.omp_get_max_threads()} python={sys.version.split()[0]}\n"
    )
    print("| setup step | seconds |\n|---|---:|")
    for name, secs in setup.items():
        print(f"| {name} | {secs:.1f} |")
    print(
        f"\n| top-{k} search | p50 ms | p99 ms | mean ms | recall@{k} |\n|---|---:|---:|---:|---:|"
    )
    for name, (lat, rec) in rows.items():
        print(
            f"| {name} | {pct(lat, 50):.2f} | {pct(lat, 99):.2f} | "
            f"{statistics.mean(lat) * 1000:.2f} | {rec:.3f} |"
        )
    p50 = {name: pct(lat, 50) for name, (lat, _) in rows.items()}
    tuned = p50["flowloom KnowledgeIndex.search dense"]
    print(
        f"\ntuned/default p50: {tuned / p50['Milvus Lite defaults (quick setup)']:.3f}   "
        f"tuned/FAISS p50: {tuned / p50['FAISS IndexHNSWFlat M32 efSearch64 (floor)']:.2f}"
    )


if __name__ == "__main__":
    main()
