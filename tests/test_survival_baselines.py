"""Kaplan–Meier and Cox baselines: equal to scikit-survival / an independent partial-likelihood
fit, and the survival estimator protocol (shapes, monotone curves, risk sign)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv

from churnml.errors import DataValidationError
from churnml.survival.cox import CoxBaseline
from churnml.survival.kaplan_meier import KaplanMeierBaseline


def cohort(n: int = 400, seed: int = 0, discrete: bool = True):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "x": rng.normal(size=n),
        "spend": rng.gamma(2.0, 10.0, n),
        "plan": rng.choice(["basic", "plus", "pro"], n),
        "tenure": rng.integers(0, 24, n).astype(float),
    })
    lp = 0.8 * X["x"] - 0.03 * X["spend"] + X["plan"].map({"basic": 0.5, "plus": 0.0,
                                                           "pro": -0.5})
    t = rng.exponential(6.0 * np.exp(-lp))
    c = rng.uniform(2.0, 15.0, n)
    if discrete:
        t, c = np.ceil(t), np.ceil(c)
    y = pd.DataFrame({"duration": np.minimum(t, c), "event": t <= c})
    return X, y


def test_kaplan_meier_overall_and_per_group_equal_sksurv():
    X, y = cohort()
    times = np.array([0.0, 0.5, 1.0, 2.0, 3.5, 7.0, 14.0, 30.0])
    km = KaplanMeierBaseline().fit(X, y)
    surv = km.predict_survival_function(X.iloc[:3], times)
    t_ref, s_ref = kaplan_meier_estimator(y["event"].to_numpy(), y["duration"].to_numpy())
    idx = np.searchsorted(t_ref, times, side="right") - 1
    expected = np.where(idx >= 0, s_ref[np.clip(idx, 0, None)], 1.0)
    assert surv.shape == (3, times.size)
    np.testing.assert_allclose(surv, np.tile(expected, (3, 1)), rtol=0, atol=1e-12)

    by = KaplanMeierBaseline(by="plan").fit(X, y)
    for plan in ("basic", "pro"):
        m = (X["plan"] == plan).to_numpy()
        t_g, s_g = kaplan_meier_estimator(y["event"].to_numpy()[m], y["duration"].to_numpy()[m])
        got = by.predict_survival_function(pd.DataFrame({"plan": [plan]}), t_g)[0]
        np.testing.assert_allclose(got, s_g, rtol=0, atol=1e-12)
    risk = by.predict_risk(pd.DataFrame({"plan": ["basic", "plus", "pro", "unknown"]}))
    assert risk[0] > risk[1] > risk[2]            # basic churns soonest
    assert risk[3] == pytest.approx(km.predict_risk(X.iloc[:1])[0])   # unseen: pooled curve


def test_kaplan_meier_grouping_column_must_exist():
    X, y = cohort(50)
    with pytest.raises(DataValidationError, match="features.segment"):
        KaplanMeierBaseline(by="segment").fit(X, y)


def breslow_fit(Z: np.ndarray, event: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Independent reference: maximise the Breslow partial likelihood with BFGS."""
    at_risk = duration[None, :] >= duration[event][:, None]  # events x rows

    def nll(b):
        eta = Z @ b
        w = np.exp(eta)
        denom = at_risk @ w
        grad = -(Z[event].sum(axis=0) - (at_risk @ (w[:, None] * Z)) .T.dot(1.0 / denom))
        return -(eta[event].sum() - np.log(denom).sum()), grad

    res = minimize(nll, np.zeros(Z.shape[1]), jac=True, method="BFGS",
                   options={"gtol": 1e-10, "maxiter": 1000})
    return res.x


def test_cox_unpenalised_equals_the_partial_likelihood_maximum_with_ties():
    X, y = cohort(discrete=True)
    num = X[["x", "spend", "tenure"]]
    cox = CoxBaseline(alpha=0.0).fit(num, y)
    b_ref = breslow_fit(num.to_numpy(), y["event"].to_numpy(), y["duration"].to_numpy())
    risk = cox.predict_risk(num)
    centred = (num - num.mean()).to_numpy() @ b_ref
    np.testing.assert_allclose(risk - risk.mean(), centred, rtol=0, atol=1e-6)
    assert b_ref[0] == pytest.approx(0.8, abs=0.2)


