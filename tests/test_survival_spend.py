"""The spread of spend fitted at training for the lifetime-value interval
(:mod:`churnml.survival.spend`): hand-computed cases, the stored parameters, the shapes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import digamma

from churnml.errors import ModelSourceError
from churnml.survival.lifetime_value import fit_spend_population, mean_shape_from_periods
from churnml.survival.spend import (
    PARAM_PREFIX,
    SpendModel,
    fit_spend_model,
    lookback_periods,
    period_spend,
)

CUTOFF = pd.Timestamp("2024-01-01")


def _tx(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    """Transactions ``(customer, days before the cutoff, amount)``."""
    return pd.DataFrame({"customer_id": [r[0] for r in rows],
                         "ts": [CUTOFF - pd.Timedelta(days=r[1]) for r in rows],
                         "amount": [r[2] for r in rows]})


def test_period_spend_counts_only_rows_before_the_cutoff() -> None:
    # period k holds (k - 1) * 30 < days before <= k * 30; a row at the cutoff is not read
    tx = _tx([("a", 0, 999.0), ("a", 1, 10.0), ("a", 30, 5.0), ("a", 31, 7.0),
              ("b", 60, 3.0), ("b", 91, 100.0), ("z", 5, 50.0)])
    out = period_spend(tx, pd.Index(["a", "b"]), CUTOFF, 30, 3)
    np.testing.assert_array_equal(out, [[15.0, 7.0, 0.0], [0.0, 3.0, 0.0]])


def test_fitted_cv_by_hand() -> None:
    """Three customers, 30-day periods, look-back 3 periods:

    * a, tenure 2: spends 10 and 40 in its two periods (a spend in period 3, before it was a
      customer, is not read): mean 25;
    * b, tenure 5 (3 periods known): 20, 20, 20: mean 20;
    * c, tenure 1: one period of 30, a single positive period, so not in the CV fit.

    The common Gamma shape solves ``log a - digamma(a) = [log(25/10) + log(25/40) + 3 log(20/20)]
    / [(2 - 1) + (3 - 1)] = log(1.5625) / 3``, and the CV is ``1 / sqrt(a)``. Fewer than ten
    customers: no population, the flat-prior shape ``2 + n / cv^2``."""
    tx = _tx([("a", 10, 10.0), ("a", 40, 40.0), ("a", 70, 500.0),
              ("b", 5, 20.0), ("b", 35, 20.0), ("b", 65, 20.0), ("c", 3, 30.0)])
    tenure = pd.Series([2.0, 5.0, 1.0], index=["a", "b", "c"])
    model = fit_spend_model(tx, tenure, CUTOFF, 30, lookback_periods(90, 30))
    a = 1.0 / model.spend_cv ** 2
    assert math.log(a) - digamma(a) == pytest.approx(math.log(1.5625) / 3, rel=1e-9)
    # log a - digamma(a) ~ 1 / (2a) + 1 / (12 a^2) = 0.1488: a ~ 3.52, CV ~ 0.533
    assert model.spend_cv == pytest.approx(0.533, abs=1e-3)
    assert model.q is None and model.gamma is None and model.n_customers == 3
    np.testing.assert_allclose(model.mean_shape([0, 1, 3]),
                               2 + np.array([1, 1, 3]) / model.spend_cv ** 2)
    # nobody with two positive periods: nothing to fit
    assert fit_spend_model(tx, tenure[["c"]], CUTOFF, 30, 3) is None


def test_population_fitted_on_the_past_means() -> None:
    """With enough customers the Gamma-Gamma ``q, gamma`` are those of
    :func:`fit_spend_population` on the customers' mean spend over their known periods, and
    the shape is the posterior's ``p n + q``."""
    rng = np.random.default_rng(3)
    n_cust, cv = 400, 0.6
    means = rng.gamma(3.0, 20.0, n_cust)
    tenure = pd.Series(rng.integers(1, 8, n_cust).astype(float),
                       index=[f"c{i}" for i in range(n_cust)])
    rows = [(cid, 30 * k - 15, float(rng.gamma(1 / cv ** 2, m * cv ** 2)))
            for cid, m, t in zip(tenure.index, means, tenure, strict=True)
            for k in range(1, int(min(t, 6)) + 1)]
    model = fit_spend_model(_tx(rows), tenure, CUTOFF, 30, 6)
    assert model.spend_cv == pytest.approx(cv, abs=0.05)
    known = np.clip(tenure.to_numpy(), 1, 6)
    past = period_spend(_tx(rows), pd.Index(tenure.index), CUTOFF, 30, 6)
    q, gamma = fit_spend_population(past.sum(axis=1) / known, known, model.spend_cv)
    assert (model.q, model.gamma) == pytest.approx((q, gamma), rel=1e-9)
    np.testing.assert_allclose(model.mean_shape([1, 4]),
                               np.array([1, 4]) / model.spend_cv ** 2 + q)
    # more periods known: a narrower posterior of the mean (a larger shape)
    assert 1 < model.mean_shape(1) < model.mean_shape(4)


