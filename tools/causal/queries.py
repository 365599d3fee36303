"""Causal queries on a fitted SCM, each answered with numbers and a plain-language reading.

>>> table = pd.read_csv("shop.csv")                                          # doctest: +SKIP
>>> q = CausalQuery(kind="effect", treatment="price_up", outcome="churn")
>>> answer = run_query(table, "tenure -> price_up; tenure -> churn; price_up -> churn",
...                    q)                                                    # doctest: +SKIP
>>> answer["reading"]                                                        # doctest: +SKIP
'Setting price_up from 0 to 1 changes churn by +0.12 on average (95% CI 0.1 to 0.14), ...'

The fitted model is cached (`fit_scm`), and so is each query's answer, so a repeated
question costs microseconds; a new effect query on a fitted model costs milliseconds (its
bootstrap refits are made on the first query of a treatment/outcome pair).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from . import _backdoor
from ._words import listed, num, pct
from .errors import CausalError
from .graph import CausalGraph
from .query import CausalQuery
from .scm import FittedSCM, Quality, fit_scm, fit_scm_cached, jobs, lean_compute, seeded
from .table import OneHot

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["counterfactuals", "run_query"]

Answer = tuple[dict[str, Any], str, float]  # numbers, reading, seconds spent fitting
ABDUCE_SAMPLES = 3000  # draws of the outcome's distribution behind an anomaly score
MEMO_SIZE = 256
MIN_POPULATION = 10  # units at a level to average an effect on the treated over


def run_query(table: pd.DataFrame, graph: CausalGraph | str | Sequence[Any],
              query: CausalQuery | dict[str, Any], *, seed: int = 0,
              quality: Quality = "good") -> dict[str, Any]:
    """Answer `query` on the SCM of `graph` fitted to `table` (cached): a JSON-able
    `{"kind", "treatment", "outcome", "numbers", "reading", "fit_seconds",
    "query_seconds", "cached"}`. `fit_seconds` is the fitting this call did (the SCM on a
    cache miss; an effect's bootstrap refits on a pair's first query), `query_seconds`
    the rest. Raises `CausalError` for a user's mistake."""
    start = time.perf_counter()
    if not isinstance(query, CausalQuery):
        try:
            query = CausalQuery.model_validate(query)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "query"
            raise CausalError(f"query: {where}: {first['msg']}") from None
    for name in ("value", "baseline"):
        level = getattr(query, name)
        if level is not None and not math.isfinite(level):
            raise CausalError(f"{name}: {level} is not a finite number")
    fitted, cached = fit_scm_cached(table, graph, seed=seed, quality=quality)
    fit_seconds = time.perf_counter() - start
    _check_names(fitted, query.kind, query.treatment, query.outcome)
    begin = time.perf_counter()
    key = ("answer", seed, query.model_dump_json())
    memo = fitted.memo.get(key)
    if memo is not None:
        numbers, reading, refit = memo[0], memo[1], 0.0
    else:
        with lean_compute():
            numbers, reading, refit = _HANDLERS[query.kind](fitted, query, seed)
        with fitted.lock:
            answers = [k for k in fitted.memo if k[0] == "answer"]
            for old in answers[: max(0, len(answers) - MEMO_SIZE + 1)]:
                del fitted.memo[old]
            fitted.memo[key] = (numbers, reading)
    encodings = fitted.data.attrs.get("encodings", {})
    one_hot = fitted.data.attrs.get("one_hot", {})
    reading += _encodings_text(encodings, one_hot)
    return {"kind": query.kind, "treatment": query.treatment, "outcome": query.outcome,
            "numbers": numbers, "reading": reading, "encodings": encodings,
            "one_hot": one_hot,
            "fit_seconds": fit_seconds + refit,
            "query_seconds": time.perf_counter() - begin - refit, "cached": cached}


