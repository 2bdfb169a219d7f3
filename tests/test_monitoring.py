"""Monitoring: score history, CBPE estimates, PSI drift, realized performance, alarms."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churnml.config import MonitoringConfig
from churnml.data.scenarios import churn_shock, spend_shift
from churnml.data.simulate import simulate
from churnml.features.profile import GRID, profile_frame, profile_parquet
from churnml.features.spec import FeatureSpec
from churnml.labels import at_risk
from churnml.monitoring import (
    ScoreHistory,
    estimate,
    expected_auc,
    expected_brier,
    mix_psi,
    profile_psi,
    psi,
)
from churnml.monitoring.alarms import Alarm
from churnml.monitoring.monitor import (
    Reference,
    _interval_alarms,
    _on_data,
    treated_customers,
)
from churnml.monitoring.performance import CalibrationReference
from churnml.monitoring.replay import fit_deployed_model, fit_value_model, replay
from churnml.monitoring.value import (
    profile_mean,
    shift_alarms,
    spend_per_purchase_changes,
    value_metrics,
)

# ----------------------------------------------------------------------------- CBPE


def brute_force_expected_auc(p: np.ndarray) -> float:
    """Σ_{i≠j} p_i (1 − p_j) ([s_i > s_j] + ½[s_i = s_j]) / Σ_{i≠j} p_i (1 − p_j)."""
    num = den = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if i == j:
                continue
            w = p[i] * (1 - p[j])
            den += w
            num += w * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    return num / den


def test_expected_auc_equals_the_pairwise_formula_with_ties():
    rng = np.random.default_rng(3)
    p = np.round(rng.beta(2, 5, 60), 1)  # rounding makes many ties
    assert expected_auc(p) == pytest.approx(brute_force_expected_auc(p), abs=1e-12)
    p2 = np.array([0.1, 0.9])  # hand: pairs (0.9 pos, 0.1 neg) 0.81, (0.1 pos, 0.9 neg) 0.01
    assert expected_auc(p2) == pytest.approx(0.81 / 0.82)
    assert expected_brier(p2) == pytest.approx(0.09)


def test_estimates_match_realized_metrics_on_labels_drawn_from_the_probabilities():
    rng = np.random.default_rng(0)
    p = rng.beta(1.5, 4.0, 3000)
    est = estimate(p, n_draws=200, seed=1)
    aucs, briers, covered = [], [], 0
    for _ in range(100):
        y = (rng.random(p.size) < p).astype(int)
        auc, brier = roc_auc_score(y, p), np.mean((p - y) ** 2)
        aucs.append(auc)
        briers.append(brier)
        covered += est["est_roc_auc_low"] <= auc <= est["est_roc_auc_high"]
    # in expectation: the mean of 100 realized values is within 3 standard errors
    assert abs(np.mean(aucs) - est["est_roc_auc"]) < 3 * np.std(aucs) / 10
    assert abs(np.mean(briers) - est["est_brier"]) < 3 * np.std(briers) / 10
    assert 88 <= covered <= 100  # a 95 % interval
    assert est["est_roc_auc_low"] < est["est_roc_auc"] < est["est_roc_auc_high"]


def test_expected_brier_under_other_label_probabilities_by_hand():
    # y ~ Bernoulli(0.5): (0.1 − y)² is 0.01 or 0.81, (0.9 − y)² is 0.81 or 0.01: mean 0.41
    assert expected_brier([0.1, 0.9], [0.5, 0.5]) == pytest.approx(0.41)
    assert expected_brier([0.1, 0.9]) == pytest.approx(0.09)  # q = p: mean p (1 − p)


def test_calibration_reference_pools_violators_and_round_trips():
    # 10 customers at p = 0.2 of whom 5 churned, 10 at p = 0.6 of whom 3: the rates fall,
    # isotonic regression pools them to 8 / 20 = 0.4
    p, y = np.r_[np.full(10, 0.2), np.full(10, 0.6)], np.r_[np.ones(5), np.zeros(5),
                                                             np.ones(3), np.zeros(7)]
    ref = CalibrationReference.from_labels(p, y, "2023-10-01")
    np.testing.assert_allclose(ref.recalibrate([0.1, 0.2, 0.6, 0.9]), 0.4)
    # rising rates 0.1 and 0.7: kept, linear in between, flat beyond
    up = CalibrationReference.from_labels(p, np.r_[np.ones(1), np.zeros(9), np.ones(7),
                                                   np.zeros(3)])
    np.testing.assert_allclose(up.recalibrate([0.1, 0.4, 0.6, 0.95]), [0.1, 0.4, 0.7, 0.7])
    back = CalibrationReference.from_dict(json.loads(json.dumps(ref.to_dict())))
    np.testing.assert_array_equal(back.n, [10, 10])
    np.testing.assert_array_equal(back.churned, [5, 3])
    assert back.cutoffs == ("2023-10-01",)
    with pytest.raises(ValueError, match="churned <= n"):
        CalibrationReference.from_dict({"p": [0.2], "n": [3], "churned": [4]})


def test_period_error_is_the_rms_of_leave_one_window_out_errors():
    # both windows score everyone 0.3; window A churns at 0.3, window B at 0.5.
    # Calibrated on B, A's expected Brier is 0.5 − 2·0.3·0.5 + 0.09 = 0.29 against a
    # realized 0.3·0.49 + 0.7·0.09 = 0.21 (+0.08); calibrated on A, B's is 0.21 against 0.29
    a = CalibrationReference.from_labels(np.full(10, 0.3), np.r_[np.ones(3), np.zeros(7)], "A")
    b = CalibrationReference.from_labels(np.full(10, 0.3), np.r_[np.ones(5), np.zeros(5)], "B")
    both = CalibrationReference.combine([a, b])
    errors = both.window_errors()
    assert [e["brier"] for e in errors] == pytest.approx([0.08, -0.08])
    assert [e["roc_auc"] for e in errors] == pytest.approx([0.0, 0.0])  # all tied
    assert both.period_error() == pytest.approx(
        {"roc_auc": 0.0, "brier": 0.08, "windows": 2, "distance_scale": 1.0})
    assert a.period_error()["brier"] == 0.0  # one window
    # windows named by date, 30 days apart (d0 = 30), mean date 15 days after the first:
    # 135 days from it the error has grown by √(120 / 30) = 2; near the windows not at all
    dated = CalibrationReference.combine([
        CalibrationReference.from_labels(a.p.repeat(10), [1] * 3 + [0] * 7, "2024-01-01"),
        CalibrationReference.from_labels(b.p.repeat(10), [1] * 5 + [0] * 5, "2024-01-31")])
    assert dated.period_error(at="2024-05-15")["brier"] == pytest.approx(0.16)
    assert dated.period_error(at="2024-01-20")["brier"] == pytest.approx(0.08)
    np.testing.assert_allclose(both.recalibrate([0.3]), 0.4)  # pooled: 8 of 20


def _miscalibrated(p):
    """The true churn probability behind a model's over-confident, under-predicting ``p``."""
    logit = np.log(p / (1 - p))
    return 1 / (1 + np.exp(-(0.7 * logit + 0.5)))


