"""Causal queries against synthetic structural causal models whose truth is known: effects
(within 5%, the interval covering the truth, the naive difference biased), unit
counterfactuals against the generating equations, root causes of an injected outlier,
refuters, the fitted-model cache, and users' mistakes."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from flowloom.tools.causal import (
    CausalError,
    CausalQuery,
    counterfactuals,
    fit_scm,
    run_query,
)

N = 2000
CONFOUNDED = "z -> x; z -> y; x -> y"


@pytest.fixture(scope="module")
def linear() -> pd.DataFrame:
    """z confounds x and y; y = 2 x + 1.5 z + noise, so the effect of x is 2 per unit."""
    rng = np.random.default_rng(11)
    z = rng.normal(size=N)
    x = 0.8 * z + rng.normal(size=N)
    y = 2.0 * x + 1.5 * z + rng.normal(size=N)
    return pd.DataFrame({"z": z, "x": x, "y": y})


@pytest.fixture(scope="module")
def nonlinear() -> pd.DataFrame:
    """y = x^2 + z + noise: do(x=2) vs do(x=1) changes y by 3."""
    rng = np.random.default_rng(12)
    z = rng.normal(size=N)
    x = 0.7 * z + rng.normal(size=N)
    y = x**2 + z + 0.5 * rng.normal(size=N)
    return pd.DataFrame({"z": z, "x": x, "y": y})


def effect(table: pd.DataFrame, **kw: object) -> dict:
    return run_query(table, CONFOUNDED, CausalQuery(kind="effect", treatment="x", outcome="y",
                                                    **kw))  # type: ignore[arg-type]


def test_linear_effect_is_within_5_percent_and_the_interval_covers_it(linear) -> None:
    answer = effect(linear, value=1.0, baseline=0.0)
    numbers = answer["numbers"]
    assert numbers["effect"] == pytest.approx(2.0, rel=0.05)
    assert numbers["ci_low"] < 2.0 < numbers["ci_high"]
    assert numbers["ci_high"] - numbers["ci_low"] < 0.5  # an interval, not the real line
    assert numbers["backdoor_effect"] == pytest.approx(2.0, rel=0.05)
    assert numbers["backdoor_method"] == "backdoor.linear_regression"
    assert numbers["adjustment_set"] == ["z"]
    # the naive slope keeps z's confounding; the adjusted estimates do not
    assert abs(numbers["naive_difference"] - 2.0) > 3 * abs(numbers["effect"] - 2.0)
    assert abs(numbers["naive_difference"] - 2.0) > 3 * abs(numbers["backdoor_effect"] - 2.0)
    assert numbers["n"] == N and numbers["confidence"] == 0.95
    assert answer["kind"] == "effect" and answer["treatment"] == "x"
    reading = answer["reading"]
    assert reading.startswith("Setting x from 0 to 1 changes y by +")
    assert "95% CI" in reading and "backdoor-adjusted" in reading and "adjusting for z" in reading


def test_default_levels_are_mean_and_one_sd_above(linear) -> None:
    numbers = effect(linear)["numbers"]
    sd = linear["x"].std()
    assert numbers["control_level"] == pytest.approx(linear["x"].mean())
    assert numbers["treated_level"] == pytest.approx(linear["x"].mean() + sd)
    assert numbers["effect"] == pytest.approx(2.0 * sd, rel=0.05)


def test_the_effect_is_gcms_abduction_action_prediction(linear) -> None:
    """The vectorised effect equals gcm.counterfactual_samples averaged over the units,
    and gcm's sampling average_causal_effect agrees within its noise."""
    from dowhy import gcm

    fitted = fit_scm(linear, CONFOUNDED)
    mine = fitted.average_effect("x", "y", 1.0, 0.0)
    noise = fitted.noise()
    high = gcm.counterfactual_samples(fitted.scm, {"x": lambda _: 1.0}, noise_data=noise)
    low = gcm.counterfactual_samples(fitted.scm, {"x": lambda _: 0.0}, noise_data=noise)
    assert mine == pytest.approx(float(high["y"].mean() - low["y"].mean()), abs=1e-9)
    sampled = gcm.average_causal_effect(fitted.scm, "y", {"x": lambda _: 1.0},
                                        {"x": lambda _: 0.0}, observed_data=fitted.data)
    assert sampled == pytest.approx(mine, abs=0.15)


