"""Causal queries against ground truth (`flowloom.tools.causal`), baselines side by side.

1. Synthetic structural causal models with known effects, several seeds each:
     linear     continuous treatment, two confounders, a mediator (total effect 1.6)
     nonlinear  tanh and squares, additive, continuous treatment
     interaction  the same plus an x * z term (the effect varies with a confounder)
     binary     0/1 treatment, a continuous and a binary confounder, effect heterogeneity
     churn      the shipped demo's SCM (`benchmarks/make_causal_demo.py`), discount 0 -> 1
   Per case: the truth, the gcm estimate (`run_query(kind="effect")`), its error, its
   interval and whether it covers the truth, the library's backdoor estimate and the
   naive (unadjusted) one. Unit counterfactuals: 200 units against the generating
   equations (their own noise kept), relative error of the counterfactual change.
2. LaLonde: NSW experiment (treat -> re78, experimental difference 1,794.34) and NSW
   treated + CPS controls (observational), naive vs backdoor vs gcm, plus OLS on the
   covariates and the effect on the treated (gcm and backdoor, population="treated").
1b. (--only coverage) Empirical coverage of the nominal 95% interval: --coverage-seeds
   seeds per synthetic SCM, each a fresh sample and fit, against the population truth.
2b. (--only acic) ACIC 2016 instances shipped by causallib (4,802 rows, 58 covariates,
   three of them text of 6, 16 and 5 values), every covariate a confounder ('*'), against
   the known mean(mu1 - mu0); and (with lalonde) the NSW experiment with '*'.
3. Latency once fitted: effect and counterfactual queries p50/p95 (>= 50 each), the fit,
   batched counterfactuals per second over 10,000 units, and the same queries refitting
   per query (no cache) so the ratio shows what the cache buys.

    $ LITELLM_LOCAL_MODEL_COST_MAP=True DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 nice -n 10 \\
      .venv/bin/python benchmarks/causal_eval.py
    $ ... benchmarks/causal_eval.py --only coverage --coverage-seeds 50 --workers 2
    $ ... benchmarks/causal_eval.py --only acic --only lalonde
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowloom.tools import causal

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_causal_demo as demo  # noqa: E402

LALONDE = Path("/work/shared/datasets/causal")
NSW_EXPERIMENTAL = 1794.34  # difference in mean re78, NSW treated - NSW controls
COVARIATES = ["age", "educ", "black", "hisp", "marr", "nodegree", "re74", "re75"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# ---------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One synthetic SCM: data, graph, the query, and the truth (average and per unit)."""

    name: str
    table: pd.DataFrame
    graph: str
    treatment: str
    outcome: str
    value: float
    baseline: float
    truth: float
    # outcome of every row had the treatment been `v` (the row's own noise kept)
    counterfactual: Callable[[float], np.ndarray]
    binary: bool = False


def case_linear(n: int, seed: int) -> Case:
    rng = np.random.default_rng(seed)
    z1, z2 = rng.normal(size=n), rng.normal(size=n)
    x = 0.8 * z1 - 0.6 * z2 + rng.normal(size=n)
    nm, ny = rng.normal(size=n), rng.normal(size=n)

    def y_of(xv: np.ndarray | float) -> np.ndarray:
        m = 0.5 * xv + nm
        return 1.2 * xv + 0.8 * m + 1.5 * z1 + 1.0 * z2 + ny

    table = pd.DataFrame({"z1": z1, "z2": z2, "x": x, "m": 0.5 * x + nm, "y": y_of(x)})
    graph = "z1 -> x; z2 -> x; z1 -> y; z2 -> y; x -> m; m -> y; x -> y"
    return Case("linear", table, graph, "x", "y", 1.0, 0.0, 1.2 + 0.8 * 0.5,
                lambda v: y_of(np.full(n, v)))


