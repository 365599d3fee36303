"""`flowloom rec route-sim` through `flowloom` itself: the shares as JSON, a user's mistake
as one line on stderr with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys


def flowloom(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowloom.ui.cli", "rec", "route-sim", *args],
                          capture_output=True, text=True, timeout=300)


def test_a_burst_stays_within_the_budget() -> None:
    out = flowloom("--requests", "600", "--burst", "10", "--budget", "0.05", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["dropped"] == 0 and result["completed"] == 600
    assert result["window"] == 100 and result["max_window_slow"] <= 5
    assert result["max_window_share"] <= 0.05 and result["within_budget"] is True
    assert result["budget_exhausted"] > 0  # the burst did hit the budget
    assert result["slow"] + result["reasons"]["confident"] + result["budget_exhausted"] == 600


def test_a_bad_budget_is_one_line_and_exit_2() -> None:
    out = flowloom("--requests", "10", "--burst", "10", "--budget", "1.5")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "--budget 1.5" in out.stderr
    assert "Traceback" not in out.stderr