def test_nonlinear_effect_within_tolerance(nonlinear) -> None:
    numbers = effect(nonlinear, value=2.0, baseline=1.0)["numbers"]
    assert numbers["effect"] == pytest.approx(3.0, rel=0.05)
    assert numbers["ci_low"] < 3.0 < numbers["ci_high"]
    # a linear backdoor regression cannot see the curvature: the SCM can
    assert abs(numbers["backdoor_effect"] - 3.0) > 5 * abs(numbers["effect"] - 3.0)


def test_binary_treatment_uses_propensity_weighting() -> None:
    rng = np.random.default_rng(13)
    z = rng.normal(size=N)
    x = (rng.random(N) < 1 / (1 + np.exp(-1.5 * z))).astype(int)
    y = 3.0 * x + 2.0 * z + rng.normal(size=N)
    table = pd.DataFrame({"z": z, "x": x, "y": y})
    answer = run_query(table, CONFOUNDED, CausalQuery(kind="effect", treatment="x",
                                                      outcome="y"), quality="fast")
    numbers = answer["numbers"]
    assert (numbers["treated_level"], numbers["control_level"]) == (1.0, 0.0)
    assert numbers["effect"] == pytest.approx(3.0, rel=0.05)
    assert numbers["ci_low"] < 3.0 < numbers["ci_high"]
    assert numbers["backdoor_method"] == "backdoor.propensity_score_weighting"
    assert numbers["backdoor_effect"] == pytest.approx(3.0, rel=0.1)
    assert numbers["naive_method"] == "difference in means"
    assert numbers["naive_difference"] > 4.0  # z pushes both x and y up
    # a 0/1 treatment's counterfactual defaults to the other level
    unit = int(np.flatnonzero(x == 1)[0])
    cf = run_query(table, CONFOUNDED, CausalQuery(kind="counterfactual", treatment="x",
                                                  outcome="y", unit=unit), quality="fast")
    assert cf["numbers"]["treatment_counterfactual"] == 0.0
    assert cf["numbers"]["difference"] == pytest.approx(-3.0, rel=0.05)


def test_an_effect_that_varies_with_a_confounder() -> None:
    """y = tanh-shaped in x plus 0.8 x z: the effect of x depends on z, which an additive
    model misses; the spline regressor's pairwise products see it."""
    rng = np.random.default_rng(14)
    z = rng.uniform(0.0, 2.0, N)
    x = 1.2 * (z - 1.0) + rng.normal(0.0, 0.7, N)
    y = 2.0 * np.tanh(x) + 0.8 * x * z + 1.5 * z + rng.normal(0.0, 0.5, N)
    table = pd.DataFrame({"z": z, "x": x, "y": y})
    truth = 2.0 * np.tanh(1.0) + 0.8 * z.mean()
    numbers = effect(table, value=1.0, baseline=0.0)["numbers"]
    assert numbers["effect"] == pytest.approx(truth, rel=0.05)
    assert numbers["ci_low"] < truth < numbers["ci_high"]
    assert "Spline" in numbers["mechanisms"]["y"]


def test_the_effect_on_the_treated_averages_over_the_treated_units() -> None:
    """The effect is 1 + 2 z and the treated have higher z: ATT > ATE > ATC, each near the
    mean of 1 + 2 z over its units."""
    rng = np.random.default_rng(15)
    z = rng.normal(size=N)
    x = (rng.random(N) < 1 / (1 + np.exp(-2.0 * z))).astype(int)
    y = (1.0 + 2.0 * z) * x + z + 0.5 * rng.normal(size=N)
    table = pd.DataFrame({"z": z, "x": x, "y": y})
    got = {}
    for population in ("all", "treated", "untreated"):
        got[population] = run_query(table, CONFOUNDED, CausalQuery(
            kind="effect", treatment="x", outcome="y", population=population))["numbers"]
    truths = {"all": 1 + 2 * z.mean(), "treated": 1 + 2 * z[x == 1].mean(),
              "untreated": 1 + 2 * z[x == 0].mean()}
    for population, numbers in got.items():
        assert numbers["effect"] == pytest.approx(truths[population], abs=0.1), population
        assert numbers["ci_low"] < truths[population] < numbers["ci_high"], population
        assert numbers["population"] == population
    assert got["treated"]["units"] == int(x.sum())
    assert got["untreated"]["units"] == int((x == 0).sum())
    assert got["treated"]["effect"] > got["all"]["effect"] + 0.5 > got["untreated"]["effect"] + 1
    # DoWhy's backdoor estimate is asked for the same units
    assert got["treated"]["backdoor_effect"] > got["untreated"]["backdoor_effect"] + 1
    reading = run_query(table, CONFOUNDED, CausalQuery(
        kind="effect", treatment="x", outcome="y", population="treated"))["reading"]
    assert f"among the {int(x.sum()):,} units with x = 1" in reading


