"""Fitted structural causal models, cached by (data hash, graph, seed, quality).

`fit_scm` assigns every node a DoWhy gcm mechanism automatically (an empirical
distribution for roots, an additive noise model `X = f(parents) + N` with the regressor
that cross-validates best, `gcm.auto.find_best_model`, for the others: linear,
polynomial, additive splines with pairwise interactions, gradient boosting) and fits them.
Additive noise models are invertible, so a unit's noise can be recovered from its values
(abduction), which counterfactuals, effects and anomaly attribution rely on.
Integer-valued columns are modelled as continuous: a 0/1 outcome's effect is a change in
its probability.

>>> fitted = fit_scm(table, "z -> x; z -> y; x -> y")      # doctest: +SKIP
>>> fitted.average_effect("x", "y", 1.0, 0.0)             # doctest: +SKIP
2.01
>>> fit_scm(table, "z -> x; z -> y; x -> y") is fitted   # cached   # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import CausalError
from .graph import CausalGraph, parse_graph
from .table import encoded_graph, prepare_table

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["CACHE_SIZE", "EVAL_ROWS", "FittedSCM", "Quality", "clear_cache", "fit_scm",
           "fit_scm_cached", "jobs", "lean_compute", "seeded", "spline_regressor"]

Quality = Literal["fast", "good", "better"]
CACHE_SIZE = 8  # fitted models kept
EVAL_ROWS = 20_000  # units averaged over for an effect (a seeded sample of bigger tables)
BOOT_EVAL_ROWS = 200  # units every bootstrap replica's effect is averaged over
BOOT_MAX_ROWS = 20_000  # rows per bootstrap refit; bigger tables: m-out-of-n, rescaled

_cache: OrderedDict[str, FittedSCM] = OrderedDict()
_cache_lock = threading.Lock()
_rng_lock = threading.RLock()  # gcm draws from numpy's global generator
_threads: Any = None  # threadpoolctl's controller, made on first use


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """numpy's and random's global generators seeded for the block, then put back."""
    import numpy as np

    with _rng_lock:
        np_state, py_state = np.random.get_state(), random.getstate()
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


@dataclass
class _Replicas:
    """Bootstrap refits of the mechanisms, node by node as queries need them."""

    n_boot: int
    size: int  # rows per resample
    scale: float  # sqrt(size / n): m-out-of-n bootstrap spread to n rows
    rows: np.ndarray  # the units every replica's effect is averaged over
    mechanisms: list[dict[str, Any]] = field(default_factory=list)
    noise: list[dict[str, np.ndarray]] = field(default_factory=list)


@dataclass(eq=False)
class FittedSCM:
    """A DoWhy gcm `InvertibleStructuralCausalModel` fitted to `data` (float columns of the
    graph's nodes, indexed by row number; `graph` is over these columns, a many-valued
    text node replaced by its 0/1 columns, `data.attrs["one_hot"]`), with what queries
    reuse: the units' abducted noise, bootstrap refits and classic (backdoor) models."""

    graph: CausalGraph
    data: pd.DataFrame = field(repr=False)
    scm: Any = field(repr=False)  # dowhy.gcm.InvertibleStructuralCausalModel
    key: str = field(repr=False)
    seed: int = 0
    quality: Quality = "good"
    fit_seconds: float = 0.0
    mechanisms: dict[str, str] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _noise: pd.DataFrame | None = field(default=None, repr=False)
    _replicas: dict[int, _Replicas] = field(default_factory=dict, repr=False)
    _eval_rows: np.ndarray | None = field(default=None, repr=False)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)  # per-query results

    @property
    def n(self) -> int:
        return len(self.data)

    def parents(self, node: str) -> list[str]:
        """The node's parents in the order its mechanism was fitted with."""
        from dowhy.graph import get_ordered_predecessors

        return list(get_ordered_predecessors(self.scm.graph, node))

    def noise(self) -> pd.DataFrame:
        """Every unit's noise, recovered from its values (abduction), computed once."""
        from dowhy.gcm._noise import compute_noise_from_data

        with self.lock:
            if self._noise is None:
                self._noise = compute_noise_from_data(self.scm, self.data)
                self._noise.index = self.data.index
            return self._noise

    def affected(self, treatment: str, outcome: str) -> list[str]:
        """Nodes that do(treatment) changes on its way to outcome, in causal order: the
        treatment's descendants that are the outcome or its ancestors."""
        import networkx as nx

        graph = self.scm.graph
        if treatment not in graph or outcome not in graph:
            return []
        between = nx.descendants(graph, treatment) & (nx.ancestors(graph, outcome) | {outcome})
        return [n for n in nx.topological_sort(graph) if n in between]

    def evaluation_rows(self) -> np.ndarray:
        """Positions of the units an effect averages over: all, or a seeded sample of
        EVAL_ROWS of a bigger table."""
        import numpy as np

        with self.lock:
            if self._eval_rows is None:
                n = self.n
                rows = np.arange(n)
                if n > EVAL_ROWS:
                    rng = np.random.default_rng([self.seed, 1])
                    rows = np.sort(rng.choice(n, EVAL_ROWS, replace=False))
                self._eval_rows = rows
            return self._eval_rows

    def population_rows(self, treatment: str, level: float | None) -> np.ndarray:
        """Positions of the evaluated units observed at `treatment == level` (None: all)."""
        import numpy as np

        rows = self.evaluation_rows()
        if level is None:
            return rows
        observed = self.data[treatment].to_numpy()
        if self.n > EVAL_ROWS:  # the sample may hold few of a rare level: sample the level
            at = np.flatnonzero(observed == level)
            if len(at) > EVAL_ROWS:
                at = np.sort(np.random.default_rng([self.seed, 3]).choice(at, EVAL_ROWS,
                                                                          replace=False))
            return at
        return rows[observed[rows] == level]

    def unit_effects(self, treatment: str, outcome: str, treated: float, control: float,
                     rows: np.ndarray | None = None) -> np.ndarray:
        """Each unit's outcome under do(treatment=treated) minus under
        do(treatment=control), for the units at positions `rows` (default: the evaluated
        units): abduction (the unit's own noise), action and prediction, as
        `gcm.counterfactual_samples` computes it, vectorised over the units."""
        import numpy as np

        rows = self.evaluation_rows() if rows is None else rows
        order = self.affected(treatment, outcome)
        if outcome not in order:
            return np.zeros(len(rows))
        noise = self.noise()
        mechanisms = {node: self.scm.causal_mechanism(node) for node in order}
        observed = {c: self.data[c].to_numpy()[rows] for c in self.data.columns}
        own_noise = {node: noise[node].to_numpy()[rows] for node in order}
        arms = _arm_outcomes(mechanisms, {n: self.parents(n) for n in order}, order,
                             treatment, outcome, [treated, control], observed, own_noise)
        return arms[0] - arms[1]

    def average_effect(self, treatment: str, outcome: str, treated: float,
                       control: float) -> float:
        """E[outcome | do(treatment=treated)] - E[outcome | do(treatment=control)]."""
        return float(self.unit_effects(treatment, outcome, treated, control).mean())

    def bootstrap_effects(self, treatment: str, outcome: str, treated: float, control: float,
                          n_boot: int, population: np.ndarray | None = None
                          ) -> tuple[np.ndarray, float, float]:
        """The effect under each of `n_boot` bootstrap refits of the mechanisms between
        treatment and outcome (the same mechanism types refitted on rows resampled with
        replacement), averaged over one fixed set of BOOT_EVAL_ROWS units (drawn from the
        positions `population`, default all): the spread of these is the model's
        estimation uncertainty, without the units' own variety. Also the spread's scale to
        this table's size, and the seconds spent refitting now (refits are kept: only a new
        treatment/outcome pair's first query pays)."""
        import numpy as np

        order = self.affected(treatment, outcome)
        replicas, fit_seconds = self._refits(n_boot, order)
        if outcome not in order:
            return np.zeros(n_boot), replicas.scale, fit_seconds
        rows, noise = replicas.rows, replicas.noise
        if population is not None:
            rows, noise = self._replica_noise(replicas, order, population)
        parents = {n: self.parents(n) for n in order}
        observed = {c: self.data[c].to_numpy()[rows] for c in self.data.columns}
        effects = np.empty(n_boot)
        for b in range(n_boot):
            arms = _arm_outcomes(replicas.mechanisms[b], parents, order, treatment, outcome,
                                 [treated, control], observed, noise[b])
            effects[b] = float(arms[0].mean() - arms[1].mean())
        return effects, replicas.scale, fit_seconds

    def _replica_noise(self, replicas: _Replicas, nodes: Sequence[str], population: np.ndarray
                       ) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
        """BOOT_EVAL_ROWS units of `population` and their noise under each replica."""
        import numpy as np

        key = ("replica-noise", replicas.n_boot, population.tobytes(), tuple(nodes))
        with self.lock:
            if key not in self.memo:
                rows = population
                if len(rows) > BOOT_EVAL_ROWS:
                    rows = np.sort(np.random.default_rng([self.seed, 4]).choice(
                        rows, BOOT_EVAL_ROWS, replace=False))
                noise: list[dict[str, np.ndarray]] = []
                for mechanisms in replicas.mechanisms:
                    noise.append({})
                    for node in nodes:
                        x = self.data[self.parents(node)].to_numpy()[rows]
                        y = self.data[node].to_numpy()[rows]
                        noise[-1][node] = np.asarray(
                            mechanisms[node].estimate_noise(y, x)).reshape(-1)
                self.memo[key] = (rows, noise)
            return self.memo[key]  # type: ignore[no-any-return]

    def _refits(self, n_boot: int, nodes: Sequence[str]) -> tuple[_Replicas, float]:
        import numpy as np

        start = time.perf_counter()
        with self.lock:
            replicas = self._replicas.get(n_boot)
            if replicas is None:
                size = min(self.n, BOOT_MAX_ROWS)
                rng = np.random.default_rng([self.seed, 2])
                rows = np.sort(rng.permutation(self.n)[:BOOT_EVAL_ROWS])
                replicas = _Replicas(n_boot, size, float(np.sqrt(size / self.n)), rows,
                                     [{} for _ in range(n_boot)], [{} for _ in range(n_boot)])
                self._replicas[n_boot] = replicas
            missing = [n for n in nodes if n not in replicas.mechanisms[0]]
            if not missing:
                return replicas, 0.0
            with seeded(self.seed + n_boot), lean_compute():
                for b in range(n_boot):
                    sample = np.random.default_rng([self.seed, n_boot, b]).integers(
                        0, self.n, replicas.size)
                    for node in missing:
                        parents = self.parents(node)
                        x, y = self.data[parents].to_numpy(), self.data[node].to_numpy()
                        mechanism = self.scm.causal_mechanism(node).clone()
                        mechanism.fit(x[sample], y[sample])
                        replicas.mechanisms[b][node] = mechanism
                        replicas.noise[b][node] = np.asarray(mechanism.estimate_noise(
                            y[replicas.rows], x[replicas.rows])).reshape(-1)
        return replicas, time.perf_counter() - start