def _encodings_text(encodings: dict[str, dict[str, float]],
                    one_hot: dict[str, OneHot]) -> str:
    """The reading's note on text columns: two-valued ones as 0/1, many-valued ones as
    0/1 columns (so a reader sees every text confounder was adjusted for)."""
    parts = [f"{k} " + ", ".join(f"{word} = {num(v)}" for word, v in levels.items())
             for k, levels in encodings.items()]
    parts += [f"{k} ({len(e['columns']) + 1} values) as 0/1 columns "
              f"{', '.join(e['columns'].values())} ({e['baseline']}: all 0)"
              for k, e in one_hot.items()]
    return " Text columns as numbers: " + "; ".join(parts) + "." if parts else ""


def _nodes_text(fitted: FittedSCM) -> str:
    return ", ".join(fitted.graph.nodes)


def _check_names(fitted: FittedSCM, kind: str, treatment: str | None, outcome: str) -> None:
    nodes = set(fitted.graph.nodes)
    for role, name in (("treatment", treatment), ("outcome", outcome)):
        encoded = fitted.data.attrs.get("one_hot", {}).get(name or "")
        if encoded is not None:
            raise CausalError(f"{role}: '{name}' is text of {len(encoded['columns']) + 1} "
                              f"values, used as 0/1 columns "
                              f"({', '.join(encoded['columns'].values())}) to adjust for; a "
                              f"{role} must be one column: numbers, 0/1 or two-valued text")
    if outcome not in nodes:
        raise CausalError(f"outcome: '{outcome}' is not a node of the graph; nodes: "
                          f"{_nodes_text(fitted)}")
    if kind == "abduce":
        return
    if treatment is None:
        raise CausalError(f"{kind}: needs a treatment (--treatment); nodes: "
                          f"{_nodes_text(fitted)}")
    if treatment not in nodes:
        raise CausalError(f"treatment: '{treatment}' is not a node of the graph; nodes: "
                          f"{_nodes_text(fitted)}")
    if treatment == outcome:
        raise CausalError(f"treatment and outcome are both '{outcome}'; name two nodes")


def _levels(fitted: FittedSCM, query: CausalQuery) -> tuple[float, float]:
    column = fitted.data[query.treatment or ""]
    if column.nunique() < 2:
        raise CausalError(f"treatment: '{query.treatment}' has one value ({num(column.iloc[0])})"
                          f" in every row; there is nothing to compare")
    binary = _backdoor.is_binary(fitted, query.treatment or "")
    treated = query.value if query.value is not None else (
        1.0 if binary else float(column.mean() + column.std()))
    control = query.baseline if query.baseline is not None else (
        0.0 if binary else float(column.mean()))
    if treated == control:
        raise CausalError(f"{query.kind}: the treated and control levels are both "
                          f"{num(treated)}; give a --value and --baseline that differ")
    return float(treated), float(control)


def _range_note(fitted: FittedSCM, column: str, *values: float) -> str:
    low, high = float(fitted.data[column].min()), float(fitted.data[column].max())
    outside = [v for v in values if v < low or v > high]
    if not outside:
        return ""
    return (f" Note: {listed([num(v) for v in outside])} lies outside the observed range of "
            f"{column} ({num(low)} to {num(high)}), so this extrapolates the fitted model.")


