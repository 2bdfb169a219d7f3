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
spend get the deterministic ``m * sum_{t<=J}`` discount weights.

**The customer's own mean spend is uncertain too** (``mean_shape``). ``m`` is an estimate
from a few past periods, so the realized value is ``V = Z * U_J`` with ``U_J`` the
discounted sum above per unit of mean spend and ``Z`` the customer's true mean spend per
period, drawn from its predictive distribution, independent of ``J`` and ``U``. Under the
Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value curves
for customer base analysis", J. Marketing Research 42(4); Fader & Hardie 2013, "The
Gamma-Gamma model of monetary value"): one period's spend is Gamma(shape ``p``, rate
``nu``), ``p = 1 / spend_cv**2``, mean ``Z = p / nu``, and across customers ``nu ~
Gamma(q, gamma)``. After ``n`` periods of mean spend ``xbar`` the posterior is
``nu ~ Gamma(q + p n, gamma + n xbar)``, so ``Z`` is inverse-Gamma with shape
``alpha = p n + q`` (:func:`spend_posterior`)::

    E[Z] = p (gamma + n xbar) / (p n + q - 1),   CV[Z] = 1 / sqrt(p n + q - 2).

``lifetime_value`` takes ``m = E[Z]`` and ``mean_shape = alpha`` per customer. With
``Z / m = (alpha - 1) / G_alpha`` and ``U_J = s_J G_{a_J}`` (the Gamma above),
``V | J = m s_J (alpha - 1) G_{a_J} / G_alpha``, and a ratio of independent Gammas is
beta-prime: its quantiles are exact (:func:`scipy.special.betaincinv`), so the sample keeps
its two dimensions (a third, sampled, dimension made the 80 % interval cover about 77 %
at 200 draws). They are tabulated once per distinct ``alpha`` (``alpha - 1`` rounded to
2 % steps). Without a fitted population (``q, gamma``) the flat-prior limit
``CV[Z] = spend_cv / sqrt(n)`` is the inverse-Gamma of that CV:
``alpha = 2 + n / spend_cv**2`` (:func:`mean_shape_from_periods`). ``mean_shape`` = inf
(the default) treats ``m`` as known. The curve's own estimation error is not included.

