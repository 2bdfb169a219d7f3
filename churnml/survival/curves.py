"""Summaries of survival curves on a grid of periods, vectorised over customers.

A *survival matrix* ``surv`` has shape ``(n_customers, K)``: ``surv[i, k - 1] = S_i(k)``, the
probability that customer ``i`` is still active at the end of period ``k`` after the cutoff
(``S(0) = 1`` is implicit). All functions work on whole matrices (float32 is enough).

* **Between grid points** ``S`` is interpolated geometrically, ``S(k + u) = S(k) *
  (S(k + 1) / S(k)) ** u`` for ``0 <= u < 1`` (the period's hazard spread evenly over it);
  at whole periods it is the grid value.
* **Tail rule.** Past the last period ``K`` the hazard stays at its last value,
  ``h_K = 1 - S(K) / S(K - 1)``: ``S(K + j) = S(K) * (1 - h_K) ** j``
  (:func:`extend_constant_hazard`). Alternatives (:func:`extend_survival`): ``sbg``, a
  shifted-beta-geometric tail fitted to each customer's own hazards (:func:`extend_sbg`),
  and ``restricted``, no extension. Figures that depend on the tail name their horizon.
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
    last_h = hazards_from_survival(s[:, -2:])[:, -1:]  # h_K needs S(K - 1) and S(K) only
    steps = np.arange(1, extra + 1, dtype=s.dtype)
    tail = s[:, -1:] * (1 - last_h) ** steps
    return np.concatenate([s, tail.astype(s.dtype, copy=False)], axis=1)


TAIL_RULES = ("constant_hazard", "sbg", "restricted")


def extend_sbg(surv: np.ndarray, n_periods: int) -> np.ndarray:
    """``surv`` extended by a shifted-beta-geometric tail fitted to each customer's own
    hazards: under the sBG (Fader & Hardie 2007) ``1 / h_t = (alpha + beta - 1) / alpha +
    t / alpha`` is linear in ``t``, so a least-squares line through ``1 / h_t`` over the
    second half of the grid gives the later hazards ``h_t = 1 / (a + b t)``. Rows whose
    hazards do not fall (slope <= 0) or have fewer than two positive hazards there keep the
    constant-hazard tail."""
    s = _as_matrix(surv)
    K, extra = s.shape[1], int(n_periods) - s.shape[1]
    if extra <= 0:
        return s
    h = hazards_from_survival(s).astype(np.float64)[:, K // 2:]
    t = np.arange(K // 2 + 1, K + 1, dtype=np.float64)
    valid = h > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(valid, 1.0 / np.where(valid, h, 1.0), 0.0)
        n = valid.sum(axis=1)
        t_mean = (valid * t).sum(axis=1) / n
        y_mean = y.sum(axis=1) / n
        dt = np.where(valid, t - t_mean[:, None], 0.0)
        slope = (dt * (y - y_mean[:, None])).sum(axis=1) / (dt ** 2).sum(axis=1)
        intercept = y_mean - slope * t_mean
        later = np.arange(K + 1, K + extra + 1, dtype=np.float64)
        h_sbg = 1.0 / (intercept[:, None] + slope[:, None] * later)
    ok = (n >= 2) & (slope > 0) & np.isfinite(h_sbg).all(axis=1) & \
        ((h_sbg >= 0) & (h_sbg <= 1)).all(axis=1)
    last = hazards_from_survival(s)[:, -1:].astype(np.float64)
    h_tail = np.where(ok[:, None], np.nan_to_num(h_sbg), last)
    tail = s[:, -1:] * np.cumprod(1 - h_tail, axis=1)
    return np.concatenate([s, tail.astype(s.dtype, copy=False)], axis=1)


def extend_survival(surv: np.ndarray, n_periods: int, tail_rule: str = "constant_hazard"
                    ) -> np.ndarray:
    """``surv`` on at least ``n_periods`` periods by ``tail_rule``: ``constant_hazard``
    (:func:`extend_constant_hazard`), ``sbg`` (:func:`extend_sbg`) or ``restricted`` (no
    extension: a longer request is an error)."""
    if tail_rule == "constant_hazard":
        return extend_constant_hazard(surv, n_periods)
    if tail_rule == "sbg":
        return extend_sbg(surv, n_periods)
    if tail_rule == "restricted":
        s = _as_matrix(surv)
        if n_periods > s.shape[1]:
            raise ValueError(f"tail_rule 'restricted': {n_periods} periods asked of a curve of "
                             f"{s.shape[1]}; lengthen the grid or shorten the horizons")
        return s
    raise ValueError(f"tail_rule must be one of {TAIL_RULES}, got {tail_rule!r}")


def survival_at(surv: np.ndarray, times: Sequence[float] | np.ndarray) -> np.ndarray:
    """``S(t)`` at ``times`` (periods, >= 0, possibly fractional): shape ``(n, len(times))``."""
    s = _as_matrix(surv)
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1 or (t < 0).any() or not np.isfinite(t).all():
        raise ValueError(f"times must be finite and >= 0, got {t[:5]}")
    whole = np.floor(t) == t
    if whole.all() and (t >= 1).all() and t.max(initial=0) <= s.shape[1]:
        return s[:, t.astype(np.int64) - 1]  # grid points: no interpolation
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