def test_a_population_with_too_few_units_is_refused(linear) -> None:
    with pytest.raises(CausalError, match=r"population: 0 rows have x = 1\.5"):
        run_query(linear, CONFOUNDED, CausalQuery(kind="effect", treatment="x", outcome="y",
                                                  value=1.5, population="treated"))


def test_a_zero_one_treatments_effect_is_not_shrunk() -> None:
    """A randomised 0/1 treatment among standardised-scale covariates on a large-valued
    outcome (as LaLonde's): the fitted effect stays at the difference in means."""
    rng = np.random.default_rng(16)
    n = 445
    age = rng.normal(25, 7, n)
    earnings = np.maximum(rng.normal(2000, 4000, n), 0)
    t = (rng.random(n) < 0.4).astype(int)
    y = 1800.0 * t + 30 * age + 0.4 * earnings + rng.normal(0, 6000, n)
    table = pd.DataFrame({"age": age, "earnings": earnings, "t": t, "y": y})
    graph = "age -> y; earnings -> y; t -> y"
    numbers = run_query(table, graph, CausalQuery(kind="effect", treatment="t",
                                                  outcome="y"))["numbers"]
    ols = np.linalg.lstsq(np.column_stack([np.ones(n), t, age, earnings]), y, rcond=None)[0][1]
    assert numbers["effect"] == pytest.approx(ols, rel=0.1)


def test_unit_counterfactuals_follow_the_generating_equations(linear, nonlinear) -> None:
    x, z, y = (linear[c].to_numpy() for c in ("x", "z", "y"))
    truth = y + 2.0 * (-1.0 - x)  # y_cf = f(x', z) + (y - f(x, z)), x' = -1
    unit = int(np.argmax(np.abs(truth)))
    answer = run_query(linear, CONFOUNDED, CausalQuery(kind="counterfactual", treatment="x",
                                                       outcome="y", value=-1.0, unit=unit))
    numbers = answer["numbers"]
    assert numbers["observed_outcome"] == pytest.approx(y[unit])
    assert numbers["counterfactual_outcome"] == pytest.approx(truth[unit], rel=0.02)
    assert numbers["difference"] == pytest.approx(truth[unit] - y[unit], rel=0.02)
    assert f"For row {unit}, y was" in answer["reading"]
    given = run_query(linear, CONFOUNDED, CausalQuery(
        kind="counterfactual", treatment="x", outcome="y", value=-1.0,
        unit={"z": z[unit], "x": x[unit], "y": y[unit]}))
    assert given["numbers"]["counterfactual_outcome"] == pytest.approx(
        numbers["counterfactual_outcome"])

    # y = x^2 + z + n: had x been 0.5, y would have changed by 0.25 - x^2 (the units with
    # the biggest change; 3%: the fitted curvature is itself an estimate from 2,000 rows)
    xn, yn = nonlinear["x"].to_numpy(), nonlinear["y"].to_numpy()
    units = [int(u) for u in np.argsort(-np.abs(xn))[:20]]
    got = counterfactuals(nonlinear, CONFOUNDED, units, "x", 0.5, "y")
    np.testing.assert_allclose(got - yn[units], 0.5**2 - xn[units] ** 2, rtol=0.03)


def test_batched_counterfactuals_are_fast_and_agree_with_one_at_a_time(linear) -> None:
    units = linear.sample(20_000, replace=True, random_state=1).reset_index(drop=True)
    fit_scm(linear, CONFOUNDED)
    start = time.perf_counter()
    batch = counterfactuals(linear, CONFOUNDED, units, "x", 0.0, "y")
    per_second = len(units) / (time.perf_counter() - start)
    assert per_second > 1000
    truth = units["y"] - 2.0 * units["x"]
    np.testing.assert_allclose(batch, truth, atol=0.1)
    by_rows = counterfactuals(linear, CONFOUNDED, [0, 1, 2], "x", 0.0, "y")
    one = run_query(linear, CONFOUNDED, CausalQuery(kind="counterfactual", treatment="x",
                                                    outcome="y", value=0.0, unit=1))
    assert by_rows[1] == pytest.approx(one["numbers"]["counterfactual_outcome"])