def test_recalibrated_intervals_cover_a_miscalibrated_model_at_the_nominal_rate():
    rng = np.random.default_rng(7)
    p_ref = rng.beta(1.5, 4.0, 20_000)  # reference window: the model's p, true outcomes
    ref = CalibrationReference.from_labels(p_ref, rng.random(p_ref.size) < _miscalibrated(p_ref))
    p = rng.beta(1.5, 4.0, 3_000)
    truth = _miscalibrated(p)
    est = estimate(p, n_draws=200, seed=1, reference=ref)
    raw = estimate(p, n_draws=200, seed=1)
    hits = {"auc": 0, "brier": 0, "raw_brier": 0}
    aucs, briers = [], []
    for _ in range(100):
        y = (rng.random(p.size) < truth).astype(int)
        auc, brier = roc_auc_score(y, p), np.mean((p - y) ** 2)
        aucs.append(auc)
        briers.append(brier)
        hits["auc"] += est["est_roc_auc_low"] <= auc <= est["est_roc_auc_high"]
        hits["brier"] += est["est_brier_low"] <= brier <= est["est_brier_high"]
        hits["raw_brier"] += raw["est_brier_low"] <= brier <= raw["est_brier_high"]
    # 95 % intervals (wider by the calibrator's error): P(<= 87 of 100 | 95 %) < 0.5 %
    assert hits["auc"] >= 88 and hits["brier"] >= 88
    assert hits["raw_brier"] <= 20  # label noise alone: the calibration bias lies outside
    # unbiased: the recalibrated estimates lie within 4 standard errors of the mean truth
    assert abs(np.mean(aucs) - est["est_roc_auc"]) < 4 * np.std(aucs) / 10 + 0.002
    assert abs(np.mean(briers) - est["est_brier"]) < 4 * np.std(briers) / 10 + 0.001
    assert est["est_recalibrated"] == 1.0 and raw["est_recalibrated"] == 0.0


