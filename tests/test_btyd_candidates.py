"""BTYD models as `train` candidates: config validation, nested selection, value if retained
and scoring with a BTYD pair."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from churnml.config import ChurnConfig, TrainingConfig
from churnml.data.simulate import simulate
from churnml.labels import build_panel, labelled_cutoffs
from churnml.models import ChurnClassifier, LTVModel
from churnml.models.btyd import BTYDChurnModel, BTYDValueModel
from churnml.scoring.loading import ScoringModels
from churnml.scoring.score import score_features
from churnml.training.backtest import feature_columns, fit_models, predict_frame
from churnml.training.train import feature_importance

CHURN = ChurnConfig()
FAST = {"n_estimators": 30}


@pytest.mark.parametrize("bad, match", [
    ({"churn_candidates": [{"model": "btyd", "kind": "bg"}]}, "must be one of"),
    ({"churn_candidates": [{"model": "btyd", "num_leaves": 7}]}, "takes only"),
    ({"churn_candidates": [{"model": "xgboost"}]}, "model must be"),
    ({"ltv_candidates": [{"kind": "btyd", "btyd_model": "pareto"}]}, "must be one of"),
    ({"ltv_candidates": [{"kind": "hurdle", "btyd_model": "bgnbd"}]}, "needs kind: btyd"),
])
def test_bad_btyd_candidates_are_refused(bad, match) -> None:
    with pytest.raises(ValidationError, match=match):
        TrainingConfig(**bad)


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    data = simulate(800, seed=4)
    return build_panel(data, labelled_cutoffs(data, CHURN)[-2:], churn=CHURN)


@pytest.mark.slow
def test_btyd_candidates_compete_in_the_nested_selection(panel) -> None:
    training = TrainingConfig(
        churn_params=FAST, ltv_params=FAST,
        churn_candidates=[{}, {"model": "btyd", "kind": "bgnbd"}],
        ltv_candidates=[{"kind": "hurdle"}, {"kind": "btyd", "btyd_model": "pareto_nbd"}],
    )
    models = fit_models(panel, training, CHURN)
    sel = models.selection
    assert sorted(sel["task"].value_counts().items()) == [("churn", 2), ("ltv", 2)]
    assert sel.groupby("task")["selected"].sum().tolist() == [1, 1]
    chosen = {t: sel[(sel["task"] == t) & sel["selected"]]["candidate"].item()
              for t in ("churn", "ltv")}
    assert isinstance(models.churn, (ChurnClassifier, BTYDChurnModel)[chosen["churn"]])
    assert isinstance(models.ltv, (LTVModel, BTYDValueModel)[chosen["ltv"]])
    pred = predict_frame(models, panel)
    assert (pred["value_if_retained"] >= 0).all()


@pytest.mark.slow
def test_a_btyd_pair_trains_scores_and_explains_nothing(panel) -> None:
    training = TrainingConfig(churn_candidates=[{"model": "btyd"}],
                              ltv_candidates=[{"kind": "btyd", "btyd_model": "bgnbd"}])
    models = fit_models(panel, training, CHURN)
    assert isinstance(models.churn, BTYDChurnModel) and models.churn.kind == "pareto_nbd"
    assert isinstance(models.ltv, BTYDValueModel) and models.ltv.kind == "bgnbd"
    assert models.ltv.horizon_days == CHURN.horizon_days
    X = panel[feature_columns(panel)]
    # value if retained = E[purchases | any] x order value: at least one order's value
    f = models.ltv.btyd_.predict_frame(X)
    vir = models.ltv.predict_if_retained(X)
    p_any = 1.0 - f["btyd_p_no_purchase"]
    want = np.maximum(f["btyd_expected_purchases"] / p_any, 1.0) * f[
        "btyd_expected_order_value"]
    np.testing.assert_allclose(vir, want, rtol=1e-12)
    assert (vir >= f["btyd_expected_order_value"] - 1e-9).all()
    assert (vir >= models.ltv.predict(X) - 1e-9).all()
    importance = feature_importance(models)
    assert importance.groupby("model")["importance"].sum().tolist() == pytest.approx([1, 1])
    latest = panel[panel["cutoff"] == panel["cutoff"].max()].drop(columns=["churned", "ltv"])
    scoring = ScoringModels(models.churn, models.ltv, "btyd-churn v1", "btyd-ltv v1")
    scores = score_features(latest, scoring).scores
    assert (scores["value_at_risk"]
            == scores["churn_probability"] * scores["value_if_retained"]).all()
    assert scores["reasons"].isna().all()  # no trees to attribute


def test_one_population_fit_serves_every_btyd_candidate_of_the_same_rows(panel) -> None:
    """The churn and the value BTYD model of one fold share one maximum-likelihood fit; other
    rows get their own, equal to a fit from scratch."""
    from churnml.models import btyd

    X = panel[feature_columns(panel)]
    btyd._FITTED.clear()
    churn = BTYDChurnModel(kind="bgnbd").fit(X)
    value = BTYDValueModel(kind="bgnbd", horizon_days=30).fit(X)
    assert len(btyd._FITTED) == 1
    np.testing.assert_array_equal(churn.btyd_.params_, value.btyd_.params_)
    np.testing.assert_array_equal(churn.btyd_.spend_params_, value.btyd_.spend_params_)
    half = X.iloc[: len(X) // 2]
    cached = BTYDChurnModel(kind="bgnbd").fit(half).btyd_.params_
    assert len(btyd._FITTED) == 2
    st = btyd.summary_statistics(half)
    fresh = btyd.fit_transaction_model("bgnbd", st["x"], st["t_x"], st["T"])
    np.testing.assert_array_equal(cached, fresh)
    assert not np.array_equal(cached, churn.btyd_.params_)


def test_candidate_costs_sum_the_inner_fits_per_candidate() -> None:
    from churnml.training.train import candidate_costs

    selection = pd.DataFrame({
        "task": ["ltv"] * 4, "candidate": [0, 1, 0, 1],
        "params": ["{'kind': 'hurdle'}", "{'kind': 'btyd'}"] * 2,
        "metric": "normalized_gini", "value": [0.5, 0.4, 0.6, 0.3],
        "selected": [True, False, True, False], "seconds": [1.0, 20.0, 2.0, 30.0],
    })
    costs = candidate_costs(selection)
    assert costs.to_dict("records") == [
        {"task": "ltv", "params": "{'kind': 'hurdle'}", "chosen": 2, "selections": 2,
         "seconds": 3.0},
        {"task": "ltv", "params": "{'kind': 'btyd'}", "chosen": 0, "selections": 2,
         "seconds": 50.0}]
    assert candidate_costs(pd.DataFrame()).empty
