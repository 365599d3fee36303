"""Write the recommendation demo: a made-up film catalogue and its viewers.

Writes `tools/demo_data/rec/rec-demo.inter` (user_id, item_id, timestamp) and
`rec-demo.item` (item_id, title, genre), RecBole atomic files, from
`flowloom.tools.rec.synthetic.generate` (seed 20260611, 500 viewers, 200 films). Seeded
and deterministic: `--check` exits 1 if the shipped files differ from what the generator
writes now.

    $ .venv/bin/python benchmarks/make_rec_demo.py           # (re)write the files
    $ .venv/bin/python benchmarks/make_rec_demo.py --check   # exit 1 if they differ
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from flowloom.tools.rec.synthetic import write_atomic_files

OUT = Path(__file__).resolve().parent.parent / "tools" / "demo_data" / "rec"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, don't write")
    args = parser.parse_args()
    if not args.check:
        for path in write_atomic_files(OUT):
            print(f"wrote {path} ({path.stat().st_size:,} bytes)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = write_atomic_files(Path(tmp))
        stale = [p.name for p in fresh if (OUT / p.name).read_bytes() != p.read_bytes()]
    if stale:
        print(f"differ from the generator: {', '.join(stale)}", file=sys.stderr)
        return 1
    print("the shipped demo matches the generator")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