def _effect(fitted: FittedSCM, query: CausalQuery, seed: int) -> Answer:
    import numpy as np
    from scipy import stats

    x, y = query.treatment or "", query.outcome
    treated, control = _levels(fitted, query)
    population = _population(fitted, query, treated, control)
    units = fitted.unit_effects(x, y, treated, control, population)
    effect = float(units.mean())
    boot, scale, refit = fitted.bootstrap_effects(x, y, treated, control, query.n_boot,
                                                  population)
    # the model's uncertainty (refits) plus that of averaging over these units
    model_var = (float(np.std(boot, ddof=1)) * scale) ** 2
    spread = math.sqrt(model_var + float(units.var()) / len(units))
    t = float(stats.t.ppf(0.5 + query.confidence / 2, query.n_boot - 1))
    low, high = effect - t * spread, effect + t * spread
    target = {"all": "ate", "treated": "att", "untreated": "atc"}[query.population]
    backdoor = _backdoor.backdoor_estimate(fitted, x, y, treated, control, target)
    naive, naive_method = _naive(fitted, x, y, treated, control)
    numbers = {
        "effect": effect, "ci_low": low, "ci_high": high, "confidence": query.confidence,
        "ci_method": f"bootstrap ({query.n_boot} refits) + unit variance, t interval",
        "standard_error": spread, "backdoor_effect": backdoor.value,
        "backdoor_method": backdoor.method, "adjustment_set": list(backdoor.adjustment),
        "naive_difference": naive, "naive_method": naive_method,
        "treated_level": treated, "control_level": control, "n": fitted.n,
        "population": query.population, "units": len(units),
        "mechanisms": {n: fitted.mechanisms[n] for n in fitted.affected(x, y)},
    }
    level = f"{query.confidence * 100:g}%"
    among = {"all": "", "treated": f" among the {len(units):,} units with {x} = {num(treated)}",
             "untreated": f" among the {len(units):,} units with {x} = {num(control)}"}
    reading = (f"Setting {x} from {num(control)} to {num(treated)} changes {y} by "
               f"{num(effect, signed=True)} on average{among[query.population]} ({level} CI "
               f"{num(low)} to {num(high)}), by the structural causal model fitted to "
               f"{fitted.n:,} rows.")
    if not backdoor.identified:
        reading += (f" The graph has no directed path from {x} to {y}, so the effect is 0 by "
                    f"assumption.")
    else:
        how = ("propensity-score weighting" if "propensity" in backdoor.method
               else "linear regression")
        adjusting = (f"adjusting for {listed(list(backdoor.adjustment))}"
                     if backdoor.adjustment else "with nothing to adjust for")
        reading += (f" The backdoor-adjusted estimate ({how}, {adjusting}) is "
                    f"{num(backdoor.value, signed=True)}; the naive {naive_method}, which "
                    f"ignores confounding, is {num(naive, signed=True)}.")
    reading += _range_note(fitted, x, treated, control)
    return numbers, reading, refit


def _population(fitted: FittedSCM, query: CausalQuery, treated: float,
                control: float) -> np.ndarray | None:
    """The positions of the units an effect averages over (None: every evaluated unit)."""
    if query.population == "all":
        return None
    level = treated if query.population == "treated" else control
    rows = fitted.population_rows(query.treatment or "", level)
    if len(rows) < MIN_POPULATION:
        raise CausalError(f"population: {len(rows)} rows have {query.treatment} = {num(level)}"
                          f"; the effect on the {query.population} needs at least "
                          f"{MIN_POPULATION} (population 'all' averages over every row)")
    return rows


def _naive(fitted: FittedSCM, x: str, y: str, treated: float,
           control: float) -> tuple[float, str]:
    import numpy as np

    xs, ys = fitted.data[x].to_numpy(), fitted.data[y].to_numpy()
    if _backdoor.is_binary(fitted, x) and {treated, control} == {0.0, 1.0}:
        difference = float(ys[xs == treated].mean() - ys[xs == control].mean())
        return difference, "difference in means"
    slope = float(np.cov(xs, ys)[0, 1] / np.var(xs, ddof=1))
    return slope * (treated - control), "regression slope times the change"


