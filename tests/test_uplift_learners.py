"""Uplift learners recover a known step effect (persuadables, no effect, sleeping dogs)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from churnml.errors import ConfigError, DataValidationError
from churnml.uplift import (
    DRLearner,
    PropensityModel,
    SLearner,
    TLearner,
    XLearner,
    propensity_auc,
    qini_auc_score,
)

TAU = np.array([0.25, 0.0, -0.2])  # persuadables / unaffected / sleeping dogs (x1 terciles)
REVENUE_TAU = np.array([30.0, 0.0, -20.0])
FAST = {"n_estimators": 60, "min_child_samples": 50}
LEARNERS = (SLearner, TLearner, XLearner, DRLearner)


def make_campaign(n, seed, arms=("offer",), strength=(1.0,), confounded=False):
    """Features, arm names, binary and revenue outcomes, and the true group of each row."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "x1": rng.uniform(size=n),
            "x2": rng.normal(size=n),
            "plan": rng.choice(["basic", "pro"], n),
        }
    )
    group = np.digitize(X["x1"], [1 / 3, 2 / 3])
    if confounded:  # contacts targeted on x2 (not random)
        treated = rng.uniform(size=n) < 1 / (1 + np.exp(-2.5 * X["x2"]))
        arm = np.where(treated, arms[0], "control")
    else:
        arm = rng.choice(["control", *arms], n)
    scale = np.select([arm == a for a in arms], strength, 0.0)
    base = np.clip(0.45 + 0.1 * X["x2"].to_numpy(), 0.05, 0.9)
    retained = (rng.uniform(size=n) < base + scale * TAU[group]).astype(int)
    revenue = np.maximum(0, 100 + 15 * X["x2"].to_numpy() + scale * REVENUE_TAU[group]
                         + rng.normal(0, 20, n))
    return X, arm, retained, revenue, group


@pytest.fixture(scope="module")
def campaign():
    return make_campaign(5000, seed=1), make_campaign(3000, seed=2)


@pytest.mark.parametrize("learner", LEARNERS)
def test_binary_step_effect_recovered_by_group(learner, campaign):
    (X, arm, retained, _, _), (Xt, arm_t, retained_t, _, group_t) = campaign
    model = learner(**FAST).fit(X, arm, retained)
    tau_hat = model.predict(Xt)
    assert list(tau_hat.columns) == ["offer"] and tau_hat.index.equals(Xt.index)
    by_group = tau_hat["offer"].groupby(group_t).mean().to_numpy()
    np.testing.assert_allclose(by_group, TAU, atol=0.08)
    assert by_group[0] > 0.12 and by_group[2] < -0.1  # persuadables and sleeping dogs found
    # ranking on held-out rows: Qini close to the oracle's (true tau), sleeping dogs last
    rows = np.isin(arm_t, ["offer", "control"])
    t = arm_t[rows] == "offer"
    oracle = qini_auc_score(retained_t[rows], TAU[group_t][rows], t)
    assert qini_auc_score(retained_t[rows], tau_hat["offer"][rows], t) > 0.8 * oracle > 0.1
    assert tau_hat["offer"][group_t == 2].mean() < tau_hat["offer"][group_t == 1].mean()


@pytest.mark.parametrize("learner", (TLearner, DRLearner))
def test_revenue_effect_recovered_in_currency(learner, campaign):
    (X, arm, _, revenue, _), (Xt, _, _, _, group_t) = campaign
    model = learner(**FAST).fit(X, arm, revenue)
    assert model.outcome_ == "continuous"
    by_group = model.predict(Xt)["offer"].groupby(group_t).mean().to_numpy()
    np.testing.assert_allclose(by_group, REVENUE_TAU, atol=7.0)


