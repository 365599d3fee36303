"""Questions files of the batch commands (`kb search --queries`, `sql ask --questions`):
JSONL, one `{"id", "question"}` per line; a bad line is a UsageError naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flowloom.ui.errors import UsageError

__all__ = ["read_questions"]


def read_questions(path: Path, option: str) -> list[dict[str, Any]]:
    """`[{"id", "question"}, ...]` from `path` (blank lines skipped; a missing id is the
    line number). `option` names the flag in messages (`--queries`)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"{option} {path}: {why}") from None
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            raise UsageError(f"{path}:{number}: each line needs a \"question\" string")
        out.append({"id": item.get("id", number), "question": item["question"]})
    return out