def test_a_realized_value_beyond_the_alarm_bound_is_a_performance_alarm():
    row = {"cutoff": pd.Timestamp("2024-02-01"), "est_roc_auc": 0.92,
           "est_roc_auc_alarm_low": 0.90, "real_roc_auc": 0.89, "est_brier": 0.09,
           "est_brier_alarm_high": 0.10, "real_brier": 0.095}
    alarms = _interval_alarms(row)
    assert [(a.cause, a.check, a.column) for a in alarms] == [
        ("performance", "estimate_interval", "roc_auc")]
    assert str(alarms[0]).startswith("2024-02-01: realized ROC AUC 0.890 is below")
    assert _interval_alarms({**row, "real_roc_auc": 0.95, "real_brier": 0.07}) == []  # better
    # on data with a data alarm the miss is the data's doing
    assert [a.cause for a in _on_data(alarms, True)] == ["data"]


def test_a_reference_without_calibration_data_still_loads():
    old = {"cutoff": "2023-10-01T00:00:00", "model_version": "3", "features": {},
           "scores": {}, "segments": {"loyal": 5}, "backtest": {"roc_auc": 0.9}}
    ref = Reference.from_json(json.dumps(old))
    assert ref.calibration is None and ref.value == {}
    ref.calibration = CalibrationReference.from_labels([0.2, 0.4], [0, 1], "2023-10-01")
    ref.value = {"value_ratio": 1.1}
    again = Reference.from_json(ref.to_json())
    np.testing.assert_array_equal(again.calibration.churned, ref.calibration.churned)
    assert again.value == {"value_ratio": 1.1}


def test_backtest_outcomes_make_one_window_per_origin(tmp_path):
    from churnml.config import Config
    from churnml.monitoring.jobs import backtest_outcomes

    cfg = Config.model_validate({"data": {"dataset": "simulated"}, "output_dir": str(tmp_path)})
    assert backtest_outcomes(cfg, pd.Timestamp("2024-03-01")) == (None, {})  # no file
    pred = pd.DataFrame({
        "customer_id": ["a", "b", "c", "a", "b", "c"],
        "cutoff": pd.to_datetime(["2024-02-01"] * 3 + ["2024-03-01"] * 3),
        "fold": [0, 0, 0, 1, 1, 1], "churned": [1, 0, 0, 0, 1, 0],
        "churn_probability": [0.8, 0.1, 0.3, 0.2, 0.6, 0.4],
        "ltv_actual": [0.0, 10.0, 20.0, 30.0, 0.0, 30.0],
        "ltv_predicted": [5.0, 10.0, 15.0, 20.0, 10.0, 30.0],
        "value_if_retained": [20.0, 12.0, 18.0, 25.0, 20.0, 35.0],
    })
    pred.to_parquet(tmp_path / "backtest_predictions.parquet")
    calibration, value = backtest_outcomes(cfg, pd.Timestamp("2024-03-01"))
    assert calibration.cutoffs == ("2024-02-01", "2024-03-01")
    assert calibration.size == 6 and calibration.churned.sum() == 2
    # value metrics of the latest origin: 60 realized against 60 predicted, 60 / 60 retained
    assert value["value_ratio"] == pytest.approx(1.0)
    assert value["retained_ratio"] == pytest.approx(60 / 60)
    # another training's predictions (latest origin not the models' last cutoff): unused
    assert backtest_outcomes(cfg, pd.Timestamp("2024-04-01")) == (None, {})


# ----------------------------------------------------------------------------- value