def _intervene(fitted: FittedSCM, query: CausalQuery, seed: int) -> Answer:
    from dowhy import gcm

    x, y = query.treatment or "", query.outcome
    if query.value is None:
        raise CausalError(f"intervene: needs a value for do({x} = value) (--value)")
    value = float(query.value)
    observed = fitted.data.iloc[fitted.evaluation_rows()]
    with seeded(seed):
        samples = gcm.interventional_samples(fitted.scm, {x: lambda _: value},
                                             observed_data=observed)
    outcome = samples[y].to_numpy()
    quantiles = {f"p{q * 100:g}": float(_quantile(outcome, q)) for q in query.quantiles}
    mean, observed_mean = float(outcome.mean()), float(observed[y].mean())
    numbers = {"value": value, "mean": mean, "sd": float(outcome.std(ddof=1)),
               "quantiles": quantiles, "observed_mean": observed_mean,
               "change_in_mean": mean - observed_mean, "n": len(outcome)}
    lo, hi = min(query.quantiles), max(query.quantiles)
    reading = (f"Under do({x} = {num(value)}), {y} would average {num(mean)} (median "
               f"{num(float(_quantile(outcome, 0.5)))}; {num(lo * 100)}th to {num(hi * 100)}th "
               f"percentile {num(float(_quantile(outcome, lo)))} to "
               f"{num(float(_quantile(outcome, hi)))}), against {num(observed_mean)} as "
               f"observed: a change of {num(mean - observed_mean, signed=True)} in the mean, "
               f"over {len(outcome):,} units with the fitted structural causal model.")
    if y not in fitted.affected(x, y):
        reading += f" The graph has no directed path from {x} to {y}, so nothing changes."
    reading += _range_note(fitted, x, value)
    return numbers, reading, 0.0


def _quantile(values: np.ndarray, q: float) -> float:
    import numpy as np

    return float(np.quantile(values, q))


def _unit(fitted: FittedSCM, unit: int | dict[str, float] | None, needed: set[str],
          kind: str) -> tuple[int | None, pd.DataFrame]:
    """The unit's row number (None for given values) and its values as a one-row frame
    over every node; nodes it need not give are filled with their mean (they do not
    change the answer)."""
    import pandas as pd

    data = fitted.data
    if isinstance(unit, bool) or unit is None:
        raise CausalError(f"{kind}: needs a unit: a row number (--unit 17) or its values "
                          f"(--unit '{{\"x\": 1, ...}}')")
    if isinstance(unit, int):
        if unit not in data.index:
            first, last = int(data.index.min()), int(data.index.max())
            if first <= unit <= last:
                raise CausalError(f"unit: row {unit} has a missing value in a graph column "
                                  f"({_nodes_text(fitted)}), so it was not fitted")
            raise CausalError(f"unit: row {unit} is out of range; rows are {first} to {last}")
        return unit, data.loc[[unit]].reset_index(drop=True)
    unknown = [k for k in unit if k not in data.columns]
    if unknown:
        raise CausalError(f"unit: {listed(unknown)} {'is' if len(unknown) == 1 else 'are'} "
                          f"not a node of the graph; nodes: {_nodes_text(fitted)}")
    missing = [n for n in fitted.graph.nodes if n in needed and n not in unit]
    if missing:
        raise CausalError(f"unit: give a value for {listed(missing)} too (needed: "
                          f"{', '.join(n for n in fitted.graph.nodes if n in needed)})")
    row = {c: float(unit.get(c, data[c].mean())) for c in data.columns}
    bad = [c for c, v in row.items() if not math.isfinite(v)]
    if bad:
        raise CausalError(f"unit: the value of {listed(bad)} is not a finite number")
    return None, pd.DataFrame([row], columns=list(data.columns))


def _ancestors(fitted: FittedSCM, node: str) -> set[str]:
    import networkx as nx

    return set(nx.ancestors(fitted.scm.graph, node)) | {node}


def _unit_name(row: int | None) -> str:
    return "the given unit" if row is None else f"row {row}"


