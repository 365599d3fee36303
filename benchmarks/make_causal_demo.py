"""Write the causal demo dataset: an outdoor shop's customers, drawn from a known SCM.

Writes `tools/demo_data/causal/churn.csv`, `churn.graph` (one `a -> b` edge a line) and
`README.md` (columns, the generating equations, the true effects). Seeded and
deterministic: the same seed gives byte-identical files, so the shipped copy can be
checked with `--check`.

    $ .venv/bin/python benchmarks/make_causal_demo.py           # (re)write the files
    $ .venv/bin/python benchmarks/make_causal_demo.py --check   # exit 1 if they differ

Every edge and coefficient is in `EDGES` and `simulate()` below; the README's numbers
come from the same constants, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent.parent / "tools" / "demo_data" / "causal"
SEED = 20260611  # the SQL demo shop's seed
N_ROWS = 2000
COLUMNS = [
    "tenure_months",
    "support_tickets",
    "discount",
    "price_increase",
    "monthly_spend",
    "satisfaction",
    "churn_score",
]

# Structural coefficients (the README and the true effects are computed from these).
SPEND = {"const": 40.0, "tenure_months": 0.5, "discount": 15.0, "price_increase": -10.0, "sd": 8.0}
SAT = {
    "const": 6.0,
    "discount": 1.0,
    "price_increase": -1.5,
    "support_tickets": -0.6,
    "tenure_months": 0.02,
    "sd": 1.0,
}
CHURN = {
    "const": 0.95,
    "tenure_months": -0.005,
    "satisfaction": -0.05,
    "monthly_spend": -0.002,
    "discount": -0.05,
    "sd": 0.05,
}
DISCOUNT_LOGIT = {"const": -2.5, "tenure_months": 0.04, "support_tickets": 0.5}
TICKETS = {"base": 2.5, "tenure_scale": 36.0}  # Poisson(2.5 * exp(-tenure / 36))
PRICE_INCREASE_P = 0.3

EDGES = [
    ("tenure_months", "support_tickets"),
    ("tenure_months", "discount"),
    ("support_tickets", "discount"),
    ("tenure_months", "monthly_spend"),
    ("discount", "monthly_spend"),
    ("price_increase", "monthly_spend"),
    ("discount", "satisfaction"),
    ("price_increase", "satisfaction"),
    ("support_tickets", "satisfaction"),
    ("tenure_months", "satisfaction"),
    ("tenure_months", "churn_score"),
    ("satisfaction", "churn_score"),
    ("monthly_spend", "churn_score"),
    ("discount", "churn_score"),
]


def true_effect_discount() -> float:
    """Total effect of discount 0 -> 1 on churn_score (linear, so the same for every unit)."""
    return (
        CHURN["discount"]
        + SAT["discount"] * CHURN["satisfaction"]
        + SPEND["discount"] * CHURN["monthly_spend"]
    )


def true_effect_price_increase() -> float:
    """Total effect of price_increase 0 -> 1 on churn_score."""
    return (
        SAT["price_increase"] * CHURN["satisfaction"]
        + SPEND["price_increase"] * CHURN["monthly_spend"]
    )


def simulate(n: int = N_ROWS, seed: int = SEED) -> pd.DataFrame:
    """Draw `n` customers from the SCM (unrounded; `write` rounds for the CSV)."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 73, size=n).astype(float)
    tickets = rng.poisson(TICKETS["base"] * np.exp(-tenure / TICKETS["tenure_scale"])).astype(float)
    logit = (
        DISCOUNT_LOGIT["const"]
        + DISCOUNT_LOGIT["tenure_months"] * tenure
        + DISCOUNT_LOGIT["support_tickets"] * tickets
    )
    discount = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(float)
    price_increase = (rng.random(n) < PRICE_INCREASE_P).astype(float)
    spend = (
        SPEND["const"]
        + SPEND["tenure_months"] * tenure
        + SPEND["discount"] * discount
        + SPEND["price_increase"] * price_increase
        + rng.normal(0.0, SPEND["sd"], n)
    )
    sat = (
        SAT["const"]
        + SAT["discount"] * discount
        + SAT["price_increase"] * price_increase
        + SAT["support_tickets"] * tickets
        + SAT["tenure_months"] * tenure
        + rng.normal(0.0, SAT["sd"], n)
    )
    churn = (
        CHURN["const"]
        + CHURN["tenure_months"] * tenure
        + CHURN["satisfaction"] * sat
        + CHURN["monthly_spend"] * spend
        + CHURN["discount"] * discount
        + rng.normal(0.0, CHURN["sd"], n)
    )
    return pd.DataFrame(
        {
            "tenure_months": tenure,
            "support_tickets": tickets,
            "discount": discount,
            "price_increase": price_increase,
            "monthly_spend": spend,
            "satisfaction": sat,
            "churn_score": churn,
        }
    )[COLUMNS]