def _nonlinear(n: int, seed: int, interaction: float) -> tuple[pd.DataFrame, str, Any]:
    rng = np.random.default_rng(seed)
    z, w = rng.uniform(0.0, 2.0, n), rng.normal(size=n)
    x = 1.2 * (z - 1.0) + 0.5 * w**2 - 0.5 + rng.normal(0.0, 0.7, n)
    ny = rng.normal(0.0, 0.5, n)

    def y_of(xv: np.ndarray | float) -> np.ndarray:
        return (2.0 * np.tanh(xv) + interaction * xv * z + 1.5 * z + (z - 1.0) ** 2
                + 0.8 * w**2 + ny)

    table = pd.DataFrame({"z": z, "w": w, "x": x, "y": y_of(x)})
    return table, "z -> x; w -> x; z -> y; w -> y; x -> y", y_of


def case_nonlinear(n: int, seed: int) -> Case:
    table, graph, y_of = _nonlinear(n, seed, 0.0)
    return Case("nonlinear", table, graph, "x", "y", 1.0, 0.0, float(2.0 * np.tanh(1.0)),
                lambda v: y_of(np.full(n, v)))


def case_interaction(n: int, seed: int) -> Case:
    table, graph, y_of = _nonlinear(n, seed, 0.6)
    # E[2 tanh(1) + 0.6 z] - E[0], E[z] = 1
    return Case("interaction", table, graph, "x", "y", 1.0, 0.0,
                float(2.0 * np.tanh(1.0) + 0.6), lambda v: y_of(np.full(n, v)))


def case_binary(n: int, seed: int) -> Case:
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=n)
    z2 = (rng.random(n) < 0.4).astype(int)
    t = (rng.random(n) < _sigmoid(-0.3 + 1.2 * z1 + 0.8 * z2)).astype(int)
    ny = rng.normal(size=n)

    def y_of(tv: np.ndarray | float) -> np.ndarray:
        return 2.0 * tv + 1.5 * z1 + 1.0 * z2 + 0.8 * tv * z2 + ny

    table = pd.DataFrame({"z1": z1, "z2": z2, "t": t, "y": y_of(t)})
    graph = "z1 -> t; z2 -> t; z1 -> y; z2 -> y; t -> y"
    return Case("binary", table, graph, "t", "y", 1.0, 0.0, 2.0 + 0.8 * 0.4,
                lambda v: y_of(np.full(n, v)), binary=True)


def case_churn(n: int, seed: int) -> Case:
    table = demo.simulate(n=n, seed=seed)
    for col in ("tenure_months", "support_tickets", "discount", "price_increase"):
        table[col] = table[col].round().astype(int)
    te = demo.true_effect_discount()
    graph = "; ".join(f"{a} -> {b}" for a, b in demo.EDGES)
    y, d = table["churn_score"].to_numpy(), table["discount"].to_numpy()
    return Case("churn", table, graph, "discount", "churn_score", 1.0, 0.0, te,
                lambda v: y + te * (v - d), binary=True)


CASES = {"linear": case_linear, "nonlinear": case_nonlinear,
         "interaction": case_interaction, "binary": case_binary, "churn": case_churn}


# ----------------------------------------------------------------------- helpers


def _query(**kw: Any) -> Any:
    return causal.CausalQuery(**kw)


def _effect(table: pd.DataFrame, graph: Any, treatment: str, outcome: str, value: float,
            baseline: float, seed: int = 0) -> dict[str, Any]:
    q = _query(kind="effect", treatment=treatment, outcome=outcome, value=value,
               baseline=baseline)
    return causal.run_query(table, graph, q, seed=seed)


def _ols_slope(table: pd.DataFrame, outcome: str, treatment: str, adjust: list[str]) -> float:
    x = np.column_stack([np.ones(len(table)), table[treatment].to_numpy(float),
                         *(table[c].to_numpy(float) for c in adjust)])
    beta, *_ = np.linalg.lstsq(x, table[outcome].to_numpy(float), rcond=None)
    return float(beta[1])


def _pct(a: float, truth: float) -> float:
    return 100.0 * abs(a - truth) / abs(truth)


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}" if np.isfinite(x) else "n/a"


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                    for i, (h, w) in enumerate(zip(headers, widths, strict=True))))
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def _quantile(xs: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(xs), q))


# ------------------------------------------------------------------ 1. synthetic


