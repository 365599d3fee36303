"""How validation grows with a flow's size: chains of N state.set nodes, valid and broken
(every node's edge to a missing node: the worst case for "did you mean" and reachability),
checked by the same validator `flowloom validate`, `POST /flows/validate` and `PUT /flows`
use. Prints seconds, problems, the answer's size, and the growth from the smallest size
(linear work grows like N; the issue measured 2,000 broken nodes at 15.7 s and 30 MB).

    .venv/bin/python benchmarks/validate_scale.py [--sizes 500,2000,10000]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from flowloom.flows.loader import check_flow
from flowloom.flows.registry import default_registry


def chain(n: int, *, broken: bool) -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "type": "state.set@1", "params": {"values": {"x": i}}}
             for i in range(n)]
    edges = [{"source": "START", "target": "n0"}] + [
        {"source": f"n{i}", "target": f"missing{i}" if broken else
         (f"n{i + 1}" if i + 1 < n else "END")} for i in range(n)]
    return {"schema_version": 1, "id": "big", "name": "Big", "nodes": nodes, "edges": edges,
            "state": {"x": {"type": "integer"}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="500,2000,10000")
    sizes = [int(n) for n in parser.parse_args().sizes.split(",")]
    registry = default_registry()
    print("| nodes | flow | seconds | problems | answer KB | time / smallest | size ratio |")
    print("|---|---|---|---|---|---|---|")
    for broken in (False, True):
        first: float | None = None
        for n in sizes:
            doc = chain(n, broken=broken)
            started = time.perf_counter()
            _, problems = check_flow(doc, registry)
            took = time.perf_counter() - started
            size = len(json.dumps([p.to_dict() for p in problems]))
            first = first or took
            print(f"| {n:,} | {'broken' if broken else 'valid'} | {took:.2f} | "
                  f"{len(problems):,} | {size / 1024:,.0f} | {took / first:.1f} | "
                  f"{n / sizes[0]:.0f} |")


if __name__ == "__main__":
    main()
