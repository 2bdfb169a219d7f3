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
    # restricted: no extension, every figure restricted to the 4-period grid and named so
    cut = survival_columns(short, X, period_days=30, active_days=(30, 90, 180),
                           horizon_days=360, spend=spend, discount_rate_annual=0.0,
                           tail_rule="restricted")
    np.testing.assert_allclose(cut["p_active_90d"], 0.9 ** 3)
    assert cut["p_active_180d"].isna().all()
    assert (cut["lifetime_horizon_days"] == 120).all()
    np.testing.assert_allclose(cut["expected_remaining_lifetime_days"],
                               30 * sum(0.9 ** t for t in range(1, 5)))
    np.testing.assert_allclose(cut["lifetime_value"], [30 * sum(0.9 ** t for t in range(1, 5)),
                                                       0.0])
    with pytest.raises(ValueError, match="tail_rule"):
        survival_columns(short, X, period_days=30, horizon_days=360, tail_rule="linear")


def test_tail_rules_agree_within_the_grid_and_differ_past_it() -> None:
    import pandas as pd

    from churnml.survival.scores import survival_columns

    class FallingHazard:  # sBG-shaped hazards h_t = 1 / (4 + 2 t) on an 8-period grid
        n_periods_ = 8

        def predict_survival_function(self, X: pd.DataFrame, times: np.ndarray) -> np.ndarray:
            t = np.arange(1, int(max(times)) + 1)
            s = np.cumprod(1 - 1 / (4 + 2 * t))
            return np.tile(s[np.asarray(times, int) - 1], (len(X), 1))

    X = pd.DataFrame({"x": [0.0]})
    kw = {"period_days": 30, "active_days": (30, 240), "horizon_days": 720}
    cols = {r: survival_columns(FallingHazard(), X, tail_rule=r, **kw).iloc[0]
            for r in ("constant_hazard", "sbg", "restricted")}
    s = np.cumprod(1 - 1 / (4 + 2 * np.arange(1, 25)))
    for c in cols.values():  # the model's own curve within its grid
        assert c["p_active_240d"] == pytest.approx(s[7])
    # past the grid: constant last hazard 1/20; the sBG tail recovers the true 1 / (4 + 2 t)
    const = s[7] * (1 - 1 / 20) ** np.arange(1, 17)
    assert cols["constant_hazard"]["expected_remaining_lifetime_days"] == pytest.approx(
        30 * (s[:8].sum() + const.sum()))
    assert cols["sbg"]["expected_remaining_lifetime_days"] == pytest.approx(30 * s.sum())
    assert cols["restricted"]["expected_remaining_lifetime_days"] == pytest.approx(
        30 * s[:8].sum())
    assert cols["restricted"]["lifetime_horizon_days"] == 240
    assert cols["sbg"]["lifetime_horizon_days"] == 720


def test_spend_dispersion_is_recovered_from_past_periods() -> None:
    rng = np.random.default_rng(4)
    mean = rng.lognormal(3, 1, 3000)[:, None]
    spend = rng.gamma(1 / 0.7 ** 2, mean * 0.7 ** 2, (3000, 6))  # cv 0.7 around each mean
    active = rng.random((3000, 6)) < 0.8
    assert fit_spend_cv(spend, active) == pytest.approx(0.7, abs=0.03)
    assert fit_spend_cv(np.full((5, 3), 10.0)) == 0.0
    with pytest.raises(ValueError, match="two periods"):
        fit_spend_cv(spend[:, :1])


def test_spend_posterior_moments_equal_the_weighted_prior_sample() -> None:
    # Gamma-Gamma: nu ~ Gamma(q, rate gamma), a period's spend ~ Gamma(p, rate nu), Z = p / nu;
    # the posterior of Z given n periods of mean xbar by importance weighting of prior draws
    # with the likelihood of the sum n * xbar ~ Gamma(p n, rate nu), against the closed form
    from scipy import stats

    from churnml.survival.lifetime_value import spend_posterior

    cv, q, gamma = 0.8, 4.0, 90.0
    p = 1 / cv ** 2
    rng = np.random.default_rng(3)
    nu = rng.gamma(q, 1 / gamma, 2_000_000)
    z = p / nu
    for n, xbar in [(1, 20.0), (3, 45.0), (12, 30.0)]:
        w = stats.gamma.pdf(n * xbar, p * n, scale=1 / nu)
        w /= w.sum()
        mc_mean = (w * z).sum()
        mc_cv = np.sqrt((w * (z - mc_mean) ** 2).sum()) / mc_mean
        mean, alpha = spend_posterior(np.array([xbar]), np.array([n]), cv, q, gamma)
        assert alpha.item() == pytest.approx(p * n + q)
        assert mean.item() == pytest.approx(p * (gamma + n * xbar) / (p * n + q - 1))
        assert mean.item() == pytest.approx(mc_mean, rel=0.01)
        assert 1 / np.sqrt(alpha.item() - 2) == pytest.approx(mc_cv, rel=0.03)
    # no past period: the population mean p gamma / (q - 1)
    mean, alpha = spend_posterior(np.array([0.0]), np.array([0]), cv, q, gamma)
    assert mean.item() == pytest.approx(p * gamma / (q - 1)) and alpha.item() == q


