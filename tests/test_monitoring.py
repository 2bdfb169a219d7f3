"""Monitoring: score history, CBPE estimates, PSI drift, realized performance, alarms."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churnml.config import MonitoringConfig
from churnml.data.scenarios import churn_shock
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
from churnml.monitoring.monitor import treated_customers
from churnml.monitoring.replay import fit_deployed_model, replay

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


def _monitor(tmp_path, data, spec, model, columns, metrics):
    backtest = {"roc_auc": metrics["roc_auc"], "brier": metrics["brier"]}
    return replay(data, model, MONITORED, BACKTEST_CUTOFF, backtest, tmp_path, spec=spec)


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
