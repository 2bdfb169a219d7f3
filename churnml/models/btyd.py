"""Buy-till-you-die (BTYD) models, BG/NBD or Pareto/NBD with Gamma-Gamma spend, as features
or as predictors.

Each customer is summarised by the classic sufficient statistics, in days (α and β carry the
time unit; r, s, a, b are unit-free):

* ``x``   repeat purchases (purchases after the first one);
* ``t_x`` time of the last purchase, counted from the first one;
* ``T``   time from the first purchase to the cutoff (the customer's age);
* ``m``   mean purchase value (currency), for the Gamma-Gamma spend model.

They are read from churnml's feature columns (:data:`COLUMNS`): ``x = purchase_days_total - 1``
(one purchase per customer-day, the BTYD convention), ``T = days_since_first_transaction``,
``t_x = T - days_since_last_purchase`` and ``m = spend_total / purchase_days_total``.

**Pareto/NBD** (Schmittlein, Morrison & Colombo 1987; likelihood as in Fader, Hardie & Lee
2005, "A note on deriving the Pareto/NBD model and related expressions"): while alive,
purchases are Poisson(λ); lifetime is exponential(μ); λ ~ Gamma(r, α), μ ~ Gamma(s, β).
With ``a = r + s + x`` and, for α ≥ β, ``A0 = F(α+t_x) - F(α+T)``,
``F(y) = 2F1(a, s+1; a+1; (α-β)/y) / y^a`` (for α < β swap α↔β and use ``r+x`` for
``s+1``)::

    L = Γ(r+x) α^r β^s / Γ(r) · [ 1/((α+T)^(r+x) (β+T)^s) + s/a · A0 ]
    P(alive) = 1 / (1 + s/a · (α+T)^(r+x) (β+T)^s · A0)
    E[X(T, T+t)] = P(alive) · (r+x)(β+T) / ((α+T)(s-1)) · [1 - ((β+T)/(β+T+t))^(s-1)]

Given alive at T, the posteriors are λ ~ Gamma(r+x, α+T), μ ~ Gamma(s, β+T), independent,
so the chance of no purchase in the next ``t`` days is (integral by Gauss-Legendre)::

    P(X(T,T+t)=0) = 1 - P(alive) + P(alive) · [G(t) + ∫_0^t s/(β+T+τ) · G(τ) dτ],
    G(τ) = ((α+T)/(α+T+τ))^(r+x) · ((β+T)/(β+T+τ))^s

**BG/NBD** (Fader, Hardie & Lee 2005, "Counting your customers the easy way", Marketing
Science 24(2)): after each purchase the customer drops out with probability p ~ Beta(a, b)::

    L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
        + [x > 0] · B(a+1, b+x-1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))
    P(alive) = 1 / (1 + [x > 0] · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x))
    E[X(T, T+t)] = P(alive) · (a+b+x-1)/(a-1)
                   · [1 - ((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+x; a+b+x-1; t/(α+T+t))]
    P(X(T,T+t)=0) = 1 - P(alive) + P(alive) · ((α+T)/(α+T+t))^(r+x)

**Gamma-Gamma** (Fader, Hardie & Lee 2005, "RFM and CLV", J. Marketing Research 42; Fader &
Hardie 2013 note): purchase values ~ Gamma(p, ν), ν ~ Gamma(q, γ); with ``n = x + 1``
purchases of mean ``m`` (every purchase, the first included)::

    f(m | n) = Γ(pn+q) / (Γ(pn) Γ(q)) · γ^q m^(pn-1) n^(pn) / (γ + m n)^(pn+q)
    E[value | m, n] = (γ p + p n m) / (p n + q - 1)

The papers fit the spend model on repeat purchases only (``n = x``, customers with
``x > 0``); here every purchase counts (``n = x + 1``), so one-time buyers get a posterior
too. Customers with a zero mean value are left out of the Gamma-Gamma fit (the density needs
m > 0) and get the population mean ``γ p / (q - 1)``.

Parameters are fitted by maximum likelihood (L-BFGS-B on log-parameters;
:func:`fit_transaction_model`, :func:`fit_gamma_gamma`). On the 1/10 CDNOW sample in weeks
they reproduce the published estimates (``tests/test_btyd.py``). Estimators:

* :class:`BTYDFeatures` — a transformer: fitted on the training rows only, it appends
  :data:`OUTPUTS` to the frame, so a downstream model inside the same cross-validation fold
  never sees a test row's fit;
* :class:`BTYDChurnModel` — churn probability = P(no purchase in the horizon);
* :class:`BTYDValueModel` — value = expected purchases x expected order value.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1, xlogy
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
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
from churnml.models.churn import THRESHOLD

BTYDKind = Literal["pareto_nbd", "bgnbd"]
KINDS = ("pareto_nbd", "bgnbd")
# churnml feature columns the statistics are read from
COLUMNS = {
    "purchases": "purchase_days_total",
    "age": "days_since_first_transaction",
    "recency": "days_since_last_purchase",
    "spend": "spend_total",
}
# output column -> what it is (units)
OUTPUTS = {
    "btyd_p_alive": "probability that the customer is still alive at the cutoff",
    "btyd_expected_purchases": "expected purchases in the next horizon_days days",
    "btyd_p_no_purchase": "probability of no purchase in the next horizon_days days",
    "btyd_expected_order_value": "Gamma-Gamma expected value of one purchase (currency)",
    "btyd_expected_value": "expected purchases x expected order value (currency)",
}
QUADRATURE_NODES = 32  # Gauss-Legendre nodes of the Pareto/NBD no-purchase integral
INITIAL_LOG_PARAMS = 0.0  # optimiser start: every parameter = 1
LOG_PARAM_BOUNDS = (-12.0, 12.0)  # parameters within [e^-12, e^12]
MAX_ITER = 2000
# L-BFGS-B stopping rules on the mean negative log-likelihood per customer: looser defaults
# stopped Pareto/NBD fits on CDNOW far from the optimum (log-likelihood 600 lower)
FTOL = 1e-13  # relative decrease of the objective
GTOL = 1e-9  # largest projected gradient component
PENALTY = 1e300  # objective value where the likelihood is not finite
TABLE = "features"  # table name in error messages
HORIZON_DAYS = 90  # default horizon, as churnml.config.ChurnConfig.horizon_days


def summary_statistics(X: pd.DataFrame) -> dict[str, np.ndarray]:
    """``x, t_x, T, m, n`` (days, currency) from churnml's feature columns (:data:`COLUMNS`)."""
    missing = [c for c in COLUMNS.values() if c not in X.columns]
    if missing:
        raise DataValidationError(TABLE, missing[0], f"BTYD features need columns {missing}")
    n = X[COLUMNS["purchases"]].to_numpy(dtype=float)
    age = X[COLUMNS["age"]].to_numpy(dtype=float)
    recency = X[COLUMNS["recency"]].to_numpy(dtype=float)
    spend = X[COLUMNS["spend"]].to_numpy(dtype=float)
    bad = ~(np.isfinite(n) & np.isfinite(age) & np.isfinite(recency)) | (n < 1)
    if bad.any():
        rows = X.index[bad]
        raise DataValidationError(
            TABLE, COLUMNS["purchases"],
            "BTYD features need at least one purchase and finite age/recency per row",
            rows=rows[:5].tolist(), n_rows=int(bad.sum()),
        )
    T = np.maximum(age, 0.0)
    t_x = np.clip(T - recency, 0.0, T)
    m = np.where(np.isfinite(spend), np.maximum(spend, 0.0), 0.0) / n
    return {"x": n - 1.0, "t_x": t_x, "T": T, "m": m, "n": n}


