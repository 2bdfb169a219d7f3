"""Summaries of survival curves on a grid of periods, vectorised over customers.

A *survival matrix* ``surv`` has shape ``(n_customers, K)``: ``surv[i, k - 1] = S_i(k)``, the
probability that customer ``i`` is still active at the end of period ``k`` after the cutoff
(``S(0) = 1`` is implicit). All functions work on whole matrices (float32 is enough).

* **Between grid points** ``S`` is interpolated geometrically, ``S(k + u) = S(k) *
  (S(k + 1) / S(k)) ** u`` for ``0 <= u < 1`` (the period's hazard spread evenly over it);
  at whole periods it is the grid value.
* **Tail rule.** Past the last period ``K`` the hazard stays at its last value,
  ``h_K = 1 - S(K) / S(K - 1)``: ``S(K + j) = S(K) * (1 - h_K) ** j``
  (:func:`extend_constant_hazard`). Figures that depend on it name their horizon.
* :func:`expected_remaining_lifetime` -- the restricted mean over a horizon of ``h`` whole
  periods, ``sum_{t=1..h} S(t)``: the expected number of whole periods the customer stays
  active within the horizon (``E[min(D - 1, h)]`` for the churn period ``D``).
* :func:`median_time_to_churn` -- the first time with ``S(t) <= 0.5`` (interpolated as
  above), or NaN with ``beyond = True`` when ``S`` stays above 0.5 up to the horizon.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _as_matrix(surv: np.ndarray) -> np.ndarray:
    s = np.asarray(surv)
    if s.ndim != 2 or s.shape[1] < 1:
        raise ValueError(f"survival matrix must be (customers, periods >= 1), got {s.shape}")
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)
    return s


def hazards_from_survival(surv: np.ndarray) -> np.ndarray:
    """Per-period hazards ``h_k = 1 - S(k) / S(k - 1)`` (1 once ``S`` has reached 0)."""
    s = _as_matrix(surv)
    prev = np.concatenate([np.ones((s.shape[0], 1), s.dtype), s[:, :-1]], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(prev > 0, 1 - s / prev, 1)
    return np.clip(h, 0, 1).astype(s.dtype, copy=False)


def survival_from_hazards(hazard: np.ndarray) -> np.ndarray:
    """``S(k) = prod_{j <= k} (1 - h_j)`` along the periods."""
    h = _as_matrix(hazard)
    return np.cumprod(1 - h, axis=1)


def extend_constant_hazard(surv: np.ndarray, n_periods: int) -> np.ndarray:
    """``surv`` on ``max(K, n_periods)`` periods, extended by the tail rule (module
    docstring); unchanged when it is long enough."""
    s = _as_matrix(surv)
    extra = int(n_periods) - s.shape[1]
    if extra <= 0:
        return s
    last_h = hazards_from_survival(s)[:, -1:]
    steps = np.arange(1, extra + 1, dtype=s.dtype)
    tail = s[:, -1:] * (1 - last_h) ** steps
    return np.concatenate([s, tail.astype(s.dtype, copy=False)], axis=1)


def survival_at(surv: np.ndarray, times: Sequence[float] | np.ndarray) -> np.ndarray:
    """``S(t)`` at ``times`` (periods, >= 0, possibly fractional): shape ``(n, len(times))``."""
    s = _as_matrix(surv)
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1 or (t < 0).any() or not np.isfinite(t).all():
        raise ValueError(f"times must be finite and >= 0, got {t[:5]}")
    need = int(np.ceil(t.max(initial=0))) + 1
    full = extend_constant_hazard(s, need)
    full = np.concatenate([np.ones((s.shape[0], 1), s.dtype), full], axis=1)  # S(0 .. K')
    k = np.floor(t).astype(np.int64)
    u = (t - k).astype(s.dtype)
    lo = full[:, k]
    hi = full[:, k + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(lo > 0, hi / lo, 0)
    return np.where(u > 0, lo * ratio ** u, lo)


def periods(days: float | Sequence[float], period_days: int) -> np.ndarray:
    """Days as periods of ``period_days`` days."""
    return np.asarray(days, dtype=float) / float(period_days)


def horizon_periods(horizon_days: int, period_days: int) -> int:
    """Whole periods in a horizon of ``horizon_days`` (at least one)."""
    h = int(horizon_days) // int(period_days)
    if h < 1:
        raise ValueError(f"a horizon of {horizon_days} days is shorter than one "
                         f"{period_days}-day period")
    return h


def p_active(surv: np.ndarray, days: Sequence[int], period_days: int) -> np.ndarray:
    """Probability of being active ``days`` after the cutoff: ``(n, len(days))``."""
    return survival_at(surv, periods(days, period_days))


def expected_remaining_lifetime(surv: np.ndarray, horizon: int) -> np.ndarray:
    """Restricted mean ``sum_{t=1..horizon} S(t)`` in periods (tail rule past the grid)."""
    h = int(horizon)
    if h < 1:
        raise ValueError(f"horizon must be at least one period, got {horizon}")
    return extend_constant_hazard(surv, h)[:, :h].sum(axis=1)


def median_time_to_churn(surv: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """``(median, beyond)``: the first time (periods, interpolated) with ``S(t) <= 0.5``
    within ``horizon`` periods; NaN and ``beyond = True`` when there is none."""
    h = int(horizon)
    s = extend_constant_hazard(surv, h)[:, :h]
    full = np.concatenate([np.ones((s.shape[0], 1), s.dtype), s], axis=1)
    below = full <= 0.5
    beyond = ~below.any(axis=1)
    k = np.argmax(below, axis=1)  # first grid index with S <= 0.5 (>= 1 as S(0) = 1)
    rows = np.arange(s.shape[0])
    lo, hi = full[rows, np.maximum(k - 1, 0)], full[rows, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        # S(k - 1 + u) = lo * (hi / lo) ** u = 0.5  =>  u = log(0.5 / lo) / log(hi / lo)
        u = np.where((hi > 0) & (hi < lo), np.log(0.5 / lo) / np.log(hi / lo), 1.0)
    median = (k - 1 + np.clip(u, 0, 1)).astype(float)
    median[beyond] = np.nan
    return median, beyond


def curve_summary(
    surv: np.ndarray,
    period_days: int,
    active_days: Sequence[int] = (30, 90, 365),
    horizon_days: int = 365,
) -> pd.DataFrame:
    """Per-customer columns ``p_active_<d>d``, ``expected_remaining_lifetime_days`` and
    ``median_time_to_churn_days`` (NaN beyond the horizon, with
    ``median_beyond_horizon``), both restricted to ``lifetime_horizon_days`` (the whole
    periods of ``horizon_days``, named in that column)."""
    h = horizon_periods(horizon_days, period_days)
    active = p_active(surv, active_days, period_days)
    out = {f"p_active_{int(d)}d": active[:, i] for i, d in enumerate(active_days)}
    median, beyond = median_time_to_churn(surv, h)
    out["expected_remaining_lifetime_days"] = expected_remaining_lifetime(surv, h) * period_days
    out["median_time_to_churn_days"] = median * period_days
    out["median_beyond_horizon"] = beyond
    out["lifetime_horizon_days"] = np.full(len(beyond), h * int(period_days))
    return pd.DataFrame(out)