def _lorenz_gini(actual, order_by):
    """Gini of ``actual`` ordered by ``order_by`` (descending): 2 x area under the gains
    curve − 1, the curve through the points (k / n, cumulative share of actual)."""
    a = np.asarray(actual, float)[np.argsort(-np.asarray(order_by, float), kind="stable")]
    gains = np.r_[0, np.cumsum(a) / a.sum()]
    return 2 * np.trapezoid(gains, dx=1 / a.size) - 1


def test_value_metrics_on_a_hand_built_frame():
    frame = pd.DataFrame({"ltv": [10.0, 0.0, 30.0, 20.0], "churned": [0, 1, 0, 0],
                          "expected_value": [20.0, 5.0, 25.0, 10.0],
                          "value_if_retained": [25.0, 10.0, 30.0, 15.0]})
    m = value_metrics(frame)
    assert m["value_ratio"] == pytest.approx(60 / 60)
    assert m["retained_ratio"] == pytest.approx(60 / 70)  # the three who stayed
    gini = _lorenz_gini(frame["ltv"], frame["expected_value"]) / _lorenz_gini(
        frame["ltv"], frame["ltv"])
    assert m["value_gini"] == pytest.approx(gini)
    assert value_metrics(frame, prefix="real_")["real_value_ratio"] == m["value_ratio"]


def test_spend_per_purchase_change_from_profiles():
    grid = pd.DataFrame({"x": np.arange(0, 10_001) / 100})  # uniform 0..100
    # quantiles 0, 1, ..., 100; the mean up to the 99th percentile is 49.5
    assert profile_mean(profile_frame(grid)["x"]) == pytest.approx(49.5)
    ref = profile_frame(pd.DataFrame({"spend_30d": np.full(500, 50.0),
                                      "purchases_30d": np.full(500, 2.0),
                                      "spend_total": np.full(500, 80.0)}))
    cur = profile_frame(pd.DataFrame({"spend_30d": np.full(500, 42.0),
                                      "purchases_30d": np.full(500, 2.4),
                                      "spend_total": np.full(500, 20.0)}))
    # 25 per purchase before, 17.5 after: −30 %; spend_total has no purchase count.
    # Noise over 1,000 and 1,200 purchases: √(1/1000 + 1/1200)
    changes = spend_per_purchase_changes(ref, cur)
    assert list(changes) == ["spend_per_purchase_30d"]
    assert changes["spend_per_purchase_30d"] == pytest.approx(
        (-0.3, np.sqrt(1 / 1000 + 1 / 1200)))
    alarms: list[Alarm] = []
    shift_alarms(pd.Timestamp("2024-02-01"), changes, 0.05, alarms)
    assert [(a.cause, a.column) for a in alarms] == [("value", "spend_per_purchase_30d")]
    # the same −30 % over 40 and 48 purchases is within 3 standard errors (±65 %): no alarm
    shift_alarms(pd.Timestamp("2024-02-01"), {"spend_per_purchase_30d": (
        -0.3, np.sqrt(1 / 40 + 1 / 48))}, 0.05, alarms)
    assert len(alarms) == 1


def test_spend_shift_scales_the_chosen_customers_later_amounts():
    data = simulate(400, start="2023-01-01", end="2023-12-31", seed=2)
    start = pd.Timestamp("2023-07-01")
    shifted = spend_shift(data, start, share=0.5, factor=0.7, seed=0)
    before, after = data.transactions, shifted.transactions
    pd.testing.assert_frame_equal(after.drop(columns="amount"), before.drop(columns="amount"))
    ratio = after["amount"] / before["amount"]
    late = (before["ts"] >= start).to_numpy()
    np.testing.assert_allclose(ratio[~late], 1.0)
    assert np.isin(np.round(ratio[late], 9), [0.7, 1.0]).all()
    hit = set(after.loc[late & np.isclose(ratio, 0.7), "customer_id"])
    customers = before["customer_id"].nunique()
    # each customer is hit with probability 0.5: within 4 binomial standard deviations
    assert abs(len(hit) - customers / 2) < 4 * np.sqrt(customers / 4) + (customers - len(
        set(before.loc[late, "customer_id"])))
    with pytest.raises(ValueError, match="share"):
        spend_shift(data, start, share=0.0, factor=0.7)


