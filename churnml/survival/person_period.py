"""Person-period rows: one row per landmark row and period at risk, for discrete-time hazards.

A landmark row (features at the cutoff, ``duration`` ``D``, ``event``, ``tenure``) becomes the
rows ``k = 1 .. min(D, n_periods)``: the periods the customer entered still active. Each
carries the landmark features plus

* ``period`` -- ``k``, periods since the cutoff (1 = the first period after it);
* ``tenure_at_period`` -- ``tenure + k - 1``, whole periods the customer had been active when
  period ``k`` began,

and the target ``1`` in period ``D`` when churn was observed there, else ``0``. A censored
row stops after its last observed period; periods past ``n_periods`` (the grid) are dropped,
which bounds the expansion at ``n_rows x n_periods``. The hazard ``h_k = P(D = k | D >= k)``
is then a binary probability per row (Allison 1982, "Discrete-time methods for the analysis
of event histories", Sociological Methodology 13; Tutz & Schmid 2016, "Modeling Discrete
Time-to-Event Data", Springer, ch. 3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnml.errors import DataValidationError

DURATIONS_TABLE = "durations"  # table name in error messages
PERIOD = "period"
TENURE_AT_PERIOD = "tenure_at_period"
TIME_FEATURES = (PERIOD, TENURE_AT_PERIOD)


def check_durations(duration: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Durations as whole periods (int64 >= 0) and events as bool; an event needs D >= 1."""
    d = np.asarray(duration, dtype=float).ravel()
    e = np.asarray(event).ravel().astype(bool)
    if d.shape != e.shape:
        raise ValueError(f"{d.size} durations for {e.size} events")
    bad = ~np.isfinite(d) | (d < 0) | (d != np.floor(d))
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataValidationError(
            DURATIONS_TABLE, "duration", "must be a whole number of periods >= 0 (build "
            "durations with build_durations)", rows=rows[:5].tolist(),
            values=d[rows[:5]].tolist(), n_rows=rows.size)
    zero = e & (d < 1)
    if zero.any():
        rows = np.flatnonzero(zero)
        raise DataValidationError(
            DURATIONS_TABLE, "duration", "an event needs duration >= 1 (the period it fell in)",
            rows=rows[:5].tolist(), values=d[rows[:5]].tolist(), n_rows=rows.size)
    return d.astype(np.int64), e


def expand_index(duration: np.ndarray, event: np.ndarray, n_periods: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row, period, target)`` arrays of the person-period rows (vectorised).

    ``row`` indexes the landmark rows, ``period`` is 1-based, ``target`` is 1 in the period
    of an observed churn."""
    d, e = check_durations(duration, event)
    counts = np.minimum(d, int(n_periods))
    row = np.repeat(np.arange(d.size), counts)
    starts = np.cumsum(counts) - counts
    period = np.arange(row.size, dtype=np.int64) - np.repeat(starts, counts) + 1
    target = (e[row] & (period == d[row])).astype(np.int8)
    return row, period, target


def with_time_features(X: pd.DataFrame, tenure: np.ndarray, period: np.ndarray | int
                       ) -> pd.DataFrame:
    """``X`` plus ``period`` and ``tenure_at_period = tenure + period - 1`` (float64)."""
    period = np.broadcast_to(np.asarray(period, dtype=float), (len(X),))
    return X.assign(**{PERIOD: period, TENURE_AT_PERIOD: np.asarray(tenure, float) + period - 1})


def person_period(
    X: pd.DataFrame,
    duration: np.ndarray,
    event: np.ndarray,
    tenure: np.ndarray | None = None,
    n_periods: int | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``(rows, target, source)``: the person-period frame (``X`` columns, ``period``,
    ``tenure_at_period``), its 0/1 target and the landmark row each comes from.

    ``tenure`` defaults to 0; ``n_periods`` (default: the longest duration) caps the periods
    per row."""
    if any(c in X.columns for c in TIME_FEATURES):
        raise ValueError(f"feature columns {TIME_FEATURES} are added here; rename them in X")
    d, _ = check_durations(duration, event)
    if len(X) != d.size:
        raise ValueError(f"{len(X)} feature rows for {d.size} durations")
    cap = int(d.max(initial=0)) if n_periods is None else int(n_periods)
    row, period, target = expand_index(duration, event, cap)
    ten = np.zeros(len(X)) if tenure is None else np.asarray(tenure, dtype=float)
    rows = X.iloc[row].reset_index(drop=True)
    rows = with_time_features(rows, ten[row], period)
    return rows, target, row