# ------------------------------------------------------------------------------ Pareto/NBD


def _pareto_log_a0(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                   T: np.ndarray) -> np.ndarray:
    """log A0 of the Pareto/NBD likelihood (module docstring)."""
    r, alpha, s, beta = params
    a = r + s + x
    hi, lo = max(alpha, beta), min(alpha, beta)
    b = s + 1.0 if alpha >= beta else r + x

    def log_f(y: np.ndarray) -> np.ndarray:
        return np.log(hyp2f1(a, b, a + 1.0, (hi - lo) / (hi + y))) - a * np.log(hi + y)

    f_tx, f_T = log_f(t_x), log_f(T)
    # log(exp(f_tx) - exp(f_T)); f_tx >= f_T, equal when t_x == T (then A0 = 0, log = -inf)
    with np.errstate(divide="ignore"):
        return f_tx + np.log1p(-np.exp(np.minimum(f_T - f_tx, 0.0)))


def pareto_nbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                              T: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood of Pareto/NBD ``(r, α, s, β)`` (module docstring)."""
    r, alpha, s, beta = params
    log_a0 = _pareto_log_a0(params, x, t_x, T)
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    dead = np.log(s) - np.log(r + s + x) + log_a0
    return (gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
            + np.logaddexp(alive, dead))


def pareto_nbd_p_alive(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                       T: np.ndarray) -> np.ndarray:
    """P(alive at T | x, t_x, T) under Pareto/NBD."""
    r, alpha, s, beta = params
    log_ratio = (np.log(s) - np.log(r + s + x) + (r + x) * np.log(alpha + T)
                 + s * np.log(beta + T) + _pareto_log_a0(params, x, t_x, T))
    return 1.0 / (1.0 + np.exp(log_ratio))


def pareto_nbd_expected(params: np.ndarray, x: np.ndarray, T: np.ndarray, t: float,
                        p_alive: np.ndarray) -> np.ndarray:
    """E[purchases in (T, T+t]] under Pareto/NBD."""
    r, alpha, s, beta = params
    ratio = (beta + T) / (beta + T + t)
    if np.isclose(s, 1.0):  # limit s -> 1: [1 - ratio^(s-1)]/(s-1) -> -log(ratio)
        tail = -np.log(ratio)
    else:
        tail = (1.0 - ratio ** (s - 1.0)) / (s - 1.0)
    return p_alive * (r + x) * (beta + T) / (alpha + T) * tail


def pareto_nbd_p_none(params: np.ndarray, x: np.ndarray, T: np.ndarray, t: float,
                      p_alive: np.ndarray) -> np.ndarray:
    """P(no purchase in (T, T+t]) under Pareto/NBD (Gauss-Legendre integral)."""
    r, alpha, s, beta = params
    nodes, weights = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    tau = 0.5 * t * (nodes + 1.0)  # [-1, 1] -> [0, t]

    def g(u: np.ndarray) -> np.ndarray:
        return (((alpha + T) / (alpha + T + u)) ** (r + x)
                * ((beta + T) / (beta + T + u)) ** s)

    taus = tau[:, None]
    integral = 0.5 * t * np.sum(weights[:, None] * s / (beta + T + taus) * g(taus), axis=0)
    return 1.0 - p_alive + p_alive * (g(np.asarray(t)) + integral)


# ------------------------------------------------------------------------------ BG/NBD


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                         T: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood of BG/NBD ``(r, α, a, b)`` (module docstring)."""
    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    dropped = np.full_like(x, -np.inf)
    xr = x[repeat]
    dropped[repeat] = (betaln(a + 1.0, b + xr - 1.0) - betaln(a, b)
                       - (r + xr) * np.log(alpha + t_x[repeat]))
    return common + np.logaddexp(alive, dropped)


