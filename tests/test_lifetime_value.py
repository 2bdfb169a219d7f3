"""Lifetime value from survival curves: closed forms and the coverage of the interval on
values simulated from the model itself."""

from __future__ import annotations

import numpy as np
import pytest

from churnml.errors import DataValidationError
from churnml.survival.lifetime_value import (
    fit_spend_cv,
    lifetime_value,
    per_period_rate,
    realized_value,
)


@pytest.mark.parametrize("timing", ["end", "start"])
def test_constant_hazard_matches_the_geometric_series(timing: str) -> None:
    h, r, m, horizon = 0.1, 0.02, 50.0, 24
    q = (1 - h) / (1 + r)
    # sum_{t=1..H} (1-h)^t / (1+r)^t, or (1-h)^(t-1) / (1+r)^t for payments in advance
    closed = m * q * (1 - q ** horizon) / (1 - q) if timing == "end" else \
        m / (1 + r) * (1 - q ** horizon) / (1 - q)
    # the curve is given on 4 periods only: the tail rule (constant last hazard) continues it
    surv = np.array([[(1 - h) ** t for t in range(1, 5)]])
    out = lifetime_value(surv, m, horizon, r, timing=timing)
    assert out["lifetime_value"].item() == pytest.approx(closed, rel=1e-12)
    assert out["lifetime_value_low"].item() < closed < out["lifetime_value_high"].item()


def test_certain_customer_with_fixed_spend_has_a_point_interval() -> None:
    out = lifetime_value(np.ones((2, 3)), np.array([10.0, -4.0]), 3, 0.0, spend_cv=0.0)
    np.testing.assert_allclose(out.to_numpy(), [[30.0] * 3, [-12.0] * 3])
    assert per_period_rate(0.1, 365) == pytest.approx(1.1 ** (365 / 365.25) - 1)
    assert per_period_rate(0.1, 30) == pytest.approx(1.1 ** (30 / 365.25) - 1)


def test_interval_covers_the_nominal_share_of_realized_values() -> None:
    rng = np.random.default_rng(11)
    n, horizon, rate = 4000, 12, 0.01
    # varied curves: a per-customer hazard that falls with time, spend and its dispersion;
    # churn in the first period (value exactly 0) stays below the 10 % tail of the interval
    h0 = rng.uniform(0.02, 0.08, n)[:, None]
    hazard = h0 * 0.9 ** np.arange(horizon)[None, :]
    surv = np.cumprod(1 - hazard, axis=1)
    spend = rng.lognormal(3, 0.8, n)
    cv = rng.uniform(0.3, 1.5, n)
    out = lifetime_value(surv, spend, horizon, rate, spend_cv=cv, n_draws=400, seed=5)
    # realized values from the same model: churn period by inversion of the curve, each
    # period's spend a Gamma draw with the customer's mean and dispersion
    u = rng.random(n)
    churn = 1 + (surv > u[:, None]).sum(axis=1)  # P(D > t) = S(t)
    churn = np.where(churn > horizon, np.inf, churn)
    shape = 1 / cv ** 2
    period_spend = rng.gamma(shape[:, None], (spend / shape)[:, None], (n, horizon))
    realized = realized_value(churn, period_spend, horizon, rate)
    inside = (realized >= out["lifetime_value_low"]) & (realized <= out["lifetime_value_high"])
    sd = np.sqrt(0.8 * 0.2 / n)
    assert abs(inside.mean() - 0.8) < 3 * sd + 0.01, inside.mean()
    # the point value is the expectation of the realized value
    diff = realized - out["lifetime_value"]
    assert abs(diff.mean()) < 3 * diff.std() / np.sqrt(n)
    assert (out["lifetime_value_low"] <= out["lifetime_value_high"]).all()


def test_interval_with_a_likely_zero_value_covers_at_least_the_level() -> None:
    rng = np.random.default_rng(2)
    n, horizon = 3000, 6
    surv = np.cumprod(np.full((n, horizon), 0.7), axis=1)  # 30 % bring nothing at all
    out = lifetime_value(surv, 20.0, horizon, spend_cv=0.5, n_draws=400)
    assert (out["lifetime_value_low"] == 0).all()
    churn = 1 + (surv > rng.random(n)[:, None]).sum(axis=1)
    realized = realized_value(np.where(churn > horizon, np.inf, churn),
                              rng.gamma(4.0, 5.0, (n, horizon)), horizon)
    inside = (realized >= out["lifetime_value_low"]) & (realized <= out["lifetime_value_high"])
    assert inside.mean() > 0.8


