"""Evaluation of survival predictions: concordance, time-dependent AUC, Brier scores, calibration.

Inputs are numpy arrays: ``event`` (bool, churn observed at ``duration``) and ``duration``
(periods from the cutoff to the event or censoring), for the *train* set (to estimate the
censoring distribution) and the *test* set, plus either **risk scores** (one per row; sign
convention everywhere: *a higher risk score means an earlier event*) or **survival matrices**
``surv[i, k] = S(times[k] | x_i) = P(T_i > times[k])``.

Censoring distribution: ``G(t) = P(C > t)``, the reverse Kaplan–Meier estimate on the training
rows (:func:`~churnml.survival.kaplan_meier.kaplan_meier` with ``reverse=True``), evaluated
right-continuously at ``t`` (``G(T_i)``, not ``G(T_i-)``), and undefined past the last training
time unless it has reached 0 there — the conventions of scikit-survival
(``CensoringDistributionEstimator``), against which every IPCW metric here is tested to 1e-9.

Ties: risk scores within ``tied_tol`` of each other count as tied (half a concordant pair).

The implementations are our own (O(n log² n) concordance instead of scikit-survival's
O(n²) pair loop; one validated censoring estimate shared with the administrative Brier score
and calibration, which scikit-survival lacks); scikit-survival is their reference in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnml.errors import DataValidationError
from churnml.survival.kaplan_meier import (
    MAX_SHOWN_ROWS,
    check_survival_arrays,
    check_times,
    kaplan_meier,
    step_at,
)

TIED_TOL = 1e-8
N_BINS = 10


@dataclass(frozen=True)
class Concordance:
    """A concordance index and its pair counts (``tau``: inf when not truncated)."""

    cindex: float
    concordant: int
    discordant: int
    tied_risk: int
    tied_time: int
    tau: float = float("inf")


@dataclass(frozen=True)
class Calibration:
    """Calibration at ``t0``: the decile table, ICI and E50 (see :func:`calibration_at`)."""

    t0: float
    table: pd.DataFrame
    ici: float
    e50: float


class CensoringDistribution:
    """``G(t) = P(C > t)``: reverse Kaplan–Meier on training rows (module docstring)."""

    def __init__(self, event: Any, duration: Any) -> None:
        ev, du = check_survival_arrays(event, duration, "train")
        if ev.all():  # no censoring: G = 1 on the observed range
            self.times = np.unique(du)
            self.probs = np.ones(self.times.size)
        else:
            self.times, self.probs = kaplan_meier(ev, du, reverse=True)

    def __call__(self, t: Any, table: str = "test", column: str = "duration") -> np.ndarray:
        """``G(t)``; ``t`` past the last training time raises unless ``G`` reached 0."""
        t = np.asarray(t, dtype=float)
        beyond = t > self.times[-1]
        if beyond.any() and self.probs[-1] > 0:
            rows = np.flatnonzero(beyond)
            raise DataValidationError(
                table, column,
                f"after the last training time {self.times[-1]:g}, where the censoring "
                "distribution is unknown; truncate the evaluation or train on longer follow-up",
                rows=rows[:MAX_SHOWN_ROWS].tolist(), values=t[rows[:MAX_SHOWN_ROWS]].tolist(),
                n_rows=int(beyond.sum()))
        return np.where(beyond, 0.0, step_at(self.times, self.probs, t))


def _risk(risk: Any, n: int, name: str = "risk") -> np.ndarray:
    r = np.asarray(risk, dtype=float).ravel()
    if r.shape[0] != n:
        raise DataValidationError("test", name, f"{r.shape[0]} scores for {n} rows")
    bad = ~np.isfinite(r)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataValidationError("test", name, "missing or infinite score",
                                  rows=rows[:MAX_SHOWN_ROWS].tolist(), n_rows=int(bad.sum()))
    return r


def _count_before(rank: np.ndarray, start: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``#{p < start_k : rank[p] < q_kc}`` per query ``k`` and column ``c`` of ``q`` (m x c;
    ``rank`` a permutation of ``0..n-1``).

    ``[0, start)`` splits into at most one dyadic block per set bit of ``start``; per block
    size ``2^L`` the ranks are sorted within each block (keyed ``block * (N + 1) + rank``), so
    each block count is one binary search: O((n + m) log^2 n), vectorised per level.
    """
    n = rank.size
    size = 1 << max(1, int(np.ceil(np.log2(max(n, 2)))))
    padded = np.full(size, size, dtype=np.int64)  # padding ranks are never below a query
    padded[:n] = rank
    position = np.arange(size, dtype=np.int64)
    out = np.zeros(q.shape, dtype=np.int64)
    level = 0
    while (1 << level) <= size:
        hit = ((start >> level) & 1).astype(bool)
        if hit.any():
            keys = np.sort((position >> level) * (size + 1) + padded)
            block = (start[hit] >> level) - 1
            base = (block * (size + 1))[:, None]
            out[hit] += np.searchsorted(keys, base + q[hit]) - (block << level)[:, None]
        level += 1
    return out


