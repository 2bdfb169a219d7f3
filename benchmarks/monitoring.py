"""Benchmark: the monitor's false alarms, detection delay, estimate coverage and history size.

Protocol (simulated data, three years 2022–2024, :data:`N_CUSTOMERS` customers per seed): a
:class:`~churnml.models.ChurnClassifier` is trained on the monthly cutoffs 2023-01..2023-06
and backtested out of time at 2023-10-01 (also the drift reference); the deployment is then
replayed (:func:`churnml.monitoring.replay.replay`): scored on the month starts 2023-11 ..
2024-04 and monitored with the default thresholds (PSI alarm 0.25, AUC margin 0.05, Brier
margin 0.03).

* **unchanged data**, seeds 1..:data:`N_SEEDS`: false-alarm rate = share of monitored
  cutoffs with any alarm; coverage = share of matured cutoffs whose realized ROC AUC / Brier
  lies in the CBPE 95 % interval;
* **churn shock** (:func:`churnml.data.scenarios.churn_shock`: from 2024-01-01 the basic
  plan's customers leave at 30 % a month), same seeds: detected = any alarm; delay = days from
  the shock to the first day an alarm is *known* (a drift alarm on the day its cutoff is
  scored, a performance alarm when its cutoff's horizon has passed);
* **history size**: one scoring run of 1 M customers (id, churn probability, expected
  value, value if retained, value at risk, rank, segment) plus the profiles of 45 features.

    python benchmarks/monitoring.py            # ~10 min on 2 shared cores
    python benchmarks/monitoring.py breaks     # verdicts on injected breaks, see :func:`breaks`
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _quality import N_JOBS, print_table, write_json

from churnml.config import ChurnConfig, MonitoringConfig
from churnml.data.scenarios import churn_shock
from churnml.data.simulate import simulate
from churnml.features.profile import profile_frame
from churnml.features.spec import FeatureSpec
from churnml.monitoring import ScoreHistory
from churnml.monitoring.alarms import Alarm
from churnml.monitoring.replay import fit_deployed_model, replay

N_CUSTOMERS = 3000
N_SEEDS = 6
SIMULATED = {"start": "2022-01-01", "end": "2024-12-31"}
TRAIN_CUTOFFS = pd.date_range("2023-01-01", "2023-06-01", freq="MS")
REFERENCE = pd.Timestamp("2023-10-01")
MONITORED = pd.date_range("2023-11-01", "2024-04-01", freq="MS")
SHOCK = pd.Timestamp("2024-01-01")
HISTORY_ROWS = 1_000_000
HISTORY_FEATURES = 45


def fitted(seed: int):
    data = simulate(N_CUSTOMERS, **SIMULATED, seed=seed)
    spec = FeatureSpec()
    model, backtest = fit_deployed_model(data, TRAIN_CUTOFFS, REFERENCE, spec=spec,
                                         n_estimators=100, seed=0, n_jobs=N_JOBS)
    return data, spec, model, backtest


def known_on(alarm: Alarm, horizon_days: int) -> pd.Timestamp:
    """The day an alarm is known: data checks and drift at its cutoff, realized performance
    a horizon on."""
    at_cutoff = alarm.check == "psi" or (alarm.cause == "data"
                                         and not alarm.check.startswith("realized"))
    return alarm.cutoff if at_cutoff else alarm.cutoff + pd.Timedelta(days=horizon_days)


def history_size() -> dict[str, float]:
    rng = np.random.default_rng(0)
    n = HISTORY_ROWS
    p = rng.beta(2, 5, n)
    v = rng.gamma(2.0, 50.0, n)
    scores = pd.DataFrame({
        "customer_id": pd.Series([f"C{i:08d}" for i in range(n)], dtype="str"),
        "churn_probability": p, "expected_value": (1 - p) * v, "value_if_retained": v,
        "value_at_risk": p * v, "rank": np.arange(1, n + 1),
        "risk_segment": pd.Series(rng.choice(["at_risk", "loyal", "lapsed", "standard"], n),
                                  dtype="str"),
    })
    features = pd.DataFrame(rng.gamma(1.5, 30.0, (200_000, HISTORY_FEATURES)),
                            columns=[f"f{i}" for i in range(HISTORY_FEATURES)])
    t0 = time.perf_counter()
    profile = profile_frame(features)
    with tempfile.TemporaryDirectory() as tmp:
        hist = ScoreHistory(tmp)
        t1 = time.perf_counter()
        folder = hist.write(scores, {"cutoff": "2024-06-01"}, profile)
        seconds = time.perf_counter() - t1
        size = {f.name: f.stat().st_size for f in Path(folder).iterdir()}
    return {"rows": n, "scores_mb": size["scores.parquet"] / 1e6,
            "profile_kb": size["profile.json"] / 1e3, "write_s": seconds,
            "profile_s": time.perf_counter() - t0 - seconds}


def main() -> None:
    horizon = ChurnConfig().horizon_days
    config = MonitoringConfig()
    rows, started = [], time.perf_counter()
    for seed in range(1, N_SEEDS + 1):
        data, spec, model, backtest = fitted(seed)
        for scenario in ("unchanged", "churn shock"):
            run = data if scenario == "unchanged" else churn_shock(
                data, SHOCK, plan="basic", monthly_hazard=0.3, seed=seed)
            with tempfile.TemporaryDirectory() as tmp:
                result = replay(run, model, MONITORED, REFERENCE, backtest, tmp, spec=spec,
                                config=config)
            perf = result.performance
            matured = perf[perf["matured"]]
            alarm_cutoffs = {a.cutoff for a in result.alarms}
            first = min((known_on(a, horizon) for a in result.alarms), default=None)
            brier_in = ((matured["est_brier_low"] <= matured["real_brier"])
                        & (matured["real_brier"] <= matured["est_brier_high"]))
            rows.append({
                "seed": seed, "scenario": scenario, "cutoffs": len(perf),
                "cutoffs_with_alarm": len(alarm_cutoffs),
                "auc_in_interval": float(matured["auc_within_interval"].mean()),
                "brier_in_interval": float(brier_in.mean()),
                "real_auc_mean": float(matured["real_roc_auc"].mean()),
                "backtest_auc": backtest["roc_auc"],
                "first_alarm_known": None if first is None else f"{first:%Y-%m-%d}",
                "delay_days": None if first is None or scenario == "unchanged"
                else int((first - SHOCK).days),
            })
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    base, shock = table[table["scenario"] == "unchanged"], table[table["scenario"] != "unchanged"]
    summary = {
        "false_alarm_rate": float(base["cutoffs_with_alarm"].sum() / base["cutoffs"].sum()),
        "seeds_with_false_alarm": int((base["cutoffs_with_alarm"] > 0).sum()),
        "auc_interval_coverage": float(base["auc_in_interval"].mean()),
        "brier_interval_coverage": float(base["brier_in_interval"].mean()),
        "shock_detected": int((shock["cutoffs_with_alarm"] > 0).sum()),
        "median_delay_days": float(shock["delay_days"].median()),
        "seeds": N_SEEDS, "monitored_cutoffs": len(MONITORED),
        "seconds": time.perf_counter() - started,
    }
    size = history_size()
    print_table("Monitoring on simulated deployments", rows, {
        "seed": "seed", "scenario": "scenario", "cutoffs_with_alarm": "cutoffs with alarm",
        "auc_in_interval": "AUC in CBPE interval", "brier_in_interval": "Brier in interval",
        "real_auc_mean": "realized AUC", "backtest_auc": "backtest AUC",
        "first_alarm_known": "first alarm known", "delay_days": "delay (days)"})
    print(summary)
    print(size)
    write_json("monitoring", {"runs": rows, "summary": summary, "history_size": size})



# ----------------------------------------------------------------- injected breaks: verdicts

N_BREAK_SEEDS = 3
MISSING_MONTH = pd.Timestamp("2024-02-01")  # events of February 2024 lost from the export
SCALE_FROM = pd.Timestamp("2024-01-01")  # NPS answered on 1–5 instead of 0–10 from here


def break_scenarios(data, seed: int):
    """``{name: (data, start of the change, the right verdict)}`` of one seed's data."""
    from churnml.data.scenarios import missing_event_month, survey_scale_change

    return {
        "unchanged": (data, None, "healthy"),
        "missing event month": (missing_event_month(data, MISSING_MONTH), MISSING_MONTH,
                                "data"),
        "survey scale 1-5": (survey_scale_change(data, SCALE_FROM), SCALE_FROM, "data"),
        "churn shock": (churn_shock(data, SHOCK, plan="basic", monthly_hazard=0.3, seed=seed),
                        SHOCK, "performance"),
    }