def _short(mechanism: str) -> str:
    """'AdditiveNoiseModel(PolynomialFeatures+LinearRegression)' -> 'poly'."""
    for key, short in (("Polynomial", "poly"), ("Spline", "spline"), ("HistGradient", "hgb"),
                       ("Linear", "linear"), ("Empirical", "empirical")):
        if key in mechanism:
            return short
    return mechanism


def synthetic(seeds: list[int], n: int, n_units: int) -> None:
    print(f"\n1. Synthetic SCMs: {len(seeds)} seeds x n = {n:,} (churn: n = {demo.N_ROWS:,}),"
          " effect of do(treatment = value) vs do(treatment = baseline), value 1, baseline 0")
    rows: list[list[str]] = []
    summary: dict[str, dict[str, list[float]]] = {}
    cf_rows: list[list[str]] = []
    for name, make in CASES.items():
        stats = summary.setdefault(name, {"err": [], "cov": [], "bd": [], "nv": [],
                                          "fit": [], "q": [], "cf": [], "cfmax": [],
                                          "cfsd": []})
        for seed in seeds:
            c = make(demo.N_ROWS if name == "churn" else n, seed)
            sample_truth = float(np.mean(c.counterfactual(c.value)
                                         - c.counterfactual(c.baseline)))
            graph = causal.parse_graph(c.graph)
            t0 = time.perf_counter()
            res = _effect(c.table, graph, c.treatment, c.outcome, c.value, c.baseline,
                          seed=seed)
            wall = time.perf_counter() - t0
            num = res["numbers"]
            est, lo, hi = num["effect"], num["ci_low"], num["ci_high"]
            bd, nv = num["backdoor_effect"], num["naive_difference"]
            covered = lo <= c.truth <= hi
            mech = _short(num["mechanisms"].get(c.outcome, "?"))
            stats["err"].append(_pct(est, c.truth))
            stats["cov"].append(float(covered))
            stats["bd"].append(_pct(bd, c.truth))
            stats["nv"].append(_pct(nv, c.truth))
            stats["fit"].append(res["fit_seconds"])
            stats["q"].append(res["query_seconds"])
            rows.append([f"{name} s{seed}", _fmt(c.truth), _fmt(sample_truth), _fmt(est),
                         f"{_pct(est, c.truth):.1f}%", f"[{lo:+.3f}, {hi:+.3f}]",
                         "yes" if covered else "NO", mech, _fmt(bd),
                         f"{_pct(bd, c.truth):.1f}%", _fmt(nv), f"{_pct(nv, c.truth):.1f}%",
                         f"{res['fit_seconds']:.1f}", f"{wall:.1f}"])
            # unit counterfactuals: units whose treatment moves a good way
            rng = np.random.default_rng(1000 + seed)
            x = c.table[c.treatment].to_numpy(float)
            if c.binary:
                v = 1.0
                pool = np.flatnonzero(x == 0)
            else:
                v = float(np.quantile(x, 0.9))
                pool = np.flatnonzero(x <= np.quantile(x, 0.5))
            units = rng.choice(pool, size=min(n_units, len(pool)), replace=False)
            est_cf = np.asarray(causal.counterfactuals(c.table, graph, units.tolist(),
                                                       c.treatment, v, c.outcome, seed=seed),
                                float)
            true_cf = c.counterfactual(v)[units]
            y_obs = c.table[c.outcome].to_numpy(float)[units]
            rel = np.abs((est_cf - y_obs) - (true_cf - y_obs)) / np.abs(true_cf - y_obs)
            stats["cf"].append(float(np.median(rel)))
            stats["cfmax"].append(float(np.max(rel)))
            stats["cfsd"].append(float(np.max(np.abs(est_cf - true_cf))
                                       / c.table[c.outcome].std()))
            cf_rows.append([f"{name} s{seed}", f"{len(units)}", f"{v:.3f}",
                            f"{100 * np.median(rel):.2f}%", f"{100 * np.max(rel):.2f}%",
                            f"{stats['cfsd'][-1]:.4f}"])
            print(f"  ... {name} seed {seed}: {wall:.1f} s", file=sys.stderr, flush=True)
    print("truth: population effect from the equations; sample: the mean over these rows of"
          " each unit's true effect; err vs truth; CI: the library's 95% bootstrap interval;"
          " y model: the outcome's fitted mechanism; s: fit + query wall seconds")
    _print_table(["case seed", "truth", "sample", "gcm", "err", "95% CI", "covers", "y model",
                  "backdoor", "err", "naive", "err", "fit s", "s"], rows)
    print("\nPer case over seeds (goal: gcm within 5% of truth, CI covering it)")
    srows = []
    for name, st in summary.items():
        srows.append([name, f"{statistics.mean(st['err']):.1f}%", f"{max(st['err']):.1f}%",
                      f"{sum(st['cov']):.0f}/{len(st['cov'])}",
                      f"{sum(e <= 5.0 for e in st['err'])}/{len(st['err'])}",
                      f"{statistics.mean(st['bd']):.1f}%", f"{statistics.mean(st['nv']):.1f}%",
                      f"{statistics.median(st['fit']):.1f}",
                      f"{1000 * statistics.median(st['q']):.0f}"])
    _print_table(["case", "gcm mean err", "max err", "CI covers", "within 5%",
                  "backdoor mean err", "naive mean err", "fit s (median)",
                  "query ms (median)"], srows)
    print(f"\nUnit counterfactuals ({n_units} units a seed): the treatment set to `value`"
          " (continuous: its 90th percentile, for units at or below the median; binary: 1,"
          " for untreated units); relative error of the counterfactual change y_cf - y_obs"
          " against the generating equations (each unit's own noise)")
    _print_table(["case seed", "units", "value", "median rel err", "max rel err",
                  "max |err| / sd(y)"], cf_rows)
    crows = [[name, f"{100 * statistics.median(st['cf']):.2f}%",
              f"{100 * max(st['cfmax']):.2f}%", f"{max(st['cfsd']):.4f}"]
             for name, st in summary.items()]
    print("\nPer case over seeds")
    _print_table(["case", "median rel err", "max rel err", "max |err| / sd(y)"], crows)


