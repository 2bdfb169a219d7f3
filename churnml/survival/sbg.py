"""Shifted-beta-geometric (sBG) model of contract renewals (Fader & Hardie 2007, 2010).

Each customer renews at the end of every period with a constant probability ``1 - theta``;
``theta`` varies across customers as ``Beta(alpha, beta)``. ``T`` (an integer >= 1) is the
period at the end of which the customer does not renew (churns). Fader, P. S. & Hardie,
B. G. S. (2007), "How to project customer retention", *Journal of Interactive Marketing* 21(1),
76–90, eqs. (5)–(7)::

    P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)          t = 1, 2, ...
    S(t) = P(T > t) = B(alpha, beta + t) / B(alpha, beta)             S(0) = 1
    r(t) = S(t) / S(t - 1) = (beta + t - 1) / (alpha + beta + t - 1)  (retention rate)

Maximum likelihood on a cohort's survivors per period ``s_0 >= s_1 >= ... >= s_T`` (eq. 8)::

    LL(alpha, beta) = sum_{t=1..T} (s_{t-1} - s_t) ln P(T = t) + s_T ln S(T)

and on individual durations (left-truncated at the tenure ``a`` already survived at the cutoff;
a churn ``k`` periods after the cutoff, or survival through ``m`` periods, censored)::

    event:    ln P(T = a + k) - ln S(a)        censored:  ln S(a + m) - ln S(a)

Discounted expected residual lifetime (Fader & Hardie 2010, "Customer-base valuation in a
contractual setting: the perils of ignoring heterogeneity", *Marketing Science* 29(1), 85–93,
eq. 6). For a customer who has made ``n`` renewals (``T > n``: she is in period ``n + 1``) and
is valued just before her next renewal decision, the expected number of further payments,
each discounted by ``1 / (1 + d)`` per period, the first one (the coming renewal) undiscounted::

    DERL(d | alpha, beta, n) = sum_{k >= 0} S(n + 1 + k) / S(n) / (1 + d)^k
                             = (beta + n) / (alpha + beta + n)
                               * 2F1(1, beta + n + 1; alpha + beta + n + 1; 1 / (1 + d))

(the paper writes it for "n - 1 renewals" with ``n`` in place of our ``n + 1``). With the paper's
high-end cohort (alpha 0.668, beta 3.806) and d = 10 %, a customer with 7 renewals, i.e. at the
end of her 8th period, has DERL 7.53; regular cohort (0.704, 1.182): 6.84.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, hyp2f1
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from churnml.errors import DataValidationError
from churnml.models._state import ModelStateError, params_state, require, restore_params, stateful
from churnml.survival.kaplan_meier import OVERALL, check_times, survival_target

LOG_BOUNDS = (-12.0, 12.0)  # ln(alpha), ln(beta) search range (alpha, beta in [6e-6, 1.6e5])


@dataclass(frozen=True)
class SBGParams:
    """Fitted sBG parameters and the maximised log-likelihood."""

    alpha: float
    beta: float
    log_likelihood: float


def sbg_survival(alpha: float, beta: float, t: Any) -> np.ndarray:
    """``S(t) = B(alpha, beta + t) / B(alpha, beta)``: share still active after ``t`` periods."""
    t = np.asarray(t, dtype=float)
    return np.exp(betaln(alpha, beta + t) - betaln(alpha, beta))


def sbg_churn_probability(alpha: float, beta: float, t: Any) -> np.ndarray:
    """``P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)`` for ``t >= 1``."""
    t = np.asarray(t, dtype=float)
    return np.exp(betaln(alpha + 1.0, beta + t - 1.0) - betaln(alpha, beta))


def sbg_retention(alpha: float, beta: float, t: Any) -> np.ndarray:
    """Retention rate of period ``t >= 1``: ``(beta + t - 1) / (alpha + beta + t - 1)``."""
    t = np.asarray(t, dtype=float)
    return (beta + t - 1.0) / (alpha + beta + t - 1.0)


def sbg_derl(alpha: float, beta: float, renewals: Any, discount: float) -> np.ndarray:
    """Discounted expected residual lifetime after ``renewals`` renewals (module docstring).

    ``discount`` is the rate per period (0.10 = 10 %) and must be > 0.
    """
    if not discount > 0:
        raise ValueError(f"discount must be > 0 per period, got {discount}")
    n = np.asarray(renewals, dtype=float)
    if (n < 0).any():
        raise ValueError("renewals must be >= 0")
    z = 1.0 / (1.0 + discount)
    return (beta + n) / (alpha + beta + n) * hyp2f1(1.0, beta + n + 1.0, alpha + beta + n + 1.0, z)


def _maximise(neg_loglik: Any) -> SBGParams:
    res = minimize(neg_loglik, x0=np.zeros(2), method="L-BFGS-B",
                   bounds=[LOG_BOUNDS, LOG_BOUNDS], options={"ftol": 1e-14, "gtol": 1e-10})
    alpha, beta = np.exp(res.x)
    return SBGParams(float(alpha), float(beta), float(-res.fun))


def fit_sbg_survivors(survivors: Any) -> SBGParams:
    """Fit the sBG to a cohort's survivors per period ``s_0, s_1, ..., s_T`` (``s_0`` = size).

    Survivors must be >= 0 and non-increasing, with at least one churn and one survivor at the
    end (otherwise the maximum is on the boundary).
    """
    s = np.asarray(survivors, dtype=float).ravel()
    if s.size < 2 or not np.isfinite(s).all() or (s < 0).any() or (np.diff(s) > 0).any():
        raise ValueError("survivors: give >= 2 finite counts s_0 >= s_1 >= ... >= 0, got "
                         f"{s.tolist()[:15]}")
    churned = s[:-1] - s[1:]
    if churned.sum() == 0 or s[-1] == 0:
        raise ValueError("survivors: the sBG needs at least one churn and one survivor at the end")
    t = np.arange(1, s.size, dtype=float)

    def neg_loglik(p: np.ndarray) -> float:
        a, b = np.exp(p)
        lp = betaln(a + 1.0, b + t - 1.0) - betaln(a, b)
        ls = betaln(a, b + t[-1]) - betaln(a, b)
        return -float(churned @ lp + s[-1] * ls)

    return _maximise(neg_loglik)


def fit_sbg_durations(
    event: np.ndarray, periods: np.ndarray, tenure: np.ndarray | None = None
) -> SBGParams:
    """Fit the sBG to individual durations in whole periods (module docstring).

    ``periods``: for an event, the period after the cutoff in which churn happened (>= 1); for
    a censored row, the whole periods survived after the cutoff (>= 0). ``tenure``: whole
    periods already survived at the cutoff (left truncation), default 0.
    """
    a = np.zeros(periods.size) if tenure is None else tenure.astype(float)
    frame = pd.DataFrame({"a": a, "k": periods.astype(float), "e": event.astype(bool)})
    counts = frame.groupby(["a", "k", "e"], sort=False).size().reset_index(name="n")
    if not counts["e"].any() or counts["e"].all():
        raise ValueError("the sBG needs at least one churn and one censored row")
    ca, ck, ce = counts["a"].to_numpy(), counts["k"].to_numpy(), counts["e"].to_numpy()
    cn = counts["n"].to_numpy(dtype=float)

    def neg_loglik(p: np.ndarray) -> float:
        al, be = np.exp(p)
        ll = np.where(
            ce,
            betaln(al + 1.0, be + ca + ck - 1.0),   # P(T = a + k) * B(al, be)
            betaln(al, be + ca + ck),               # S(a + m) * B(al, be)
        ) - betaln(al, be + ca)                     # / S(a) * B(al, be)
        return -float(cn @ ll)

    return _maximise(neg_loglik)


def whole_periods(event: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Durations as whole periods: churn in period ``max(ceil(d), 1)`` after the cutoff,
    censored after ``floor(d)`` complete periods."""
    return np.where(event, np.maximum(np.ceil(duration), 1.0), np.floor(duration))