# ----------------------------------------------------------------------------- drift


def test_psi_worked_example():
    # (0.25 − 0.5) ln(0.25 / 0.5) + (0.75 − 0.5) ln(0.75 / 0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * np.log(2) + 0.25 * np.log(1.5))
    assert psi([0.2, 0.8], [0.2, 0.8]) == 0.0
    assert mix_psi({"a": 50, "b": 50}, {"a": 25, "b": 75}) == pytest.approx(
        psi([0.5, 0.5], [0.25, 0.75]))


def test_profile_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = profile_frame(pd.DataFrame({"x": rng.normal(size=5000)}))["x"]
    same = profile_frame(pd.DataFrame({"x": rng.normal(size=5000)}))["x"]
    moved = profile_frame(pd.DataFrame({"x": rng.normal(1.0, 1.0, size=5000)}))["x"]
    assert profile_psi(ref, same) < 0.02
    assert profile_psi(ref, moved) > 0.25
    cats = pd.DataFrame({"c": pd.Series(["a"] * 60 + ["b"] * 40 + [None] * 0, dtype="str")})
    cats2 = pd.DataFrame({"c": pd.Series(["a"] * 30 + ["b"] * 70, dtype="str")})
    expected = psi([0.6, 0.4, 0.0], [0.3, 0.7, 0.0])
    assert profile_psi(profile_frame(cats)["c"], profile_frame(cats2)["c"]) == pytest.approx(
        expected)


def test_profiles_of_frames_and_parquet_agree_with_numpy(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({
        "x": np.where(rng.random(1000) < 0.1, np.nan, rng.exponential(3.0, 1000)),
        "plan": pd.Series(rng.choice(["a", "b", "c"], 1000), dtype="str"),
        "weird name; DROP": rng.integers(0, 5, 1000).astype(float),
    })
    prof = profile_frame(frame)
    x = frame["x"].dropna().to_numpy()
    assert prof["x"]["missing"] == pytest.approx(frame["x"].isna().mean())
    np.testing.assert_allclose(prof["x"]["quantiles"], np.quantile(x, GRID), rtol=1e-12)
    assert prof["plan"]["shares"] == pytest.approx(
        frame["plan"].value_counts(normalize=True).to_dict())
    path = tmp_path / "f.parquet"
    frame.to_parquet(path)
    again = profile_parquet(path, {"x": "numeric", "plan": "categorical",
                                   "weird name; DROP": "numeric"})
    assert json.dumps(again, sort_keys=True) == json.dumps(prof, sort_keys=True)


# ----------------------------------------------------------------------------- history


def _scores(ids: list[str], p: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ids, "churn_probability": p,
                         "risk_segment": ["a"] * len(ids)})


def test_history_appends_replaces_and_reads_back(tmp_path):
    hist = ScoreHistory(tmp_path / "h")
    hist.write(_scores(["007", "7"], [0.1, 0.2]), {"cutoff": "2024-01-01", "model_version": "v1"})
    hist.write(_scores(["007"], [0.3]), {"cutoff": "2024-02-01", "model_version": "v1"})
    assert hist.cutoffs() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")]
    hist.write(_scores(["8", "9", "10"], [0.5, 0.6, 0.7]),
               {"cutoff": "2024-01-01", "model_version": "v2"})  # re-score: replaces
    back = hist.read()
    assert len(back) == 4
    jan = back[back["cutoff"] == pd.Timestamp("2024-01-01")]
    assert jan["customer_id"].tolist() == ["8", "9", "10"]
    assert hist.run("2024-01-01")["model_version"] == "v2"
    assert hist.scores("2024-02-01")["customer_id"].tolist() == ["007"]  # ids stay strings
    assert not [p for p in (tmp_path / "h").iterdir() if p.name.startswith(".")]


def test_a_failed_rescore_leaves_the_previous_run(tmp_path):
    hist = ScoreHistory(tmp_path / "h")
    hist.write(_scores(["1"], [0.1]), {"cutoff": "2024-01-01"})
    with pytest.raises(TypeError):  # the run metadata cannot be written: nothing replaced
        hist.write(_scores(["2"], [0.2]), {"cutoff": "2024-01-01", "bad": object()},
                   profile={"x": object()})
    assert hist.scores("2024-01-01")["customer_id"].tolist() == ["1"]
    assert hist.cutoffs() == [pd.Timestamp("2024-01-01")]