def _arm_outcomes(mechanisms: dict[str, Any], parents: dict[str, list[str]], order: list[str],
                  treatment: str, outcome: str, levels: Sequence[float],
                  observed: dict[str, np.ndarray], noise: dict[str, np.ndarray]) -> np.ndarray:
    """The outcome of every unit (columns) under each treatment level (rows): the affected
    nodes recomputed in causal order from each unit's noise, all levels in one call per
    node."""
    import numpy as np

    k = len(levels)
    m = len(observed[outcome])
    values = {treatment: np.repeat(np.asarray(levels, dtype=float), m)}
    for node in order:
        inputs = [values[p] if p in values else np.tile(observed[p], k) for p in parents[node]]
        x = np.column_stack(inputs)
        values[node] = np.asarray(
            mechanisms[node].evaluate(x, np.tile(noise[node], k))).reshape(-1)
    return values[outcome].reshape(k, m)


def _data_key(data: pd.DataFrame, graph: CausalGraph, seed: int, quality: str) -> str:
    import pandas as pd

    columns = sorted(data.columns)  # one graph written in another order is the same model
    digest = hashlib.sha256()
    digest.update(repr((columns, graph.key(), seed, quality)).encode())
    digest.update(pd.util.hash_pandas_object(data[columns], index=True).to_numpy().tobytes())
    return digest.hexdigest()