def _concordance(event: np.ndarray, duration: np.ndarray, risk: np.ndarray,
                 weights: np.ndarray, tied_tol: float, tau: float) -> Concordance:
    """Weighted concordance over comparable pairs (i an event, j with T_j > T_i, or T_j = T_i
    and j censored): ``sum_i w_i (#{r_j < r_i} + #{r_j ~ r_i} / 2) / sum_i w_i #{j}``.

    Rows sorted by time (events before censorings at a tie): the rows comparable to event i
    are those from the first censoring at its time on, so each count is "ranks below a
    threshold" minus those before that position (:func:`_count_before`).
    """
    n = duration.size
    order = np.lexsort((~event, duration))
    du, ev, r, w = duration[order], event[order], risk[order], weights[order]
    _, first, counts = np.unique(du, return_index=True, return_counts=True)
    events_at = np.add.reduceat(ev.astype(np.int64), first)
    start = np.repeat(first + events_at, counts)[ev].astype(np.int64)
    tied_time = int(events_at @ (counts - events_at))
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(r, kind="stable")] = np.arange(n)
    sorted_r = np.sort(r)
    q_lo = np.searchsorted(sorted_r, r[ev] - tied_tol, side="left").astype(np.int64)
    q_hi = np.searchsorted(sorted_r, r[ev] + tied_tol, side="right").astype(np.int64)
    q = np.column_stack([q_lo, q_hi])
    below = q - _count_before(rank, start, q)
    below_lo, below_hi = below[:, 0], below[:, 1]  # comparable: r_j < r_i - tol, <= r_i + tol
    comparable = n - start
    n_tie = below_hi - below_lo
    wi = w[ev]
    num = float(wi @ (below_lo + 0.5 * n_tie))
    den = float(wi @ comparable)
    concordant, tied_risk = int(below_lo.sum()), int(n_tie.sum())
    discordant = int((comparable - below_hi).sum())
    if concordant + discordant + tied_risk == 0 or den == 0:
        raise DataValidationError("test", "duration", "no comparable pairs: every row is "
                                  "censored or all events happen at the last time")
    return Concordance(num / den, concordant, discordant, tied_risk, tied_time, tau)


def harrell_c(event: Any, duration: Any, risk: Any, tied_tol: float = TIED_TOL) -> Concordance:
    """Harrell's concordance index (Harrell et al. 1982).

    Share of comparable pairs — ``i`` had the event and ``T_j > T_i`` (or ``T_j = T_i`` with
    ``j`` censored) — in which the row with the earlier event has the higher risk score; tied
    scores count one half. Higher risk = earlier event. Equals
    ``sksurv.metrics.concordance_index_censored``. Depends on the censoring distribution.
    """
    ev, du = check_survival_arrays(event, duration, "test")
    r = _risk(risk, du.size)
    return _concordance(ev, du, r, np.ones(du.size), tied_tol, float("inf"))


def uno_c(
    event_train: Any, duration_train: Any, event: Any, duration: Any, risk: Any,
    tau: float | None = None, tied_tol: float = TIED_TOL,
) -> Concordance:
    """Uno's IPCW concordance index (Uno et al. 2011, *Statistics in Medicine* 30, 1105–1117).

    Harrell's pairs, each weighted by ``G(T_i)^-2`` of its event row ``i`` (``G`` from the
    training rows), counting only events with ``T_i < tau``::

        C_tau = sum_ij w_i 1{T_i < T_j, T_i < tau} (1{r_i > r_j} + 1{r_i = r_j} / 2)
                / sum_ij w_i 1{T_i < T_j, T_i < tau},   w_i = D_i / G(T_i)^2

    Consistent for ``P(r_i > r_j | T_i < T_j, T_i < tau)`` whatever the censoring, as long as it
    is independent of the covariates. ``tau`` (periods) is returned in the result (inf: none).
    Higher risk = earlier event. Equals ``sksurv.metrics.concordance_index_ipcw``.
    """
    ev, du = check_survival_arrays(event, duration, "test")
    r = _risk(risk, du.size)
    G = CensoringDistribution(event_train, duration_train)
    used = ev & (du < tau) if tau is not None else ev.copy()
    g = np.ones(du.size)
    g[used] = G(du[used])
    if (g[used] == 0).any():
        raise DataValidationError("test", "duration", "censoring survival is 0 at an event "
                                  "time; lower tau")
    w = np.where(used, 1.0 / np.square(g), 0.0)
    return _concordance(ev, du, r, w, tied_tol, float("inf") if tau is None else float(tau))