@pytest.mark.parametrize("learner", (SLearner, XLearner))
def test_multi_arm_effects_per_arm(learner):
    X, arm, retained, _, _ = make_campaign(6000, 3, arms=("coupon", "mail"), strength=(1.0, 0.5))
    Xt, _, _, _, group_t = make_campaign(2000, 4)
    tau_hat = learner(**FAST).fit(X, arm, retained).predict(Xt)
    assert list(tau_hat.columns) == ["coupon", "mail"]
    by_group = tau_hat.groupby(group_t).mean()
    np.testing.assert_allclose(by_group["coupon"], TAU, atol=0.09)
    np.testing.assert_allclose(by_group["mail"], 0.5 * TAU, atol=0.09)
    assert by_group.loc[0, "coupon"] > by_group.loc[0, "mail"] > 0.05


def test_propensity_auc_randomised_vs_confounded():
    X, arm, *_ = make_campaign(3000, 5)
    auc_random = propensity_auc(X, arm, n_folds=3)
    assert abs(auc_random["offer"] - 0.5) < 0.05
    Xc, arm_c, *_ = make_campaign(3000, 5, confounded=True)
    assert propensity_auc(Xc, arm_c, n_folds=3)["offer"] > 0.75


def test_dr_learner_with_estimated_propensity_on_confounded_contacts():
    X, arm, retained, _, _ = make_campaign(6000, 6, confounded=True)
    Xt, _, _, _, group_t = make_campaign(2000, 7)
    model = DRLearner(propensity="estimate", n_folds=3, clip=0.03, **FAST).fit(X, arm, retained)
    assert model.propensity_auc_["offer"] > 0.75
    e = model.propensity_.train_["offer"]
    assert e.between(0.03, 0.97).all() and e.corr(X["x2"]) > 0.8  # the targeting is learnt
    by_group = model.predict(Xt)["offer"].groupby(group_t).mean().to_numpy()
    np.testing.assert_allclose(by_group, TAU, atol=0.1)


def test_known_assignment_probabilities():
    X, arm, retained, _, _ = make_campaign(2000, 8)
    model = XLearner(propensity={"control": 0.2, "offer": 0.6}, **FAST).fit(X, arm, retained)
    e = model.propensity_.predict(X.head(3))
    np.testing.assert_allclose(e["offer"], 0.75)  # 0.6 / (0.6 + 0.2)
    assert np.isnan(model.propensity_auc_["offer"])
    shares = PropensityModel("shares").fit(X, arm)
    assert shares.train_["offer"].dropna().iloc[0] == pytest.approx(np.mean(arm == "offer"))
    with pytest.raises(ConfigError, match="no probability"):
        XLearner(propensity={"offer": 0.5}).fit(X, arm, retained)


def test_fits_are_deterministic_and_clonable():
    X, arm, retained, _, _ = make_campaign(1500, 9)
    a = DRLearner(n_folds=3, **FAST).fit(X, arm, retained).predict(X)
    b = clone(DRLearner(n_folds=3, **FAST)).fit(X, arm, retained).predict(X)
    pd.testing.assert_frame_equal(a, b)
    assert DRLearner(**FAST).get_params()["n_estimators"] == 60
    model = SLearner(**FAST).fit(X, arm, retained)  # saved with joblib/pickle by callers
    pd.testing.assert_frame_equal(pickle.loads(pickle.dumps(model)).predict(X), model.predict(X))


def test_bad_inputs_name_the_problem():
    X, arm, retained, _, _ = make_campaign(500, 10)
    with pytest.raises(DataValidationError, match="control"):
        TLearner().fit(X, np.where(arm == "control", "holdout", arm), retained)
    with pytest.raises(DataValidationError, match="missing arm"):
        TLearner().fit(X, np.where(np.arange(500) == 3, None, arm), retained)
    with pytest.raises(DataValidationError, match="0/1"):
        TLearner(outcome="binary").fit(X, arm, retained * 2.0)
    with pytest.raises(ValueError, match="entries"):
        SLearner().fit(X, arm[:-1], retained)
    with pytest.raises(DataValidationError, match="missing feature"):
        SLearner(**FAST).fit(X, arm, retained).predict(X.drop(columns="x2"))