def _counterfactual(fitted: FittedSCM, query: CausalQuery, seed: int) -> Answer:
    from dowhy import gcm

    x, y = query.treatment or "", query.outcome
    row, observed = _unit(fitted, query.unit, _ancestors(fitted, y) | {x}, "counterfactual")
    factual_x, factual_y = float(observed[x].iloc[0]), float(observed[y].iloc[0])
    if query.value is not None:
        value = float(query.value)
    elif _backdoor.is_binary(fitted, x):
        value = 1.0 - factual_x
    else:
        raise CausalError(f"counterfactual: needs a value for {x} (--value); the unit has "
                          f"{x} = {num(factual_x)}")
    with seeded(seed):
        result = gcm.counterfactual_samples(fitted.scm, {x: lambda _: value},
                                            observed_data=observed)
    counter_y = float(result[y].iloc[0])
    changed = {n: {"observed": float(observed[n].iloc[0]),
                   "counterfactual": float(result[n].iloc[0])}
               for n in fitted.affected(x, y) if n != y}
    numbers = {"unit": row, "treatment_observed": factual_x, "treatment_counterfactual": value,
               "observed_outcome": factual_y, "counterfactual_outcome": counter_y,
               "difference": counter_y - factual_y, "mediators": changed}
    name = _unit_name(row)
    reading = (f"For {name}, {y} was {num(factual_y)} with {x} = {num(factual_x)}. Had {x} "
               f"been {num(value)}, with everything else about this unit kept as it was, {y} "
               f"would have been {num(counter_y)}: a change of "
               f"{num(counter_y - factual_y, signed=True)}. (Abduction: the unit's own noise, "
               f"recovered from its values by the fitted mechanisms; action: do({x} = "
               f"{num(value)}); prediction: its values recomputed downstream.)")
    if changed:
        via = listed([f"{n} {num(v['observed'])} -> {num(v['counterfactual'])}"
                      for n, v in changed.items()])
        reading += f" On the way: {via}."
    return numbers, reading, 0.0


def _abduce(fitted: FittedSCM, query: CausalQuery, seed: int) -> Answer:
    import numpy as np
    from dowhy import gcm

    y = query.outcome
    if fitted.scm.graph.in_degree(y) == 0:
        raise CausalError(f"abduce: '{y}' has no causes in the graph; pick an outcome with "
                          f"upstream nodes")
    values = fitted.data[y].to_numpy()
    median = float(np.median(values))
    unit = query.unit
    chosen = unit is None
    if chosen:
        unit = int(fitted.data.index[int(np.argmax(np.abs(values - median)))])
    row, observed = _unit(fitted, unit, _ancestors(fitted, y), "abduce")
    from ._anomaly import attribute_anomalies

    with seeded(seed):
        scores = attribute_anomalies(
            fitted.scm, y, observed, num_distribution_samples=ABDUCE_SAMPLES,
            shapley_config=gcm.shapley.ShapleyConfig(n_jobs=jobs()))
    contributions = sorted(((str(n), float(v[0])) for n, v in scores.items()),
                           key=lambda item: -item[1])
    total = sum(c for _, c in contributions)
    ranking: list[dict[str, Any]] = [
        {"node": n, "contribution": c, "share": c / total if total > 0 else float("nan")}
        for n, c in contributions]
    if query.top is not None:
        ranking = ranking[: query.top]
    factual = float(observed[y].iloc[0])
    numbers = {"unit": row, "observed_outcome": factual, "outcome_median": median,
               "anomaly_score": total, "ranking": ranking}
    picked = " (the row whose value is furthest from the median)" if chosen else ""
    ranked = listed([f"{r['node']} ({num(r['contribution'], signed=True)}, {pct(r['share'])})"
                     for r in ranking[:5]])
    reading = (f"For {_unit_name(row)}{picked}, {y} is {num(factual)} against a median of "
               f"{num(median)}. Its anomaly score ({num(total)}) is attributed to the nodes "
               f"upstream, by how unusual each one's own noise is (DoWhy's Shapley "
               f"attribution): {ranked}. The first is the most likely root cause.")
    return numbers, reading, 0.0