def _surv_matrix(surv: Any, n: int, n_times: int, name: str = "surv") -> np.ndarray:
    s = np.asarray(surv, dtype=float)
    if s.ndim == 1 and n_times == 1:
        s = s[:, None]
    if s.shape != (n, n_times):
        raise DataValidationError("test", name, f"shape {s.shape}, expected (rows, times) = "
                                  f"({n}, {n_times})")
    bad = ~np.isfinite(s).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataValidationError("test", name, "missing or infinite prediction",
                                  rows=rows[:MAX_SHOWN_ROWS].tolist(), n_rows=int(bad.sum()))
    return s


def _follow_up_times(times: Any, duration: np.ndarray) -> np.ndarray:
    t = check_times(times)
    if t[0] < duration.min() or t[-1] >= duration.max():
        raise ValueError(f"times must lie within the test follow-up [{duration.min():g}, "
                         f"{duration.max():g}), got {t.tolist()[:10]}")
    return t


def cumulative_dynamic_auc(
    event_train: Any, duration_train: Any, event: Any, duration: Any, risk: Any, times: Any,
    tied_tol: float = TIED_TOL,
) -> tuple[np.ndarray, float]:
    """Cumulative/dynamic time-dependent AUC (Uno et al. 2007; Hung & Chiang 2010).

    Cases at ``t``: events with ``T_i <= t`` (weight ``1 / G(T_i)``); controls: ``T_j > t``::

        AUC(t) = sum_ij w_i 1{T_i <= t, D_i} 1{T_j > t} (1{r_i > r_j} + 1{r_i = r_j} / 2)
                 / (sum_i w_i 1{T_i <= t, D_i} * #{j: T_j > t})

    ``risk`` is one score per row or a ``(rows, times)`` matrix (e.g. ``1 - S(t | x)``); higher
    = earlier event. Also returns the mean AUC over ``times`` weighted by the test Kaplan–Meier
    drop, ``sum_k AUC(t_k) (S(t_{k-1}) - S(t_k)) / (1 - S(t_K))``. Times must lie in
    ``[min, max)`` of the test durations. Equals ``sksurv.metrics.cumulative_dynamic_auc``.
    """
    ev, du = check_survival_arrays(event, duration, "test")
    t = _follow_up_times(times, du)
    r = np.asarray(risk, dtype=float)
    r = np.repeat(_risk(r, du.size)[:, None], t.size, axis=1) if r.ndim == 1 else \
        _surv_matrix(r, du.size, t.size, "risk")
    G = CensoringDistribution(event_train, duration_train)
    w = np.zeros(du.size)
    w[ev] = 1.0 / G(du[ev])
    auc = np.empty(t.size)
    for k, tk in enumerate(t):
        case = ev & (du <= tk)
        controls = np.sort(r[du > tk, k])
        if not case.any() or controls.size == 0:
            raise ValueError(f"time {tk:g}: AUC needs at least one event by then and one "
                             "row still at risk after it")
        rc = r[case, k]
        lower = np.searchsorted(controls, rc - tied_tol, side="left")
        upper = np.searchsorted(controls, rc + tied_tol, side="right")
        auc[k] = float(w[case] @ (lower + 0.5 * (upper - lower))) / (
            w[case].sum() * controls.size)
    if t.size == 1:
        return auc, float(auc[0])
    km = step_at(*kaplan_meier(ev, du), t)
    drop = -np.diff(np.r_[1.0, km])
    return auc, float((auc * drop).sum() / (1.0 - km[-1]))


