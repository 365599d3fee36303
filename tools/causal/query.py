"""What a causal query asks: a pydantic model that flows, the CLI and benchmarks share.

>>> CausalQuery(kind="effect", treatment="price_up", outcome="churn").n_boot
20
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["KINDS", "CausalQuery", "QueryKind"]

QueryKind = Literal["effect", "intervene", "counterfactual", "abduce", "refute"]
KINDS: tuple[str, ...] = ("effect", "intervene", "counterfactual", "abduce", "refute")


class CausalQuery(BaseModel):
    """One question to a fitted structural causal model. Which fields a kind needs is
    checked by `run_query` (a `CausalError` naming the field), so a partly filled query can
    still be built and shown."""

    model_config = ConfigDict(extra="forbid")

    kind: QueryKind = Field(..., description="effect: average effect of do(X=value) vs "
                            "do(X=baseline) on Y; intervene: Y's distribution under "
                            "do(X=value); counterfactual: one unit's Y had X been value; "
                            "abduce: upstream causes of a unit's outlying Y; refute: "
                            "placebo and random-common-cause checks of the backdoor estimate.")
    outcome: str = Field(..., min_length=1, description="The outcome column Y.")
    treatment: str | None = Field(None, description="The treatment column X (all kinds but "
                                  "abduce).")
    value: float | None = Field(None, description="do(X=value): intervene, counterfactual "
                                "(default for a 0/1 X: the other level); effect's treated "
                                "level (default: 1 for a 0/1 X, else mean + 1 sd).")
    baseline: float | None = Field(None, description="Effect's control level (default: 0 "
                                   "for a 0/1 X, else the mean).")
    population: Literal["all", "treated", "untreated"] = Field(
        "all", description="effect: the units averaged over: all; those observed at the "
        "treated level (the effect on the treated, ATT); or at the control level (ATC).")
    unit: int | dict[str, float] | None = Field(None, description="counterfactual, abduce: "
                                                "a row number or the unit's observed values "
                                                "(abduce default: the row whose Y is most "
                                                "extreme).")
    n_boot: int = Field(20, ge=3, le=1000, description="Bootstrap refits behind effect's "
                        "confidence interval.")
    confidence: float = Field(0.95, gt=0, lt=1, description="Confidence level of the "
                              "interval.")
    quantiles: tuple[float, ...] = Field((0.05, 0.25, 0.5, 0.75, 0.95), min_length=1,
                                         description="intervene: quantiles of Y reported.")
    n_simulations: int = Field(20, ge=2, le=1000, description="refute: simulations per "
                               "refuter.")
    top: int | None = Field(None, ge=1, description="abduce: keep the top nodes only.")

    @field_validator("quantiles")
    @classmethod
    def _check_quantiles(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(0 < q < 1 for q in value):
            raise ValueError("quantiles must lie strictly between 0 and 1")
        return value
