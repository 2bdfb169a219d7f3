"""Code-free model state: every estimator round-trips through JSON and predicts identically."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_btyd import frame, simulate_pareto

from churnml.models import (
    BTYDChurnModel,
    BTYDFeatures,
    BTYDValueModel,
    ChurnClassifier,
    LastValueBaseline,
    LogisticChurnBaseline,
    LTVModel,
    RecencyBaseline,
)
from churnml.models._state import (
    STATE_CLASSES,
    ModelStateError,
    dump_estimator,
    load_estimator,
    read_state,
    write_state,
)
from churnml.models.logistic import _columns

FAST = {"n_estimators": 60, "n_jobs": 1}


def _round_trip(est):
    """Through JSON text, as an export file would."""
    return load_estimator(json.loads(json.dumps(dump_estimator(est))))


def _outputs(est, X: pd.DataFrame) -> list[np.ndarray]:
    out = []
    for method in ("predict_proba", "decision_function", "predict", "predict_frame",
                   "predict_if_retained"):
        if hasattr(est, method):
            value = getattr(est, method)(X)
            out.append(value.to_numpy() if isinstance(value, pd.DataFrame) else value)
    if hasattr(est, "contributions"):
        out.append(est.contributions(X).to_numpy())
    if hasattr(est, "predict_components"):
        out.append(est.predict_components(X).to_numpy())
    return out


def _test_frame(X: pd.DataFrame) -> pd.DataFrame:
    """Test rows plus a category never seen at fit and a missing one."""
    X = X.copy()
    X.loc[X.index[:3], "plan"] = "enterprise"
    X.loc[X.index[3:6], "plan"] = None
    return X


CHURN_LIKE = {
    "churn_sigmoid": lambda: ChurnClassifier(**FAST),
    "churn_isotonic": lambda: ChurnClassifier(calibration="isotonic", **FAST),
    "churn_uncalibrated_weighted": lambda: ChurnClassifier(
        calibration=None, class_weight={0: 1.0, 1: 3.0}, **FAST),
    "churn_early_stopped": lambda: ChurnClassifier(learning_rate=0.5, n_estimators=300),
    "logistic": lambda: LogisticChurnBaseline(class_weight="balanced"),
    "recency": lambda: RecencyBaseline(),
}
VALUE_LIKE = {
    "ltv_hurdle": lambda: LTVModel(kind="hurdle", **FAST),
    "ltv_tweedie": lambda: LTVModel(kind="tweedie", balance=False, **FAST),
    "ltv_dedicated_if_retained": lambda: LTVModel(if_retained="dedicated", **FAST),
    "last_value": lambda: LastValueBaseline(),
}


@pytest.mark.parametrize("name", [*CHURN_LIKE, *VALUE_LIKE])
def test_round_trip_predicts_identically(name, model_data):
    make = {**CHURN_LIKE, **VALUE_LIKE}[name]
    y = model_data.churn_train if name in CHURN_LIKE else model_data.ltv_train
    est = make().fit(model_data.X_train, y)
    restored = _round_trip(est)
    assert type(restored) is type(est)
    assert restored.get_params() == est.get_params()
    assert list(restored.feature_names_in_) == list(est.feature_names_in_)
    assert restored.feature_dtypes_ == est.feature_dtypes_
    X = _test_frame(model_data.X_test)
    for got, want in zip(_outputs(restored, X), _outputs(est, X), strict=True):
        assert np.array_equal(got, want)


def test_early_stopped_booster_keeps_its_tree_count(model_data):
    est = ChurnClassifier(learning_rate=0.5, n_estimators=300).fit(
        model_data.X_train, model_data.churn_train)
    assert est.n_iter_ < 300
    restored = _round_trip(est)
    assert restored.n_iter_ == est.n_iter_
    assert restored.booster_.num_trees() == est.n_iter_


def test_logistic_matches_the_sklearn_pipeline(model_data):
    """The plain-array predictions equal scikit-learn's own pipeline (independent reference),
    including an all-missing column (dropped by the imputer) and unseen/missing categories."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    X = model_data.X_train.assign(empty=np.nan)
    est = LogisticChurnBaseline().fit(X, model_data.churn_train)
    reference = Pipeline([("columns", _columns()),
                          ("model", LogisticRegression(max_iter=1000))])
    with pytest.warns(UserWarning, match="Skipping features without any observed"):
        reference.fit(est.encoder_.transform(X), model_data.churn_train)
    Xt = _test_frame(model_data.X_test.assign(empty=np.nan))
    want = reference.predict_proba(est.encoder_.transform(Xt))
    np.testing.assert_allclose(est.predict_proba(Xt), want, rtol=0, atol=1e-12)
    assert "empty" in est.indicators_ and "empty" not in est.medians_