def brier_score(
    event_train: Any, duration_train: Any, event: Any, duration: Any, surv: Any, times: Any,
) -> np.ndarray:
    """IPCW Brier score at each time (Graf et al. 1999, *Statistics in Medicine* 18, 2529–45)::

        BS(t) = 1/n sum_i [ S(t|x_i)^2 1{T_i <= t, D_i} / G(T_i)
                            + (1 - S(t|x_i))^2 1{T_i > t} / G(t) ]

    ``surv``: ``(rows, times)`` matrix of ``S(t | x)``; lower is better. Equals
    ``sksurv.metrics.brier_score`` (a zero ``G`` gives the term weight 0, as there). With
    whole-period durations a row censored exactly at ``t`` is not scored at ``t`` (as there);
    :func:`administrative_brier_score` counts it as a survivor.
    """
    ev, du = check_survival_arrays(event, duration, "test")
    t = _follow_up_times(times, du)
    s = _surv_matrix(surv, du.size, t.size)
    G = CensoringDistribution(event_train, duration_train)
    g_t = G(t, "times", "time")
    g_y = G(du)
    with np.errstate(divide="ignore"):
        inv_t = np.where(g_t > 0, 1.0 / g_t, 0.0)
        inv_y = np.where(g_y > 0, 1.0 / g_y, 0.0)
    case = ev[:, None] & (du[:, None] <= t[None, :])
    control = du[:, None] > t[None, :]
    terms = np.square(s) * case * inv_y[:, None] + np.square(1.0 - s) * control * inv_t[None, :]
    return terms.mean(axis=0)


def _integrate(scores: np.ndarray, times: np.ndarray) -> float:
    if times.size < 2:
        raise ValueError("the integrated score needs at least two times")
    return float(np.trapezoid(scores, times) / (times[-1] - times[0]))


def integrated_brier_score(
    event_train: Any, duration_train: Any, event: Any, duration: Any, surv: Any, times: Any,
) -> float:
    """Integrated Brier score on the given grid: trapezoid rule over :func:`brier_score`,
    divided by ``times[-1] - times[0]`` (Graf et al. 1999). Equals
    ``sksurv.metrics.integrated_brier_score``; log the grid with the number."""
    t = check_times(times)
    return _integrate(brier_score(event_train, duration_train, event, duration, surv, t), t)


def administrative_brier_score(
    event: Any, duration: Any, censor_duration: Any, surv: Any, times: Any,
) -> np.ndarray:
    """Administrative Brier score at each time (Kvamme & Borgan 2023, "The Brier score under
    administrative censoring: problems and a solution", *JMLR* 24(2), 1–26).

    When every row's administrative censoring time ``C_i`` (``censor_duration``: periods to the
    end of the data) is known and all censoring is administrative, only rows that could be
    followed up to ``t`` are scored, without weights::

        BS_A(t) = 1 / #{i: C_i >= t} * sum_{i: C_i >= t}
                  [ S(t|x_i)^2 1{T_i <= t, D_i} + (1 - S(t|x_i))^2 1{T_i >= t, not (T_i = t, D_i)} ]

    (a row censored exactly at ``t`` counts as a survivor, as in the authors' pycox code).
    Censored rows must have ``duration == censor_duration``; lower is better.
    """
    ev, du = check_survival_arrays(event, duration, "test")
    _, cd = check_survival_arrays(ev, censor_duration, "test")
    early = (~ev & (du != cd)) | (du > cd)
    if early.any():
        rows = np.flatnonzero(early)
        raise DataValidationError(
            "test", "censor_duration",
            "the administrative Brier score needs every censoring at censor_duration and no "
            "event after it; use the IPCW Brier score for other censoring",
            rows=rows[:MAX_SHOWN_ROWS].tolist(), values=cd[rows[:MAX_SHOWN_ROWS]].tolist(),
            n_rows=int(early.sum()))
    t = check_times(times)
    s = _surv_matrix(surv, du.size, t.size)
    followed = cd[:, None] >= t[None, :]
    n_followed = followed.sum(axis=0)
    if (n_followed == 0).any():
        raise ValueError(f"times after every row's censor_duration (max {cd.max():g}): "
                         f"{t[n_followed == 0].tolist()[:10]}")
    case = ev[:, None] & (du[:, None] <= t[None, :]) & followed
    alive = (du[:, None] >= t[None, :]) & ~case
    terms = np.square(s) * case + np.square(1.0 - s) * alive
    return terms.sum(axis=0) / n_followed


def integrated_administrative_brier_score(
    event: Any, duration: Any, censor_duration: Any, surv: Any, times: Any,
) -> float:
    """Trapezoid integral of :func:`administrative_brier_score` over the grid, divided by its
    length (the same rule as :func:`integrated_brier_score`)."""
    t = check_times(times)
    return _integrate(administrative_brier_score(event, duration, censor_duration, surv, t), t)