def verdict_known_by(alarms, day, horizon_days):
    """The verdict a monitor run on ``day`` gives: the alarms known by then."""
    from churnml.monitoring.verdict import decide

    return decide([a for a in alarms if known_on(a, horizon_days) <= day]).cause


def breaks() -> None:
    """Each injected break (and unchanged data) on :data:`N_BREAK_SEEDS` seeds: the verdict
    at the end of the replay, the first verdict given, and the detection delay (days from
    the change to the first day an alarm is known, :func:`known_on`)."""
    horizon = ChurnConfig().horizon_days
    config = MonitoringConfig()
    rows, started = [], time.perf_counter()
    for seed in range(1, N_BREAK_SEEDS + 1):
        data, spec, model, backtest = fitted(seed)
        for name, (run, start, right) in break_scenarios(data, seed).items():
            with tempfile.TemporaryDirectory() as tmp:
                result = replay(run, model, MONITORED, REFERENCE, backtest, tmp, spec=spec,
                                config=config)
            known = sorted({known_on(a, horizon) for a in result.alarms})
            first = known[0] if known else None
            verdict = result.verdict
            rows.append({
                "seed": seed, "scenario": name, "right_verdict": right,
                "verdict": verdict.cause,
                "first_verdict": verdict_known_by(result.alarms, first, horizon) if first
                else "healthy",
                "correct": verdict.cause == right,
                "cutoffs_with_alarm": len({a.cutoff for a in result.alarms}),
                "alarms": {c: len(v) for c, v in verdict.alarms.items()},
                "first_alarm_known": None if first is None else f"{first:%Y-%m-%d}",
                "delay_days": None if first is None or start is None
                else int((first - start).days),
                "false_alarm_before_change": bool(first is not None and (
                    start is None or first < start)),
            })
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    summary = {
        "seeds": N_BREAK_SEEDS, "monitored_cutoffs": len(MONITORED),
        "all_verdicts_right": bool(table["correct"].all()),
        "false_alarm_cutoffs_unchanged": int(
            table.loc[table["scenario"] == "unchanged", "cutoffs_with_alarm"].sum()),
        "median_delay_days": table.groupby("scenario")["delay_days"].median().dropna().to_dict(),
        "seconds": time.perf_counter() - started,
    }
    print_table("Monitoring verdicts on injected breaks", rows, {
        "seed": "seed", "scenario": "scenario", "right_verdict": "right verdict",
        "verdict": "verdict", "first_verdict": "first verdict",
        "cutoffs_with_alarm": "cutoffs with alarm", "first_alarm_known": "first alarm known",
        "delay_days": "delay (days)"})
    print(summary)
    write_json("monitoring_breaks", {"runs": rows, "summary": summary})


if __name__ == "__main__":
    import sys

    breaks() if sys.argv[1:] == ["breaks"] else main()