def test_treated_customers_come_from_arms_and_the_campaign_log():
    cutoff = pd.Timestamp("2024-01-01")
    scores = pd.DataFrame({"customer_id": ["1", "2", "3", "4"],
                           "arm": [None, "control", "coupon", None]})
    contacts = pd.DataFrame({
        "customer_id": ["4", "1", "2"],
        "ts": pd.to_datetime(["2024-02-01", "2023-12-01", "2024-01-15"]),
        "arm": ["coupon", "coupon", "control"],
    })
    data = SimpleNamespace(campaigns=contacts)
    # 3: treatment arm in the scores; 4: treatment contact in the horizon; 1: contact before
    # the cutoff; 2: control
    assert treated_customers(data, scores, cutoff, 90) == {"3", "4"}


# ----------------------------------------------------------------------------- end to end

# three simulated years: features with 365-day windows are mature by the reference cutoff
SIMULATED = {"start": "2022-01-01", "end": "2024-12-31"}
TRAIN_CUTOFFS = pd.date_range("2023-01-01", "2023-06-01", freq="MS")
BACKTEST_CUTOFF = "2023-10-01"  # out-of-time backtest, and the drift reference
MONITORED = pd.date_range("2023-11-01", "2024-04-01", freq="MS")
SHOCK = pd.Timestamp("2024-01-01")
N_CUSTOMERS = 3000


def _fitted(seed: int):
    data = simulate(N_CUSTOMERS, **SIMULATED, seed=seed)
    spec = FeatureSpec()
    model, backtest = fit_deployed_model(data, TRAIN_CUTOFFS, BACKTEST_CUTOFF, spec=spec,
                                         n_estimators=100, seed=0)
    return data, spec, model, list(model.feature_names_in_), backtest


# the calibration reference: the cutoffs after the last training cutoff, before monitoring
CALIBRATION = pd.date_range("2023-07-01", "2023-10-01", freq="MS")


def _monitor(tmp_path, data, spec, model, columns, metrics):
    backtest = {"roc_auc": metrics["roc_auc"], "brier": metrics["brier"]}
    return replay(data, model, MONITORED, BACKTEST_CUTOFF, backtest, tmp_path, spec=spec,
                  calibration_cutoffs=CALIBRATION)


