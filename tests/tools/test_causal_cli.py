"""`flowloom causal query` through `flowloom` itself: a JSON answer from a CSV file, and a
user's mistake as one line on stderr with exit 2 and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flowloom.ui.causal_cli import causal_app
from flowloom.ui.errors import UsageError


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(21)
    n = 2000
    z = rng.normal(size=n)
    w = rng.normal(size=n)
    x = 0.8 * z - 0.5 * w + rng.normal(size=n)
    y = 2.0 * x + 1.5 * z + w + rng.normal(size=n)
    path = tmp_path_factory.mktemp("causal") / "table.csv"
    pd.DataFrame({"customer": [f"c{i}" for i in range(n)], "z": z, "w": w, "x": x,
                  "y": y}).to_csv(path, index=False)
    return path


def flowloom(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWLOOM_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-m", "flowloom.ui.cli", "causal", "query", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_an_effect_as_json_with_confounders_star(csv: Path, tmp_path: Path) -> None:
    out = flowloom(tmp_path, "--data", str(csv), "--confounders", "*,-customer", "--query",
                   "effect",
                   "--treatment", "x", "--outcome", "y", "--value", "1", "--baseline", "0",
                   "--quality", "fast", "--n-boot", "10", "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    numbers = answer["numbers"]
    assert numbers["effect"] == pytest.approx(2.0, rel=0.05)
    assert numbers["ci_low"] < 2.0 < numbers["ci_high"]
    assert sorted(numbers["adjustment_set"]) == ["w", "z"]  # '-customer' left it out
    assert answer["reading"].startswith("Setting x from 0 to 1 changes y by +")
    assert answer["fit_seconds"] > 0 and answer["cached"] is False


def test_star_never_drops_a_text_column_silently(csv: Path, tmp_path: Path) -> None:
    out = flowloom(tmp_path, "--data", str(csv), "--confounders", "*", "--query", "effect",
                   "--treatment", "x", "--outcome", "y", "--quality", "fast")
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: data: column customer (2000 text values: 'c0', ")
    assert "too many values to encode as 0/1 columns" in out.stderr
    assert "--confounders '*,-customer'" in out.stderr


def test_star_encodes_a_many_valued_text_confounder(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 1500
    region = rng.choice(["east", "north", "south"], n)
    shift = pd.Series(region).map({"east": -1.0, "north": 0.0, "south": 1.5}).to_numpy()
    x = shift + rng.normal(size=n)
    y = 2.0 * x + 2.0 * shift + rng.normal(size=n)
    path = tmp_path / "regions.csv"
    pd.DataFrame({"region": region, "x": x, "y": y}).to_csv(path, index=False)
    out = flowloom(tmp_path, "--data", str(path), "--confounders", "*", "--query", "effect",
                   "--treatment", "x", "--outcome", "y", "--value", "1", "--baseline", "0",
                   "--quality", "fast", "--n-boot", "10", "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert sorted(answer["numbers"]["adjustment_set"]) == ["region=north", "region=south"]
    assert answer["numbers"]["effect"] == pytest.approx(2.0, rel=0.05)
    assert answer["one_hot"] == {"region": {"baseline": "east", "columns": {
        "north": "region=north", "south": "region=south"}}}


def test_a_mistake_is_one_line_and_exit_2(csv: Path, tmp_path: Path) -> None:
    out = flowloom(tmp_path, "--data", str(csv), "--graph", "z -> x; x -> q", "--query",
                   "effect", "--treatment", "x", "--outcome", "y")
    assert out.returncode == 2, out.stderr
    assert out.stdout == "" and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr == ("error: graph: edge 'x -> q': 'q' is not a column; columns: "
                          "customer, z, w, x, y\n")


def test_graph_files_units_and_usage_errors(csv: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    dot = tmp_path / "g.dot"
    dot.write_text("digraph { z -> x; z -> y; w -> y; x -> y }")
    done = runner.invoke(causal_app, [
        "query", "--data", str(csv), "--graph", str(dot), "--query", "counterfactual",
        "--treatment", "x", "--outcome", "y", "--value", "0", "--unit", "3",
        "--quality", "fast"])
    assert done.exit_code == 0, done.output
    assert done.output.startswith("For row 3, y was") and "counterfactual_outcome:" in done.output
    for kind, args, message in [
        ("why", ["--graph", "z -> x"], "not one of effect, intervene"),
        ("effect", ["--graph", str(tmp_path / "missing.dot")], "no such file"),
        ("effect", [], "give --graph FILE_OR_TEXT or --confounders"),
        ("counterfactual", ["--graph", "z -> x; x -> y", "--unit", "row three"],
         "give a row number or JSON"),
    ]:
        result = runner.invoke(causal_app, ["query", "--data", str(csv), "--query", kind,
                                            "--treatment", "x", "--outcome", "y", *args])
        assert isinstance(result.exception, UsageError), (args, result.output)
        assert message in str(result.exception)


def test_the_effect_on_the_treated_from_the_cli(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLOWLOOM_HOME", str(tmp_path / "home"))
    rng = np.random.default_rng(22)
    n = 1500
    z = rng.normal(size=n)
    t = (rng.random(n) < 1 / (1 + np.exp(-1.5 * z))).astype(int)
    y = (1.0 + 2.0 * z) * t + z + 0.5 * rng.normal(size=n)
    path = tmp_path / "t.csv"
    pd.DataFrame({"z": z, "t": t, "y": y}).to_csv(path, index=False)
    args = ["query", "--data", str(path), "--graph", "z -> t; z -> y; t -> y", "--query",
            "effect", "--treatment", "t", "--outcome", "y", "--quality", "fast", "--json"]
    runner = CliRunner()
    out = runner.invoke(causal_app, [*args, "--population", "treated"])
    assert out.exit_code == 0, out.output
    numbers = json.loads(out.output)["numbers"]
    assert numbers["population"] == "treated" and numbers["units"] == int(t.sum())
    assert numbers["effect"] == pytest.approx(1 + 2 * z[t == 1].mean(), abs=0.1)
    bad = runner.invoke(causal_app, [*args, "--population", "everyone"])
    assert bad.exit_code != 0
    assert isinstance(bad.exception, UsageError) and "--population 'everyone'" in str(
        bad.exception)
