"""The additive spline regressor with pairwise interactions that `scm` adds to gcm's zoo.

Features of each input x_i (standardised first, so one penalty treats every input alike):
its linear term, a cubic spline basis of it with knots at its quantiles (inputs with more
than two values only; a 0/1 column is its linear term alone), and the products x_i * x_j
of every pair (up to `MAX_INTERACTION_INPUTS` inputs). A ridge regression over them, its
penalty chosen by leave-one-out cross-validation among small values: the features are
standardised, so a penalty of at most 10 against n rows shrinks a coefficient by about
10 / n, which leaves a treatment's effect where the data puts it (a large penalty once
took a 0/1 treatment's effect on LaLonde's NSW experiment from 1,794 to 882).

>>> model = SplineInteractions().fit(x, y)      # doctest: +SKIP
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

__all__ = ["MAX_INTERACTION_INPUTS", "SplineInteractions", "spline_interactions_regressor"]

MAX_INTERACTION_INPUTS = 8  # 28 products; past this, additive splines only
ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


class SplineInteractions(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """x -> [standardised x, spline basis of each many-valued x_i, x_i * x_j pairs]."""

    def __init__(self, n_knots: int = 8, interactions: bool = True) -> None:
        self.n_knots = n_knots
        self.interactions = interactions

    def fit(self, x: Any, y: Any = None) -> SplineInteractions:
        x = np.asarray(x, dtype=float)
        self.mean_ = x.mean(axis=0)
        scale = x.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        z = self._standard(x)
        self.splines_ = [self._spline(z[:, [j]]) for j in range(x.shape[1])]
        d = x.shape[1]
        self.pairs_ = (list(combinations(range(d), 2))
                       if self.interactions and 2 <= d <= MAX_INTERACTION_INPUTS else [])
        return self

    def _spline(self, column: np.ndarray) -> Any:
        """A cubic spline basis of one standardised input, knots at its quantiles (dense
        where the data is, where a curve must bend), evenly spaced where quantiles repeat
        (a column mostly 0); None for a column of at most two values."""
        from sklearn.preprocessing import SplineTransformer

        if len(np.unique(column[:2000])) <= 2:
            return None
        knots: Any = np.unique(np.quantile(column, np.linspace(0.0, 1.0, self.n_knots)))
        knots = knots.reshape(-1, 1) if len(knots) >= 4 else "uniform"
        n_knots = len(knots) if not isinstance(knots, str) else self.n_knots
        return SplineTransformer(n_knots=n_knots, degree=3, knots=knots,
                                 extrapolation="linear", include_bias=False).fit(column)

    def _standard(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) / self.scale_  # type: ignore[no-any-return]

    def transform(self, x: Any) -> np.ndarray:
        z = self._standard(np.asarray(x, dtype=float))
        parts = [z] + [spline.transform(z[:, [j]]) for j, spline in enumerate(self.splines_)
                       if spline is not None]
        if self.pairs_:
            left, right = zip(*self.pairs_, strict=True)
            parts.append(z[:, list(left)] * z[:, list(right)])
        return np.hstack(parts)


def spline_interactions_regressor(interactions: bool = True) -> Any:
    """The regressor as a gcm prediction model (`SklearnRegressionModel`)."""
    from dowhy.gcm.ml import SklearnRegressionModel
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return SklearnRegressionModel(make_pipeline(
        SplineInteractions(interactions=interactions), StandardScaler(), RidgeCV(alphas=ALPHAS)))