def rounded(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in ("tenure_months", "support_tickets", "discount", "price_increase"):
        out[col] = out[col].round().astype(int)
    out["monthly_spend"] = out["monthly_spend"].round(2)
    out["satisfaction"] = out["satisfaction"].round(2)
    out["churn_score"] = out["churn_score"].round(4)
    return out


def graph_text() -> str:
    lines = [
        "# Causal graph of tools/demo_data/causal/churn.csv (written by",
        "# benchmarks/make_causal_demo.py; one `cause -> effect` edge a line).",
        "# tenure confounds discount -> churn_score (loyal customers get discounts and churn",
        "# less); support_tickets confounds it the other way (complainers get discounts and",
        "# are less satisfied). price_increase is randomised: no confounding.",
    ]
    lines += [f"{a} -> {b}" for a, b in EDGES]
    return "\n".join(lines) + "\n"


def _adjusted_ols(df: pd.DataFrame, treatment: str, covariates: list[str]) -> float:
    x = np.column_stack([np.ones(len(df)), df[treatment], *(df[c] for c in covariates)])
    beta, *_ = np.linalg.lstsq(x, df["churn_score"].to_numpy(), rcond=None)
    return float(beta[1])


def _signed(x: float) -> str:
    return f"{'-' if x < 0 else '+'} {abs(x):.4g}"


def _lin(coef: dict[str, float], names: list[str]) -> str:
    """`c + a * x - b * y` from a coefficient dict."""
    return f"{coef['const']:g}" + "".join(f" {_signed(coef[n])} * {n}" for n in names)


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def readme_text(df: pd.DataFrame) -> str:
    y = df["churn_score"]
    d = df["discount"] == 1
    naive_d = float(y[d].mean() - y[~d].mean())
    p = df["price_increase"] == 1
    naive_p = float(y[p].mean() - y[~p].mean())
    adj_d = _adjusted_ols(df, "discount", ["tenure_months", "support_tickets"])
    te_d, te_p = true_effect_discount(), true_effect_price_increase()
    s, q, c, dl, t = SPEND, SAT, CHURN, DISCOUNT_LOGIT, TICKETS
    stats = [_row("column", "mean", "sd", "min", "max"), "|---|---:|---:|---:|---:|"]
    for col, r in df.describe().T.iterrows():
        stats.append(_row(f"`{col}`", *(f"{r[k]:.3f}" for k in ("mean", "std", "min", "max"))))
    columns = [
        _row("column", "meaning", "type"),
        "|---|---|---|",
        _row("`tenure_months`", "months since the customer's first order (1-72)", "integer"),
        _row("`support_tickets`", "support tickets opened in the last year", "integer count"),
        _row("`discount`", "got the loyalty discount (the treatment of interest)", "0/1"),
        _row("`price_increase`", "was shown the new, higher prices (a randomised test)", "0/1"),
        _row("`monthly_spend`", "average spend per month, in dollars", "continuous"),
        _row("`satisfaction`", "survey satisfaction, roughly 0-10", "continuous"),
        _row(
            "`churn_score`",
            "churn risk score, roughly 0-1 (a score, not a 0/1 label)",
            "continuous",
        ),
    ]
    logit = _lin(dl, ["tenure_months", "support_tickets"])
    spend = _lin(s, ["tenure_months", "discount", "price_increase"])
    sat = _lin(q, ["discount", "price_increase", "support_tickets", "tenure_months"])
    churn = _lin(c, ["tenure_months", "satisfaction", "monthly_spend", "discount"])
    equations = [
        "tenure_months   ~ UniformInteger(1, 72)",
        f"support_tickets ~ Poisson({t['base']:g} * exp(-tenure_months / {t['tenure_scale']:g}))",
        f"discount        ~ Bernoulli(sigmoid({logit}))",
        f"price_increase  ~ Bernoulli({PRICE_INCREASE_P:g})",
        f"monthly_spend   = {spend} + N(0, {s['sd']:g})",
        f"satisfaction    = {sat} + N(0, {q['sd']:g})",
        f"churn_score     = {churn} + N(0, {c['sd']:g})",
    ]
    via_sat = q["discount"] * c["satisfaction"]
    via_spend = s["discount"] * c["monthly_spend"]
    truths = [
        _row("question", "true value"),
        "|---|---:|",
        _row("effect of `discount` 0 -> 1 on `churn_score`", f"**{te_d:+.4f}**"),
        _row("... of which direct", f"{c['discount']:+.4f}"),
        _row(
            f"... through `satisfaction` ({q['discount']:g} x {c['satisfaction']:g})",
            f"{via_sat:+.4f}",
        ),
        _row(
            f"... through `monthly_spend` ({s['discount']:g} x {c['monthly_spend']:g})",
            f"{via_spend:+.4f}",
        ),
        _row("effect of `price_increase` 0 -> 1 on `churn_score`", f"**{te_p:+.4f}**"),
        _row("effect of `discount` 0 -> 1 on `satisfaction`", f"{q['discount']:+.4f}"),
        _row("effect of `discount` 0 -> 1 on `monthly_spend`", f"{s['discount']:+.4f}"),
    ]
    sample = [
        _row("estimate on `churn.csv`", "value"),
        "|---|---:|",
        _row("naive difference in mean `churn_score`, discount 1 vs 0", f"{naive_d:+.4f}"),
        _row(
            "OLS of `churn_score` on `discount`, `tenure_months`, `support_tickets`"
            " (the backdoor set)",
            f"{adj_d:+.4f}",
        ),
        _row("naive difference, price_increase 1 vs 0 (randomised)", f"{naive_p:+.4f}"),
    ]
    nl = chr(10)
    return f"""# Causal demo: an outdoor shop's customers (`churn.csv`)

Synthetic data drawn from a known structural causal model, so every causal number a query
gives can be checked against the truth. Written by `benchmarks/make_causal_demo.py`
(seed {SEED}, {len(df):,} rows; the same seed always gives the same file). The data is
flowloom's own (Apache-2.0); every value is made up. They are the customers of the same
made-up outdoor-gear shop as the SQL demo database.

Files: `churn.csv` (the table), `churn.graph` (the causal graph, one `cause -> effect`
edge a line, `#` comments), this README. From an installed flowloom:

```python
from importlib.resources import files
from pathlib import Path
demo = Path(str(files("flowloom.tools") / "demo_data" / "causal"))
csv, graph = demo / "churn.csv", demo / "churn.graph"
```

## Columns

{nl.join(columns)}

{nl.join(stats)}

## Generating equations

`N(0, s)` is independent Gaussian noise; `sigmoid(z) = 1 / (1 + exp(-z))`.

```
{nl.join(equations)}
```

The CSV rounds `monthly_spend` and `satisfaction` to 2 decimals and `churn_score` to 4.

## True effects (to check numbers against)

Everything downstream of the treatments is linear, so the effects are the same for every
customer (average = unit-level):

{nl.join(truths)}

In this sample (what a method that ignores or mishandles the graph would report):

{nl.join(sample)}

The naive difference for `discount` is confounded: long-tenure customers get the discount
more often and churn less for reasons of their own; customers with many tickets get it
more often and are less satisfied. Adjusting for `tenure_months` and `support_tickets`
(the backdoor set in `churn.graph`) removes it. `price_increase` was randomised, so its
naive difference is off only by sampling noise.

Unit counterfactual: for a customer who did not get the discount (`discount = 0`), their
`churn_score` had they got it is exactly their observed score {_signed(te_d)} (their noise
terms are kept); for one who did, without it, their observed score {_signed(-te_d)}.
"""


def render() -> dict[str, bytes]:
    df = rounded(simulate())
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return {
        "churn.csv": buf.getvalue().encode(),
        "churn.graph": graph_text().encode(),
        "README.md": readme_text(df).encode(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the shipped files")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    files = render()
    if args.check:
        bad = [
            n
            for n, b in files.items()
            if not (args.out / n).is_file() or (args.out / n).read_bytes() != b
        ]
        for name in bad:
            print(f"differs: {args.out / name}")
        return 1 if bad else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
        print(f"wrote {args.out / name} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