def shipped_demo() -> None:
    """The shipped churn.csv against the true effects its README gives."""
    table = pd.read_csv(demo.OUT / "churn.csv")
    graph = causal.parse_graph((demo.OUT / "churn.graph").read_text())
    checks = [("discount", "churn_score", demo.true_effect_discount()),
              ("price_increase", "churn_score", demo.true_effect_price_increase()),
              ("discount", "satisfaction", demo.SAT["discount"]),
              ("discount", "monthly_spend", demo.SPEND["discount"])]
    print(f"\nShipped demo (tools/demo_data/causal/churn.csv, {len(table):,} rows), 0 -> 1")
    rows = []
    errors = []
    for treatment, outcome, truth in checks:
        try:
            num = _effect(table, graph, treatment, outcome, 1.0, 0.0)["numbers"]
        except Exception as exc:  # a library failure is a result here
            errors.append(f"{treatment} -> {outcome}: {type(exc).__name__}: {exc}")
            rows.append([f"{treatment} -> {outcome}", _fmt(truth, 4), f"error {len(errors)}",
                         "", "", "", "", ""])
            continue
        lo, hi = num["ci_low"], num["ci_high"]
        rows.append([f"{treatment} -> {outcome}", _fmt(truth, 4), _fmt(num["effect"], 4),
                     f"{_pct(num['effect'], truth):.1f}%", f"[{lo:+.4f}, {hi:+.4f}]",
                     "yes" if lo <= truth <= hi else "NO", _fmt(num["backdoor_effect"], 4),
                     _fmt(num["naive_difference"], 4)])
    _print_table(["effect", "truth", "gcm", "err", "95% CI", "covers", "backdoor", "naive"],
                 rows)
    for i, message in enumerate(errors, 1):
        print(f"error {i}: {message}")


# ------------------------------------------------------------------- 1b. coverage