def bgnbd_p_alive(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                  T: np.ndarray) -> np.ndarray:
    """P(alive at T | x, t_x, T) under BG/NBD."""
    r, alpha, a, b = params
    repeat = x > 0
    odds = np.zeros_like(x)
    xr = x[repeat]
    odds[repeat] = a / (b + xr - 1.0) * np.exp(
        (r + xr) * (np.log(alpha + T[repeat]) - np.log(alpha + t_x[repeat])))
    return 1.0 / (1.0 + odds)


def bgnbd_expected(params: np.ndarray, x: np.ndarray, T: np.ndarray, t: float,
                   p_alive: np.ndarray) -> np.ndarray:
    """E[purchases in (T, T+t]] under BG/NBD."""
    r, alpha, a, b = params
    z = t / (alpha + T + t)
    hyper = hyp2f1(r + x, b + x, a + b + x - 1.0, z)
    shrink = ((alpha + T) / (alpha + T + t)) ** (r + x)
    return p_alive * (a + b + x - 1.0) / (a - 1.0) * (1.0 - shrink * hyper)


def bgnbd_p_none(params: np.ndarray, x: np.ndarray, T: np.ndarray, t: float,
                 p_alive: np.ndarray) -> np.ndarray:
    """P(no purchase in (T, T+t]) under BG/NBD."""
    r, alpha, _, _ = params
    return 1.0 - p_alive + p_alive * ((alpha + T) / (alpha + T + t)) ** (r + x)


