"""torchdiffeq's fixed-grid "euler" and "rk4" steps written out, for requests: the same
formulas as `odeint` (RK4 is its 3/8-rule `rk4_alt_step_func`) over s in [0, 1] for an
autonomous f, without `odeint`'s per-call checks and bookkeeping (some 0.3 ms, most of a
one-user request). Training and evaluation call `odeint` itself; tests hold the two
equal."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

__all__ = ["fixed_grid"]

_THIRD = 1.0 / 3.0


def fixed_grid(f: Callable[[Tensor], Tensor], h: Tensor, steps: int, method: str) -> Tensor:
    """h after `steps` equal steps of `method` ("euler" or "rk4") of dh/ds = f(h)."""
    step = 1.0 / steps
    for _ in range(steps):
        if method == "euler":
            h = h + step * f(h)
            continue
        k1 = f(h)
        k2 = f(h + step * k1 * _THIRD)
        k3 = f(h + step * (k2 - k1 * _THIRD))
        k4 = f(h + step * (k1 - k2 + k3))
        h = h + (k1 + 3 * (k2 + k3) + k4) * step * 0.125
    return h