def _covers(job: tuple[str, int, int, int]) -> tuple[str, int, float, float, float, float]:
    """One seed of one SCM: (case, seed, truth, estimate, ci_low, ci_high)."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    name, seed, n, n_boot = job
    c = CASES[name](demo.N_ROWS if name == "churn" else n, seed)
    q = _query(kind="effect", treatment=c.treatment, outcome=c.outcome, value=c.value,
               baseline=c.baseline, n_boot=n_boot)
    num = causal.run_query(c.table, causal.parse_graph(c.graph), q, seed=seed)["numbers"]
    causal.clear_cache()
    return name, seed, c.truth, num["effect"], num["ci_low"], num["ci_high"]


def coverage(seeds: int, n: int, n_boot: int, workers: int) -> None:
    """Empirical coverage of the nominal 95% interval: many seeds per synthetic SCM, each a
    fresh sample and fit, against the population truth."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(name, seed, n, n_boot) for seed in range(seeds) for name in CASES]
    print(f"\n1b. Interval coverage: {seeds} seeds x {len(CASES)} SCMs, n = {n:,} (churn:"
          f" {demo.N_ROWS:,}), {n_boot} bootstrap refits, nominal 95%")
    results = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for r in pool.map(_covers, jobs):  # in order; each printed as it comes
            results.append(r)
            print(f"  ... {r[0]} seed {r[1]}: truth {r[2]:+.4f} estimate {r[3]:+.4f} CI"
                  f" [{r[4]:+.4f}, {r[5]:+.4f}] {'covers' if r[4] <= r[2] <= r[5] else 'MISS'}",
                  file=sys.stderr, flush=True)
    rows = []
    for name in CASES:
        mine = [r for r in results if r[0] == name]
        covered = [lo <= truth <= hi for _, _, truth, _, lo, hi in mine]
        errors = [est - truth for _, _, truth, est, _, _ in mine]
        widths = [hi - lo for *_, lo, hi in mine]
        # the interval's implied sd against the estimates' actual spread over seeds
        implied = statistics.mean(w / (2 * 1.96) for w in widths)
        rows.append([name, f"{sum(covered)}/{len(covered)}",
                     f"{100 * sum(covered) / len(covered):.0f}%",
                     _fmt(statistics.mean(errors), 4), f"{statistics.stdev(errors):.4f}",
                     f"{implied:.4f}",
                     f"{statistics.stdev(errors) / implied:.2f}"])
    _print_table(["case", "covers", "coverage", "mean bias", "sd over seeds",
                  "interval sd", "ratio"], rows)
    total = sum(lo <= truth <= hi for _, _, truth, _, lo, hi in results)
    print(f"all: {total}/{len(results)} = {100 * total / len(results):.1f}% (nominal 95%);"
          " ratio: sd of the estimate over seeds / the sd the interval implies (1 = right)")


# --------------------------------------------------------------------- 2. LaLonde


def lalonde() -> None:
    nsw = pd.read_csv(LALONDE / "nsw_mixtape.csv")
    cps = pd.read_csv(LALONDE / "cps_mixtape.csv")
    cols = [*COVARIATES, "treat", "re78"]
    nsw, cps = nsw[cols].copy(), cps[cols].copy()
    obs = pd.concat([nsw[nsw["treat"] == 1], cps[cps["treat"] == 0]], ignore_index=True)
    print("\n2. LaLonde: effect of treat on re78 (1978 earnings, $); experimental benchmark"
          f" {NSW_EXPERIMENTAL:,.2f}")
    rows = []
    for label, table in (("NSW experiment", nsw), ("NSW treated + CPS controls", obs)):
        graph = causal.confounders_graph(list(table.columns), "treat", "re78", COVARIATES)
        t0 = time.perf_counter()
        res = _effect(table, graph, "treat", "re78", 1.0, 0.0)
        wall = time.perf_counter() - t0
        num = res["numbers"]
        ols = _ols_slope(table, "re78", "treat", COVARIATES)
        att = causal.run_query(table, graph, _query(kind="effect", treatment="treat",
                                                    outcome="re78", population="treated"))
        on_treated = att["numbers"]
        rows.append([label, f"{len(table):,}", f"{num['naive_difference']:,.0f}",
                     f"{num.get('backdoor_effect', float('nan')):,.0f}",
                     str(num.get("backdoor_method", "")), f"{ols:,.0f}",
                     f"{num['effect']:,.0f}",
                     f"[{num['ci_low']:,.0f}, {num['ci_high']:,.0f}]",
                     f"{on_treated['effect']:,.0f}",
                     f"[{on_treated['ci_low']:,.0f}, {on_treated['ci_high']:,.0f}]",
                     f"{on_treated['backdoor_effect']:,.0f}",
                     _short(num["mechanisms"].get("re78", "?")), f"{wall:.1f}"])
    _print_table(["data", "rows", "naive", "backdoor", "method", "OLS adj", "gcm ATE",
                  "gcm 95% CI", "gcm ATT", "ATT 95% CI", "backdoor ATT", "re78 model", "s"],
                 rows)
    print("ATT: the effect on the treated (population='treated'): the NSW treated are the "
          "same people in both rows, so the experiment's 1,794 is the target of both")