@pytest.fixture(scope="module")
def fitted_seed_1():
    return _fitted(1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_no_alarm_on_unchanged_simulated_data(tmp_path, seed, fitted_seed_1):
    fitted = fitted_seed_1 if seed == 1 else _fitted(seed)
    result = _monitor(tmp_path, *fitted)
    assert result.alarms == [] and result.verdict.cause == "healthy"
    assert not result.quality.empty and (result.quality["level"] == "ok").all()
    perf = result.performance
    assert perf["matured"].all() and len(perf) == len(MONITORED)
    # realized performance is measured on the customers at risk and beats recency
    assert (perf["real_roc_auc"] > perf["recency_roc_auc"]).all()
    assert (perf["real_roc_auc"] > 0.8).all()


@pytest.mark.slow
def test_injected_churn_shock_is_flagged_after_its_date(tmp_path, fitted_seed_1):
    data, spec, model, columns, metrics = fitted_seed_1
    shocked = churn_shock(data, SHOCK, plan="basic", monthly_hazard=0.3, seed=1)
    result = _monitor(tmp_path, shocked, spec, model, columns, metrics)
    perf = result.performance.set_index("cutoff")
    assert result.alarms, "the regime change must raise an alarm"
    alarm_days = {a.cutoff for a in result.alarms}
    assert min(alarm_days) >= SHOCK  # nothing flagged before the change
    # a changed relation between features and churn on sound data: retrain
    assert result.verdict.cause == "performance" and result.retrain
    assert not [a for a in result.alarms if a.cause == "data"]
    # realized Brier worsens past the margin from the shock's cutoff on
    assert perf.loc[SHOCK, "real_brier"] > metrics["brier"] + MonitoringConfig().brier_margin
    assert perf.loc[SHOCK, "real_roc_auc"] < perf.loc[MONITORED[0], "real_roc_auc"]
    drift = result.drift
    drifted = drift[(drift["level"] == "alarm")]
    assert not drifted.empty and (pd.to_datetime(drifted["cutoff"]) > SHOCK).all()


@pytest.mark.slow
def test_spend_shift_in_half_the_base_is_a_value_alarm(tmp_path, fitted_seed_1):
    data, spec, model, columns, metrics = fitted_seed_1
    value_model = fit_value_model(data, TRAIN_CUTOFFS, spec=spec, n_estimators=50, seed=0)
    shifted = spend_shift(data, SHOCK, share=0.5, factor=0.7, seed=1)
    backtest = {"roc_auc": metrics["roc_auc"], "brier": metrics["brier"]}
    result = replay(shifted, model, MONITORED, BACKTEST_CUTOFF, backtest, tmp_path, spec=spec,
                    value_model=value_model, calibration_cutoffs=CALIBRATION)
    value = [a for a in result.alarms if a.cause == "value"]
    assert value, "a 30 % spend cut in half the base must raise a value alarm"
    assert min(a.cutoff for a in value) > SHOCK  # nothing before the change
    # the same customers' order value fell: about 0.5 × log 0.7 once the window is past it
    assert "paired_spend" in {a.check for a in value}
    perf = result.performance.set_index("cutoff")
    assert -0.25 < perf.loc[MONITORED[-1], "paired_spend_90d_change"] < -0.10
    # the money per order fell by about 0.5 × 30 % once the 30-day window is past the shift
    assert -0.25 < perf.loc[MONITORED[-1], "spend_per_purchase_30d_change"] < -0.07
    assert perf["real_value_ratio"].notna().all() and perf["real_value_gini"].gt(0.3).all()


def test_at_risk_is_known_at_the_cutoff(tmp_path):
    data = simulate(500, start="2023-01-01", end="2023-12-31", seed=5)
    cutoff = "2023-12-01"  # its label window is not covered: at_risk still works
    risk = at_risk(data, cutoff)
    later = data.transactions[data.transactions["ts"] >= pd.Timestamp(cutoff)]
    trimmed = type(data).from_frames(
        data.transactions[data.transactions["ts"] < pd.Timestamp(cutoff)], data.events,
        data.surveys, data.customers)
    assert len(later) > 0
    pd.testing.assert_frame_equal(risk, at_risk(trimmed, cutoff))


def test_churn_shock_only_removes_the_plans_later_activity():
    data = simulate(400, start="2023-01-01", end="2023-12-31", seed=2)
    start = pd.Timestamp("2023-07-01")
    shocked = churn_shock(data, start, plan="basic", monthly_hazard=0.5, seed=0)
    basic = set(data.customers.loc[data.customers["plan"] == "basic", "customer_id"])
    for name in ("transactions", "events", "surveys"):
        before, after = getattr(data, name), getattr(shocked, name)
        early = before[before["ts"] < start].reset_index(drop=True)
        pd.testing.assert_frame_equal(after[after["ts"] < start].reset_index(drop=True), early)
        others = before[~before["customer_id"].isin(basic)].reset_index(drop=True)
        pd.testing.assert_frame_equal(
            after[~after["customer_id"].isin(basic)].reset_index(drop=True), others)
    late = data.transactions[(data.transactions["ts"] >= start)
                             & data.transactions["customer_id"].isin(basic)]
    late_after = shocked.transactions[(shocked.transactions["ts"] >= start)
                                      & shocked.transactions["customer_id"].isin(basic)]
    assert 0 < len(late_after) < 0.6 * len(late)


def test_price_rise_example_config_loads_the_shock():
    from pathlib import Path

    from churnml.config import load_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs" / "examples" / "price-rise.yaml")
    assert cfg.data.churn_shock is not None and cfg.data.churn_shock.plan == "basic"
    with pytest.raises(Exception, match="simulated dataset only"):
        load_config_text = {"data": {"dataset": "cdnow", "churn_shock": {
            "start": "2024-01-01", "plan": "basic"}}}
        from churnml.config import Config

        Config.model_validate(load_config_text)