def test_params_round_trip_and_bad_values() -> None:
    model = SpendModel(spend_cv=0.758, q=2.64, gamma=76.7, n_customers=8744)
    text = {f"{PARAM_PREFIX}{k}": str(v) for k, v in model.params().items()}
    assert SpendModel.from_params(text) == model
    assert SpendModel.from_params({}) is None  # logged before the spread was fitted
    assert SpendModel.from_params({f"{PARAM_PREFIX}spend_cv": "0.5"}) == SpendModel(0.5)
    for bad in ({"spend_cv": "nan"}, {"spend_cv": "-1"}, {"spend_cv": "__import__('os')"},
                {"spend_cv": "0.5", "spend_q": "0.9", "spend_gamma": "3"},
                {"spend_cv": "0.5", "spend_q": "2"}):
        with pytest.raises(ModelSourceError, match="spend"):
            SpendModel.from_params({f"{PARAM_PREFIX}{k}": v for k, v in bad.items()})
    # the defaults are the fallback of models logged without a fitted spread
    fallback = SpendModel()
    assert not fallback.fitted
    np.testing.assert_allclose(fallback.mean_shape([1, 12]),
                               mean_shape_from_periods(np.array([1, 12]), 1.0))
    assert np.isinf(SpendModel(spend_cv=0.0).mean_shape([3])).all()


class _Geometric:
    """S(t) = 0.9 ** t for every row: a curve whose lifetime value is known by hand."""

    n_periods_ = 24

    def predict_survival_function(self, X: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        return np.tile(0.9 ** np.asarray(times, dtype=float), (len(X), 1))


def test_scored_columns_take_spend_from_the_value_if_retained_and_shape_from_tenure() -> None:
    from churnml.survival.scores import scored_columns, survival_columns

    X = pd.DataFrame({"tenure": [0.0, 5.0, 20.0]})
    spread = SpendModel(spend_cv=0.5, q=3.0, gamma=10.0, n_customers=50)
    kw = {"active_days": (30,), "horizon_days": 90, "discount_rate_annual": 0.0}
    got = scored_columns(_Geometric(), X, [90.0, 90.0, 90.0], spread, churn_horizon_days=90,
                         lookback_days=365, period_days=30, **kw)
    # 90 over a 90-day horizon = 30 per 30-day period; known periods clip(tenure, 1, 12)
    # = 1, 5, 12; p = 1 / 0.5**2 = 4, so the posterior shapes p n + q are 7, 23, 51
    want = survival_columns(_Geometric(), X, period_days=30, spend=np.full(3, 30.0),
                            spend_cv=0.5, mean_shape=np.array([7.0, 23.0, 51.0]), **kw)
    pd.testing.assert_frame_equal(got, want)
    # paid at the end of each of 3 periods survived: 30 (0.9 + 0.81 + 0.729) = 73.17
    np.testing.assert_allclose(got["lifetime_value"], 73.17, rtol=1e-9)
    # without a stored spread: CV 1.0 and the flat prior 2 + n
    fallback = scored_columns(_Geometric(), X, [90.0] * 3, None, churn_horizon_days=90,
                              lookback_days=365, period_days=30, **kw)
    flat = survival_columns(_Geometric(), X, period_days=30, spend=np.full(3, 30.0),
                            spend_cv=1.0, mean_shape=np.array([3.0, 7.0, 14.0]), **kw)
    pd.testing.assert_frame_equal(fallback, flat)


def test_training_fits_the_spread_at_the_latest_cutoff_only() -> None:
    """The spread training stores reads the customers of the panel's latest cutoff, with
    their tenure there and the look-back in whole periods (90 days = 3 periods of 30): the
    same model as :func:`fit_spend_model` on those rows by hand; an earlier cutoff's rows
    (here a customer ``z`` with an extreme spend) play no part; no panel, the defaults."""
    from churnml.survival.spend import spend_at_latest_cutoff

    tx = _tx([("a", 10, 10.0), ("a", 40, 40.0), ("a", 70, 500.0),
              ("b", 5, 20.0), ("b", 35, 20.0), ("b", 65, 20.0), ("c", 3, 30.0),
              ("z", 5, 1.0), ("z", 35, 900.0)])
    earlier = CUTOFF - pd.Timedelta(days=30)
    panel = pd.DataFrame({"customer_id": ["a", "b", "c", "z"],
                          "cutoff": [CUTOFF, CUTOFF, CUTOFF, earlier],
                          "tenure": [2.0, 5.0, 1.0, 9.0]})
    got = spend_at_latest_cutoff(tx, panel, 30, 90)
    want = fit_spend_model(tx, pd.Series([2.0, 5.0, 1.0], index=["a", "b", "c"]), CUTOFF,
                           30, 3)
    assert got == want and got.n_customers == 3
    assert got.spend_cv == pytest.approx(0.533, abs=1e-3)
    assert spend_at_latest_cutoff(tx, panel.iloc[:0], 30, 90) == SpendModel()