# ------------------------------------------------------------------ 2b. ACIC 2016


def acic(instances: list[int], n_boot: int, confounders: str = "*") -> None:
    """ACIC 2016 data challenge instances as causallib ships them (4,802 rows, 58
    covariates, x_2, x_21 and x_24 text of 6, 16 and 5 values): the effect of z on y with
    every covariate a confounder (`confounders_graph(..., "*")`), against the truth
    mean(mu1 - mu0) over the rows (and the sample's mean(y1 - y0))."""
    from causallib.datasets import load_acic16

    print(f"\n2b. ACIC 2016 (causallib's instances), effect of z on y, confounders"
          f" '{confounders}', {n_boot} bootstrap refits")
    rows = []
    errors: list[float] = []
    covered: list[bool] = []
    for instance in instances:
        x, zymu = load_acic16(instance=instance, raw=True)
        table = x.copy()
        table["z"] = zymu["z"].to_numpy()
        table["y"] = np.where(table["z"] == 1, zymu["y1"], zymu["y0"])
        truth = float((zymu["mu1"] - zymu["mu0"]).mean())
        sample = float((zymu["y1"] - zymu["y0"]).mean())
        text = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
        graph = causal.confounders_graph(list(table.columns), "z", "y", confounders)
        t0 = time.perf_counter()
        res = causal.run_query(table, graph, _query(kind="effect", treatment="z", outcome="y",
                                                    n_boot=n_boot))
        wall = time.perf_counter() - t0
        num = res["numbers"]
        used = set(num["adjustment_set"])
        one_hot = res["one_hot"]
        all_used = all(c in used or (c in one_hot and set(one_hot[c]["columns"].values())
                                     <= used) for c in x.columns)
        lo, hi = num["ci_low"], num["ci_high"]
        errors.append(_pct(num["effect"], truth))
        covered.append(lo <= truth <= hi)
        rows.append([f"instance {instance}", f"{len(table):,}", f"{x.shape[1]}",
                     ",".join(f"{c}:{table[c].nunique()}" for c in text),
                     f"{len(used)}", "yes" if all_used else "NO", _fmt(truth),
                     _fmt(sample), _fmt(num["effect"]), f"{errors[-1]:.1f}%",
                     f"[{lo:+.3f}, {hi:+.3f}]", "yes" if covered[-1] else "NO",
                     _fmt(num["backdoor_effect"]),
                     f"{_pct(num['backdoor_effect'], truth):.1f}%",
                     _fmt(num["naive_difference"]),
                     f"{_pct(num['naive_difference'], truth):.1f}%",
                     _short(num["mechanisms"].get("y", "?")), f"{wall:.0f}"])
        print(f"  ... ACIC instance {instance}: {wall:.0f} s", file=sys.stderr, flush=True)
        causal.clear_cache()
    _print_table(["data", "rows", "covariates", "text (values)", "adjusted", "all used",
                  "truth", "sample", "gcm", "err", "95% CI", "covers", "backdoor", "err",
                  "naive", "err", "y model", "s"], rows)
    print(f"truth: mean(mu1 - mu0) over the rows; sample: mean(y1 - y0); adjusted: columns in"
          f" the adjustment set (text ones as 0/1 columns). gcm within 5%:"
          f" {sum(e <= 5.0 for e in errors)}/{len(errors)}, CI covers:"
          f" {sum(covered)}/{len(covered)}, mean error {statistics.mean(errors):.1f}%")