def test_intervene_summarises_the_interventional_distribution(linear) -> None:
    answer = run_query(linear, CONFOUNDED, CausalQuery(kind="intervene", treatment="x",
                                                       outcome="y", value=1.0))
    numbers = answer["numbers"]
    truth = 2.0 + 1.5 * linear["z"].mean()  # E[y | do(x=1)]
    assert numbers["mean"] == pytest.approx(truth, abs=0.15)
    qs = numbers["quantiles"]
    assert list(qs) == ["p5", "p25", "p50", "p75", "p95"]
    assert qs["p5"] < qs["p25"] < qs["p50"] < qs["p75"] < qs["p95"]
    assert numbers["sd"] == pytest.approx(np.sqrt(1.5**2 + 1.0), rel=0.1)
    assert answer["reading"].startswith("Under do(x = 1), y would average")


def test_abduce_ranks_the_node_with_the_injected_outlier_first() -> None:
    rng = np.random.default_rng(14)
    a = rng.normal(size=N)
    b = 1.0 * a + 0.5 * rng.normal(size=N)
    c = 1.0 * b + 0.5 * rng.normal(size=N)
    b[7] += 6.0  # b's own noise is the root cause; c inherits it
    c[7] = b[7] + 0.1
    table = pd.DataFrame({"a": a, "b": b, "c": c})
    chain = "a -> b -> c"
    answer = run_query(table, chain, CausalQuery(kind="abduce", outcome="c", unit=7),
                       quality="fast")
    ranking = answer["numbers"]["ranking"]
    assert [r["node"] for r in ranking][0] == "b"
    assert ranking[0]["contribution"] > 2 * max(r["contribution"] for r in ranking[1:])
    assert {r["node"] for r in ranking} == {"a", "b", "c"}
    assert "b (+" in answer["reading"]
    picked = run_query(table, chain, CausalQuery(kind="abduce", outcome="c"), quality="fast")
    assert picked["numbers"]["unit"] == 7  # without --unit: the most extreme row


def test_the_fast_attribution_is_gcms() -> None:
    """The array version of gcm.attribute_anomalies gives gcm's numbers, and the
    binary-search scorer gcm's MedianCDFQuantileScorer's (ties included)."""
    from dowhy import gcm
    from dowhy.gcm.anomaly_scorers import MedianCDFQuantileScorer

    from flowloom.tools.causal._anomaly import SortedQuantileScorer, attribute_anomalies
    from flowloom.tools.causal.scm import seeded

    rng = np.random.default_rng(15)
    draws = np.round(rng.normal(size=500), 1)
    probes = np.concatenate([np.round(rng.normal(size=50) * 2, 1), [-9.0, 9.0, 0.0]])
    slow, fast = MedianCDFQuantileScorer(), SortedQuantileScorer()
    slow.fit(draws)
    fast.fit(draws)
    np.testing.assert_allclose(fast.score(probes), slow.score(probes), rtol=0, atol=1e-12)

    a = rng.normal(size=N)
    b = a + 0.5 * rng.normal(size=N)
    c = b - a + 0.5 * rng.normal(size=N)
    fitted = fit_scm(pd.DataFrame({"a": a, "b": b, "c": c}), "a -> b; a -> c; b -> c",
                     quality="fast")
    unit = fitted.data.iloc[[int(np.argmax(np.abs(c)))]].reset_index(drop=True)
    config = gcm.shapley.ShapleyConfig(n_jobs=1)
    with seeded(5):
        ours = attribute_anomalies(fitted.scm, "c", unit, num_distribution_samples=2000,
                                   shapley_config=config)
    with seeded(5):
        theirs = gcm.attribute_anomalies(fitted.scm, "c", unit, num_distribution_samples=2000,
                                         shapley_config=config)
    assert ours.keys() == theirs.keys()
    for node in ours:
        assert ours[node][0] == pytest.approx(theirs[node][0], abs=1e-12)


