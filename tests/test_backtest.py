"""Backtest designs: rolling origin never trains on a label window that reaches the test
cutoff, grouped k-fold never splits a customer, nested selection sees training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from sklearn.metrics import brier_score_loss, roc_auc_score

from churnml.config import ChurnConfig, TrainingConfig
from churnml.data.simulate import simulate
from churnml.errors import ConfigError, DataValidationError
from churnml.labels import build_panel, labelled_cutoffs
from churnml.training.backtest import (
    PREDICTION_COLUMNS,
    backtest,
    fold_table,
    grouped_kfold_folds,
    inner_split,
    make_folds,
    rolling_origin_folds,
)

CHURN = ChurnConfig()  # 90-day horizon
FAST = {"n_estimators": 40}
TRAINING = TrainingConfig(n_origins=2, churn_params=FAST, ltv_params=FAST)
MONTHS = pd.date_range("2024-01-01", "2024-12-01", freq="MS").astype("datetime64[us]")


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    data = simulate(1500, seed=3)
    return build_panel(data, labelled_cutoffs(data, CHURN), churn=CHURN)


@pytest.fixture(scope="module")
def rolling(panel):
    return backtest(panel, TRAINING, CHURN)


@pytest.fixture(scope="module")
def one_cutoff(panel) -> pd.DataFrame:
    return panel[panel["cutoff"] == panel["cutoff"].max()].reset_index(drop=True)


KFOLD = TrainingConfig(backtest="grouped_kfold", n_folds=3, churn_params=FAST, ltv_params=FAST)


@pytest.fixture(scope="module")
def kfold(one_cutoff):
    return backtest(one_cutoff, KFOLD, CHURN)


def test_rolling_origin_worked_example() -> None:
    """Monthly cutoffs of 2024, 90-day window: test Oct 1 trains on Jan..Jul (Jul 1 + 90 d =
    Sep 29 <= Oct 1; Aug 1 + 90 d = Oct 30 > Oct 1)."""
    cut = np.repeat(MONTHS, 2)  # two customers per cutoff
    folds = rolling_origin_folds(cut, 90, n_origins=3)
    trained = [sorted(set(cut[f.train])) for f in folds]
    tested = [sorted(set(cut[f.test])) for f in folds]
    assert [t[0].month for t in map(lambda x: pd.DatetimeIndex(x), tested)] == [10, 11, 12]
    assert [pd.DatetimeIndex(t).month.tolist() for t in trained] == [
        list(range(1, 8)), list(range(1, 9)), list(range(1, 10))
    ]
    stepped = rolling_origin_folds(cut, 90, n_origins=2, origin_step=3, max_train_cutoffs=2)
    assert [pd.DatetimeIndex(sorted(set(cut[f.test]))).month.tolist() for f in stepped] == [
        [9], [12]
    ]
    assert [pd.DatetimeIndex(sorted(set(cut[f.train]))).month.tolist() for f in stepped] == [
        [5, 6], [8, 9]
    ]


@settings(max_examples=40, deadline=None)
@given(
    months=st.sets(st.integers(0, 23), min_size=2, max_size=24),
    window=st.integers(1, 200),
    n_origins=st.integers(1, 4),
    step=st.integers(1, 3),
)
def test_rolling_origin_trains_exactly_on_finished_label_windows(months, window, n_origins,
                                                                 step) -> None:
    cuts = pd.DatetimeIndex(sorted(pd.Timestamp("2023-01-01") + pd.DateOffset(months=m)
                                   for m in months))
    rows = np.repeat(cuts, 3)
    try:
        folds = rolling_origin_folds(rows, window, n_origins, step)
    except ConfigError:
        # some origin has no finished label window before it: check that is true
        origins = cuts[::-1][::step][:n_origins]
        assert any((cuts + pd.Timedelta(days=window) <= o).sum() == 0 for o in origins)
        return
    expected_origins = sorted(cuts[::-1][::step][:n_origins])
    for f, origin in zip(folds, expected_origins, strict=True):
        assert set(rows[f.test]) == {origin}
        reference = {c for c in cuts if c + pd.Timedelta(days=window) <= origin}
        assert set(rows[f.train]) == reference
        assert not set(f.train) & set(f.test)


def test_contractual_folds_use_the_grace_period_too() -> None:
    cut = pd.Series(MONTHS)
    panel = pd.DataFrame({"customer_id": range(len(cut)), "cutoff": cut, "churned": 0})
    contractual = ChurnConfig(kind="contractual", horizon_days=61, resubscribe_grace_days=14)
    # window 75 days: test Dec 1 trains up to Sep 1 (Sep 1 + 75 d = Nov 15), not Oct 1
    folds = make_folds(panel, TrainingConfig(n_origins=1), contractual)
    assert cut[folds[0].train].max() == pd.Timestamp("2024-09-01")
    plain = make_folds(panel, TrainingConfig(n_origins=1), ChurnConfig(horizon_days=61))
    assert cut[plain[0].train].max() == pd.Timestamp("2024-10-01")


def test_rolling_backtest_fold_tables_never_overlap_the_test_cutoff(rolling, panel) -> None:
    table = rolling.fold_table
    window = pd.Timedelta(days=CHURN.horizon_days)
    cutoffs = sorted(panel["cutoff"].unique())
    assert sorted(table.loc[table["role"] == "test", "cutoff"]) == cutoffs[-2:]
    for _, rows in table.groupby("fold"):
        test_cut = rows.loc[rows["role"] == "test", "cutoff"]
        assert len(test_cut) == 1
        train_cuts = rows.loc[rows["role"] == "train", "cutoff"]
        assert (train_cuts + window <= test_cut.iloc[0]).all()
        # expanding window: every eligible earlier cutoff is used
        eligible = [c for c in cutoffs if c + window <= test_cut.iloc[0]]
        assert sorted(train_cuts) == eligible
    metrics = rolling.metrics
    assert (metrics["train_last_cutoff"] + window <= metrics["cutoff"]).all()


def test_rolling_predictions_and_metrics_match_an_independent_computation(rolling,
                                                                          panel) -> None:
    pred = rolling.predictions
    assert list(pred.columns) == PREDICTION_COLUMNS
    assert len(pred) == (panel["cutoff"] >= sorted(panel["cutoff"].unique())[-2]).sum()
    assert not pred.duplicated(["customer_id", "cutoff"]).any()
    labels = pred.merge(panel[["customer_id", "cutoff", "churned", "ltv"]],
                        on=["customer_id", "cutoff"], suffixes=("", "_panel"))
    assert (labels["churned"] == labels["churned_panel"]).all()
    assert np.allclose(labels["ltv_actual"], labels["ltv"])
    rows = rolling.metrics.set_index(["model", "metric_set", "fold"])
    for fold, p in pred.groupby("fold"):
        for model, col in (("churn", "churn_probability"), ("recency", "baseline_probability"),
                           ("logistic", "logistic_probability")):
            row = rows.loc[(model, "classification", fold)]
            assert row["roc_auc"] == pytest.approx(roc_auc_score(p["churned"], p[col]))
            assert row["brier"] == pytest.approx(brier_score_loss(p["churned"], p[col]))
        assert rows.loc[("ltv", "regression", fold), "total_actual"] == pytest.approx(
            p["ltv_actual"].sum())
    # 3 churn + 2 LTV + 3 value-if-retained predictors + 5 value-at-risk rankings per fold
    assert len(rolling.metrics) == 13 * 2
    for fold, p in pred.groupby("fold"):
        stayed = p[p["churned"] == 0]
        row = rows.loc[("value_if_retained", "if_retained", fold)]
        assert row["n"] == len(stayed)
        assert row["spearman"] == pytest.approx(
            spearmanr(stayed["ltv_actual"], stayed["value_if_retained"]).statistic)
        lost = p["churned"] * p["baseline_ltv"].clip(lower=0)
        var = p["churn_probability"] * p["value_if_retained"]
        top = np.argsort(-var.to_numpy(), kind="stable")[:round(0.1 * len(p))]
        assert rows.loc[("churn", "value_at_risk", fold), "var_coverage_top_10"] == (
            pytest.approx(lost.to_numpy()[top].sum() / lost.sum(), abs=1e-3))
    # the simulator's churn is learnable: the model beats the recency baseline on average
    summary = rolling.summary.set_index(["model", "metric"])["mean"]
    assert summary[("churn", "roc_auc")] > summary[("recency", "roc_auc")]


def test_nested_selection_picks_one_candidate_per_fold(rolling) -> None:
    sel = rolling.selection
    assert set(sel["task"]) == {"ltv"}  # no churn candidates configured
    assert (sel.groupby("fold")["selected"].sum() == 1).all()
    assert (sel.groupby("fold").size() == 2).all()
    best = sel.loc[sel.groupby("fold")["value"].idxmax()]
    assert best["selected"].all()  # normalized Gini: higher is better


def test_grouped_kfold_never_puts_a_customer_on_both_sides(kfold, one_cutoff) -> None:
    ids = one_cutoff["customer_id"].to_numpy()
    for f in kfold.folds:
        assert not set(ids[f.train]) & set(ids[f.test])
    pred = kfold.predictions
    # out-of-fold: every customer predicted exactly once, by the fold that held it out
    assert sorted(pred["customer_id"]) == sorted(ids)
    table = kfold.fold_table
    assert (table.loc[table["role"] == "test", "customers"].sum()) == len(ids)


def test_grouped_kfold_on_a_multi_cutoff_panel_keeps_customers_together(panel) -> None:
    folds = grouped_kfold_folds(panel["customer_id"], panel["churned"], n_folds=4, seed=0)
    ids = panel["customer_id"].to_numpy()
    seen = np.zeros(len(panel), dtype=int)
    for f in folds:
        assert not set(ids[f.train]) & set(ids[f.test])
        seen[f.test] += 1
    assert (seen == 1).all()
    # stratified: every test fold's churn rate is near the overall rate
    rate = panel["churned"].mean()
    assert all(abs(panel["churned"].iloc[f.test].mean() - rate) < 0.05 for f in folds)


def test_test_labels_cannot_influence_selection_or_predictions(one_cutoff, kfold) -> None:
    """Replacing the LTV labels of one fold's test rows changes nothing that fold produced:
    not the nested LTV-model choice, not a prediction. (Churn labels stay: the folds are
    stratified on them.)"""
    fold = kfold.folds[0]
    scrambled = one_cutoff.copy()
    rng = np.random.default_rng(0)
    scrambled.loc[fold.test, "ltv"] = rng.exponential(1000.0, len(fold.test))
    again = backtest(scrambled, KFOLD, CHURN)
    before = kfold.predictions[kfold.predictions["fold"] == 0]
    after = again.predictions[again.predictions["fold"] == 0]
    for col in ("churn_probability", "ltv_predicted", "logistic_probability"):
        np.testing.assert_array_equal(before[col].to_numpy(), after[col].to_numpy())
    pd.testing.assert_frame_equal(  # the fit times ("seconds") are wall-clock, not results
        kfold.selection.query("fold == 0").drop(columns="seconds"),
        again.selection.query("fold == 0").drop(columns="seconds"))


def test_inner_split_is_temporal_when_possible(panel) -> None:
    train = panel[panel["cutoff"] <= "2024-06-01"].reset_index(drop=True)
    fit, val = inner_split(train, 90, 0.2, seed=0)
    cut = train["cutoff"]
    assert set(cut[val]) == {pd.Timestamp("2024-06-01")}
    assert (cut[fit] + pd.Timedelta(days=90) <= pd.Timestamp("2024-06-01")).all()
    assert set(cut[fit]) == {c for c in cut.unique() if c + pd.Timedelta(days=90)
                             <= pd.Timestamp("2024-06-01")}
    # one cutoff: a customer-grouped hold-out of about 20 % of the customers
    single = panel[panel["cutoff"] == panel["cutoff"].max()].reset_index(drop=True)
    fit, val = inner_split(single, 90, 0.2, seed=0)
    ids = single["customer_id"].to_numpy()
    assert not set(ids[fit]) & set(ids[val])
    assert len(val) == pytest.approx(0.2 * len(single), abs=1)


def test_bad_designs_raise_clear_errors(panel) -> None:
    with pytest.raises(ConfigError, match="n_origins"):
        rolling_origin_folds(np.repeat(MONTHS[:3], 2), 90, n_origins=3)
    with pytest.raises(DataValidationError, match="spend_90d"):
        backtest(panel.drop(columns="spend_90d"), TRAINING, CHURN)
    with pytest.raises(ConfigError, match="training.churn_params"):
        backtest(panel, TRAINING.model_copy(update={"churn_params": {"n_trees": 3}}), CHURN)


def test_fold_table_counts_rows_and_customers() -> None:
    panel = pd.DataFrame({"customer_id": [1, 2, 1, 2, 3], "cutoff": pd.to_datetime(
        ["2024-01-01"] * 2 + ["2024-02-01"] * 3)})
    folds = grouped_kfold_folds(panel["customer_id"], [0, 1, 0, 1, 1], n_folds=2, seed=0)
    table = fold_table(panel, folds)
    assert table.groupby("fold")["rows"].sum().tolist() == [5, 5]
    assert set(table.columns) == {"fold", "role", "cutoff", "rows", "customers"}