def test_mean_spend_quantiles_are_the_inverse_gamma_ones() -> None:
    from scipy import stats

    from churnml.survival.lifetime_value import _mean_table, _shape_grid, mean_shape_from_periods

    levels = (np.arange(50) + 0.5) / 50
    alpha = np.array([1.5, 3.0, 40.0, np.inf])
    shapes, which = _shape_grid(alpha)
    np.testing.assert_allclose(shapes[which], alpha, rtol=0.01)
    table = _mean_table(shapes, levels)
    for a, row in zip(shapes, table, strict=True):
        ref = stats.invgamma.ppf(levels, a, scale=a - 1) if np.isfinite(a) else 1.0
        np.testing.assert_allclose(row, ref, rtol=1e-9)
    # flat-prior limit: the CV of a mean of n periods, spend_cv / sqrt(n)
    shape = mean_shape_from_periods(np.array([0, 1, 4, 25]), 0.9)
    np.testing.assert_allclose(1 / np.sqrt(shape - 2), 0.9 / np.sqrt([1, 1, 4, 25]))
    assert np.isinf(mean_shape_from_periods(3, 0.0))


def test_a_mean_known_from_many_periods_gives_a_narrower_interval() -> None:
    from churnml.survival.lifetime_value import mean_shape_from_periods

    surv = np.tile(0.95 ** np.arange(1, 13), (3, 1))
    shape = mean_shape_from_periods(np.array([1, 12, 1e9]), 0.7)
    out = lifetime_value(surv, 50.0, 12, 0.0, spend_cv=0.7, mean_shape=shape, n_draws=400)
    width = (out["lifetime_value_high"] - out["lifetime_value_low"]).to_numpy()
    assert width[0] > width[1] > width[2]
    known = lifetime_value(surv[:1], 50.0, 12, 0.0, spend_cv=0.7, n_draws=400)
    assert width[2] == pytest.approx(known["lifetime_value_high"].item()
                                     - known["lifetime_value_low"].item(), rel=0.02)
    # the point value is the same: E[Z] = m whatever the uncertainty
    np.testing.assert_allclose(out["lifetime_value"], known["lifetime_value"].item())
    with pytest.raises(DataValidationError, match="mean_shape"):
        lifetime_value(surv, 50.0, 12, mean_shape=np.array([3.0, 1.0, np.nan]))


def test_gamma_gamma_interval_covers_values_with_estimated_means() -> None:
    # customers drawn from a Gamma-Gamma population: their mean is known only through n past
    # periods; with the fitted population the interval covers ~80 % of realized values, with
    # the estimated mean taken as known it covers fewer
    from churnml.survival.lifetime_value import fit_spend_population, spend_posterior

    rng = np.random.default_rng(8)
    n, horizon, cv, q, gamma = 6000, 12, 0.6, 5.0, 120.0
    p = 1 / cv ** 2
    nu = rng.gamma(q, 1 / gamma, n)
    n_past = rng.integers(1, 13, n)
    past = rng.gamma(p, 1 / nu[:, None], (n, 12))
    active = np.arange(12)[None, :] < n_past[:, None]
    xbar = (past * active).sum(axis=1) / n_past
    assert fit_spend_cv(past, active) == pytest.approx(cv, abs=0.03)
    q_hat, gamma_hat = fit_spend_population(xbar, n_past, cv)
    assert q_hat == pytest.approx(q, rel=0.15)
    assert gamma_hat == pytest.approx(gamma, rel=0.15)
    mean, alpha = spend_posterior(xbar, n_past, cv, q_hat, gamma_hat)
    surv = np.cumprod(np.full((n, horizon), 0.93), axis=1)
    churn = 1 + (surv > rng.random(n)[:, None]).sum(axis=1)
    churn = np.where(churn > horizon, np.inf, churn)
    realized = realized_value(churn, rng.gamma(p, 1 / nu[:, None], (n, horizon)), horizon)

    def coverage(out: object) -> float:
        return float(((realized >= out["lifetime_value_low"])
                      & (realized <= out["lifetime_value_high"])).mean())

    sd = np.sqrt(0.8 * 0.2 / n)
    full = coverage(lifetime_value(surv, mean, horizon, spend_cv=cv, mean_shape=alpha,
                                   n_draws=200))
    assert abs(full - 0.8) < 3 * sd + 0.01, full
    known = coverage(lifetime_value(surv, xbar, horizon, spend_cv=cv, n_draws=200))
    assert known < full - 0.03, (known, full)


def test_purchase_logs_pay_until_the_silence_starts() -> None:
    from churnml.survival.lifetime_value import paid_probability

    surv = 0.9 ** np.arange(1, 7)[None, :]
    # the curve's event is the end of a silence of 2 periods: period t is paid while
    # S(t + 2) (the silence has not started); fractional lags interpolate geometrically
    np.testing.assert_allclose(paid_probability(surv, 3, "end", 2.0), [0.9 ** np.arange(3, 6)])
    np.testing.assert_allclose(paid_probability(surv, 3, "start", 2.0), [0.9 ** np.arange(2, 5)])
    np.testing.assert_allclose(paid_probability(surv, 3, "end", 0.5),
                               [0.9 ** np.arange(1.5, 4)])
    # past the grid the constant last hazard continues
    np.testing.assert_allclose(paid_probability(surv, 6, "end", 3.0), [0.9 ** np.arange(4, 10)])
    out = lifetime_value(surv, 10.0, 3, 0.0, lag_periods=2.0)
    assert out["lifetime_value"].item() == pytest.approx(10 * sum(0.9 ** t for t in (3, 4, 5)))
    with pytest.raises(ValueError, match="lag_periods"):
        paid_probability(surv, 3, "end", -1.0)