def test_bad_inputs_are_refused() -> None:
    surv = np.ones((1, 3))
    with pytest.raises(DataValidationError,
                       match=r"scores\.spend_per_period: must be a finite number .*row 0"):
        lifetime_value(surv, np.nan, 3)
    with pytest.raises(ValueError, match="timing"):
        lifetime_value(surv, 1.0, 3, timing="middle")
    with pytest.raises(ValueError, match="level"):
        lifetime_value(surv, 1.0, 3, level=80)


def test_paid_periods_and_quantiles_equal_the_direct_computations() -> None:
    from churnml.survival.lifetime_value import _paid_periods, _row_quantiles

    rng = np.random.default_rng(0)
    paid = np.cumprod(1 - rng.uniform(0.0, 0.3, (300, 12)), axis=1)
    paid[0], paid[1] = 1.0, 0.0
    levels = (np.arange(100) + 0.5) / 100
    direct = (paid[:, None, :] > levels[None, :, None]).sum(axis=2)
    np.testing.assert_array_equal(_paid_periods(paid, 100), direct)
    x = rng.random((40, 100))
    np.testing.assert_allclose(_row_quantiles(x, [0.1, 0.9]), np.quantile(x, [0.1, 0.9], axis=1))


def test_survival_columns_from_a_fitted_model() -> None:
    import pandas as pd

    from churnml.survival.scores import spend_per_period, survival_columns

    class ConstantHazard:  # a model of the protocol with a known curve: h = 0.1 per period
        def predict_survival_function(self, X: pd.DataFrame, times: np.ndarray) -> np.ndarray:
            return np.tile(0.9 ** np.asarray(times, float), (len(X), 1))

    X = pd.DataFrame({"x": [1.0, 2.0]}, index=[10, 11])
    spend = spend_per_period(np.array([90.0, 0.0]), horizon_days=90, period_days=30)
    np.testing.assert_allclose(spend, [30.0, 0.0])
    out = survival_columns(ConstantHazard(), X, period_days=30, active_days=(30, 90),
                          horizon_days=360, spend=spend, discount_rate_annual=0.0)
    assert out.index.tolist() == [10, 11]
    np.testing.assert_allclose(out["p_active_90d"], 0.9 ** 3)
    np.testing.assert_allclose(out["expected_remaining_lifetime_days"],
                               30 * sum(0.9 ** t for t in range(1, 13)))
    # S(t) = 0.9^t reaches 0.5 at t = log(0.5) / log(0.9) = 6.58 periods
    np.testing.assert_allclose(out["median_time_to_churn_days"], 30 * np.log(.5) / np.log(.9))
    np.testing.assert_allclose(out["lifetime_value"],
                               [30 * sum(0.9 ** t for t in range(1, 13)), 0.0])
    assert (out["lifetime_horizon_days"] == 360).all()
    assert out.loc[11, "lifetime_value_high"] == 0.0
    # a model with a 4-period grid: the tail rule supplies the rest of the horizon
    short = ConstantHazard()
    short.n_periods_ = 4
    again = survival_columns(short, X, period_days=30, active_days=(30, 90), horizon_days=360,
                             spend=spend, discount_rate_annual=0.0)
    pd.testing.assert_frame_equal(again, out)
    with pytest.raises(ValueError, match="restricted"):
        survival_columns(short, X, period_days=30, horizon_days=360, tail_rule="restricted")


def test_spend_dispersion_is_recovered_from_past_periods() -> None:
    rng = np.random.default_rng(4)
    mean = rng.lognormal(3, 1, 3000)[:, None]
    spend = rng.gamma(1 / 0.7 ** 2, mean * 0.7 ** 2, (3000, 6))  # cv 0.7 around each mean
    active = rng.random((3000, 6)) < 0.8
    assert fit_spend_cv(spend, active) == pytest.approx(0.7, abs=0.03)
    assert fit_spend_cv(np.full((5, 3), 10.0)) == 0.0
    with pytest.raises(ValueError, match="two periods"):
        fit_spend_cv(spend[:, :1])
