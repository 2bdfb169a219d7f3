"""Evaluation metrics: hand-computed examples, sklearn and plain-pandas references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from churnml.training.evaluation import (
    calibration_table,
    capture,
    classification_metrics,
    cumulative_gains,
    decile_mape,
    expected_calibration_error,
    lift_table,
    normalized_gini,
    regression_metrics,
    revenue_lost,
    value_at_risk_coverage,
)

SETTINGS = settings(max_examples=40, deadline=None)
values = st.lists(st.floats(0, 1000, allow_nan=False), min_size=2, max_size=60)


def kaggle_gini(actual: np.ndarray, pred: np.ndarray) -> float:
    """Reference: the Kaggle normalized Gini (sort by pred desc, ties by position)."""

    def gini(a: np.ndarray, p: np.ndarray) -> float:
        order = np.lexsort((np.arange(len(a)), -p))
        cum = np.cumsum(a[order]) / a.sum()
        return cum.sum() / len(a) - (len(a) + 1) / (2 * len(a))

    return gini(actual, pred) / gini(actual, actual)


def pandas_decile_sums(score: np.ndarray, value: np.ndarray, n_bins: int) -> np.ndarray:
    """Reference without ties: rank by score desc, cut into equal rank bins, sum."""
    df = pd.DataFrame({"s": score, "v": value}).sort_values("s", ascending=False)
    edges = np.round(np.linspace(0, len(df), n_bins + 1)).astype(int)
    return np.array([df["v"].iloc[a:b].sum() for a, b in zip(edges[:-1], edges[1:], strict=True)])


# --- Gini -----------------------------------------------------------------------------------


def test_gini_perfect_reversed_and_hand_example():
    actual = np.array([0.0, 1.0, 3.0, 7.0, 2.0])
    assert normalized_gini(actual, actual) == pytest.approx(1.0)
    assert normalized_gini(actual, -actual) == pytest.approx(-1.0)
    # pred order (1, 3, 0): gains 0, 1/4, 1, 1 -> area 7/12 -> Gini 1/6; perfect Gini 1/2
    assert normalized_gini([0.0, 1.0, 3.0], [0.1, 0.3, 0.2]) == pytest.approx(1 / 3)
    assert np.isnan(normalized_gini([0.0, 0.0], [1.0, 2.0]))


@SETTINGS
@given(values, st.randoms(use_true_random=False))
def test_gini_matches_kaggle_reference_without_ties(actual, rnd):
    actual = np.array(actual)
    pred = np.array(rnd.sample(range(10_000), len(actual)), dtype=float)
    if actual.sum() == 0 or np.ptp(actual) == 0:
        return
    assert normalized_gini(actual, pred) == pytest.approx(kaggle_gini(actual, pred), abs=1e-9)
    assert -1 - 1e-12 <= normalized_gini(actual, pred) <= 1 + 1e-12


@SETTINGS
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=80))
def test_gini_of_binary_labels_is_two_auc_minus_one_with_ties(pairs):
    y = np.array([float(a) for a, _ in pairs])
    score = np.array([float(b) for _, b in pairs])  # few distinct values: many ties
    if not 0 < y.sum() < len(y):
        return
    assert normalized_gini(y, score) == pytest.approx(2 * roc_auc_score(y, score) - 1, abs=1e-9)


# --- capture, gains, lift -------------------------------------------------------------------


def test_capture_hand_example_and_ties():
    actual, score = [10.0, 0.0, 5.0, 5.0], [4.0, 3.0, 2.0, 1.0]
    assert capture(actual, score, 0.25) == pytest.approx(0.5)
    assert capture(actual, score, 0.5) == pytest.approx(0.5)
    assert capture(actual, score, 0.125) == pytest.approx(0.25)  # half of the first customer
    assert capture(actual, score, 1.0) == pytest.approx(1.0)
    # all tied: the expected share under random order is the population share
    assert capture(actual, [1.0] * 4, 0.25) == pytest.approx(0.25)
    # a tie block of the 10 and the 0 at the top: top 1 holds (10 + 0) / 2 on average
    assert capture(actual, [3.0, 3.0, 2.0, 1.0], 0.25) == pytest.approx(0.25)


@SETTINGS
@given(values, st.randoms(use_true_random=False))
def test_capture_is_monotone_and_bounded(actual, rnd):
    actual = np.array(actual)
    if actual.sum() == 0:
        return
    score = np.array([rnd.randint(0, 4) for _ in actual], dtype=float)
    shares = np.linspace(0, 1, 11)
    caps = np.array([capture(actual, score, s) for s in shares])
    assert np.all(np.diff(caps) >= -1e-12)
    assert caps[0] == 0 and caps[-1] == pytest.approx(1.0)
    best = np.array([capture(actual, actual, s) for s in shares])
    assert np.all(caps <= best + 1e-9)


def test_cumulative_gains_points():
    gains = cumulative_gains([10.0, 0.0, 5.0, 5.0], [4.0, 3.0, 3.0, 1.0])
    np.testing.assert_allclose(gains["population_share"], [0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(gains["value_share"], [0, 0.5, 0.75, 1.0])


def test_lift_table_hand_example():
    y = np.zeros(20)
    y[[0, 1, 7, 15]] = 1  # four churners
    score = -np.arange(20.0)  # position 0 scores highest
    table = lift_table(y, score)
    assert table["n"].tolist() == [2] * 10
    assert table["value"].tolist() == [2, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    assert table.loc[0, "rate"] == 1.0 and table.loc[0, "lift"] == pytest.approx(5.0)
    assert table.loc[0, "cumulative_gain"] == pytest.approx(0.5)
    assert table.loc[3, "cumulative_gain"] == pytest.approx(0.75)
    assert table.loc[3, "cumulative_lift"] == pytest.approx(0.75 / 0.4)
    assert table["cumulative_share"].iloc[-1] == pytest.approx(1.0)


def test_lift_table_matches_pandas_reference():
    rng = np.random.default_rng(3)
    score = rng.permutation(537).astype(float)
    value = rng.exponential(10.0, 537)
    table = lift_table(value, score, n_bins=10)
    np.testing.assert_allclose(table["value"], pandas_decile_sums(score, value, 10))
    assert table["n"].sum() == 537


# --- calibration and classification --------------------------------------------------------


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_calibration_table_matches_sklearn(strategy):
    rng = np.random.default_rng(5)
    p = rng.beta(2, 5, 2000)
    y = (rng.random(2000) < p).astype(float)
    table = calibration_table(y, p, n_bins=10, strategy=strategy)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy=strategy)
    np.testing.assert_allclose(table["observed_rate"], prob_true)
    np.testing.assert_allclose(table["mean_predicted"], prob_pred)
    assert table["n"].sum() == 2000
    assert (table["p_low"] <= table["mean_predicted"]).all()
    assert (table["mean_predicted"] <= table["p_high"]).all()


def test_expected_calibration_error_hand_example():
    # two bins of two: predictions 0.2 (outcomes 0, 1) and 0.8 (outcomes 1, 1)
    y, p = [0.0, 1.0, 1.0, 1.0], [0.2, 0.2, 0.8, 0.8]
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx((0.3 + 0.2) / 2)


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(7)
    p = rng.uniform(0.01, 0.99, 1000)
    y = (rng.random(1000) < p).astype(int)
    m = classification_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["log_loss"] == pytest.approx(log_loss(y, p))
    assert m["base_rate"] == pytest.approx(y.mean())
    top = np.argsort(-p)[:100]
    assert m["top_decile_lift"] == pytest.approx(y[top].mean() / y.mean())
    assert m["n"] == 1000


def test_classification_metrics_single_class_and_bad_input():
    m = classification_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert np.isnan(m["roc_auc"]) and np.isnan(m["top_decile_lift"])
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.09) / 3)
    with pytest.raises(ValueError, match="p: 1 missing"):
        classification_metrics([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="differ in length"):
        classification_metrics([0, 1], [0.1])
    with pytest.raises(ValueError, match="0/1"):
        classification_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classification_metrics([0, 1], [0.1, 1.2])


# --- regression (LTV) -----------------------------------------------------------------------


def test_decile_mape_hand_example_and_reference():
    # two bins: top (pred 20, actual 20) error 0; bottom (pred 10, actual 20) error 0.5
    assert decile_mape([20.0, 20.0], [10.0, 20.0], n_bins=2) == pytest.approx(0.25)
    rng = np.random.default_rng(11)
    pred = rng.permutation(300).astype(float) + 1.0
    actual = pred * rng.uniform(0.5, 1.5, 300)
    act = pandas_decile_sums(pred, actual, 10)
    prd = pandas_decile_sums(pred, pred, 10)
    assert decile_mape(actual, pred) == pytest.approx(np.mean(np.abs(prd - act) / act))


def test_regression_metrics_hand_example():
    actual = np.array([100.0, 0.0, 50.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 50.0])
    pred = np.array([90.0, 5.0, 40.0, 1.0, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0])
    m = regression_metrics(actual, pred)
    assert m["top_10_capture"] == pytest.approx(0.5)  # the 100 out of 200
    assert m["top_20_capture"] == pytest.approx(0.75)  # plus the 50 ranked second
    assert m["total_actual"] == 200.0 and m["total_predicted"] == pytest.approx(166.0)
    assert m["total_ratio"] == pytest.approx(166.0 / 200.0)
    ranks = pd.Series(actual).corr(pd.Series(pred), method="spearman")
    assert m["spearman"] == pytest.approx(ranks)
    assert m["mae"] == pytest.approx(np.abs(actual - pred).mean())
    assert m["rmse"] == pytest.approx(np.sqrt(((actual - pred) ** 2).mean()))
    assert m["normalized_gini"] == pytest.approx(kaggle_gini(actual, pred))


# --- value at risk --------------------------------------------------------------------------


def test_value_at_risk_coverage_hand_example():
    churned = [1, 0, 1, 1]
    prior = [100.0, 50.0, -10.0, 20.0]
    score = [0.9, 0.8, 0.7, 0.1]
    np.testing.assert_array_equal(revenue_lost(churned, prior), [100.0, 0.0, 0.0, 20.0])
    out = value_at_risk_coverage(churned, prior, score, shares=(0.25, 0.5, 1.0))
    assert out == pytest.approx(
        {
            "var_coverage_top_25": 100 / 120,
            "var_coverage_top_50": 100 / 120,
            "var_coverage_top_100": 1.0,
            # gains curve (0, 5/6, 5/6, 5/6, 1): area 0.75, Gini 0.5; perfect order
            # (0, 5/6, 1, 1, 1): area 5/6, Gini 2/3; normalized 0.5 / (2/3)
            "var_normalized_gini": 0.75,
            "revenue_lost_total": 120.0,
        }
    )
    nothing = value_at_risk_coverage([0, 0], [10.0, 20.0], [0.5, 0.2])
    assert np.isnan(nothing["var_coverage_top_10"]) and nothing["revenue_lost_total"] == 0.0