@pytest.fixture(scope="module")
def btyd_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    x, t_x, T = simulate_pareto(np.array([0.8, 40.0, 0.6, 60.0]), 600, seed=3)
    m = np.random.default_rng(4).gamma(5.0, 6.0, x.size)
    X = frame(x, t_x, T, m)
    return X.iloc[:400], X.iloc[400:]


@pytest.mark.parametrize("cls", [BTYDFeatures, BTYDChurnModel, BTYDValueModel])
@pytest.mark.parametrize("kind", ["pareto_nbd", "bgnbd"])
def test_btyd_round_trip(cls, kind, btyd_data):
    train, test = btyd_data
    est = cls(kind=kind, horizon_days=60).fit(train)
    restored = _round_trip(est)
    assert restored.get_params() == est.get_params()
    for got, want in zip(_outputs(restored, test), _outputs(est, test), strict=True):
        assert np.array_equal(got, want)


def test_every_estimator_is_on_the_allow_list():
    import churnml.models as models

    classes = {getattr(models, n) for n in models.__all__} - {models.FrameEncoder}
    assert {c.__name__ for c in classes} <= set(STATE_CLASSES)


def test_state_file_is_plain_json(tmp_path, model_data):
    est = LTVModel(kind="hurdle", **FAST).fit(model_data.X_train, model_data.ltv_train)
    path = write_state(est, tmp_path / "ltv.model.json")
    doc = json.loads(path.read_text())
    assert doc["class"] == "LTVModel" and doc["format"] == "churnml.estimator-state"
    assert doc["state"]["boosters"]["purchase_model_"]["model"].startswith("tree\n")
    restored = read_state(path)
    assert np.array_equal(restored.predict(model_data.X_test), est.predict(model_data.X_test))


def test_hostile_or_broken_state_is_refused(tmp_path, model_data):
    est = RecencyBaseline().fit(model_data.X_train, model_data.churn_train)
    doc = dump_estimator(est)
    path = tmp_path / "m.json"
    # a class outside the allow-list is never imported or called
    path.write_text(json.dumps({**doc, "class": "os.system"}))
    with pytest.raises(ModelStateError, match=r"m\.json: model state of class 'os\.system' is "
                       "not allowed"):
        read_state(path)
    path.write_text(json.dumps({**doc, "format": "pickle"}))
    with pytest.raises(ModelStateError, match="not a churnml model state"):
        read_state(path)
    broken = json.loads(json.dumps(doc))
    del broken["state"]["fill_value"]
    path.write_text(json.dumps(broken))
    with pytest.raises(ModelStateError, match="lacks 'fill_value'"):
        read_state(path)
    path.write_text("{not json")
    with pytest.raises(ModelStateError, match="not a JSON model state"):
        read_state(path)
    # a parameter the class does not take
    bad = json.loads(json.dumps(doc))
    bad["state"]["params"]["__class__"] = "x"
    path.write_text(json.dumps(bad))
    with pytest.raises(ModelStateError, match="bad parameters"):
        read_state(path)
    # a garbled booster text
    churn = ChurnClassifier(**FAST).fit(model_data.X_train, model_data.churn_train)
    garbled = dump_estimator(churn)
    garbled["state"]["booster"]["model"] = "tree\nversion=v4\nnum_class=oops\n"
    path.write_text(json.dumps(garbled))
    with pytest.raises(ModelStateError):
        read_state(path)