def calibration_at(
    event: Any, duration: Any, surv_t0: Any, t0: float, n_bins: int = N_BINS,
) -> Calibration:
    """Calibration of the predicted churn risk by ``t0``, ``p_i = 1 - S(t0 | x_i)``.

    Rows are binned at the quantiles of ``p`` (as ``calibration_table`` of the churn model:
    ``n_bins`` edges, empty bins dropped). Per bin: ``mean_predicted`` = mean ``p``,
    ``observed_rate`` = ``1 - KM_bin(t0)`` (Kaplan–Meier within the bin, so censoring before
    ``t0`` is handled), ``gap`` = observed - predicted. Summaries (Austin, Harrell & van
    Klaveren 2020, *Statistics in Medicine* 39, 2714–42, with the decile curve in place of a
    smoothed one)::

        ICI = sum_b n_b |gap_b| / n          E50 = median over rows of |gap_{b(i)}|
    """
    ev, du = check_survival_arrays(event, duration, "test")
    s = _risk(surv_t0, du.size, "surv_t0")
    if (s < 0).any() or (s > 1).any():
        raise DataValidationError("test", "surv_t0", "survival probabilities must be in [0, 1]")
    p = 1.0 - s
    edges = np.percentile(p, np.linspace(0.0, 100.0, n_bins + 1))
    bins = np.searchsorted(edges[1:-1], p) + 1
    rows = []
    for b in np.unique(bins):
        m = bins == b
        observed = 1.0 - float(step_at(*kaplan_meier(ev[m], du[m]), t0))
        rows.append({"bin": int(b), "p_low": p[m].min(), "p_high": p[m].max(),
                     "n": int(m.sum()), "mean_predicted": p[m].mean(),
                     "observed_rate": observed})
    table = pd.DataFrame(rows)
    table["gap"] = table["observed_rate"] - table["mean_predicted"]
    gap = table["gap"].abs().to_numpy()
    n = table["n"].to_numpy()
    return Calibration(float(t0), table, float((n * gap).sum() / n.sum()),
                       float(np.median(np.repeat(gap, n))))


def survival_scores(
    event_train: Any, duration_train: Any, event: Any, duration: Any, censor_duration: Any,
    surv: Any, times: Any, risk: Any | None = None, tau: float | None = None,
    t0: float | None = None,
) -> dict[str, float]:
    """All of the above for one model on one test set, as flat numbers to log.

    ``surv`` is the ``(rows, times)`` matrix on the grid ``times`` (log the grid with the
    numbers); ``risk`` defaults to ``1 - S(times[-1] | x)``; ``tau`` (Uno's C) defaults to
    the last grid time and ``t0`` (calibration) to the last grid time as well. Keys:
    ``uno_c``, ``uno_c_tau``, ``harrell_c``, ``auc_<t>`` per grid time and ``mean_auc`` (grid
    times inside the test follow-up), ``integrated_brier`` (IPCW, grid times inside the
    follow-up), ``integrated_admin_brier``, ``calibration_ici``, ``calibration_e50``.
    """
    ev, du = check_survival_arrays(event, duration, "test")
    t = check_times(times)
    s = _surv_matrix(surv, du.size, t.size)
    r = 1.0 - s[:, -1] if risk is None else _risk(risk, du.size)
    tau = float(t[-1]) if tau is None else float(tau)
    t0 = float(t[-1]) if t0 is None else float(t0)
    uno = uno_c(event_train, duration_train, ev, du, r, tau=tau)
    out = {"uno_c": uno.cindex, "uno_c_tau": tau, "harrell_c": harrell_c(ev, du, r).cindex}
    inside = (t >= du.min()) & (t < du.max())
    if inside.any():
        auc, mean_auc = cumulative_dynamic_auc(event_train, duration_train, ev, du,
                                               1.0 - s[:, inside], t[inside])
        out.update({f"auc_{tk:g}": float(a) for tk, a in zip(t[inside], auc, strict=True)})
        out["mean_auc"] = mean_auc
    if inside.sum() >= 2:
        out["integrated_brier"] = integrated_brier_score(
            event_train, duration_train, ev, du, s[:, inside], t[inside])
    if t.size >= 2:
        out["integrated_admin_brier"] = integrated_administrative_brier_score(
            ev, du, censor_duration, s, t)
    k = int(np.searchsorted(t, t0))
    if k == t.size or t[k] != t0:
        raise ValueError(f"t0 = {t0:g} is not a time of the grid {t.tolist()[:10]}")
    cal = calibration_at(ev, du, s[:, k], t0)
    out.update({"calibration_ici": cal.ici, "calibration_e50": cal.e50})
    return out
