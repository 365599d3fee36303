"""DoWhy's classic pipeline beside the SCM: identify the effect from the graph, estimate it
by backdoor adjustment, and refute that estimate (placebo treatment, random common cause).
The CausalModel, its estimand and fitted estimators are kept on the `FittedSCM`."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import CausalError
from .scm import FittedSCM, seeded

__all__ = ["Backdoor", "backdoor_estimate", "refute"]

MAX_SEARCH_NODES = 12
REFUTERS = {
    "placebo_treatment": ("placebo_treatment_refuter", {"placebo_type": "permute"}),
    "random_common_cause": ("random_common_cause", {}),
}


@dataclass(frozen=True)
class Backdoor:
    """A backdoor-adjusted estimate: the value, DoWhy's method name, what it adjusted for."""

    value: float
    method: str
    adjustment: tuple[str, ...]
    identified: bool  # False: no directed path, the effect is 0 by the graph


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """DoWhy logs and warns about every model it builds; none of it is for the user."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def is_binary(fitted: FittedSCM, column: str) -> bool:
    values = set(fitted.data[column].unique().tolist())
    return values == {0.0, 1.0}


def method_for(fitted: FittedSCM, treatment: str, treated: float, control: float) -> str:
    """Propensity-score weighting for a 0/1 treatment compared at 1 vs 0, else a linear
    regression (which assumes the outcome is linear in the treatment)."""
    if is_binary(fitted, treatment) and {treated, control} == {0.0, 1.0}:
        return "backdoor.propensity_score_weighting"
    return "backdoor.linear_regression"


def _model(fitted: FittedSCM, treatment: str, outcome: str) -> tuple[Any, Any]:
    key = ("classic", treatment, outcome)
    with fitted.lock:
        if key not in fitted.memo:
            from dowhy import CausalModel

            with _quiet():
                model = CausalModel(data=fitted.data, treatment=treatment, outcome=outcome,
                                    graph=fitted.graph.to_networkx())
                # DoWhy's default search for adjustment sets grows exponentially (5 s at
                # 17 nodes, 25 s at 22): past a dozen nodes, adjust for the maximal set
                method = "default" if len(fitted.graph.nodes) <= MAX_SEARCH_NODES else \
                    "maximal-adjustment"
                estimand = model.identify_effect(method_name=method,
                                                 proceed_when_unidentifiable=True)
            fitted.memo[key] = (model, estimand)
        return fitted.memo[key]  # type: ignore[no-any-return]


def _propensity_model() -> Any:
    """A logistic regression on standardised covariates: on raw ones (earnings in dollars
    beside 0/1 flags) lbfgs stops before it converges, and its penalty weighs columns by
    their units."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def backdoor_estimate(fitted: FittedSCM, treatment: str, outcome: str, treated: float,
                      control: float, target: str = "ate") -> Backdoor:
    """The backdoor-adjusted effect of treated vs control, DoWhy's CausalModel, over the
    units `target`: "ate" (all), "att" (the treated), "atc" (the controls). A fitted
    estimator is reused for new levels and targets (only the contrast is recomputed)."""
    model, estimand = _model(fitted, treatment, outcome)
    if outcome not in fitted.affected(treatment, outcome):
        return Backdoor(0.0, "none (no directed path: 0 by the graph)", (), False)
    method = method_for(fitted, treatment, treated, control)
    if method == "backdoor.propensity_score_weighting" and \
            not (estimand.get_backdoor_variables() or ()):
        # nothing to adjust for (a randomised treatment): propensity scores need
        # covariates; a regression on the treatment alone is the adjusted estimate
        method = "backdoor.linear_regression"
    fitted_key = ("estimator", treatment, outcome, method)
    with fitted.lock, _quiet():
        options = {"init_params": {"propensity_score_model": _propensity_model()}} \
            if "propensity" in method else None
        estimate = model.estimate_effect(estimand, method_name=method, control_value=control,
                                         treatment_value=treated, target_units=target,
                                         method_params=options,
                                         fit_estimator=fitted_key not in fitted.memo)
        fitted.memo[fitted_key] = True
        fitted.memo[("estimate", treatment, outcome, method, treated, control, target)] = \
            estimate
    adjustment = tuple(estimand.get_backdoor_variables() or ())
    _check_adjustment(fitted, treatment, outcome, adjustment)
    return Backdoor(float(estimate.value), method, adjustment, True)


def _check_adjustment(fitted: FittedSCM, treatment: str, outcome: str,
                      adjustment: tuple[str, ...]) -> None:
    """Every common cause of the treatment and the outcome in the graph (a named or '*'
    confounder, each 0/1 column of a text one) is in the adjustment set: no valid backdoor
    set leaves one out, so one missing is a failure to report, never a silent drop."""
    both = set(fitted.graph.parents(treatment)) & set(fitted.graph.parents(outcome))
    missing = [n for n in fitted.graph.nodes if n in both and n not in adjustment]
    if missing:
        raise CausalError(f"backdoor: the adjustment left out the confounder"
                          f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}; DoWhy "
                          f"adjusted for {', '.join(adjustment) or 'nothing'}")


def refute(fitted: FittedSCM, treatment: str, outcome: str, treated: float, control: float,
           *, simulations: int, seed: int) -> tuple[Backdoor, list[dict[str, Any]]]:
    """The backdoor estimate and, per refuter, its new effect, p-value and verdict. A
    placebo (the treatment's values shuffled) should have an effect near 0; a random
    common cause added to the adjustment set should leave the estimate where it was."""
    found = backdoor_estimate(fitted, treatment, outcome, treated, control)
    if not found.identified:
        return found, []
    model, estimand = _model(fitted, treatment, outcome)
    estimate = fitted.memo[("estimate", treatment, outcome, found.method, treated, control,
                            "ate")]
    results = []
    for name, (method, options) in REFUTERS.items():
        with fitted.lock, _quiet(), seeded(seed):
            refutation = model.refute_estimate(estimand, estimate, method_name=method,
                                               num_simulations=simulations, random_seed=seed,
                                               **options)
        significance = refutation.refutation_result or {}
        p_value = float(significance.get("p_value", float("nan")))
        passed = not bool(significance.get("is_statistically_significant", False))
        results.append({"name": name, "new_effect": float(refutation.new_effect),
                        "p_value": p_value, "passed": passed,
                        "verdict": _verdict(name, passed)})
    return found, results


def _verdict(name: str, passed: bool) -> str:
    if name == "placebo_treatment":
        return ("passed: a shuffled treatment has no effect" if passed else
                "failed: a shuffled treatment still shows an effect")
    return ("passed: an extra random common cause leaves the estimate unchanged" if passed
            else "failed: an extra random common cause moves the estimate")