**Purchase logs** (``lag_periods``): the curve's event is the completion of a silence of
``horizon_days``, spending stops when it starts, so ``A(t) = S(t + horizon_days /
period_days)`` (:func:`paid_probability`). Coverage measured in ``benchmarks/README.md``
("Time to churn"): 81 % (simulator, 360 days) and 80 % (CDNOW, 270 days) for 80 % intervals
as ``churnml score`` writes them (spread fitted at training, :mod:`churnml.survival.spend`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize_scalar
from scipy.special import betaincinv, digamma, gammaincinv

from churnml.errors import DataValidationError
from churnml.models.btyd import gamma_gamma_log_likelihood
from churnml.survival.curves import extend_constant_hazard, survival_at

Timing = Literal["end", "start"]
LEVEL = 0.8
N_DRAWS = 100
SEED = 42
CV_STEP = 0.05  # spend_cv is tabulated on this grid
SHAPE_LOG_STEP = 0.02  # mean_shape - 1 is tabulated on a grid of 2 % steps
CHUNK_ROWS = 50_000  # customers at once (a few chunk x n_draws matrices)


DAYS_PER_YEAR = 365.25


def per_period_rate(annual_rate: float, period_days: int) -> float:
    """A yearly discount rate as the rate per period of ``period_days`` days:
    ``(1 + annual_rate) ** (period_days / 365.25) - 1``."""
    return float((1.0 + annual_rate) ** (period_days / DAYS_PER_YEAR) - 1.0)


def paid_probability(surv: np.ndarray, horizon: int, timing: Timing = "end",
                     lag_periods: float = 0.0) -> np.ndarray:
    """``A(t) = P(period t is paid)``, ``t = 1..horizon``: ``S(t + lag)`` or
    ``S(t - 1 + lag)`` (constant-hazard tail past the grid; geometric between periods).

    ``lag_periods``: for purchase logs the curve's event is the *completion* of a silence of
    ``horizon_days`` (:mod:`churnml.survival.durations`), while spending stops when the
    silence starts, ``horizon_days / period_days`` periods earlier: period ``t`` is paid
    while the silence has not started, ``S(t + lag)``. 0 for subscriptions."""
    if timing not in ("end", "start"):
        raise ValueError(f"timing must be 'end' or 'start', got {timing!r}")
    if not (np.isfinite(lag_periods) and lag_periods >= 0):
        raise ValueError(f"lag_periods must be finite and >= 0, got {lag_periods}")
    lag = int(lag_periods)
    if lag == lag_periods:  # whole periods: a slice of the (extended) curve
        s = extend_constant_hazard(surv, horizon + lag)[:, lag:lag + horizon]
        if timing == "end":
            return s
        before = (np.ones((s.shape[0], 1), s.dtype) if lag == 0 else
                  extend_constant_hazard(surv, lag)[:, lag - 1:lag])
        return np.concatenate([before, s[:, :-1]], axis=1)
    t = np.arange(1, horizon + 1, dtype=float) - (timing == "start") + lag_periods
    return survival_at(surv, t)


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
    mean_shape: np.ndarray | pd.Series | float = np.inf,
    n_draws: int = N_DRAWS,
    seed: int = SEED,
    lag_periods: float = 0.0,
) -> pd.DataFrame:
    """``lifetime_value, lifetime_value_low, lifetime_value_high`` per customer (module
    docstring) over ``horizon`` periods; ``discount_rate`` per period (see
    :func:`per_period_rate`). ``mean_shape``: inverse-Gamma shape (> 1) of each customer's
    mean spend per period around ``spend_per_period`` (:func:`spend_posterior`,
    :func:`mean_shape_from_periods`); inf = the mean is known. ``lag_periods``: purchase
    logs pay until the silence starts (:func:`paid_probability`)."""
    h = int(horizon)
    if h < 1:
        raise ValueError(f"horizon must be at least one period, got {horizon}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_draws < 10:
        raise ValueError(f"n_draws must be at least 10, got {n_draws}")
    paid = paid_probability(surv, h, timing, lag_periods).astype(np.float64)
    n = paid.shape[0]
    m = _spend(spend_per_period, n, "spend_per_period")
    cv = _spend(spend_cv, n, "spend_cv")
    if (cv < 0).any():
        raise ValueError("spend_cv must be >= 0")
    alpha = np.broadcast_to(np.asarray(mean_shape, dtype=float), (n,))
    if np.isnan(alpha).any() or (alpha <= 1).any():
        rows = np.flatnonzero(np.isnan(alpha) | (alpha <= 1))
        raise DataValidationError("scores", "mean_shape", "must be > 1 (finite mean spend)",
                                  rows=rows[:5].tolist(), values=alpha[rows[:5]].tolist(),
                                  n_rows=rows.size)
    w = discount_weights(h, discount_rate)
    value = (paid * w).sum(axis=1) * m
    # level s of the sample: J at the stratified level, V | J at a permuted one
    levels = (np.arange(n_draws) + 0.5) / n_draws
    v_levels = levels[np.random.default_rng(seed).permutation(n_draws)]
    cvs, which = np.unique(np.round(cv / CV_STEP) * CV_STEP, return_inverse=True)
    shapes, which_shape = _shape_grid(alpha)
    # (n_cv, n_shapes, h + 1, draws), flattened
    table = _value_table(cvs, shapes, w, v_levels).astype(np.float32).ravel()
    cell = which * shapes.size + which_shape
    cum_w = np.concatenate([[0.0], np.cumsum(w)])
    q = [(1 - level) / 2, (1 + level) / 2]
    low, high = np.empty(n), np.empty(n)
    for start in range(0, n, CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        j = _paid_periods(paid[part], n_draws)
        mm = m[part]
        flat = (cell[part][:, None] * (h + 1) + j.astype(np.intp)) * n_draws \
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
    level, counted in the smallest integer type that holds the horizon.

    One pass over the periods: ``k_i(t) = #{s : A_i(t) > (s + 0.5) / n_draws} =
    clip(ceil(n_draws A_i(t) - 0.5), 0, n_draws)`` levels lie below each ``A_i(t)``, so
    ``J[i, s] = #{t : k_i(t) > s}``, a reversed cumulative count of the ``k`` per row."""
    n, h = paid.shape
    dtype = np.uint8 if h < 2 ** 8 else np.uint16 if h < 2 ** 16 else np.int64
    # r = n_draws - k counted per row: J[:, s] = sum_{k > s} = (cumulative count of r)[n - 1 - s]
    r = n_draws - np.clip(np.ceil(paid * float(n_draws) - 0.5), 0, n_draws).astype(np.int64)
    r += (np.arange(n, dtype=np.int64) * (n_draws + 1))[:, None]
    counts = np.bincount(r.ravel(), minlength=n * (n_draws + 1)).reshape(n, n_draws + 1)
    return np.cumsum(counts[:, :n_draws], axis=1, dtype=dtype)[:, ::-1]


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


def _value_table(cvs: np.ndarray, shapes: np.ndarray, w: np.ndarray, levels: np.ndarray
                 ) -> np.ndarray:
    """Quantiles at ``levels`` of the discounted spend of ``j = 0..h`` periods per unit of
    expected mean spend, for each coefficient of variation and shape of the mean:
    ``U_j`` the Gamma matched in mean and variance (shape ``a_j``, scale ``s_j``); with an
    uncertain mean (inverse-Gamma shape ``alpha``) ``V = U_j (alpha - 1) / G_alpha`` and
    ``G_{a_j} / G_alpha`` is beta-prime, the quantile ``b / (1 - b)`` of
    ``b = betaincinv(a_j, alpha, level)``: exact, no extra sampling dimension."""
    cum_w = np.concatenate([[0.0], np.cumsum(w)])
    cum_w2 = np.concatenate([[0.0], np.cumsum(w ** 2)])
    out = np.zeros((cvs.size, shapes.size, cum_w.size, levels.size))
    mean_q = _mean_table(shapes, levels)  # (n_shapes, draws): Z / E[Z] alone
    for c, cv in enumerate(cvs):
        if cv == 0:  # no spend noise: the weights of the periods paid times Z / E[Z]
            out[c] = cum_w[None, :, None] * mean_q[:, None, :]
            continue
        a = 1.0 / cv ** 2  # shape of one period's spend
        shape = (a * cum_w[1:] ** 2 / cum_w2[1:])[:, None]
        scale = (cum_w2[1:] / (a * cum_w[1:]))[:, None]
        for k, alpha in enumerate(shapes):
            if np.isinf(alpha):
                out[c, k, 1:] = gammaincinv(shape, levels[None, :]) * scale
            else:
                b = betaincinv(shape, alpha, levels[None, :])
                with np.errstate(divide="ignore"):
                    out[c, k, 1:] = scale * (alpha - 1.0) * b / (1.0 - b)
    return out


def _shape_grid(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct shapes on the tabulation grid (``alpha - 1`` rounded to 2 % steps on the log
    scale; inf stays inf) and each customer's index into them."""
    finite = np.isfinite(alpha)
    key = np.full(alpha.shape, np.inf)
    key[finite] = np.round(np.log(alpha[finite] - 1.0) / SHAPE_LOG_STEP)
    keys, which = np.unique(key, return_inverse=True)
    shapes = np.where(np.isfinite(keys), 1.0 + np.exp(np.where(np.isfinite(keys), keys, 0.0)
                                                       * SHAPE_LOG_STEP), np.inf)
    return shapes, which


def _mean_table(shapes: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles at ``levels`` of ``Z / E[Z] = (alpha - 1) / G``, ``G ~ Gamma(alpha, 1)``
    (an inverse-Gamma of mean 1), per shape; 1 for ``alpha`` = inf."""
    out = np.ones((shapes.size, levels.size))
    finite = np.isfinite(shapes)
    a = shapes[finite][:, None]
    out[finite] = (a - 1.0) / gammaincinv(a, 1.0 - levels[None, :])
    return out


def mean_shape_from_periods(n_periods: np.ndarray | pd.Series | float, spend_cv: float
                            ) -> np.ndarray:
    """Inverse-Gamma shape of a customer's mean spend estimated from ``n_periods`` periods
    without a fitted population (the flat-prior limit of :func:`spend_posterior`): the CV of
    a mean of ``n`` periods, ``spend_cv / sqrt(n)``, as ``alpha = 2 + n / spend_cv**2``
    (``CV = 1 / sqrt(alpha - 2)``); ``n`` below 1 counts as 1, ``spend_cv = 0`` gives inf."""
    n = np.maximum(np.asarray(n_periods, dtype=float), 1.0)
    if spend_cv < 0 or not np.isfinite(spend_cv):
        raise ValueError(f"spend_cv must be finite and >= 0, got {spend_cv}")
    if spend_cv == 0:
        return np.full(n.shape, np.inf)
    return 2.0 + n / spend_cv ** 2


def fit_spend_population(mean_spend: np.ndarray, n_periods: np.ndarray, spend_cv: float
                         ) -> tuple[float, float]:
    """Maximum-likelihood ``(q, gamma)`` of the Gamma-Gamma spend model (module docstring)
    with the per-period shape fixed at ``p = 1 / spend_cv**2`` (:func:`fit_spend_cv`, from
    the spread within customers), from each customer's mean spend ``xbar > 0`` over
    ``n >= 1`` periods (the likelihood of :func:`churnml.models.btyd.
    gamma_gamma_log_likelihood`). ``gamma`` has its closed form given ``q`` (the score
    equation ``q / gamma = mean((p n + q) / (gamma + n xbar))`` is solved inside a
    one-dimensional search over ``log q``)."""
    m = np.asarray(mean_spend, dtype=float)
    n = np.asarray(n_periods, dtype=float)
    ok = np.isfinite(m) & (m > 0) & (n >= 1)
    if ok.sum() < 10:
        raise ValueError("need at least 10 customers with a positive mean spend")
    if not spend_cv > 0:
        raise ValueError(f"spend_cv must be > 0, got {spend_cv}")
    m, n = m[ok], n[ok]
    p = 1.0 / spend_cv ** 2

    def best_gamma(q: float) -> float:
        # q / g = mean((p n + q) / (g + n m)): the left side falls faster, one root
        f = lambda lg: q / np.exp(lg) - np.mean((p * n + q) / (np.exp(lg) + n * m))  # noqa: E731
        lo, hi = np.log(m.min() * 1e-6), np.log(m.max() * n.max() * 1e6)
        return float(np.exp(brentq(f, lo, hi)))

    def neg(lq: float) -> float:
        q = float(np.exp(lq))
        g = best_gamma(q)
        return -float(gamma_gamma_log_likelihood(np.array([p, q, g]), m, n).mean())

    res = minimize_scalar(neg, bounds=(np.log(1.0 + 1e-6), np.log(1e4)), method="bounded",
                          options={"xatol": 1e-6})
    q = float(np.exp(res.x))
    return q, best_gamma(q)


def spend_posterior(mean_spend: np.ndarray | pd.Series, n_periods: np.ndarray | pd.Series,
                    spend_cv: float, q: float, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """``(E[Z], alpha)``: the posterior mean and inverse-Gamma shape of each customer's mean
    spend per period ``Z`` after ``n`` periods of mean ``xbar`` under the Gamma-Gamma model
    ``(p = 1 / spend_cv**2, q, gamma)`` (module docstring): ``alpha = p n + q``,
    ``E[Z] = p (gamma + n xbar) / (alpha - 1)``; with ``n = 0`` the population's
    ``p gamma / (q - 1)``. Pass both to :func:`lifetime_value` (``spend_per_period``,
    ``mean_shape``)."""
    if not (spend_cv > 0 and q > 1 and gamma > 0):
        raise ValueError(f"need spend_cv > 0, q > 1, gamma > 0; got {spend_cv}, {q}, {gamma}")
    p = 1.0 / spend_cv ** 2
    n = np.maximum(np.asarray(n_periods, dtype=float), 0.0)
    xbar = np.where(n > 0, np.maximum(np.asarray(mean_spend, dtype=float), 0.0), 0.0)
    alpha = p * n + q
    return p * (gamma + n * xbar) / (alpha - 1.0), alpha


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