def lalonde_star() -> None:
    """The NSW experiment with `--confounders '*'`: every column but treat and re78 (the
    text column data_id, one value here, too) against the experimental 1,794.34."""
    nsw = pd.read_csv(LALONDE / "nsw_mixtape.csv")
    graph = causal.confounders_graph(list(nsw.columns), "treat", "re78", "*")
    res = causal.run_query(nsw, graph, _query(kind="effect", treatment="treat",
                                              outcome="re78"))
    num = res["numbers"]
    print(f"\nNSW experiment, '*' confounders ({len(nsw):,} rows): gcm {num['effect']:,.0f}"
          f" ({_pct(num['effect'], NSW_EXPERIMENTAL):.1f}% off 1,794.34), 95% CI"
          f" [{num['ci_low']:,.0f}, {num['ci_high']:,.0f}]"
          f" ({'covers' if num['ci_low'] <= NSW_EXPERIMENTAL <= num['ci_high'] else 'MISSES'}),"
          f" backdoor {num['backdoor_effect']:,.0f}, naive {num['naive_difference']:,.0f};"
          f" adjusted for {', '.join(sorted(num['adjustment_set']))}; encodings"
          f" {res['encodings']}")


# --------------------------------------------------------------------- 3. latency


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _int_table(df: pd.DataFrame) -> pd.DataFrame:
    for col in ("tenure_months", "support_tickets", "discount", "price_increase"):
        df[col] = df[col].round().astype(int)
    return df