def test_cox_penalised_coefficients_equal_sksurv_on_the_design():
    X, y = cohort(discrete=False)
    X = X.assign(constant=3.0, x_copy=X["x"] * 2.0)  # constant and collinear columns
    cox = CoxBaseline(alpha=0.5).fit(X, y)
    numeric = X[["x", "spend", "tenure", "x_copy"]]
    Z = pd.concat([(numeric - numeric.mean()) / numeric.std(ddof=0),
                   pd.get_dummies(X["plan"], dtype=float)], axis=1).to_numpy()
    ref = CoxPHSurvivalAnalysis(alpha=0.5).fit(
        Z, Surv.from_arrays(y["event"].to_numpy(), y["duration"].to_numpy()))
    assert len(cox.design_names_) == Z.shape[1]
    np.testing.assert_allclose(cox.coef_, ref.coef_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(cox.predict_risk(X), Z @ ref.coef_, rtol=0, atol=1e-8)
    # survival curves equal the library's at its event times
    times = ref.unique_times_[:-1]
    ours = cox.predict_survival_function(X.iloc[:5], times)
    theirs = np.vstack([f(times) for f in ref.predict_survival_function(Z[:5])])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)


def test_cox_survival_function_protocol():
    X, y = cohort()
    cox = CoxBaseline().fit(X, y)
    new = X.iloc[:7].assign(plan=["basic", "plus", "pro", "gold", None, "pro", "basic"])
    times = np.array([0.0, 1.0, 2.5, 6.0, 12.0, 100.0])
    surv = cox.predict_survival_function(new, times)
    assert surv.shape == (7, times.size)
    assert np.all((surv >= 0) & (surv <= 1))
    assert np.all(np.diff(surv, axis=1) <= 0)
    np.testing.assert_allclose(surv[:, 0], 1.0)          # no event at duration 0
    risk = cox.predict_risk(new)
    # higher risk, lower survival at every time
    order = np.argsort(risk)
    assert np.all(np.diff(surv[order, 3]) <= 1e-12)


def test_cox_bad_input():
    X, y = cohort(60)
    with pytest.raises(DataValidationError, match="features.tenure"):
        CoxBaseline().fit(X.drop(columns="tenure"), y)
    with pytest.raises(DataValidationError, match="no churn event"):
        CoxBaseline().fit(X, y.assign(event=False))
    with pytest.raises(DataValidationError, match="durations.duration"):
        CoxBaseline().fit(X, y.assign(duration=np.nan))
    with pytest.raises(DataValidationError, match="no column varies"):
        CoxBaseline().fit(X.assign(x=1.0, spend=2.0, tenure=0.0, plan="basic"), y)
    cox = CoxBaseline(tenure_column=None).fit(X.drop(columns="tenure"), y)
    with pytest.raises(DataValidationError, match="missing feature column"):
        cox.predict_risk(X.drop(columns=["x"]))


def test_kaplan_meier_state_round_trip_predicts_the_same(tmp_path):
    from churnml.models._state import ModelStateError, read_state, write_state

    X, y = cohort()
    km = KaplanMeierBaseline(by="plan").fit(X, y)
    loaded = read_state(write_state(km, tmp_path / "km.json"))
    new = pd.DataFrame({"plan": ["basic", "pro", "gold"]})
    times = [0.0, 1.0, 3.5, 20.0]
    np.testing.assert_array_equal(loaded.predict_survival_function(new, times),
                                  km.predict_survival_function(new, times))
    np.testing.assert_array_equal(loaded.predict_risk(new), km.predict_risk(new))
    state = km.to_state()
    state["curves"].pop("__overall__")
    with pytest.raises(ModelStateError, match="pooled"):
        KaplanMeierBaseline.from_state(state)
