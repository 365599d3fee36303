"""Causal queries over a table and a causal graph: effects, interventions, unit
counterfactuals, root causes of outliers and refutations, on a structural causal model
fitted with DoWhy's gcm (cached by data and graph) beside DoWhy's classic backdoor
estimate.

>>> from flowloom.tools.causal import CausalQuery, load_table, run_query
>>> table = load_table(csv="shop.csv")                                     # doctest: +SKIP
>>> answer = run_query(table, "tenure -> price_up; tenure -> churn; price_up -> churn",
...                    CausalQuery(kind="effect", treatment="price_up", outcome="churn"))
... # doctest: +SKIP
>>> answer["numbers"]["effect"], answer["numbers"]["ci_low"], answer["reading"]  # doctest: +SKIP

Names are imported on first use: DoWhy, pandas and scikit-learn take seconds to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowloom.tools._lazy import lazy_getattr

from .errors import CausalError

if TYPE_CHECKING:
    from .graph import CausalGraph, confounders_graph, parse_graph, validate_graph
    from .queries import counterfactuals, run_query
    from .query import KINDS, CausalQuery
    from .scm import FittedSCM, clear_cache, fit_scm
    from .table import encoded_graph, load_table, prepare_table

__all__ = [
    "KINDS",
    "CausalError",
    "CausalGraph",
    "CausalQuery",
    "FittedSCM",
    "clear_cache",
    "confounders_graph",
    "counterfactuals",
    "encoded_graph",
    "fit_scm",
    "load_table",
    "parse_graph",
    "prepare_table",
    "run_query",
    "validate_graph",
]

_LAZY = {
    "CausalGraph": "graph", "confounders_graph": "graph", "parse_graph": "graph",
    "validate_graph": "graph", "counterfactuals": "queries", "run_query": "queries",
    "KINDS": "query", "CausalQuery": "query", "FittedSCM": "scm", "clear_cache": "scm",
    "fit_scm": "scm", "encoded_graph": "table", "load_table": "table",
    "prepare_table": "table",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
