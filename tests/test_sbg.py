"""Shifted-beta-geometric model: the published worked examples of Fader & Hardie (2007, 2010)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.errors import DataValidationError
from churnml.survival.sbg import (
    ShiftedBetaGeometric,
    fit_sbg_survivors,
    sbg_churn_probability,
    sbg_derl,
    sbg_retention,
    sbg_survival,
)

# Fader & Hardie (2007), "How to project customer retention", survivors per 1,000, periods 0-12
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491, 468, 445, 427, 409, 394]


def cohort_rows(survivors: list[int], last: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per customer: churn in period t (event), or censored after ``last`` periods."""
    s = np.asarray(survivors[: last + 1])
    churned = s[:-1] - s[1:]
    duration = np.concatenate([np.repeat(np.arange(1, last + 1), churned),
                               np.full(s[-1], last)]).astype(float)
    event = np.concatenate([np.ones(churned.sum(), bool), np.zeros(s[-1], bool)])
    y = pd.DataFrame({"duration": duration, "event": event})
    return pd.DataFrame(index=y.index, data={"x": 0.0}), y


@pytest.mark.parametrize(
    ("survivors", "alpha", "beta"),
    [(REGULAR, 0.704, 1.182), (HIGH_END, 0.668, 3.806)],
    ids=["regular", "high_end"],
)
def test_fit_on_periods_1_to_7_gives_published_parameters(survivors, alpha, beta):
    fit = fit_sbg_survivors(survivors[:8])
    assert round(fit.alpha, 3) == alpha
    assert round(fit.beta, 3) == beta


def test_high_end_projection_of_periods_8_to_12():
    fit = fit_sbg_survivors(HIGH_END[:8])
    projected = 1000 * sbg_survival(fit.alpha, fit.beta, np.arange(8, 13))
    assert np.round(projected).astype(int).tolist() == [460, 436, 414, 395, 378]


@pytest.mark.parametrize(("survivors", "derl"), [(HIGH_END, 7.53), (REGULAR, 6.84)],
                         ids=["high_end", "regular"])
def test_derl_at_10_percent_after_the_8th_period(survivors, derl):
    fit = fit_sbg_survivors(survivors[:8])
    value = float(sbg_derl(fit.alpha, fit.beta, renewals=7, discount=0.10))
    assert round(value, 2) == derl
    # the closed form equals the defining sum sum_k S(n + 1 + k) / S(n) / (1 + d)^k
    k = np.arange(0, 3000)
    direct = np.sum(sbg_survival(fit.alpha, fit.beta, 8 + k)
                    / sbg_survival(fit.alpha, fit.beta, 7) / 1.1**k)
    assert value == pytest.approx(direct, rel=1e-10)


def test_probabilities_retention_and_survival_agree():
    a, b = 0.704, 1.182
    t = np.arange(1, 30)
    s = sbg_survival(a, b, np.arange(0, 30))
    assert s[0] == 1.0
    np.testing.assert_allclose(s[:-1] - s[1:], sbg_churn_probability(a, b, t), rtol=1e-12)
    np.testing.assert_allclose(s[1:] / s[:-1], sbg_retention(a, b, t), rtol=1e-12)
    assert sbg_churn_probability(a, b, 1) == pytest.approx(a / (a + b))


def test_estimator_on_individual_rows_matches_the_survivor_fit():
    X, y = cohort_rows(HIGH_END, last=7)
    est = ShiftedBetaGeometric().fit(X, y)
    ref = fit_sbg_survivors(HIGH_END[:8])
    assert est.params_["__overall__"].alpha == pytest.approx(ref.alpha, rel=1e-5)
    assert est.params_["__overall__"].beta == pytest.approx(ref.beta, rel=1e-5)
    surv = est.predict_survival_function(X.iloc[:2], [0, 1, 7, 12])
    assert surv.shape == (2, 4)
    np.testing.assert_allclose(surv[0], sbg_survival(ref.alpha, ref.beta, [0, 1, 7, 12]),
                               rtol=1e-4)


