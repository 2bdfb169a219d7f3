"""Lifetime value over a horizon from survival curves, with a predictive interval.

**Point value.** For a horizon of ``h`` periods, spend ``m`` per active period (e.g. the
value-if-retained model's horizon value divided by its periods) and a discount rate ``r``
per period::

    lifetime_value = sum_{t=1..h} A(t) * m / (1 + r) ** t

with ``A(t)`` the probability that period ``t`` is paid: ``S(t)`` when a period's spend
counts once the customer is still active at its end (``timing="end"``, the default; the
period of churn earns nothing), ``S(t - 1)`` when it is paid at its start (``"start"``,
renewals paid in advance, as in the discounted expected residual lifetime of Fader & Hardie
2010, "Customer-base valuation in a contractual setting", Marketing Science 29(1)).

**Interval: a predictive interval for the customer's realized value** over the horizon, not
a confidence interval for the expected value: it contains the value the customer will
actually bring with probability ``level`` (default 80 %), so it is validated by coverage
(the share of customers whose realized value falls inside their interval). The realized
value is ``V = sum_{t=1..J} g_t / (1 + r) ** t`` with ``J`` the periods paid (from the
customer's curve: ``P(J >= t) = A(t)``) and ``g_t`` the spend of period ``t``, independent
Gamma draws with mean ``m`` and coefficient of variation ``spend_cv``. It is computed by
vectorised Monte Carlo with a fixed seed: ``J`` is drawn by inversion of the curve and ``V``
given ``J = j`` from the Gamma with the mean and variance of the discounted sum (exact
without discounting, where a sum of ``j`` such Gammas is a Gamma), ``n_draws`` per
customer; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
draws. A customer likely to bring nothing (churn before the first paid period with a
probability above ``(1 - level) / 2``) gets a lower bound of 0 and a coverage above the
level, as any interval of a distribution with an atom. Customers with zero or negative
spend get the deterministic ``m * sum_{t<=J}`` discount weights. The uncertainty of the
fitted model itself (curve and spend estimates) is not included: the interval is that of
the customer's value under the fitted model.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from churnml.survival.curves import extend_constant_hazard

Timing = Literal["end", "start"]
LEVEL = 0.8
N_DRAWS = 200
SEED = 42
CHUNK_ROWS = 50_000  # customers simulated at once (chunk x n_draws float64)


def per_period_rate(annual_rate: float, period_days: int) -> float:
    """A yearly discount rate as the rate per period of ``period_days`` days."""
    return float((1.0 + annual_rate) ** (period_days / 365.0) - 1.0)


def paid_probability(surv: np.ndarray, horizon: int, timing: Timing = "end") -> np.ndarray:
    """``A(t) = P(period t is paid)``, ``t = 1..horizon``: ``S(t)`` or ``S(t - 1)``
    (tail rule past the grid)."""
    if timing not in ("end", "start"):
        raise ValueError(f"timing must be 'end' or 'start', got {timing!r}")
    s = extend_constant_hazard(surv, horizon)[:, :horizon]
    if timing == "end":
        return s
    return np.concatenate([np.ones((s.shape[0], 1), s.dtype), s[:, :-1]], axis=1)


def discount_weights(horizon: int, rate: float) -> np.ndarray:
    """``1 / (1 + rate) ** t`` for ``t = 1..horizon``."""
    if rate <= -1:
        raise ValueError(f"discount rate must be > -1, got {rate}")
    return (1.0 + rate) ** -np.arange(1, horizon + 1, dtype=float)


def _spend(spend: np.ndarray | pd.Series | float, n: int, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(spend, dtype=float), (n,)).copy()
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(f"{name} must be finite; rows {rows}")
    return arr


def lifetime_value(
    surv: np.ndarray,
    spend_per_period: np.ndarray | pd.Series | float,
    horizon: int,
    discount_rate: float = 0.0,
    *,
    timing: Timing = "end",
    level: float = LEVEL,
    spend_cv: np.ndarray | pd.Series | float = 1.0,
    n_draws: int = N_DRAWS,
    seed: int = SEED,
) -> pd.DataFrame:
    """``lifetime_value, lifetime_value_low, lifetime_value_high`` per customer (module
    docstring) over ``horizon`` periods; ``discount_rate`` per period (see
    :func:`per_period_rate`)."""
    h = int(horizon)
    if h < 1:
        raise ValueError(f"horizon must be at least one period, got {horizon}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_draws < 10:
        raise ValueError(f"n_draws must be at least 10, got {n_draws}")
    paid = paid_probability(surv, h, timing).astype(np.float64)
    n = paid.shape[0]
    m = _spend(spend_per_period, n, "spend_per_period")
    cv = _spend(spend_cv, n, "spend_cv")
    if (cv < 0).any():
        raise ValueError("spend_cv must be >= 0")
    w = discount_weights(h, discount_rate)
    value = (paid * w).sum(axis=1) * m
    # moments of the discounted sum of j periods' spend, j = 0..h
    cum_w = np.concatenate([[0.0], np.cumsum(w)])
    cum_w2 = np.concatenate([[0.0], np.cumsum(w ** 2)])
    q = np.array([(1 - level) / 2, (1 + level) / 2])
    low, high = np.empty(n), np.empty(n)
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        a, mm, cc = paid[part], m[part], cv[part]
        u = rng.random((a.shape[0], n_draws))
        # J = #{t : A(t) > U}: P(J >= t) = A(t) for a non-increasing A
        j = np.zeros(u.shape, dtype=np.int64)
        for t in range(h):
            j += a[:, t:t + 1] > u
        mean = mm[:, None] * cum_w[j]
        gamma = (mm[:, None] > 0) & (cc[:, None] > 0) & (j > 0)
        var = (mm[:, None] * cc[:, None]) ** 2 * cum_w2[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            shape = np.where(gamma, mean ** 2 / var, 1.0)
            scale = np.where(gamma, var / mean, 0.0)
        draws = np.where(gamma, rng.gamma(shape, scale), mean)
        low[part], high[part] = np.quantile(draws, q, axis=1)
    return pd.DataFrame({"lifetime_value": value, "lifetime_value_low": low,
                         "lifetime_value_high": high})


def realized_value(churn_period: np.ndarray, period_spend: np.ndarray, horizon: int,
                   discount_rate: float = 0.0, timing: Timing = "end") -> np.ndarray:
    """The value a customer actually brought: discounted spend of the periods paid before
    churn in period ``churn_period`` (``inf``: no churn), with ``period_spend`` of shape
    ``(n, horizon)``; the quantity the interval of :func:`lifetime_value` predicts."""
    h = int(horizon)
    spend = np.asarray(period_spend, dtype=float)[:, :h]
    t = np.arange(1, h + 1)
    d = np.asarray(churn_period, dtype=float)[:, None]
    paid = t < d if timing == "end" else t <= d
    return (spend * paid * discount_weights(h, discount_rate)).sum(axis=1)
