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


# ----------------------------------------------------------------------------- order, state


@pytest.mark.parametrize("learner", LEARNERS)
def test_shuffled_rows_with_ids_give_the_same_model(learner):
    """With row ids the rows are fitted in the order of their hash and cross-fitting folds
    follow it: a shuffle of the same rows changes no estimate (DR: estimated propensity)."""
    X, arm, retained, _, _ = make_campaign(2000, seed=5)
    ids = np.array([f"c{i}" for i in range(len(X))])
    extra = {"propensity": "estimate", "n_folds": 3} if learner is DRLearner else {}
    a = learner(**FAST, **extra).fit(X, arm, retained, ids=ids)
    perm = np.random.default_rng(0).permutation(len(X))
    b = learner(**FAST, **extra).fit(X.iloc[perm], arm[perm], retained[perm], ids=ids[perm])
    np.testing.assert_allclose(a.predict(X).to_numpy(), b.predict(X).to_numpy(),
                               rtol=0, atol=1e-12)
    if learner is DRLearner:  # pseudo-outcomes come back on the caller's rows
        pd.testing.assert_frame_equal(a.pseudo_outcomes_, b.pseudo_outcomes_.loc[X.index])


def test_duplicate_row_ids_are_refused():
    X, arm, retained, _, _ = make_campaign(300, seed=5)
    ids = np.arange(len(X)) // 2
    with pytest.raises(DataValidationError, match="row ids must be unique"):
        SLearner(**FAST).fit(X, arm, retained, ids=ids)


def test_propensity_shares_are_taken_per_campaign():
    """Campaign a holds out 50 %, campaign b 10 %: each row's e is its campaign's treated
    share among its arm and control rows; new rows get the pooled share."""
    arm = np.array(["offer"] * 5 + ["control"] * 5 + ["offer"] * 9 + ["control"])
    group = np.array(["a"] * 10 + ["b"] * 10)
    X = pd.DataFrame({"x": np.arange(20.0)})
    model = PropensityModel("shares").fit(X, arm, groups=group)
    assert model.train_["offer"].tolist() == [0.5] * 10 + [0.9] * 10
    assert model.predict(X.head(2))["offer"].tolist() == [0.7, 0.7]  # 14 of 20 pooled
    pooled = PropensityModel("shares").fit(X, arm)
    assert pooled.train_["offer"].tolist() == [0.7] * 20


@pytest.mark.parametrize("learner", LEARNERS)
def test_state_round_trip_predicts_the_same(learner, campaign):
    """Learners save as LightGBM text + JSON (no pickle) and load to identical effects."""
    import json

    from churnml.models._state import dump_estimator, load_estimator

    (X, arm, retained, _, _), (Xt, _, _, _, _) = campaign
    extra = {"propensity": "estimate", "n_folds": 3} if learner is XLearner else {}
    model = learner(**FAST, **extra).fit(X, arm, retained)
    doc = json.loads(json.dumps(dump_estimator(model)))
    again = load_estimator(doc)
    assert type(again) is learner and again.get_params() == model.get_params()
    pd.testing.assert_frame_equal(again.predict(Xt), model.predict(Xt))


def test_negative_probability_and_flag_by_hand():
    from churnml.uplift.fitted import negative_probability
    from churnml.uplift.targeting import NEGATIVE, P_NEGATIVE, targeting_values

    p = negative_probability(np.array([-0.1, 0.1, -0.05, 0.0]), np.array([0.1, 0.1, 0.0, 0.0]))
    # Phi(1) = 0.841345, Phi(-1) = 0.158655; sd = 0: the sign decides
    np.testing.assert_allclose(p, [0.841345, 0.158655, 1.0, 0.0], atol=1e-6)
    scores = pd.DataFrame({"customer_id": [1, 2, 3, 4]})
    tv = targeting_values(scores, [-0.1, 0.1, -0.05, 0.0], cost=0.0, outcome="revenue",
                          p_negative=p, flag_level=0.9)
    assert tv[NEGATIVE].tolist() == [False, False, True, False]  # 0.84 < 0.9: not flagged
    assert tv[P_NEGATIVE].tolist() == pytest.approx(p.tolist())


def test_bootstrap_refits_keep_arm_sizes():
    from churnml.uplift.fitted import fit_bootstrap

    X, arm, retained, _, _ = make_campaign(600, seed=3)
    seen = []

    class Spy(SLearner):
        def fit(self, X, treatment, y, **kw):
            seen.append(pd.Series(treatment).value_counts().to_dict())
            return super().fit(X, treatment, y, **kw)

    models = fit_bootstrap(lambda: Spy(**FAST), X, arm, retained, 3, seed=0)
    assert len(models) == 3
    assert seen == [pd.Series(arm).value_counts().to_dict()] * 3
