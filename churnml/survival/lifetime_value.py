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
Gamma variables with mean ``m`` and coefficient of variation ``spend_cv``. Given
``J = j`` the discounted sum is taken as the Gamma with its mean and variance (exact without
discounting, where a sum of ``j`` such Gammas is a Gamma), so ``V`` is a mixture of
``horizon + 1`` Gammas (one is the point 0). Its quantiles are read from a Latin-hypercube
sample of ``n_draws`` points, the same for every customer (seeded): ``J`` by inversion of
the customer's curve at the stratified levels ``(s + 0.5) / n_draws``, ``V`` by the exact
Gamma quantile (:func:`scipy.special.gammaincinv`, tabulated once per distinct
``spend_cv``, rounded to 0.05) at a seeded permutation of the same levels. The interval is
the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of these points. No random numbers
are drawn per customer, so the cost is a few passes over an ``n x n_draws`` matrix.
A customer likely to bring nothing (churn before the first paid period with a
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
from scipy.optimize import brentq
from scipy.special import digamma, gammaincinv

from churnml.errors import DataValidationError
from churnml.survival.curves import extend_constant_hazard

Timing = Literal["end", "start"]
LEVEL = 0.8
N_DRAWS = 100
SEED = 42
CV_STEP = 0.05  # spend_cv is tabulated on this grid
CHUNK_ROWS = 50_000  # customers at once (a few chunk x n_draws matrices)


DAYS_PER_YEAR = 365.25


def per_period_rate(annual_rate: float, period_days: int) -> float:
    """A yearly discount rate as the rate per period of ``period_days`` days:
    ``(1 + annual_rate) ** (period_days / 365.25) - 1``."""
    return float((1.0 + annual_rate) ** (period_days / DAYS_PER_YEAR) - 1.0)


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
        rows = np.flatnonzero(bad)
        raise DataValidationError("scores", name, "must be a finite number",
                                  rows=rows[:5].tolist(), values=arr[rows[:5]].tolist(),
                                  n_rows=rows.size)
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
    # level s of the sample: J at the stratified level, V | J at a permuted one
    levels = (np.arange(n_draws) + 0.5) / n_draws
    v_levels = levels[np.random.default_rng(seed).permutation(n_draws)]
    cvs, which = np.unique(np.round(cv / CV_STEP) * CV_STEP, return_inverse=True)
    table = _value_table(cvs, w, v_levels).astype(np.float32).ravel()  # (n_cv, h+1, draws)
    cum_w = np.concatenate([[0.0], np.cumsum(w)])
    q = [(1 - level) / 2, (1 + level) / 2]
    low, high = np.empty(n), np.empty(n)
    for start in range(0, n, CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        j = _paid_periods(paid[part], n_draws)
        mm = m[part]
        flat = (which[part][:, None] * (h + 1) + j.astype(np.intp)) * n_draws \
            + np.arange(n_draws)
        draws = np.take(table, flat) * mm[:, None].astype(np.float32)
        fixed = mm <= 0  # no spend noise: m times the weights of the J periods paid
        if fixed.any():
            draws[fixed] = (mm[fixed, None] * cum_w[j[fixed]]).astype(np.float32)
        low[part], high[part] = _row_quantiles(draws, q)
    return pd.DataFrame({"lifetime_value": value, "lifetime_value_low": low,
                         "lifetime_value_high": high})


def _paid_periods(paid: np.ndarray, n_draws: int) -> np.ndarray:
    """``J[i, s] = #{t : A_i(t) > (s + 0.5) / n_draws}``: periods paid at each stratified
    level, counted in the smallest integer type that holds the horizon."""
    n, h = paid.shape
    levels = (np.arange(n_draws) + 0.5) / n_draws
    dtype = np.uint8 if h < 2 ** 8 else np.uint16 if h < 2 ** 16 else np.int64
    j = np.zeros((n, n_draws), dtype=dtype)
    for t in range(h):
        j += paid[:, t:t + 1] > levels
    return j


def _row_quantiles(x: np.ndarray, q: list[float]) -> list[np.ndarray]:
    """Per-row quantiles (linear interpolation, as :func:`numpy.quantile`) by partition."""
    d = x.shape[1]
    pos = [qq * (d - 1) for qq in q]
    ranks = sorted({int(np.floor(p)) for p in pos} | {min(int(np.floor(p)) + 1, d - 1)
                                                      for p in pos})
    part = np.partition(x, ranks, axis=1)
    out = []
    for p in pos:
        lo = int(np.floor(p))
        hi = min(lo + 1, d - 1)
        out.append(part[:, lo] + (p - lo) * (part[:, hi] - part[:, lo]))
    return out


def _value_table(cvs: np.ndarray, w: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles at ``levels`` of the discounted spend of ``j = 0..h`` periods per unit of
    mean spend, for each coefficient of variation: Gammas matched in mean and variance."""
    cum_w = np.concatenate([[0.0], np.cumsum(w)])
    cum_w2 = np.concatenate([[0.0], np.cumsum(w ** 2)])
    out = np.zeros((cvs.size, cum_w.size, levels.size))
    for c, cv in enumerate(cvs):
        if cv == 0:
            out[c] = cum_w[:, None]
            continue
        a = 1.0 / cv ** 2  # shape of one period's spend
        shape = a * cum_w[1:] ** 2 / cum_w2[1:]
        scale = cum_w2[1:] / (a * cum_w[1:])
        out[c, 1:] = gammaincinv(shape[:, None], levels[None, :]) * scale[:, None]
    return out


def fit_spend_cv(period_spend: np.ndarray, active: np.ndarray | None = None) -> float:
    """Coefficient of variation of one period's spend around the customer's own mean: the
    maximum-likelihood Gamma shape ``a`` common to all customers, each with its own mean,
    from ``log a - digamma(a) = sum_i sum_t log(mean_i / x_it) / sum_i (n_i - 1)`` (the
    ``n_i - 1`` removes most of the bias of estimating each mean), returned as
    ``1 / sqrt(a)``.

    ``period_spend``: ``(n_customers, n_periods)`` past spend per period; ``active`` marks
    the periods to use (default all). Only positive spends enter (a Gamma has no zeros), and
    customers with at least two of them."""
    x = np.asarray(period_spend, dtype=float)
    mask = np.ones(x.shape, bool) if active is None else np.asarray(active, bool)
    if x.ndim != 2 or mask.shape != x.shape:
        raise ValueError(f"period_spend must be (customers, periods), got {x.shape}")
    mask = mask & np.isfinite(x) & (x > 0)
    n = mask.sum(axis=1)
    ok = n >= 2
    if not ok.any():
        raise ValueError("no customer has two periods with a positive spend")
    x, mask, n = x[ok], mask[ok], n[ok]
    logs = np.where(mask, np.log(np.where(mask, x, 1.0)), 0.0)
    mean = np.where(mask, x, 0.0).sum(axis=1) / n
    rhs = (n * np.log(mean) - logs.sum(axis=1)).sum() / (n - 1).sum()
    if rhs < 1e-12:  # every customer spends the same each period
        return 0.0
    # log a - digamma(a) falls from +inf to 0: bracket and solve
    shape = brentq(lambda a: np.log(a) - digamma(a) - rhs, 1e-8, 1e12)
    return float(1.0 / np.sqrt(shape))


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