def jobs() -> int:
    """Parallel work (model selection, Shapley values) pays for its worker start-up only
    on bigger machines."""
    return -1 if (os.cpu_count() or 1) > 4 else 1


def spline_regressor() -> Any:
    """Additive cubic splines of each input plus the products of every pair, ridge-penalised
    (`_regressors.SplineInteractions`): a smooth fit of f(x) + g(z) + c * x * z that
    extrapolates linearly, beside gcm's zoo, as gradient boosting's steps make the effect
    between two nearby levels jumpy and an additive fit misses an effect that varies with
    a confounder."""
    from ._regressors import spline_interactions_regressor

    return spline_interactions_regressor()


def _zoo(quality: Quality, n_parents: int) -> list[Callable[[], Any]]:
    from dowhy import gcm

    zoo: list[Callable[[], Any]] = [gcm.ml.create_linear_regressor]
    if n_parents <= 5:  # as gcm: past five inputs, degree-2 terms are too many
        zoo.append(gcm.ml.create_polynom_regressor)
    if quality == "good":
        zoo += [spline_regressor, gcm.ml.create_hist_gradient_boost_regressor]
    return zoo


def _assign(scm: Any, data: pd.DataFrame, quality: Quality) -> None:
    """A mechanism per node: roots their empirical distribution, others an additive noise
    model whose regressor cross-validates best (gcm.auto.find_best_model) among linear,
    polynomial ("fast"), plus additive splines and gradient boosting ("good"); "better"
    is gcm's own `assign_causal_mechanisms` with its larger zoo. Integer-valued nodes get
    a continuous model too: effects and counterfactuals on a 0/1 outcome need its
    probability, not a rounded guess."""
    from dowhy import gcm
    from dowhy.graph import get_ordered_predecessors, is_root_node

    if quality == "better":
        gcm.auto.assign_causal_mechanisms(scm, data, quality=gcm.auto.AssignmentQuality.BETTER)
        for node in scm.graph.nodes:
            mechanism = scm.causal_mechanism(node)
            if isinstance(mechanism, gcm.DiscreteAdditiveNoiseModel):
                scm.set_causal_mechanism(node, gcm.AdditiveNoiseModel(
                    mechanism.prediction_model.clone()))
        return
    for node in scm.graph.nodes:
        if is_root_node(scm.graph, node):
            scm.set_causal_mechanism(node, gcm.EmpiricalDistribution())
            continue
        parents = get_ordered_predecessors(scm.graph, node)
        best, _ = gcm.auto.find_best_model(_zoo(quality, len(parents)),
                                           data[parents].to_numpy(), data[node].to_numpy(),
                                           n_jobs=jobs())
        scm.set_causal_mechanism(node, gcm.AdditiveNoiseModel(best()))