def test_refuters_placebo_near_zero_and_common_cause_stable(linear) -> None:
    answer = run_query(linear, CONFOUNDED, CausalQuery(kind="refute", treatment="x",
                                                       outcome="y", value=1.0, baseline=0.0,
                                                       n_simulations=10))
    numbers = answer["numbers"]
    refuters = {r["name"]: r for r in numbers["refuters"]}
    assert set(refuters) == {"placebo_treatment", "random_common_cause"}
    assert abs(refuters["placebo_treatment"]["new_effect"]) < 0.1
    assert refuters["random_common_cause"]["new_effect"] == pytest.approx(numbers["estimate"],
                                                                          abs=0.05)
    assert all(r["passed"] and 0 <= r["p_value"] <= 1 for r in refuters.values())
    assert "placebo" in answer["reading"] and "passed" in answer["reading"]


def test_the_fitted_model_is_cached_by_data_and_graph(linear) -> None:
    table = linear.copy()
    table["y"] = table["y"] + 1.0  # data of its own: not fitted yet
    start = time.perf_counter()
    first = fit_scm(table, CONFOUNDED, quality="fast")
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    again = fit_scm(table.copy(), "x -> y; z -> y; z -> x", quality="fast")
    hit_time = time.perf_counter() - start
    assert again is first and hit_time < fit_time / 5
    assert first.fit_seconds > 0 and first.mechanisms["z"] == "EmpiricalDistribution"
    answer = run_query(table, CONFOUNDED, CausalQuery(kind="effect", treatment="x", outcome="y",
                                                      value=1.0, baseline=0.0),
                       quality="fast")
    assert answer["cached"] is True
    assert fit_scm(table, CONFOUNDED, quality="fast", seed=1) is not first
    changed = table.copy()
    changed.loc[0, "y"] += 1.0
    assert fit_scm(changed, CONFOUNDED, quality="fast") is not first
    repeat = run_query(table, CONFOUNDED, CausalQuery(kind="effect", treatment="x",
                                                      outcome="y", value=1.0, baseline=0.0),
                       quality="fast")
    assert repeat["numbers"] == answer["numbers"]
    assert repeat["query_seconds"] < max(answer["query_seconds"] / 5, 0.005)


@pytest.mark.parametrize(("query", "match"), [
    ({"kind": "effect", "outcome": "y"}, r"effect: needs a treatment \(--treatment\); "
                                         r"nodes: z, x, y"),
    ({"kind": "effect", "outcome": "w", "treatment": "x"}, "outcome: 'w' is not a node"),
    ({"kind": "intervene", "outcome": "y", "treatment": "x"}, "needs a value"),
    ({"kind": "counterfactual", "outcome": "y", "treatment": "x", "value": 1.0},
     "needs a unit"),
    ({"kind": "counterfactual", "outcome": "y", "treatment": "x", "unit": 3},
     r"needs a value for x \(--value\)"),
    ({"kind": "counterfactual", "outcome": "y", "treatment": "x", "value": 0, "unit": N},
     f"row {N} is out of range; rows are 0 to {N - 1}"),
    ({"kind": "counterfactual", "outcome": "y", "treatment": "x", "value": 0,
      "unit": {"x": 1.0}}, "give a value for z and y too"),
    ({"kind": "effect", "outcome": "y", "treatment": "x", "value": 1, "baseline": 1},
     "levels are both 1"),
    ({"kind": "effect", "outcome": "y", "treatment": "y"}, "both 'y'"),
    ({"kind": "effect", "outcome": "y", "treatment": "x", "nope": 1}, "query: nope"),
    ({"kind": "abduce", "outcome": "z"}, "'z' has no causes"),
])
def test_users_mistakes_are_causal_errors(linear, query: dict, match: str) -> None:
    with pytest.raises(CausalError, match=match):
        run_query(linear, CONFOUNDED, query)


def test_a_graph_that_does_not_fit_the_table(linear) -> None:
    with pytest.raises(CausalError, match="'w' is not a column; columns: z, x, y"):
        fit_scm(linear, "z -> x; x -> w")
    with pytest.raises(CausalError, match="quality: 'best'"):
        fit_scm(linear, CONFOUNDED, quality="best")  # type: ignore[arg-type]


