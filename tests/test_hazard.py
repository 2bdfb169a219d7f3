"""Discrete-time hazard model on the Fader & Hardie (2007) cohorts and simulated hazards,
person-period expansion, curve summaries and the tail rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.errors import DataValidationError
from churnml.models._state import dump_estimator, load_estimator
from churnml.survival.curves import (
    curve_summary,
    expected_remaining_lifetime,
    extend_constant_hazard,
    hazards_from_survival,
    median_time_to_churn,
    p_active,
    survival_at,
    survival_from_hazards,
)
from churnml.survival.hazard import DiscreteTimeHazard
from churnml.survival.person_period import person_period

# Fader & Hardie (2007), "How to project customer retention", J. Interactive Marketing 21(1),
# table 1: survivors per 1,000 of the "regular" cohort at periods 0..7
REGULAR = np.array([1000, 631, 468, 382, 326, 289, 262, 241])


def _cohort(survivors: np.ndarray) -> pd.DataFrame:
    """One landmark row per customer at period 0: churn period or censored at the end."""
    deaths = -np.diff(survivors)
    last = len(survivors) - 1
    duration = np.concatenate([np.repeat(np.arange(1, last + 1), deaths),
                               np.full(survivors[-1], last)])
    event = np.concatenate([np.ones(deaths.sum(), bool), np.zeros(survivors[-1], bool)])
    return pd.DataFrame({"customer_id": np.arange(survivors[0]), "tenure": 0.0,
                         "duration": duration.astype(float), "event": event})


def _landmarks(cohort: pd.DataFrame, last: int) -> pd.DataFrame:
    """The cohort followed from landmarks 0 .. last - 1: the survivors at each, with the
    periods they had survived as tenure and durations counted from the landmark."""
    frames = []
    for j in range(last):
        alive = cohort[cohort["duration"] > j]
        alive = alive[~((alive["duration"] == j) & ~alive["event"])]
        frames.append(alive.assign(tenure=float(j), duration=alive["duration"] - j))
    return pd.concat(frames, ignore_index=True)


def test_person_period_rows_by_hand() -> None:
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    rows, target, source = person_period(X, np.array([2, 3, 1]), np.array([True, False, True]),
                                         tenure=np.array([0, 5, 1]), n_periods=2)
    assert source.tolist() == [0, 0, 1, 1, 2]
    assert rows["period"].tolist() == [1, 2, 1, 2, 1]
    assert rows["tenure_at_period"].tolist() == [0, 1, 5, 6, 1]
    assert rows["x"].tolist() == [1, 1, 2, 2, 3]
    assert target.tolist() == [0, 1, 0, 0, 1]  # censored row 1 capped at the grid
    with pytest.raises(DataValidationError, match=r"durations\.duration: must be a whole "
                       r"number of periods .* e\.g\. row 0 \(1\.5\)"):
        person_period(X, np.array([1.5, 1, 1]), np.array([True, True, True]))


def test_covariate_free_model_reproduces_the_regular_cohort() -> None:
    data = _cohort(REGULAR)
    model = DiscreteTimeHazard().fit(data[["tenure"]], data[["duration", "event"]],
                                     groups=data["customer_id"])
    assert model.n_periods_ == 7
    surv = model.predict_survival_function(data[["tenure"]].iloc[:1], np.arange(8))[0]
    empirical = REGULAR / 1000
    sd = np.sqrt(empirical * (1 - empirical) / 1000)
    assert surv[0] == 1.0
    assert np.all(np.abs(surv - empirical) <= 3 * sd + 1e-12), (surv, empirical)
    # the hazard of each period matches the empirical one, deaths / at risk
    hazard = model.predict_hazard(data[["tenure"]].iloc[:1])[0]
    h_emp = -np.diff(REGULAR) / REGULAR[:-1]
    h_sd = np.sqrt(h_emp * (1 - h_emp) / REGULAR[:-1])
    assert np.all(np.abs(hazard - h_emp) <= 3 * h_sd), (hazard, h_emp)
    # every row of a covariate-free model gets the same curve
    assert np.ptp(model.predict_risk(data[["tenure"]].iloc[:50])) == 0


def test_conditioning_on_tenure_is_the_ratio_of_the_curve() -> None:
    data = _cohort(REGULAR)
    model = DiscreteTimeHazard(period_feature=False, tenure_cap=None).fit(
        data[["tenure"]], data[["duration", "event"]])
    new = model.predict_survival_grid(pd.DataFrame({"tenure": [0.0]}))[0]
    for k in (1, 3, 5):
        cond = model.predict_survival_grid(pd.DataFrame({"tenure": [float(k)]}), 7 - k)[0]
        np.testing.assert_allclose(cond, new[k:7] / new[k - 1], rtol=1e-12)


def test_landmark_model_learns_the_conditional_curve() -> None:
    cohort = _cohort(REGULAR)
    data = _landmarks(cohort, 7)
    model = DiscreteTimeHazard().fit(data[["tenure"]], data[["duration", "event"]],
                                     groups=data["customer_id"])
    empirical = REGULAR / 1000
    for k in (1, 2, 4):
        horizon = 7 - k
        cond = model.predict_survival_grid(pd.DataFrame({"tenure": [float(k)]}), horizon)[0]
        expected = empirical[k + 1:] / empirical[k]
        sd = np.sqrt(expected * (1 - expected) / REGULAR[k])
        assert np.all(np.abs(cond - expected) <= 3 * sd), (k, cond, expected)


def test_hazard_follows_covariates_and_survives_a_state_round_trip() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    x = rng.integers(0, 2, n)
    h = np.where(x == 1, 0.3, 0.08)
    churn = rng.geometric(h)  # period of churn, constant hazard per group
    censor = rng.integers(3, 9, n)
    data = pd.DataFrame({"x": x.astype(float), "noise": rng.normal(size=n),
                         "tenure": rng.integers(0, 6, n).astype(float),
                         "duration": np.minimum(churn, censor).astype(float),
                         "event": churn <= censor})
    features = ["x", "noise", "tenure"]
    model = DiscreteTimeHazard(n_periods=6).fit(data[features], data[["duration", "event"]])
    X = pd.DataFrame({"x": [0.0, 1.0], "noise": [0.0, 0.0], "tenure": [2.0, 2.0]})
    surv = model.predict_survival_grid(X)
    truth = np.vstack([(1 - 0.08) ** np.arange(1, 7), (1 - 0.3) ** np.arange(1, 7)])
    assert np.abs(surv - truth).max() < 0.05
    risk = model.predict_risk(X)
    assert risk[1] > risk[0]
    loaded = load_estimator(dump_estimator(model))
    np.testing.assert_array_equal(loaded.predict_survival_grid(X), surv)
    # the tail rule: past the grid the last hazard of each customer continues
    long = model.predict_survival_grid(X, 9)
    last_h = 1 - surv[:, -1] / surv[:, -2]
    np.testing.assert_allclose(long[:, 8], surv[:, -1] * (1 - last_h) ** 3, rtol=1e-12)
    # the additive model is scored once per row: the same log-odds as period by period
    X = data[features].iloc[:300].assign(tenure=np.arange(300) % 9)
    np.testing.assert_allclose(model._raw_additive(X), model._raw_by_period(X), atol=1e-9)
    # trees mixing time and features: the hazard shape may differ per group
    mixed = DiscreteTimeHazard(n_periods=6, time_interactions=True).fit(
        data[features], data[["duration", "event"]])
    X = pd.DataFrame({"x": [0.0, 1.0], "noise": [0.0, 0.0], "tenure": [2.0, 2.0]})
    assert np.abs(mixed.predict_survival_grid(X) - truth).max() < 0.05
    with pytest.raises(DataValidationError, match=r"features\.tenure: must be a number of "
                       r"periods >= 0 .*row 0 \(-1\.0\)"):
        model.predict_survival_grid(X.assign(tenure=[-1.0, 2.0]))
    with pytest.raises(DataValidationError, match="longer than the data can support"):
        DiscreteTimeHazard(n_periods=20).fit(data[["x"]], data[["duration", "event"]])


def test_tenure_cap_keeps_the_time_features_inside_the_training_range() -> None:
    """``tenure_cap="auto"`` caps the landmark tenure of the time feature so that the whole
    grid stays within the longest ``tenure_at_period`` of the training rows; the cap is
    kept by the state (a state without it, from an earlier release, loads uncapped)."""
    rng = np.random.default_rng(5)
    n = 3000
    tenure = rng.integers(0, 10, n).astype(float)
    churn = rng.geometric(0.1 + 0.1 * (tenure < 3), n)
    censor = rng.integers(2, 8, n)
    data = pd.DataFrame({"tenure": tenure, "duration": np.minimum(churn, censor).astype(float),
                         "event": churn <= censor})
    y = data[["duration", "event"]]
    model = DiscreteTimeHazard(n_periods=5).fit(data[["tenure"]], y)
    # person-period rows: a row is at risk for min(duration, 5) periods; the longest
    # tenure_at_period is max(tenure + min(duration, 5) - 1) = 9 + 5 - 1 = 13, cap 13 - 5 + 1
    longest = (data["tenure"] + np.minimum(data["duration"], 5) - 1).max()
    assert longest == 13 and model.tenure_cap_ == 9.0
    fixed = DiscreteTimeHazard(n_periods=5, tenure_cap=2).fit(data[["tenure"]], y)
    assert fixed.tenure_cap_ == 2.0
    X = pd.DataFrame({"tenure": [0.0, 1.0, 2.0, 7.0]})
    np.testing.assert_array_equal(fixed._tenure(X), [0.0, 1.0, 2.0, 2.0])
    assert np.isinf(DiscreteTimeHazard(n_periods=5, tenure_cap=None).fit(
        data[["tenure"]], y).tenure_cap_)
    dumped = dump_estimator(fixed)
    np.testing.assert_array_equal(load_estimator(dumped).predict_survival_grid(X),
                                  fixed.predict_survival_grid(X))
    del dumped["state"]["tenure_cap"]
    assert np.isinf(load_estimator(dumped).tenure_cap_)
    with pytest.raises(ValueError, match="tenure_cap"):
        DiscreteTimeHazard(n_periods=5, tenure_cap=-1).fit(data[["tenure"]], y)


# --------------------------------------------------------------------------- curves


def test_curve_summaries_by_hand() -> None:
    surv = np.array([[0.9, 0.6, 0.3, 0.2],
                     [1.0, 0.95, 0.9, 0.855]])
    np.testing.assert_allclose(hazards_from_survival(surv)[0], [0.1, 1 / 3, 0.5, 1 / 3])
    np.testing.assert_allclose(survival_from_hazards(hazards_from_survival(surv)), surv)
    # restricted mean over 3 periods: 0.9 + 0.6 + 0.3 and 1 + 0.95 + 0.9
    np.testing.assert_allclose(expected_remaining_lifetime(surv, 3), [1.8, 2.85])
    # tail: customer 2 keeps the hazard 0.05 of its last period
    ext = extend_constant_hazard(surv, 6)
    np.testing.assert_allclose(ext[1, 4:], [0.855 * 0.95, 0.855 * 0.95 ** 2])
    # geometric interpolation between whole periods
    np.testing.assert_allclose(survival_at(surv, [0, 1, 1.5])[0], [1, 0.9, 0.9 * (6 / 9) ** .5])
    # median: S crosses 0.5 in period 3 for customer 1; never within 6 for customer 2
    median, beyond = median_time_to_churn(surv, 6)
    assert median[0] == pytest.approx(2 + np.log(0.5 / 0.6) / np.log(0.3 / 0.6))
    assert np.isnan(median[1]) and beyond.tolist() == [False, True]
    np.testing.assert_allclose(p_active(surv, [30, 45], 30), survival_at(surv, [1, 1.5]))
    table = curve_summary(surv, period_days=30, active_days=(30, 90), horizon_days=100)
    assert list(table.columns) == ["p_active_30d", "p_active_90d",
                                   "expected_remaining_lifetime_days",
                                   "median_time_to_churn_days", "median_beyond_horizon",
                                   "lifetime_horizon_days"]
    assert table["lifetime_horizon_days"].tolist() == [90, 90]
    np.testing.assert_allclose(table["expected_remaining_lifetime_days"], [54.0, 85.5])


def test_sbg_tail_continues_an_sbg_curve_exactly() -> None:
    from churnml.survival.curves import extend_survival
    from churnml.survival.sbg import sbg_survival

    # the sBG fitted by Fader & Hardie (2007) to the regular cohort: alpha 0.704, beta 1.182
    exact = sbg_survival(0.704, 1.182, np.arange(1, 13))
    flat = np.full(12, 0.9) ** np.arange(1, 13)  # constant hazard: slope 0, keeps it
    surv = np.vstack([exact[:7], flat[:7]])
    ext = extend_survival(surv, 12, "sbg")
    np.testing.assert_allclose(ext[0], exact, rtol=1e-9)
    np.testing.assert_allclose(ext[1], flat, rtol=1e-12)
    np.testing.assert_allclose(extend_survival(surv, 12, "constant_hazard"),
                               extend_constant_hazard(surv, 12))
    assert extend_survival(surv, 7, "restricted") is not None
    with pytest.raises(ValueError, match="restricted"):
        extend_survival(surv, 8, "restricted")
    with pytest.raises(ValueError, match="tail_rule"):
        extend_survival(surv, 8, "linear")