def test_tenure_conditions_the_curve_and_left_truncation_is_fitted():
    rng = np.random.default_rng(3)
    alpha, beta, n = 0.8, 2.5, 40_000
    theta = rng.beta(alpha, beta, n)
    T = rng.geometric(theta)                      # churn period from acquisition, >= 1
    tenure = rng.integers(0, 6, n)                # periods already survived at the cutoff
    keep = T > tenure                             # only customers still active at the cutoff
    T, tenure = T[keep], tenure[keep]
    rel = T - tenure                              # churn period after the cutoff
    horizon = 10
    y = pd.DataFrame({"duration": np.minimum(rel, horizon).astype(float),
                      "event": rel <= horizon})
    X = pd.DataFrame({"tenure": tenure.astype(float)})
    est = ShiftedBetaGeometric().fit(X, y)
    fit = est.params_["__overall__"]
    assert fit.alpha == pytest.approx(alpha, rel=0.1)
    assert fit.beta == pytest.approx(beta, rel=0.1)
    surv = est.predict_survival_function(pd.DataFrame({"tenure": [0.0, 4.0]}), [0, 1, 2.5, 5])
    expected4 = sbg_survival(fit.alpha, fit.beta, 4 + np.array([0, 1, 2, 5])) / sbg_survival(
        fit.alpha, fit.beta, 4)
    np.testing.assert_allclose(surv[1], expected4, rtol=1e-12)
    assert (surv[1] > surv[0]).all() or np.allclose(surv[:, 0], 1.0)
    assert (np.diff(surv, axis=1) <= 0).all()
    risk = est.predict_risk(pd.DataFrame({"tenure": [0.0, 4.0]}))
    assert risk[0] > risk[1]                      # longer tenure: less likely to churn next
    np.testing.assert_allclose(1 - surv[:, 1], risk, rtol=1e-12)
    derl = est.predict_derl(pd.DataFrame({"tenure": [7.0]}), 0.10)
    assert derl[0] == pytest.approx(sbg_derl(fit.alpha, fit.beta, 7, 0.10)[()], rel=1e-12)


def test_per_group_fits_and_unseen_group_uses_the_pooled_fit():
    Xr, yr = cohort_rows(REGULAR, last=7)
    Xh, yh = cohort_rows(HIGH_END, last=7)
    X = pd.concat([Xr.assign(plan="regular"), Xh.assign(plan="high end")], ignore_index=True)
    y = pd.concat([yr, yh], ignore_index=True)
    est = ShiftedBetaGeometric(by="plan").fit(X, y)
    assert round(est.params_["regular"].alpha, 3) == 0.704
    assert round(est.params_["high end"].beta, 3) == 3.806
    new = pd.DataFrame({"plan": ["high end", "student", None]})
    surv = est.predict_survival_function(new, [12])
    pooled = est.params_["__overall__"]
    assert round(1000 * surv[0, 0]) == 378
    np.testing.assert_allclose(surv[1:, 0], sbg_survival(pooled.alpha, pooled.beta, 12))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="non-increasing|s_0 >= s_1"):
        fit_sbg_survivors([1000, 631, 700])
    with pytest.raises(ValueError, match="discount"):
        sbg_derl(0.7, 1.2, 3, 0.0)
    X, y = cohort_rows(REGULAR, last=7)
    with pytest.raises(DataValidationError, match="churn and one censored"):
        ShiftedBetaGeometric().fit(X, y.assign(event=False))
    with pytest.raises(DataValidationError, match="duration"):
        ShiftedBetaGeometric().fit(X, y.assign(duration=-1.0))
    with pytest.raises(DataValidationError, match="tenure"):
        ShiftedBetaGeometric().fit(X.assign(tenure=-2.0), y)


def test_state_round_trip_predicts_the_same(tmp_path):
    from churnml.models._state import ModelStateError, read_state, write_state

    Xr, yr = cohort_rows(REGULAR, last=7)
    est = ShiftedBetaGeometric(by="plan").fit(Xr.assign(plan="regular"), yr)
    loaded = read_state(write_state(est, tmp_path / "sbg.json"))
    new = pd.DataFrame({"plan": ["regular", "other"], "tenure": [0.0, 3.0]})
    np.testing.assert_array_equal(loaded.predict_survival_function(new, [1, 5, 12]),
                                  est.predict_survival_function(new, [1, 5, 12]))
    np.testing.assert_array_equal(loaded.predict_derl(new, 0.1), est.predict_derl(new, 0.1))
    state = est.to_state()
    state["groups"]["regular"] = [-1.0, 2.0, 0.0]
    with pytest.raises(ModelStateError, match="bad parameters"):
        ShiftedBetaGeometric.from_state(state)
