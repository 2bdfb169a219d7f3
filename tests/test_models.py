"""Churn and LTV models: estimator conventions, determinism, dtypes, calibration, signal."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from churnml.errors import DataValidationError
from churnml.models import (
    ChurnClassifier,
    FrameEncoder,
    LastValueBaseline,
    LogisticChurnBaseline,
    LTVModel,
    RecencyBaseline,
)

FAST = {"n_estimators": 120, "n_jobs": 1}
UPWEIGHT = {0: 1.0, 1: 5.0}  # distorts the booster's probabilities on purpose
FEATURES = ["days_since_last_purchase", "frequency", "noise", "n_tickets", "plan", "spend_90d"]
ESTIMATORS = [
    ChurnClassifier(),
    LogisticChurnBaseline(),
    LTVModel(),
    RecencyBaseline(),
    LastValueBaseline(),
    FrameEncoder(),
]


@pytest.fixture(scope="module")
def churn(model_data) -> ChurnClassifier:
    return ChurnClassifier(**FAST).fit(model_data.X_train, model_data.churn_train)


@pytest.fixture(scope="module", params=["hurdle", "tweedie"])
def ltv_model(request, model_data) -> LTVModel:
    return LTVModel(kind=request.param, **FAST).fit(model_data.X_train, model_data.ltv_train)


# --- scikit-learn conventions -------------------------------------------------------------


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_sklearn_conventions(est):
    name = type(est).__name__
    check_parameters_default_constructible(name, est)
    check_no_attributes_set_in_init(name, est)
    check_do_not_raise_errors_in_init_or_set_params(name, est)
    check_set_params(name, est)
    check_get_params_invariance(name, est)
    params = est.get_params()
    cloned = clone(est)
    assert cloned.get_params() == params
    assert not [k for k in vars(cloned) if k.endswith("_")]


def test_clone_keeps_params_and_drops_fitted_state(churn):
    cloned = clone(churn)
    assert cloned.get_params() == churn.get_params()
    assert cloned.n_estimators == FAST["n_estimators"]
    assert not hasattr(cloned, "model_")
    assert clone(ChurnClassifier(calibration="bogus")).calibration == "bogus"  # no init checks


def test_fitted_schema(churn, model_data):
    assert list(churn.feature_names_in_) == FEATURES
    assert churn.n_features_in_ == len(FEATURES)
    expected = {c: "float64" for c in FEATURES} | {"plan": "category"}
    assert churn.feature_dtypes_ == expected
    assert churn.encoder_.categories_ == {"plan": ["basic", "pro", "vip"]}
    assert 0 < churn.n_iter_ <= FAST["n_estimators"]
    assert list(churn.classes_) == [0, 1]


# --- determinism ----------------------------------------------------------------------------


def test_churn_is_bit_identical_across_fits(churn, model_data):
    again = ChurnClassifier(**FAST).fit(model_data.X_train, model_data.churn_train)
    X = model_data.X_test
    assert np.array_equal(churn.predict_proba(X), again.predict_proba(X))
    assert churn.contributions(X).equals(again.contributions(X))
    other_seed = ChurnClassifier(**FAST, seed=7).fit(model_data.X_train, model_data.churn_train)
    assert not np.array_equal(churn.predict_proba(X), other_seed.predict_proba(X))


def test_ltv_is_bit_identical_across_fits(ltv_model, model_data):
    again = clone(ltv_model).fit(model_data.X_train, model_data.ltv_train)
    assert np.array_equal(ltv_model.predict(model_data.X_test), again.predict(model_data.X_test))


def test_pickle_round_trip_predicts_identically(churn, model_data):
    restored = pickle.loads(pickle.dumps(churn))
    X = model_data.X_test
    assert np.array_equal(restored.predict_proba(X), churn.predict_proba(X))


# --- dtypes and schema checks ------------------------------------------------------------


def test_str_and_category_inputs_agree(churn, model_data):
    X = model_data.X_test
    as_category = X.assign(plan=X["plan"].astype("category"))
    as_object = X.assign(plan=X["plan"].astype(object))
    p = churn.predict_proba(X)
    assert np.array_equal(churn.predict_proba(as_category), p)
    assert np.array_equal(churn.predict_proba(as_object), p)


def test_unseen_category_is_missing(churn, model_data):
    X = model_data.X_test.head(200)
    unseen = churn.predict_proba(X.assign(plan="enterprise"))
    missing = churn.predict_proba(X.assign(plan=pd.Series([None] * len(X), dtype="str")))
    assert np.array_equal(unseen, missing)
    encoded = churn.encoder_.transform(X.assign(plan="enterprise"))
    assert encoded["plan"].isna().all()
    assert list(encoded["plan"].cat.categories) == ["basic", "pro", "vip"]


def test_columns_selected_by_name(churn, model_data):
    X = model_data.X_test
    shuffled = X[FEATURES[::-1]].assign(customer_id=np.arange(len(X)))
    assert np.array_equal(churn.predict_proba(shuffled), churn.predict_proba(X))


def test_int_columns_become_float(model_data):
    enc = FrameEncoder().fit(model_data.X_train)
    out = enc.transform(model_data.X_test)
    assert out["n_tickets"].dtype == np.float64
    assert (out["n_tickets"] == model_data.X_test["n_tickets"]).all()


def test_missing_column_is_named(churn, model_data):
    with pytest.raises(DataValidationError, match=r"features\.frequency: missing feature"):
        churn.predict_proba(model_data.X_test.drop(columns="frequency"))


def test_non_numeric_value_is_named_with_rows(churn, model_data):
    X = model_data.X_test.head(10).astype({"noise": object})
    X.loc[3, "noise"] = "abc"
    with pytest.raises(DataValidationError, match=r"features\.noise: not numeric.*row 3 \('abc'\)"):
        churn.predict_proba(X)


def test_bad_inputs_rejected(model_data):
    X, y = model_data.X_train, model_data.churn_train
    with pytest.raises(TypeError, match="DataFrame"):
        ChurnClassifier(**FAST).fit(X.to_numpy(), y)
    with pytest.raises(ValueError, match="only one class"):
        ChurnClassifier(**FAST).fit(X, np.zeros(len(X)))
    with pytest.raises(DataValidationError, match="labels.churned: missing"):
        ChurnClassifier(**FAST).fit(X, np.where(np.arange(len(X)) == 5, np.nan, y))
    with pytest.raises(ValueError, match="calibration must be one of"):
        ChurnClassifier(**FAST, calibration="bogus").fit(X, y)
    with pytest.raises(DataValidationError, match="datetime64"):
        ChurnClassifier(**FAST).fit(X.assign(ts=pd.Timestamp("2024-01-01")), y)


# --- churn quality ------------------------------------------------------------------------


def test_churn_signal_and_reasonable_probabilities(churn, model_data):
    p = churn.predict_proba(model_data.X_test)[:, 1]
    y = model_data.churn_test
    assert roc_auc_score(y, p) > 0.75
    assert abs(p.mean() - y.mean()) < 0.03
    assert np.array_equal(churn.predict(model_data.X_test), (p >= 0.5).astype(int))


def test_calibration_fixes_class_weighted_booster(model_data):
    X, y, Xt, yt = (
        model_data.X_train,
        model_data.churn_train,
        model_data.X_test,
        model_data.churn_test,
    )
    for method in ("sigmoid", "isotonic"):
        est = ChurnClassifier(**FAST, class_weight=UPWEIGHT, calibration=method).fit(X, y)
        raw = expit(est.decision_function(Xt))
        calibrated = est.predict_proba(Xt)[:, 1]
        assert brier_score_loss(yt, calibrated) < brier_score_loss(yt, raw) - 0.005
    plain = ChurnClassifier(**FAST, calibration=None).fit(X, y)
    calibrated = ChurnClassifier(**FAST).fit(X, y)
    assert brier_score_loss(yt, calibrated.predict_proba(Xt)[:, 1]) <= (
        brier_score_loss(yt, plain.predict_proba(Xt)[:, 1]) + 0.002
    )


def test_sigmoid_calibration_keeps_ranking(churn, model_data):
    raw = churn.decision_function(model_data.X_test)
    p = churn.predict_proba(model_data.X_test)[:, 1]
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(p[order]) >= 0)


def test_contributions_sum_to_raw_log_odds(churn, model_data):
    X = model_data.X_test.head(300)
    contrib = churn.contributions(X)
    assert list(contrib.columns) == [*FEATURES, "bias"]
    assert contrib.index.equals(X.index)
    raw_booster = churn.booster_.predict(
        churn.encoder_.transform(X), raw_score=True, num_iteration=churn.n_iter_
    )
    np.testing.assert_allclose(contrib.sum(axis=1), raw_booster, atol=1e-9)
    np.testing.assert_allclose(churn.decision_function(X), raw_booster, atol=1e-12)
    assert contrib["noise"].abs().mean() < contrib["days_since_last_purchase"].abs().mean()


def test_groups_keep_customers_on_one_side(model_data):
    X, y = model_data.X_train, model_data.churn_train
    groups = np.arange(len(X)) // 4  # four cutoffs per customer
    est = ChurnClassifier(**FAST).fit(X, y, groups=groups)
    p = est.predict_proba(model_data.X_test)[:, 1]
    assert roc_auc_score(model_data.churn_test, p) > 0.75


# --- baselines ----------------------------------------------------------------------------


def test_logistic_baseline(model_data):
    est = LogisticChurnBaseline().fit(model_data.X_train, model_data.churn_train)
    p = est.predict_proba(model_data.X_test)[:, 1]
    assert roc_auc_score(model_data.churn_test, p) > 0.75
    unseen = est.predict_proba(model_data.X_test.assign(plan="enterprise"))
    assert np.isfinite(unseen).all()
    assert est.feature_dtypes_["plan"] == "category"


def test_recency_baseline_ranks_by_recency(model_data):
    est = RecencyBaseline().fit(model_data.X_train, model_data.churn_train)
    X = model_data.X_test
    assert np.array_equal(est.decision_function(X), X["days_since_last_purchase"].to_numpy())
    p = est.predict_proba(X)[:, 1]
    assert spearmanr(p, X["days_since_last_purchase"]).statistic == pytest.approx(1.0)
    assert roc_auc_score(model_data.churn_test, p) > 0.6
    assert list(est.feature_names_in_) == ["days_since_last_purchase"]
    with pytest.raises(DataValidationError, match="features.recency: RecencyBaseline needs"):
        RecencyBaseline(column="recency").fit(X, model_data.churn_test)


def test_last_value_baseline(model_data):
    X = model_data.X_test
    est = LastValueBaseline().fit(model_data.X_train, model_data.ltv_train)
    expected = X["spend_90d"].fillna(0.0).clip(lower=0.0).to_numpy()
    assert np.array_equal(est.predict(X), expected)


# --- LTV ----------------------------------------------------------------------------------


def test_ltv_nonnegative_with_signal(ltv_model, model_data):
    pred = ltv_model.predict(model_data.X_test)
    assert (pred >= 0).all()
    assert spearmanr(model_data.expected_ltv_test, pred).statistic > 0.75
    assert spearmanr(model_data.ltv_test, pred).statistic > 0.45
    assert pred.sum() == pytest.approx(model_data.expected_ltv_test.sum(), rel=0.1)
    negative = model_data.ltv_train < 0
    assert ltv_model.n_negative_labels_ == negative.sum() > 0
    assert ltv_model.clipped_value_ == pytest.approx(-model_data.ltv_train[negative].sum())


def test_ltv_balance_matches_training_total(ltv_model, model_data):
    fitted_total = ltv_model.predict(model_data.X_train).sum()
    assert fitted_total == pytest.approx(np.clip(model_data.ltv_train, 0, None).sum(), rel=1e-9)
    unbalanced = clone(ltv_model).set_params(balance=False)
    unbalanced.fit(model_data.X_train, model_data.ltv_train)
    assert unbalanced.balance_scale_ == 1.0
    np.testing.assert_allclose(
        unbalanced.predict(model_data.X_test) * ltv_model.balance_scale_,
        ltv_model.predict(model_data.X_test),
        rtol=1e-12,
    )


def test_hurdle_components_multiply(model_data):
    est = LTVModel(kind="hurdle", **FAST).fit(model_data.X_train, model_data.ltv_train)
    parts = est.predict_components(model_data.X_test)
    assert list(parts.columns) == ["p_purchase", "spend_if_purchase", "expected_value"]
    assert parts["p_purchase"].between(0, 1).all() and (parts["spend_if_purchase"] > 0).all()
    np.testing.assert_array_equal(
        parts["expected_value"], parts["p_purchase"] * parts["spend_if_purchase"]
    )
    # buyers (stayers) should get a higher purchase probability than churners
    stay = model_data.churn_test == 0
    assert parts["p_purchase"][stay].mean() > parts["p_purchase"][~stay].mean() + 0.2


def test_ltv_rejects_bad_kind_and_all_zero_labels(model_data):
    with pytest.raises(ValueError, match="kind must be one of"):
        LTVModel(kind="gamma", **FAST).fit(model_data.X_train, model_data.ltv_train)
    with pytest.raises(ValueError, match="no row has a positive value"):
        LTVModel(**FAST).fit(model_data.X_train, np.zeros(len(model_data.X_train)))