def test_a_two_valued_text_treatment_is_encoded_and_said() -> None:
    rng = np.random.default_rng(17)
    z = rng.normal(size=N)
    pro = rng.random(N) < 1 / (1 + np.exp(-z))
    y = 2.0 * pro + z + rng.normal(size=N)
    table = pd.DataFrame({"z": z, "plan": np.where(pro, "pro", "basic"), "y": y})
    answer = run_query(table, "z -> plan; z -> y; plan -> y",
                       CausalQuery(kind="effect", treatment="plan", outcome="y"),
                       quality="fast")
    assert answer["encodings"] == {"plan": {"basic": 0.0, "pro": 1.0}}
    assert answer["numbers"]["effect"] == pytest.approx(2.0, rel=0.08)
    assert answer["reading"].endswith("Text columns as numbers: plan basic = 0, pro = 1.")


@pytest.fixture(scope="module")
def regions() -> pd.DataFrame:
    """region (four text values) confounds t and y: y = 2 t + 3 shift(region) + z + noise,
    so leaving region out biases the effect of t (truth 2) far off."""
    rng = np.random.default_rng(26)
    region = rng.choice(["east", "north", "south", "west"], N, p=[0.4, 0.3, 0.2, 0.1])
    shift = pd.Series(region).map({"east": -1.0, "north": 0.0, "south": 1.0,
                                   "west": 2.0}).to_numpy()
    z = rng.normal(size=N)
    t = (rng.random(N) < 1 / (1 + np.exp(-(shift + 0.5 * z)))).astype(int)
    y = 2.0 * t + 3.0 * shift + z + rng.normal(size=N)
    return pd.DataFrame({"id": [f"u{i}" for i in range(N)], "z": z, "region": region, "t": t,
                         "y": y})


def test_a_many_valued_text_confounder_is_adjusted_for_and_said(regions) -> None:
    from flowloom.tools.causal import confounders_graph

    query = CausalQuery(kind="effect", treatment="t", outcome="y", n_boot=10)
    graph = confounders_graph(list(regions.columns), "t", "y", "*,-id")
    answer = run_query(regions, graph, query, quality="fast")
    numbers = answer["numbers"]
    assert numbers["effect"] == pytest.approx(2.0, rel=0.05)
    assert numbers["ci_low"] < 2.0 < numbers["ci_high"]
    assert numbers["backdoor_effect"] == pytest.approx(2.0, rel=0.1)
    assert sorted(numbers["adjustment_set"]) == ["region=north", "region=south",
                                                  "region=west", "z"]
    assert answer["one_hot"] == {"region": {"baseline": "east", "columns": {
        "north": "region=north", "south": "region=south", "west": "region=west"}}}
    assert answer["reading"].endswith(
        "Text columns as numbers: region (4 values) as 0/1 columns region=north, "
        "region=south, region=west (east: all 0).")
    left_out = run_query(regions, "z -> t; z -> y; t -> y", query, quality="fast")
    assert left_out["numbers"]["effect"] > 3.0  # region's confounding, not adjusted for


def test_a_named_column_that_cannot_be_used_fails_naming_it(regions) -> None:
    query = CausalQuery(kind="effect", treatment="t", outcome="y")
    with pytest.raises(CausalError, match=r"column id \(2000 text values: 'u0', 'u1', "
                                          r".*too many values.*'\*,-id'"):
        run_query(regions, "id -> t; id -> y; z -> t; z -> y; t -> y", query)
    with pytest.raises(CausalError, match=r"column region .* has causes in the graph \(z\)"):
        run_query(regions, "z -> region; region -> t; region -> y; t -> y", query)
    with pytest.raises(CausalError, match=r"treatment: 'region' is text of 4 values, used as "
                                          r"0/1 columns \(region=north, region=south, "
                                          r"region=west\) to adjust for"):
        run_query(regions, "region -> y; z -> y",
                  CausalQuery(kind="effect", treatment="region", outcome="y"))


def test_counterfactuals_of_given_units_encode_their_text_column(regions) -> None:
    graph = "region -> t; region -> y; z -> t; z -> y; t -> y"
    units = regions.loc[[0, 1, 2], ["z", "region", "t", "y"]]
    by_row = counterfactuals(regions, graph, [0, 1, 2], "t", 1.0, "y", quality="fast")
    given = counterfactuals(regions, graph, units, "t", 1.0, "y", quality="fast")
    assert given == pytest.approx(by_row)