# ------------------------------------------------------------------------------ Gamma-Gamma


def gamma_gamma_log_likelihood(params: np.ndarray, m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per-customer log-density of the mean value ``m`` of ``n`` purchases, ``(p, q, γ)``."""
    p, q, gamma = params
    pn = p * n
    return (gammaln(pn + q) - gammaln(pn) - gammaln(q) + q * np.log(gamma)
            + xlogy(pn - 1.0, m) + pn * np.log(n) - (pn + q) * np.log(gamma + m * n))


def gamma_gamma_expected(params: np.ndarray, m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """E[value of a purchase | m, n] = (γp + p n m) / (p n + q - 1); population mean γp/(q-1)
    where ``m`` is 0."""
    p, q, gamma = params
    posterior = (gamma * p + p * n * m) / (p * n + q - 1.0)
    return np.where(m > 0, posterior, gamma * p / (q - 1.0))


def _fit(neg_log_lik: Any, n_params: int) -> np.ndarray:
    """Parameters minimising ``neg_log_lik`` (the mean negative log-likelihood per customer)
    by L-BFGS-B on log-parameters.

    A parameter point where the likelihood is not finite (``hyp2f1`` overflowing far from
    the optimum) scores :data:`PENALTY`, so the line search backs off instead of stopping.
    """

    def objective(log_params: np.ndarray) -> float:
        value = float(neg_log_lik(np.exp(log_params)))
        return value if np.isfinite(value) else PENALTY

    start = np.full(n_params, INITIAL_LOG_PARAMS)
    with np.errstate(all="ignore"):
        res = minimize(objective, start, method="L-BFGS-B",
                       bounds=[LOG_PARAM_BOUNDS] * n_params,
                       options={"maxiter": MAX_ITER, "ftol": FTOL, "gtol": GTOL})
    if not res.fun < PENALTY:
        raise RuntimeError(f"BTYD likelihood is not finite at the optimum: {res.message}")
    return np.exp(res.x)


TRANSACTION_MODELS = {
    "pareto_nbd": (pareto_nbd_log_likelihood, pareto_nbd_p_alive, pareto_nbd_expected,
                   pareto_nbd_p_none),
    "bgnbd": (bgnbd_log_likelihood, bgnbd_p_alive, bgnbd_expected, bgnbd_p_none),
}


def fit_transaction_model(kind: BTYDKind, x: np.ndarray, t_x: np.ndarray,
                          T: np.ndarray) -> np.ndarray:
    """Maximum-likelihood ``(r, α, s, β)`` (Pareto/NBD) or ``(r, α, a, b)`` (BG/NBD) from
    repeat purchases ``x``, last-purchase time ``t_x`` and age ``T`` (α, β in the unit of
    ``t_x`` and ``T``; r, s, a, b are unit-free)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    log_lik = TRANSACTION_MODELS[kind][0]
    return _fit(lambda params: -log_lik(params, x, t_x, T).mean(), 4)


def fit_gamma_gamma(m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Maximum-likelihood Gamma-Gamma ``(p, q, γ)`` from mean values ``m > 0`` of ``n``
    purchases; ``q > 1`` is required for a finite population mean ``γp/(q-1)``."""
    params = _fit(lambda params: -gamma_gamma_log_likelihood(params, m, n).mean(), 3)
    if params[1] <= 1.0:
        raise ValueError(f"Gamma-Gamma fit has q = {params[1]:.3f} <= 1: the mean purchase "
                         "value is infinite under the fitted model")
    return params


_FITTED: OrderedDict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = OrderedDict()
FIT_CACHE_SIZE = 8  # population fits kept (a backtest fold fits the same rows 2-4 times)


def population_params(kind: BTYDKind, st: dict[str, np.ndarray]) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """Transaction and Gamma-Gamma parameters fitted to the summary statistics ``st``
    (:func:`summary_statistics`), once per distinct ``(kind, rows)``: the churn and the value
    candidate of a fold, and its inner selection and final fit, share one fit (a maximum-
    likelihood fit is a pure function of the rows, so the cached result is the same)."""
    digest = hashlib.sha256()
    for key in ("x", "t_x", "T", "m", "n"):
        digest.update(np.ascontiguousarray(st[key], dtype=float).tobytes())
        digest.update(b"|")
    key = (kind, digest.hexdigest())
    if key in _FITTED:
        _FITTED.move_to_end(key)
        return _FITTED[key]
    params = fit_transaction_model(kind, st["x"], st["t_x"], st["T"])
    buyers = st["m"] > 0
    spend = fit_gamma_gamma(st["m"][buyers], st["n"][buyers])
    _FITTED[key] = (params, spend)
    while len(_FITTED) > FIT_CACHE_SIZE:
        _FITTED.popitem(last=False)
    return params, spend


@stateful
class BTYDFeatures(TransformerMixin, BaseEstimator):
    """Append BTYD predictions (:data:`OUTPUTS`) to a churnml feature frame.

    A learned transform: :meth:`fit` estimates the population parameters on the training
    rows only; :meth:`transform` then maps each row on its own (no row depends on another).

    Parameters
    ----------
    kind : "pareto_nbd" or "bgnbd"
        Transaction model (module docstring).
    horizon_days : int
        Prediction horizon ``t`` in days (the label horizon).

    Attributes
    ----------
    params_ : ndarray
        ``(r, α, s, β)`` (Pareto/NBD) or ``(r, α, a, b)`` (BG/NBD); α, β in days.
    spend_params_ : ndarray
        Gamma-Gamma ``(p, q, γ)``; γ in currency.
    n_features_in_ : int
    """

    def __init__(self, kind: BTYDKind = "pareto_nbd", horizon_days: int = HORIZON_DAYS) -> None:
        self.kind = kind
        self.horizon_days = horizon_days

    def fit(self, X: pd.DataFrame, y: Any = None) -> BTYDFeatures:
        if self.horizon_days <= 0:
            raise ValueError(f"horizon_days must be > 0, got {self.horizon_days}")
        st = summary_statistics(X)
        self.params_, self.spend_params_ = (p.copy() for p in population_params(self.kind, st))
        self.n_features_in_ = X.shape[1]
        return self

    def predict_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """The :data:`OUTPUTS` columns for the rows of ``X`` (same index)."""
        check_is_fitted(self, "params_")
        st = summary_statistics(X)
        _, p_alive_fn, expected_fn, p_none_fn = TRANSACTION_MODELS[self.kind]
        x, t_x, T, t = st["x"], st["t_x"], st["T"], float(self.horizon_days)
        p_alive = p_alive_fn(self.params_, x, t_x, T)
        expected = expected_fn(self.params_, x, T, t, p_alive)
        order_value = gamma_gamma_expected(self.spend_params_, st["m"], st["n"])
        values = [p_alive, expected, p_none_fn(self.params_, x, T, t, p_alive), order_value,
                  expected * order_value]
        return pd.DataFrame(dict(zip(OUTPUTS, values, strict=True)), index=X.index)

    def to_state(self) -> dict[str, Any]:
        """Parameters and the fitted population parameters (transaction and spend)."""
        check_is_fitted(self, "params_")
        return {"params": params_state(self), "transaction": encode(self.params_),
                "spend": encode(self.spend_params_), "n_features_in": self.n_features_in_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BTYDFeatures:
        est = restore_params(cls, state)
        if est.kind not in KINDS:
            raise ModelStateError(f"BTYD kind {est.kind!r} is not one of {KINDS}")
        est.params_ = np.asarray(decode(require(state, "transaction", dict)), dtype=float)
        est.spend_params_ = np.asarray(decode(require(state, "spend", dict)), dtype=float)
        if est.params_.shape != (4,) or est.spend_params_.shape != (3,):
            raise ModelStateError("BTYD state needs 4 transaction and 3 spend parameters")
        if not (np.isfinite(est.params_).all() and (est.params_ > 0).all()
                and np.isfinite(est.spend_params_).all() and (est.spend_params_ > 0).all()):
            raise ModelStateError("BTYD parameters must be finite and positive")
        est.n_features_in_ = int(require(state, "n_features_in", int))
        return est

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` with the :data:`OUTPUTS` columns appended."""
        return pd.concat([X, self.predict_frame(X)], axis=1)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "params_")
        names = list(input_features) if input_features is not None else []
        return np.asarray([*names, *OUTPUTS], dtype=object)


class _BTYDModel(BaseEstimator):
    """Shared parameters and fit of the BTYD churn and value models."""

    def __init__(self, kind: BTYDKind = "pareto_nbd", horizon_days: int = HORIZON_DAYS) -> None:
        self.kind = kind
        self.horizon_days = horizon_days

    def _fit_btyd(self, X: pd.DataFrame) -> None:
        self.btyd_ = BTYDFeatures(kind=self.kind, horizon_days=self.horizon_days).fit(X)
        self.n_features_in_ = self.btyd_.n_features_in_

    @property
    def feature_names_in_(self) -> np.ndarray:
        """The feature columns read (:data:`COLUMNS`), as churnml's models list theirs."""
        return np.asarray(list(COLUMNS.values()), dtype=object)

    @property
    def feature_dtypes_(self) -> dict[str, str]:
        """Every column read is numeric (``float64``)."""
        return dict.fromkeys(COLUMNS.values(), "float64")

    def _predict(self, X: pd.DataFrame, column: str) -> np.ndarray:
        check_is_fitted(self, "btyd_")
        return self.btyd_.predict_frame(X)[column].to_numpy()

    def to_state(self) -> dict[str, Any]:
        """Parameters and the fitted :class:`BTYDFeatures` state."""
        check_is_fitted(self, "btyd_")
        return {"params": params_state(self), "btyd": self.btyd_.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Any:
        est = restore_params(cls, state)
        est.btyd_ = BTYDFeatures.from_state(require(state, "btyd", dict))
        est.n_features_in_ = est.btyd_.n_features_in_
        if isinstance(est, ClassifierMixin):
            est.classes_ = np.array([0, 1])
        return est


@stateful
class BTYDChurnModel(ClassifierMixin, _BTYDModel):
    """Churn probability = BTYD P(no purchase in the next ``horizon_days`` days).

    The labels are not used: the model is fitted to the purchase histories (the columns of
    :data:`COLUMNS`) of the training rows. Same parameters and ``btyd_`` (a fitted
    :class:`BTYDFeatures`) as :class:`BTYDValueModel`.
    """

    def fit(self, X: pd.DataFrame, y: Any = None) -> BTYDChurnModel:
        self._fit_btyd(X)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """``[[P(purchase), P(no purchase)], ...]`` over the horizon."""
        p = self._predict(X, "btyd_p_no_purchase")
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= THRESHOLD).astype(int)


@stateful
class BTYDValueModel(RegressorMixin, _BTYDModel):
    """Value over the horizon = BTYD expected purchases x Gamma-Gamma expected order value
    (currency); labels are not used (see :class:`BTYDChurnModel`)."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> BTYDValueModel:
        self._fit_btyd(X)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self._predict(X, "btyd_expected_value")

    def predict_if_retained(self, X: pd.DataFrame) -> np.ndarray:
        """Value if retained = E[value | at least one purchase in the horizon]
        = expected purchases / P(any purchase) x expected order value (currency, >= 0): for
        non-contractual churn with target action = purchase, "not churned" is "bought"."""
        check_is_fitted(self, "btyd_")
        f = self.btyd_.predict_frame(X)
        p_any = 1.0 - f["btyd_p_no_purchase"].to_numpy()
        purchases = np.divide(f["btyd_expected_purchases"].to_numpy(), p_any,
                              out=np.ones_like(p_any), where=p_any > 0)
        # given a purchase there is at least one: E[X | X >= 1] >= 1
        return np.maximum(purchases, 1.0) * np.maximum(
            f["btyd_expected_order_value"].to_numpy(), 0.0)