def latency(n_queries: int, n_batch: int, n_refit: int) -> None:
    print(f"\n3. Latency once fitted (the shipped demo, churn.csv, {demo.N_ROWS:,} rows;"
          f" {n_queries} different queries of each kind)")
    table = pd.read_csv(demo.OUT / "churn.csv")
    graph = causal.parse_graph((demo.OUT / "churn.graph").read_text())
    causal.clear_cache()
    fit_s = _timed(lambda: causal.fit_scm(table, graph))
    again_s = _timed(lambda: causal.fit_scm(table, graph))

    # effect queries: 3 pairs x levels / confidence varied, so no answer memo can serve them
    def effect_query(i: int) -> Any:
        pair = i % 3
        if pair == 0:
            return _query(kind="effect", treatment="discount", outcome="churn_score",
                          value=1.0, baseline=0.0, confidence=0.80 + 0.002 * i)
        if pair == 1:
            return _query(kind="effect", treatment="discount", outcome="satisfaction",
                          value=1.0, baseline=0.0, confidence=0.80 + 0.002 * i)
        return _query(kind="effect", treatment="tenure_months", outcome="churn_score",
                      value=float(12 + i), baseline=6.0)

    first_pair: list[float] = []  # a pair's first query: its bootstrap refits
    eff: list[float] = []
    for i in range(n_queries + 3):
        res = causal.run_query(table, graph, effect_query(i))
        assert res["cached"]
        (first_pair if i < 3 else eff).append(res["fit_seconds"] + res["query_seconds"])
    repeat = _timed(lambda: causal.run_query(table, graph, effect_query(5)))
    rng = np.random.default_rng(7)
    cfq: list[float] = []
    for i, u in enumerate(rng.choice(len(table), size=n_queries, replace=False)):
        q = _query(kind="counterfactual", treatment="discount", outcome="churn_score",
                   value=float(i % 2), unit=int(u))
        cfq.append(_timed(partial(causal.run_query, table, graph, q)))

    # baseline: no cache, every query fits the model again (the same effect query)
    nocache: list[float] = []
    for _ in range(n_refit):
        causal.clear_cache()
        nocache.append(_timed(lambda: causal.run_query(table, graph, effect_query(0))))
    # batched counterfactuals over n_batch units
    big = _int_table(demo.simulate(n=n_batch, seed=3))
    big_fit = _timed(lambda: causal.fit_scm(big, graph))
    all_units = list(range(n_batch))
    batch_s = _timed(lambda: causal.counterfactuals(big, graph, all_units, "discount", 1.0,
                                                    "churn_score"))
    one_by_one = [_timed(partial(causal.run_query, big, graph, _query(
        kind="counterfactual", treatment="discount", outcome="churn_score", value=1.0,
        unit=int(u)))) for u in range(50)]

    def ms(xs: list[float], q: float) -> str:
        return f"{_quantile(xs, q) * 1000:,.1f}"

    rows = [
        [f"fit (n={demo.N_ROWS:,}, first)", f"{fit_s * 1000:,.0f}", "", "1"],
        ["fit again (cache hit)", f"{again_s * 1000:,.2f}", "", "1"],
        ["effect, a pair's first query (bootstrap refits)", ms(first_pair, .5),
         ms(first_pair, .95), f"{len(first_pair)}"],
        ["effect query (fitted)", ms(eff, .5), ms(eff, .95), f"{len(eff)}"],
        # eff[j] is query i = j + 3: pair (j % 3)
        ["  discount -> churn_score", ms(eff[0::3], .5), ms(eff[0::3], .95),
         f"{len(eff[0::3])}"],
        ["  discount -> satisfaction", ms(eff[1::3], .5), ms(eff[1::3], .95),
         f"{len(eff[1::3])}"],
        ["  tenure_months -> churn_score (new levels)", ms(eff[2::3], .5), ms(eff[2::3], .95),
         f"{len(eff[2::3])}"],
        ["effect query repeated (answer memo)", f"{repeat * 1000:.2f}", "", "1"],
        ["counterfactual query (fitted)", ms(cfq, .5), ms(cfq, .95), f"{len(cfq)}"],
        ["baseline: effect query, no cache (fit + query)", ms(nocache, .5), ms(nocache, .95),
         f"{len(nocache)}"],
        [f"fit (n={n_batch:,})", f"{big_fit * 1000:,.0f}", "", "1"],
        [f"counterfactual query (fitted, n={n_batch:,})", ms(one_by_one, .5),
         ms(one_by_one, .95), f"{len(one_by_one)}"],
    ]
    _print_table(["what", "p50 ms", "p95 ms", "n"], rows)
    print(f"batched counterfactuals: {n_batch:,} units in {batch_s:.3f} s ="
          f" {n_batch / batch_s:,.0f} units/s; one run_query a unit:"
          f" {1 / _quantile(one_by_one, .5):,.0f} units/s")
    print(f"cache: effect query p50 {_quantile(eff, .5) * 1000:.1f} ms fitted vs"
          f" {_quantile(nocache, .5) * 1000:,.0f} ms refitting ="
          f" {_quantile(nocache, .5) / _quantile(eff, .5):,.0f}x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--units", type=int, default=200)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--refit", type=int, default=3)
    ap.add_argument("--coverage-seeds", type=int, default=50)
    ap.add_argument("--n-boot", type=int, default=20, help="coverage: bootstrap refits")
    ap.add_argument("--workers", type=int, default=2, help="coverage: processes")
    ap.add_argument("--acic", default="1,2,3,4,5,6,7,8,9,10",
                    help="acic: causallib's ACIC 2016 instances (1-10)")
    ap.add_argument("--acic-confounders", default="*",
                    help="acic: e.g. '*,-x_2,-x_21,-x_24' leaves the text covariates out")
    ap.add_argument("--only", choices=["synthetic", "coverage", "lalonde", "acic", "latency"],
                    action="append")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    # coverage and acic (causallib, minutes): when named
    only = set(args.only or ["synthetic", "lalonde", "latency"])
    t0 = time.perf_counter()
    import dowhy.gcm  # noqa: F401  (imported before anything is timed)

    print(f"import {time.perf_counter() - t0:.1f} s")
    if "synthetic" in only:
        synthetic(list(range(args.seeds)), args.n, args.units)
        shipped_demo()
    if "coverage" in only:
        coverage(args.coverage_seeds, args.n, args.n_boot, args.workers)
    if "lalonde" in only:
        lalonde()
        lalonde_star()
    if "acic" in only:
        acic([int(i) for i in args.acic.split(",")], args.n_boot, args.acic_confounders)
    if "latency" in only:
        latency(args.queries, args.batch, args.refit)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