@contextlib.contextmanager
def lean_compute() -> Iterator[None]:
    """BLAS and OpenMP (gradient boosting) on one thread, as small fits gain nothing from
    more and on a busy machine their spinning threads cost several times the work; and
    scikit-learn's per-call input checks off (the data here is checked, finite floats)."""
    import sklearn

    global _threads
    if _threads is None:
        from threadpoolctl import ThreadpoolController

        _threads = ThreadpoolController()  # after sklearn's import: it sees its OpenMP
    with _threads.limit(limits=1), sklearn.config_context(assume_finite=True,
                                                          skip_parameter_validation=True):
        yield


def _describe(mechanism: Any) -> str:
    model = getattr(mechanism, "prediction_model", None)
    inner = getattr(model, "sklearn_model", model)
    if inner is None:
        return type(mechanism).__name__
    steps = getattr(inner, "steps", None)
    name = "+".join(type(s).__name__ for _, s in steps) if steps else type(inner).__name__
    return f"{type(mechanism).__name__}({name})"


def fit_scm(table: pd.DataFrame, graph: CausalGraph | str | Sequence[Any], *, seed: int = 0,
            quality: Quality = "good") -> FittedSCM:
    """The fitted SCM of `graph` over `table`, from the cache when the same data (by hash),
    graph, seed and quality were fitted before. `quality`: "good" chooses by
    cross-validation among gcm's default regressors (linear, polynomial, gradient
    boosting) and additive splines; "fast" among linear and polynomial only; "better" is
    gcm's larger zoo. Raises `CausalError` for a graph that does not fit the table."""
    return fit_scm_cached(table, graph, seed=seed, quality=quality)[0]


def fit_scm_cached(table: pd.DataFrame, graph: CausalGraph | str | Sequence[Any], *,
                   seed: int = 0, quality: Quality = "good") -> tuple[FittedSCM, bool]:
    """`fit_scm`, and whether the model came from the cache."""
    if quality not in ("fast", "good", "better"):
        raise CausalError(f"quality: '{quality}' is not one of fast, good, better")
    data = prepare_table(table, parse_graph(graph))
    causal_graph = encoded_graph(parse_graph(graph), data)  # over data's 0/1 columns
    key = _data_key(data, causal_graph, seed, quality)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit, True
    fitted = _fit(data, causal_graph, key, seed, quality)
    with _cache_lock:
        _cache[key] = fitted
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return fitted, False


def _fit(data: pd.DataFrame, graph: CausalGraph, key: str, seed: int,
         quality: Quality) -> FittedSCM:
    import warnings

    from dowhy import gcm

    start = time.perf_counter()
    gcm.config.disable_progress_bars()
    scm = gcm.InvertibleStructuralCausalModel(graph.to_networkx())
    previous_jobs = gcm.config.default_n_jobs
    with seeded(seed), lean_compute(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gcm.config.default_n_jobs = jobs()
        try:
            _assign(scm, data, quality)
            gcm.fit(scm, data)
        finally:
            gcm.config.default_n_jobs = previous_jobs
    mechanisms = {node: _describe(scm.causal_mechanism(node)) for node in graph.nodes}
    return FittedSCM(graph, data, scm, key, seed, quality, time.perf_counter() - start,
                     mechanisms)


def clear_cache() -> None:
    """Forget every fitted model."""
    with _cache_lock:
        _cache.clear()
