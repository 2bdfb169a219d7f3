"""Kaplan–Meier product-limit estimate and the Kaplan–Meier baseline survival model.

Time is measured in periods from the cutoff (landmark); ``duration`` is the time to the event or
to censoring and ``event`` is True when churn was observed at ``duration``.

Product-limit estimate (Kaplan & Meier 1958), at the distinct observed times ``t_j``::

    S(t) = prod_{t_j <= t} (1 - d_j / n_j)

with ``d_j`` events at ``t_j`` and ``n_j`` rows with ``duration >= t_j`` (at risk). ``S`` is a
right-continuous step function, 1 before the first time and constant after the last one.

The *reverse* estimate is the censoring distribution ``G(t) = P(C > t)`` used for inverse
probability of censoring weights: censorings are the "events" and, at a time where events and
censorings tie, the events leave the risk set first (an event at ``t`` was not censored at ``t``)::

    G(t) = prod_{t_j <= t} (1 - c_j / (n_j - d_j))

This is the convention of scikit-survival's ``kaplan_meier_estimator(..., reverse=True)``; a
factor with ``n_j - d_j = 0`` (every row still at risk has its event) is 1 here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from churnml.errors import DataValidationError
from churnml.models._state import (
    ModelStateError,
    decode,
    encode,
    params_state,
    require,
    restore_params,
    stateful,
)

MAX_SHOWN_ROWS = 5
TARGET_TABLE = "durations"
OVERALL = "__overall__"  # key of the pooled curve in ``KaplanMeierBaseline.curves_``


def _bad_rows(table: str, column: str, problem: str, values: np.ndarray, bad: np.ndarray,
              index: Sequence[Any] | None = None) -> DataValidationError:
    rows = np.flatnonzero(bad)
    labels = rows if index is None else np.asarray(index)[rows]
    return DataValidationError(
        table, column, problem,
        rows=list(labels[:MAX_SHOWN_ROWS]),
        values=list(np.asarray(values)[rows[:MAX_SHOWN_ROWS]]),
        n_rows=int(bad.sum()),
    )


def check_survival_arrays(
    event: Any, duration: Any, table: str = TARGET_TABLE, index: Sequence[Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``event`` as bool and ``duration`` as float arrays of one length, or a clear error.

    Durations must be finite and >= 0; events must be booleans (or 0/1). ``table`` names the
    input in error messages (e.g. ``"test"``); ``index`` gives the row labels to quote.
    """
    ev = np.asarray(event).ravel()
    du_raw = np.asarray(duration).ravel()
    if ev.shape != du_raw.shape:
        raise DataValidationError(
            table, None, f"{ev.shape[0]} event values but {du_raw.shape[0]} durations"
        )
    if ev.shape[0] == 0:
        raise DataValidationError(table, None, "no rows")
    try:
        du = du_raw.astype(float)
    except (TypeError, ValueError):
        du = pd.to_numeric(pd.Series(du_raw), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(du) | (du < 0)
    if bad.any():
        raise _bad_rows(table, "duration", "duration must be a finite number >= 0", du_raw, bad,
                        index)
    if ev.dtype != bool:
        ev_num = pd.to_numeric(pd.Series(ev), errors="coerce").to_numpy(dtype=float)
        bad = ~np.isin(ev_num, (0.0, 1.0))
        if bad.any():
            raise _bad_rows(table, "event", "event must be True/False (or 1/0)", ev, bad, index)
        ev = ev_num == 1.0
    return ev, du


def survival_target(
    y: Any, n_rows: int | None = None, table: str = TARGET_TABLE
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(event, duration, censor_duration or None)`` from a durations frame ``y``.

    ``y`` needs columns ``duration`` and ``event``; ``censor_duration`` is optional and, when
    present, must be >= ``duration`` on every row.
    """
    if not isinstance(y, pd.DataFrame):
        raise TypeError(f"y must be a DataFrame with columns duration, event; got {type(y)}")
    missing = [c for c in ("duration", "event") if c not in y.columns]
    if missing:
        raise DataValidationError(table, missing[0], f"missing column(s) {missing}; "
                                  f"columns are {list(y.columns)}")
    if n_rows is not None and len(y) != n_rows:
        raise DataValidationError(table, None, f"{len(y)} rows but {n_rows} feature rows")
    event, duration = check_survival_arrays(y["event"], y["duration"], table, y.index)
    censor = None
    if "censor_duration" in y.columns:
        _, censor = check_survival_arrays(event, y["censor_duration"], table, y.index)
        bad = duration > censor
        if bad.any():
            raise _bad_rows(table, "censor_duration", "censor_duration is before duration",
                            censor, bad, y.index)
    return event, duration, censor


def kaplan_meier(
    event: Any, duration: Any, reverse: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Product-limit estimate at the distinct observed times (module docstring).

    Returns ``(times, survival)``: ``survival[j] = S(times[j])`` (or ``G`` when ``reverse``).
    """
    ev, du = check_survival_arrays(event, duration)
    times, inverse = np.unique(du, return_inverse=True)
    n_total = np.bincount(inverse, minlength=times.size)
    d = np.bincount(inverse, weights=ev.astype(float), minlength=times.size)
    at_risk = du.size - np.concatenate([[0], np.cumsum(n_total)[:-1]])
    if reverse:
        c = n_total - d
        at_risk = at_risk - d
        d = c
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - d / np.where(at_risk > 0, at_risk, 1), 1.0)
    return times, np.cumprod(factor)


def step_at(times: np.ndarray, values: np.ndarray, t: Any, before: float = 1.0) -> np.ndarray:
    """Right-continuous step function through ``(times, values)`` evaluated at ``t``.

    ``before`` is the value before the first time; after the last time the last value holds.
    """
    t = np.asarray(t, dtype=float)
    idx = np.searchsorted(times, t, side="right") - 1
    out = np.where(idx >= 0, values[np.clip(idx, 0, None)], before)
    return out


def check_times(times: Any, name: str = "times") -> np.ndarray:
    """Evaluation times as a 1-d float array, finite, >= 0 and strictly increasing."""
    arr = np.atleast_1d(np.asarray(times, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: give a non-empty 1-d list of times, got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any() or (np.diff(arr) <= 0).any():
        raise ValueError(f"{name}: times must be finite, >= 0 and strictly increasing; "
                         f"got {arr.tolist()[:10]}")
    return arr


@stateful
class KaplanMeierBaseline(BaseEstimator):
    """Kaplan–Meier survival curve, overall or per group: the covariate-free baseline.

    Follows the survival estimator protocol: ``fit(X, y)`` with ``y`` a durations frame
    (``duration``, ``event``), ``predict_survival_function(X, times)`` of shape
    ``(len(X), len(times))`` with ``S(t) = P(T > t)``, ``predict_risk(X)`` (higher = churns
    sooner). ``X`` is ignored except for the ``by`` column.

    Parameters
    ----------
    by : str or None
        Column of ``X`` naming a segment or cohort; one curve per value. Rows of a value not
        seen at fit (or missing) get the pooled curve.

    Attributes
    ----------
    curves_ : dict
        Group value (as str) -> ``(times, survival)``; :data:`OVERALL` holds the pooled curve.
    risk_ : dict
        Group -> risk score, the restricted mean survival time up to the last training time
        ``tau_`` with the sign flipped (``-RMST``: higher = earlier churn).
    tau_ : float
        Largest training duration.
    """

    def __init__(self, by: str | None = None) -> None:
        self.by = by

    def _groups(self, X: pd.DataFrame) -> np.ndarray | None:
        if self.by is None:
            return None
        if not isinstance(X, pd.DataFrame) or self.by not in X.columns:
            cols = list(X.columns) if isinstance(X, pd.DataFrame) else type(X)
            raise DataValidationError("features", self.by,
                                      f"grouping column not found; columns are {cols}")
        col = X[self.by]
        return np.where(col.isna(), OVERALL, col.astype(str).to_numpy(dtype=object))

    def fit(self, X: pd.DataFrame, y: pd.DataFrame) -> KaplanMeierBaseline:
        event, duration, _ = survival_target(y, len(X))
        groups = self._groups(X)
        self.tau_ = float(duration.max())
        self.curves_ = {OVERALL: kaplan_meier(event, duration)}
        if groups is not None:
            for g in pd.unique(groups):
                if g != OVERALL:
                    mask = groups == g
                    self.curves_[str(g)] = kaplan_meier(event[mask], duration[mask])
        self.risk_ = {g: -self._rmst(*curve) for g, curve in self.curves_.items()}
        return self

    def _rmst(self, times: np.ndarray, surv: np.ndarray) -> float:
        """Area under the step curve from 0 to ``tau_`` (restricted mean survival time)."""
        edges = np.concatenate([[0.0], times[times < self.tau_], [self.tau_]])
        values = np.concatenate([[1.0], surv[times < self.tau_]])
        return float(np.sum(np.diff(edges) * values))

    def _row_keys(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "curves_")
        groups = self._groups(X)
        if groups is None:
            return np.full(len(X), OVERALL, dtype=object)
        return np.where(np.isin(groups, list(self.curves_)), groups, OVERALL)

    def predict_survival_function(self, X: pd.DataFrame, times: Any) -> np.ndarray:
        """``S(t)`` of each row's group at ``times``; shape ``(len(X), len(times))``."""
        t = check_times(times)
        keys = self._row_keys(X)
        out = np.empty((len(keys), t.size))
        for g in pd.unique(keys):
            out[keys == g] = step_at(*self.curves_[g], t)
        return out

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        """``-RMST(tau_)`` of each row's group: higher = churns sooner."""
        keys = self._row_keys(X)
        return np.array([self.risk_[k] for k in keys], dtype=float)

    def to_state(self) -> dict[str, Any]:
        """Parameters, ``tau_`` and each group's curve (JSON-able; :mod:`churnml.models._state`)."""
        check_is_fitted(self, "curves_")
        return {"params": params_state(self), "tau": self.tau_,
                "curves": {g: {"times": encode(t), "survival": encode(s)}
                           for g, (t, s) in self.curves_.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> KaplanMeierBaseline:
        est = restore_params(cls, state)
        est.tau_ = float(require(state, "tau", (int, float)))
        est.curves_ = {}
        for g, curve in require(state, "curves", dict).items():
            times = np.asarray(decode(require(curve, "times", dict)), dtype=float)
            surv = np.asarray(decode(require(curve, "survival", dict)), dtype=float)
            if times.shape != surv.shape or times.ndim != 1 or (np.diff(times) <= 0).any():
                raise ModelStateError(f"KaplanMeierBaseline: curve {g!r} is not a step function")
            est.curves_[str(g)] = (times, surv)
        if OVERALL not in est.curves_:
            raise ModelStateError("KaplanMeierBaseline: state lacks the pooled curve")
        est.risk_ = {g: -est._rmst(*curve) for g, curve in est.curves_.items()}
        return est
