"""gcm's anomaly attribution (`gcm.attribute_anomalies`), fast enough for wide tables.

The attribution scores thousands of draws for every coalition of upstream nodes its
Shapley values try. gcm recomputes the target from the noise through pandas frames and
scores by comparing every pair of samples (O(n m)); a 30-confounder table takes minutes.
Here the same steps run on numpy arrays and the same score is computed by binary search:
the numbers are gcm's (a test holds them equal), in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from dowhy.gcm.anomaly_scorers import MedianCDFQuantileScorer

__all__ = ["SortedQuantileScorer", "attribute_anomalies"]


class SortedQuantileScorer(MedianCDFQuantileScorer):
    """score(x) = 1 - 2 min[P(X > x) + P(X = x) / 2, P(X < x) + P(X = x) / 2], x counted
    as one of the samples: `MedianCDFQuantileScorer`'s score for finite data."""

    def fit(self, X: np.ndarray) -> None:
        super().fit(X)
        self._sorted = np.sort(self._distribution_samples)

    def score(self, X: np.ndarray) -> np.ndarray:
        values = np.asarray(X, dtype=float).reshape(-1)
        below = np.searchsorted(self._sorted, values, side="left")
        up_to = np.searchsorted(self._sorted, values, side="right")
        equal = up_to - below + 1
        greater = below + equal / 2
        smaller = len(self._sorted) - up_to + equal / 2
        return np.asarray(1 - 2 * np.minimum(greater, smaller) / (len(self._sorted) + 1))


def noise_function(scm: Any, target: str) -> tuple[Callable[[np.ndarray], np.ndarray],
                                                     list[str]]:
    """The target as a function of its ancestors' (and its own) noise, columns in gcm's
    order: `gcm._noise.get_noise_dependent_function` on arrays."""
    import networkx as nx
    from dowhy.graph import get_ordered_predecessors, node_connected_subgraph_view

    order = list(nx.topological_sort(node_connected_subgraph_view(scm.graph, target)))
    column = {node: i for i, node in enumerate(order)}
    parents = {node: get_ordered_predecessors(scm.graph, node) for node in order}
    mechanisms = {node: scm.causal_mechanism(node) for node in order if parents[node]}

    def evaluate(noise: np.ndarray) -> np.ndarray:
        values: dict[str, np.ndarray] = {}
        for node in order:
            own = noise[:, column[node]]
            if not parents[node]:
                values[node] = own
                continue
            inputs = np.column_stack([values[p] for p in parents[node]])
            values[node] = np.asarray(mechanisms[node].evaluate(inputs, own)).reshape(-1)
        return values[target]

    return evaluate, order


def attribute_anomalies(scm: Any, target: str, anomaly_samples: Any, *,
                        num_distribution_samples: int, shapley_config: Any) -> dict[str, Any]:
    """Each upstream node's (and the target's own) contribution to the target's anomaly
    score, per sample: the steps of `gcm.attribute_anomalies` with its default scorer."""
    from dowhy.gcm._noise import compute_noise_from_data, noise_samples_of_ancestors
    from dowhy.gcm.anomaly import attribute_anomaly_scores

    anomaly_noise = compute_noise_from_data(scm, anomaly_samples)
    node_samples, noise_samples = noise_samples_of_ancestors(scm, target,
                                                             num_distribution_samples)
    evaluate, order = noise_function(scm, target)
    scorer = SortedQuantileScorer()
    scorer.fit(node_samples[target].to_numpy())
    attributions = attribute_anomaly_scores(
        anomaly_noise[order].to_numpy(), noise_samples[order].to_numpy(),
        lambda x: scorer.score(evaluate(x)), False, shapley_config)
    return {node: attributions[:, i] for i, node in enumerate(order)}