@stateful
class ShiftedBetaGeometric(BaseEstimator):
    """sBG renewal model with the survival estimator protocol (covariate-free or per group).

    ``fit(X, y)``: ``y`` a durations frame (``duration``, ``event``) in billing periods from the
    cutoff; ``X`` is ignored except for the ``by`` column and the tenure column (whole periods
    survived at the cutoff; absent = 0). Predictions are conditional on that tenure ``a``:
    ``S(t | a) = S(a + floor(t)) / S(a)``.

    Parameters
    ----------
    by : str or None
        Column of ``X`` naming a cohort; one (alpha, beta) per value. A value not seen at fit,
        a missing value, or a group without both a churn and a censored row uses the pooled fit.
    tenure_column : str

    Attributes
    ----------
    params_ : dict[str, SBGParams]
        Group value (as str) -> fitted parameters; ``"__overall__"`` holds the pooled fit.
    """

    def __init__(self, by: str | None = None, tenure_column: str = "tenure") -> None:
        self.by = by
        self.tenure_column = tenure_column

    def _tenure(self, X: pd.DataFrame) -> np.ndarray:
        if not isinstance(X, pd.DataFrame) or self.tenure_column not in X.columns:
            return np.zeros(len(X))
        ten = pd.to_numeric(X[self.tenure_column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(ten) | (ten < 0)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise DataValidationError(
                "features", self.tenure_column, "tenure must be a number >= 0",
                rows=list(X.index[rows[:5]]),
                values=list(X[self.tenure_column].iloc[rows[:5]]), n_rows=int(bad.sum()))
        return np.floor(ten)

    def _groups(self, X: pd.DataFrame) -> np.ndarray:
        if self.by is None:
            return np.full(len(X), OVERALL, dtype=object)
        if not isinstance(X, pd.DataFrame) or self.by not in X.columns:
            cols = list(X.columns) if isinstance(X, pd.DataFrame) else type(X)
            raise DataValidationError("features", self.by,
                                      f"grouping column not found; columns are {cols}")
        col = X[self.by]
        return np.where(col.isna(), OVERALL, col.astype(str).to_numpy(dtype=object))

    def fit(self, X: pd.DataFrame, y: pd.DataFrame) -> ShiftedBetaGeometric:
        event, duration, _ = survival_target(y, len(X))
        tenure, groups = self._tenure(X), self._groups(X)
        periods = whole_periods(event, duration)
        try:
            self.params_ = {OVERALL: fit_sbg_durations(event, periods, tenure)}
        except ValueError as exc:
            raise DataValidationError("durations", "event", str(exc)) from None
        for g in pd.unique(groups):
            mask = groups == g
            if g != OVERALL and event[mask].any() and not event[mask].all():
                self.params_[str(g)] = fit_sbg_durations(event[mask], periods[mask], tenure[mask])
        return self

    def _rows(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_is_fitted(self, "params_")
        keys = self._groups(X)
        keys = np.where(np.isin(keys, list(self.params_)), keys, OVERALL)
        alpha = np.array([self.params_[k].alpha for k in keys], dtype=float)
        beta = np.array([self.params_[k].beta for k in keys], dtype=float)
        return alpha, beta, self._tenure(X)

    def predict_survival_function(self, X: pd.DataFrame, times: Any) -> np.ndarray:
        """``S(a + floor(t)) / S(a)`` per row; shape ``(len(X), len(times))``."""
        t = np.floor(check_times(times))
        alpha, beta, a = self._rows(X)
        al, be, a = alpha[:, None], beta[:, None], a[:, None]
        return np.exp(betaln(al, be + a + t[None, :]) - betaln(al, be + a))

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        """Churn probability in the coming period, ``alpha / (alpha + beta + a)`` (higher =
        churns sooner)."""
        alpha, beta, a = self._rows(X)
        return alpha / (alpha + beta + a)

    def predict_derl(self, X: pd.DataFrame, discount: float) -> np.ndarray:
        """DERL per row with ``renewals`` = whole periods of tenure (module docstring)."""
        alpha, beta, a = self._rows(X)
        return sbg_derl(alpha, beta, a, discount)

    def to_state(self) -> dict[str, Any]:
        """Parameters and ``[alpha, beta, log_likelihood]`` per group (JSON-able)."""
        check_is_fitted(self, "params_")
        return {"params": params_state(self),
                "groups": {g: [p.alpha, p.beta, p.log_likelihood]
                           for g, p in self.params_.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ShiftedBetaGeometric:
        est = restore_params(cls, state)
        est.params_ = {}
        for g, values in require(state, "groups", dict).items():
            if not (isinstance(values, list) and len(values) == 3
                    and all(isinstance(v, int | float) for v in values) and min(values[:2]) > 0):
                raise ModelStateError(f"ShiftedBetaGeometric: bad parameters for {g!r}: {values}")
            est.params_[str(g)] = SBGParams(*(float(v) for v in values))
        if OVERALL not in est.params_:
            raise ModelStateError("ShiftedBetaGeometric: state lacks the pooled fit")
        return est