def _refute(fitted: FittedSCM, query: CausalQuery, seed: int) -> Answer:
    x, y = query.treatment or "", query.outcome
    treated, control = _levels(fitted, query)
    found, results = _backdoor.refute(fitted, x, y, treated, control,
                                      simulations=query.n_simulations, seed=seed)
    numbers = {"estimate": found.value, "backdoor_method": found.method,
               "adjustment_set": list(found.adjustment), "treated_level": treated,
               "control_level": control, "n": fitted.n, "refuters": results}
    reading = (f"The backdoor-adjusted effect of {x} ({num(control)} to {num(treated)}) on {y} "
               f"is {num(found.value, signed=True)}.")
    if not results:
        reading += f" The graph has no directed path from {x} to {y}: nothing to refute."
    for r in results:
        what = ("With the treatment's values shuffled (placebo) the effect becomes"
                if r["name"] == "placebo_treatment" else
                "With a random common cause added, the estimate becomes")
        reading += (f" {what} {num(r['new_effect'], signed=True)} (p = {num(r['p_value'])}, "
                    f"{query.n_simulations} simulations): {r['verdict']}.")
    return numbers, reading, 0.0


_HANDLERS: dict[str, Callable[[FittedSCM, CausalQuery, int], Answer]] = {
    "effect": _effect, "intervene": _intervene, "counterfactual": _counterfactual,
    "abduce": _abduce, "refute": _refute,
}


def counterfactuals(table: pd.DataFrame, graph: CausalGraph | str | Sequence[Any],
                    units: pd.DataFrame | Sequence[int], treatment: str, value: float,
                    outcome: str, *, seed: int = 0, quality: Quality = "good") -> np.ndarray:
    """Each unit's counterfactual outcome had `treatment` been `value`, all in one
    `gcm.counterfactual_samples` call: `units` are row numbers of `table` or a frame of
    observed values (columns: the outcome's ancestors and the treatment; others unused).

    >>> counterfactuals(table, graph, [0, 1, 2], "price_up", 0.0, "churn")  # doctest: +SKIP
    array([0.12, 0.31, 0.05])
    """
    import pandas as pd
    from dowhy import gcm

    fitted = fit_scm(table, graph, seed=seed, quality=quality)
    _check_names(fitted, "counterfactual", treatment, outcome)
    data = fitted.data
    if isinstance(units, pd.DataFrame):
        units = units.copy(deep=False)
        for name, encoded in data.attrs.get("one_hot", {}).items():
            if name in units.columns:  # a many-valued text column: its 0/1 columns
                text = units[name].astype(str)
                for level, column in encoded["columns"].items():
                    units[column] = (text == level).astype(float)
        needed = _ancestors(fitted, outcome) | {treatment}
        missing = [n for n in fitted.graph.nodes if n in needed and n not in units.columns]
        if missing:
            raise CausalError(f"units: no column for {listed(missing)} (needed: "
                              f"{', '.join(n for n in fitted.graph.nodes if n in needed)})")
        frame = pd.DataFrame({c: (pd.to_numeric(units[c], errors="coerce").to_numpy(float)
                                  if c in units.columns else float(data[c].mean()))
                              for c in data.columns}, index=range(len(units)))
        if frame.isna().any().any():
            raise CausalError("units: some values are missing or not numbers")
    else:
        rows = list(units)
        absent = [r for r in rows if r not in data.index]
        if absent:
            raise CausalError(f"units: row {absent[0]} is not in the fitted table (rows "
                              f"{int(data.index.min())} to {int(data.index.max())}, complete "
                              f"rows only)")
        frame = data.loc[rows].reset_index(drop=True)
    level = float(value)
    with seeded(seed), lean_compute():
        result = gcm.counterfactual_samples(fitted.scm, {treatment: lambda _: level},
                                            observed_data=frame)
    return result[outcome].to_numpy(dtype=float)
