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
* ``--estimate``: coverage of the recalibrated CBPE intervals on unchanged data at several
  sizes (``--sizes``, ``--seeds``; the reference window is the backtest cutoff, whose
  matured outcomes the model never trained on), with the raw (uncalibrated) estimate's
  bias beside it;
* ``--estimate`` also writes each unchanged deployment's probabilities and matured labels
  (``results/monitoring_estimate_frames/``), and ``--drift`` the model features of the
  break scenarios with churnml's PSI alarms: the input of ``monitoring_compare.py``, which
  runs NannyML's CBPE and univariate drift on the same deployments in a venv of its own;
* ``--spend``: a spend shift (:func:`churnml.data.scenarios.spend_shift`: from 2024-01-01 a
  share of the customers spend a factor of their amounts) with a value model
  (:func:`churnml.monitoring.replay.fit_value_model`) in the deployment: detection rate,
  delay and the cause of the first alarm, per magnitude and share, and the same
  deployment on unchanged data for the false alarms;
* ``--spend-check``: the within-customer order value check alone on the same changes, a
  function of the transactions only (no model fitted: cheap enough for more seeds).

    python benchmarks/monitoring.py            # ~10 min on 2 shared cores
    python benchmarks/monitoring.py breaks     # verdicts on injected breaks, see :func:`breaks`
    python benchmarks/monitoring.py breaks --seeds 1 --first-seed 2   # one seed
    python benchmarks/monitoring.py --estimate --sizes 3000 --seeds 6   # also 10000, 20000
    python benchmarks/monitoring.py --spend --seeds 1 --first-seed 1    # one process per seed
    python benchmarks/monitoring.py --spend-check --seeds 10   # the order value check alone
    python benchmarks/monitoring.py --drift --seeds 3   # PSI on the breaks, for NannyML
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pandas as pd
from _quality import N_JOBS, RESULTS_DIR, print_table, write_json

from churnml.config import ChurnConfig, MonitoringConfig
from churnml.data.scenarios import churn_shock, spend_shift
from churnml.data.simulate import simulate
from churnml.features.build import build_features
from churnml.features.profile import profile_frame
from churnml.features.spec import FeatureSpec
from churnml.labels import build_labels
from churnml.monitoring import ScoreHistory
from churnml.monitoring.alarms import Alarm
from churnml.monitoring.drift import drift_table
from churnml.monitoring.monitor import PROBABILITY, reference_outcomes
from churnml.monitoring.performance import estimate
from churnml.monitoring.replay import fit_deployed_model, fit_value_model, replay
from churnml.training.evaluation import classification_metrics

N_CUSTOMERS = 3000
N_SEEDS = 6
SIMULATED = {"start": "2022-01-01", "end": "2024-12-31"}
TRAIN_CUTOFFS = pd.date_range("2023-01-01", "2023-06-01", freq="MS")
REFERENCE = pd.Timestamp("2023-10-01")
# the calibration reference: the cutoffs after the last training cutoff, before monitoring
CALIBRATION = pd.date_range("2023-07-01", "2023-10-01", freq="MS")
MONITORED = pd.date_range("2023-11-01", "2024-04-01", freq="MS")
SHOCK = pd.Timestamp("2024-01-01")
# --estimate writes each unchanged deployment's probabilities and matured labels here, the
# input of monitoring_compare.py
FRAMES_DIR = RESULTS_DIR / "monitoring_estimate_frames"
DRIFT_DIR = RESULTS_DIR / "monitoring_drift_frames"  # --drift: features of the breaks
HISTORY_ROWS = 1_000_000
HISTORY_FEATURES = 45


SPEND_SHIFTS = [(0.85, 0.5), (0.7, 0.25), (0.7, 0.5), (0.5, 0.25)]  # (factor, share)
# checks of outcomes, known a horizon after their cutoff (the rest: on the cutoff's day)
OUTCOME_CHECKS = ("realized", "estimate_interval", "value_ratio", "retained_ratio")


def fitted(seed: int, n_customers: int = N_CUSTOMERS):
    data = simulate(n_customers, **SIMULATED, seed=seed)
    spec = FeatureSpec()
    model, backtest = fit_deployed_model(data, TRAIN_CUTOFFS, REFERENCE, spec=spec,
                                         n_estimators=100, seed=0, n_jobs=N_JOBS)
    return data, spec, model, backtest


def known_on(alarm: Alarm, horizon_days: int) -> pd.Timestamp:
    """The day an alarm is known: data checks, drift and shifts at its cutoff, outcome checks
    (realized performance and value, estimate intervals) a horizon on."""
    later = alarm.check.startswith(OUTCOME_CHECKS)
    return alarm.cutoff + pd.Timedelta(days=horizon_days) if later else alarm.cutoff


def in_interval(matured: pd.DataFrame, metric: str) -> pd.Series:
    return ((matured[f"est_{metric}_low"] <= matured[f"real_{metric}"])
            & (matured[f"real_{metric}"] <= matured[f"est_{metric}_high"]))


def estimate_coverage(sizes: list[int], seeds: int, big_seeds: int, big: int,
                      first_seed: int = 1) -> None:
    """Coverage of the 95 % intervals on unchanged data per size (``--estimate``); sizes of
    ``big`` customers or more run ``big_seeds`` seeds; at :data:`N_CUSTOMERS` also under
    the churn shock (where the intervals should miss). The monitor's estimator itself
    (:func:`~churnml.monitoring.monitor.reference_outcomes`, :func:`~churnml.monitoring.
    performance.estimate` with the reference's period error) on the monitor's population
    (the customers at risk; the simulation has no campaigns), with the features and labels
    of all cutoffs in one query each instead of a replayed history: the drift and baseline
    tables of a full :func:`replay` cost minutes at 20,000 customers and are not needed."""
    rows, started = [], time.perf_counter()
    config = MonitoringConfig()
    last_seed = first_seed + max(big_seeds if size >= big else seeds for size in sizes) - 1
    name = "_".join(str(n) for n in sizes) + f"_seeds_{first_seed}-{last_seed}"
    for size in sizes:
        last = first_seed + (big_seeds if size >= big else seeds)
        for seed in range(first_seed, last):
            t0 = time.perf_counter()
            data, spec, model, backtest = fitted(seed, size)
            scenarios = {"unchanged": data}
            if size == N_CUSTOMERS:
                scenarios["churn shock"] = churn_shock(data, SHOCK, plan="basic",
                                                       monthly_hazard=0.3, seed=seed)
            for scenario, run in scenarios.items():
                rows += _coverage_rows(run, spec, model, config, size, seed, scenario)
            print(f"{size} customers, seed {seed}: {time.perf_counter() - t0:.0f} s",
                  flush=True)
            coverage_summary(rows, name, started)  # so far: a long run can be stopped


def coverage_summary(rows: list[dict], name: str, started: float) -> None:
    """Print and write (``monitoring_estimate_<name>.json``) the coverage so far."""
    table = pd.DataFrame(rows)
    table["half_width"] = (table["est_roc_auc_high"] - table["est_roc_auc_low"]) / 2
    table["brier_half_width"] = (table["est_brier_high"] - table["est_brier_low"]) / 2
    for metric in ("roc_auc", "brier"):
        table[f"{metric}_error"] = table[f"est_{metric}"] - table[f"real_{metric}"]
        table[f"raw_{metric}_error"] = table[f"est_{metric}_raw"] - table[f"real_{metric}"]
    summary = table.groupby(["scenario", "customers"], sort=False).agg(
        seeds=("seed", "nunique"), cutoffs=("cutoff", "size"), at_risk=("at_risk", "mean"),
        auc_coverage=("auc_in", "mean"), brier_coverage=("brier_in", "mean"),
        auc_half_width=("half_width", "mean"), brier_half_width=("brier_half_width", "mean"),
        auc_period_error=("est_roc_auc_period_error", "mean"),
        brier_period_error=("est_brier_period_error", "mean"),
        auc_abs_error=("roc_auc_error", lambda e: e.abs().mean()),
        raw_auc_abs_error=("raw_roc_auc_error", lambda e: e.abs().mean()),
        brier_abs_error=("brier_error", lambda e: e.abs().mean()),
        raw_brier_abs_error=("raw_brier_error", lambda e: e.abs().mean()),
        interval_alarms=("interval_alarm", "sum")).reset_index()
    print_table("Recalibrated CBPE: 95 % interval coverage on unchanged data",
                summary.to_dict("records"), {
                    "scenario": "scenario", "customers": "customers", "seeds": "seeds",
                    "cutoffs": "matured cutoffs",
                    "at_risk": "at risk (mean)", "auc_coverage": "AUC coverage",
                    "brier_coverage": "Brier coverage", "auc_half_width": "AUC ± (mean)",
                    "brier_half_width": "Brier ± (mean)",
                    "auc_period_error": "σ period AUC", "brier_period_error": "σ period Brier",
                    "auc_abs_error": "|AUC est − real|",
                    "raw_auc_abs_error": "raw |AUC est − real|",
                    "brier_abs_error": "|Brier est − real|",
                    "raw_brier_abs_error": "raw |Brier est − real|",
                    "interval_alarms": "interval alarms"})
    write_json(f"monitoring_estimate_{name}",
               {"runs": table.to_dict("records"),
                "summary": summary.to_dict("records"),
                "seconds": time.perf_counter() - started})


def _coverage_rows(data, spec, model, config, size, seed, scenario) -> list[dict]:
    """Per monitored cutoff: the recalibrated estimate against the realized metrics."""
    cutoffs = CALIBRATION.append(MONITORED)
    features = build_features(data, cutoffs, spec)
    labels = build_labels(data, cutoffs)
    columns = [str(c) for c in model.feature_names_in_]
    frame = features.merge(labels[["customer_id", "cutoff", "churned"]],
                           on=["customer_id", "cutoff"])
    frame[PROBABILITY] = model.predict_proba(frame[columns])[:, 1]
    if scenario == "unchanged":  # the deployment's probabilities and matured labels
        FRAMES_DIR.mkdir(parents=True, exist_ok=True)
        frame[["customer_id", "cutoff", PROBABILITY, "churned"]].to_parquet(
            FRAMES_DIR / f"{size}_{seed}.parquet", index=False)
    t0 = time.perf_counter()
    calibration, _ = reference_outcomes(frame[frame["cutoff"].isin(CALIBRATION)])
    fit_seconds = time.perf_counter() - t0
    rows = []
    for i, cutoff in enumerate(MONITORED):
        t0 = time.perf_counter()
        period = calibration.period_error(at=cutoff)
        part = frame[frame["cutoff"] == cutoff]
        p, y = part[PROBABILITY].to_numpy(float), part["churned"].to_numpy(int)
        est = estimate(p, config.n_draws, seed=config.seed + i, reference=calibration,
                       alarm_level=config.interval_alarm_level, period_error=period)
        seconds = time.perf_counter() - t0 + fit_seconds / len(MONITORED)
        real = classification_metrics(y, p)
        rows.append({
            "scenario": scenario, "customers": size, "seed": seed,
            "cutoff": f"{cutoff:%Y-%m-%d}", "at_risk": len(p), "est_seconds": seconds,
            "real_roc_auc": real["roc_auc"], "real_brier": real["brier"], **est,
            "auc_in": est["est_roc_auc_low"] <= real["roc_auc"] <= est["est_roc_auc_high"],
            "brier_in": est["est_brier_low"] <= real["brier"] <= est["est_brier_high"],
            "interval_alarm": real["roc_auc"] < est["est_roc_auc_alarm_low"]
            or real["brier"] > est["est_brier_alarm_high"],
        })
    print(f"  {scenario}: AUC in {sum(r['auc_in'] for r in rows)}/{len(rows)}, Brier in "
          f"{sum(r['brier_in'] for r in rows)}/{len(rows)}, period error "
          f"{period['roc_auc']:.4f} / {period['brier']:.4f}", flush=True)
    return rows


def spend_detection(seeds: int, n_customers: int, first_seed: int = 1) -> None:
    """Spend shifts of several magnitudes and shares (``--spend``): detection, delay, cause."""
    horizon = ChurnConfig().horizon_days
    rows, started = [], time.perf_counter()
    for seed in range(first_seed, first_seed + seeds):
        data, spec, model, backtest = fitted(seed, n_customers)
        value_model = fit_value_model(data, TRAIN_CUTOFFS, spec=spec, n_estimators=100,
                                      seed=0, n_jobs=N_JOBS)
        for factor, share in [(1.0, 0.0), *SPEND_SHIFTS]:
            run = data if share == 0 else spend_shift(data, SHOCK, share, factor, seed=seed)
            with tempfile.TemporaryDirectory() as tmp:
                result = replay(run, model, MONITORED, REFERENCE, backtest, tmp, spec=spec,
                                value_model=value_model, calibration_cutoffs=CALIBRATION)
            perf = result.performance
            first = min(result.alarms, key=lambda a: known_on(a, horizon), default=None)
            value_alarms = [a for a in result.alarms if a.cause == "value"]
            after, before = perf[perf["cutoff"] >= SHOCK], perf[perf["cutoff"] < SHOCK]
            rows.append({
                "seed": seed, "change": "unchanged" if share == 0
                else f"{factor - 1:+.0%} spend, {share:.0%} of customers",
                "factor": factor, "share": share,
                "cutoffs_with_alarm": len({a.cutoff for a in result.alarms}),
                "value_alarms": len(value_alarms),
                "first_alarm_known": None if first is None
                else f"{known_on(first, horizon):%Y-%m-%d}",
                "first_cause": None if first is None else first.cause,
                "first_check": None if first is None else f"{first.check} {first.column}",
                "delay_days": None if first is None or share == 0
                else int((known_on(first, horizon) - SHOCK).days),
                "vir_change_after": float(after["mean_value_if_retained_change"].mean()),
                "spp30_change_after": float(after["spend_per_purchase_30d_change"].mean()),
                "spp90_change_after": float(after["spend_per_purchase_90d_change"].mean()),
                "paired30_change_after": float(after["paired_spend_30d_change"].mean()),
                "paired90_change_after": float(after["paired_spend_90d_change"].mean()),
                "paired90_change_last": float(perf["paired_spend_90d_change"].iloc[-1]),
                "paired90_limit_last": float(perf["paired_spend_90d_limit"].iloc[-1]),
                "max_paired_share_of_limit_before": float(max(
                    (before[f"paired_spend_{w}d_change"].abs()
                     / before[f"paired_spend_{w}d_limit"]).max() for w in (30, 90))),
                "max_spp_change_before": float(
                    before[["spend_per_purchase_30d_change", "spend_per_purchase_90d_change"]]
                    .abs().max().max()),
                "value_ratio_after": float(after["real_value_ratio"].mean()),
            })
            print(rows[-1], flush=True)
    seed_summary("Spend shift from 2024-01-01", "monitoring_spend", rows, {
        "seeds": ("seed", "size", "seeds"),
        "detected": ("cutoffs_with_alarm", lambda s: int((s > 0).sum()), "seeds with an alarm"),
        "value_first": ("first_cause", lambda s: int((s == "value").sum()),
                        "first alarm's cause = value"),
        "median_delay_days": ("delay_days", "median", "delay (days)"),
        "vir_change_after": ("vir_change_after", "mean",
                             "mean value if retained (change, after)"),
        "spp30_change_after": ("spp30_change_after", "mean",
                               "spend / purchase 30d (change, after)"),
        "spp90_change_after": ("spp90_change_after", "mean",
                               "spend / purchase 90d (change, after)"),
        "paired30_change_after": ("paired30_change_after", "mean",
                                  "same customers' order value 30d (change, after)"),
        "paired90_change_after": ("paired90_change_after", "mean",
                                  "same customers' order value 90d (change, after)"),
        "value_ratio_after": ("value_ratio_after", "mean", "realized / predicted value"),
    }, n_customers, started, first_seed, seeds)


def paired_check(seeds: int, n_customers: int, first_seed: int = 1) -> None:
    """The within-customer order value check alone (``--spend-check``): a function of the
    transactions only (:func:`churnml.monitoring.value.paired_spend_shift` at each monitored
    cutoff against :func:`~churnml.monitoring.value.paired_reference` at the reference, with
    the default ``monitoring.spend_change_*`` settings), so no model is fitted: per seed and
    change, the cutoffs it flags and its largest |Δ| / limit on unchanged data."""
    from churnml.monitoring.value import paired_reference, paired_spend_alarms, paired_spend_shift

    config = MonitoringConfig()
    windows, earlier = config.spend_change_windows_days, config.spend_change_earlier_days
    rows, started = [], time.perf_counter()
    for seed in range(first_seed, first_seed + seeds):
        data = simulate(n_customers, **SIMULATED, seed=seed)
        for factor, share in [(1.0, 0.0), *SPEND_SHIFTS]:
            run = data if share == 0 else spend_shift(data, SHOCK, share, factor, seed=seed)
            tx = run.transactions
            ref = paired_reference(tx, REFERENCE, windows, earlier)
            alarms: list[Alarm] = []
            worst = 0.0
            for cutoff in MONITORED:
                cur = {w: paired_spend_shift(tx, [cutoff], w, earlier) for w in windows}
                row = paired_spend_alarms(cutoff, cur, ref, config.spend_change_z,
                                          config.value_shift_alarm, earlier, alarms)
                worst = max([worst, *(abs(row[f"paired_spend_{w}d_change"])
                                      / row[f"paired_spend_{w}d_limit"] for w in windows
                                      if f"paired_spend_{w}d_change" in row)])
            first = min((a.cutoff for a in alarms), default=None)
            rows.append({
                "seed": seed, "change": "unchanged" if share == 0
                else f"{factor - 1:+.0%} spend, {share:.0%} of customers",
                "cutoffs_flagged": ", ".join(sorted({f"{a.cutoff:%Y-%m}" for a in alarms})),
                "delay_days": None if first is None or share == 0
                else int((first - SHOCK).days),
                "max_change_over_limit": worst,
            })
            print(rows[-1], flush=True)
    seed_summary("Within-customer order value check alone", "monitoring_spend_check", rows, {
        "seeds": ("seed", "size", "seeds"),
        "flagged": ("cutoffs_flagged", lambda s: int((s != "").sum()), "seeds flagged"),
        "median_delay_days": ("delay_days", "median", "delay (days, median)"),
        "max_delay_days": ("delay_days", "max", "delay (max)"),
        "max_change_over_limit": ("max_change_over_limit", "max", "max |change| / limit"),
    }, n_customers, started, first_seed, seeds)


def seed_summary(title: str, stem: str, rows: list[dict], columns: dict[str, tuple],
                 n_customers: int, started: float, first_seed: int, seeds: int) -> None:
    """Per-seed ``rows`` summarized by ``change``: ``columns`` maps each summary column to
    ``(row column, aggregation, printed label)``; prints the table and writes
    ``<stem>_seeds_<first>-<last>.json`` with the runs and the summary."""
    summary = (pd.DataFrame(rows).groupby("change", sort=False)
               .agg(**{name: (col, fn) for name, (col, fn, _) in columns.items()})
               .reset_index())
    print_table(title, summary.to_dict("records"),
                {"change": "change", **{name: label for name, (_, _, label) in columns.items()}})
    write_json(f"{stem}_seeds_{first_seed}-{first_seed + seeds - 1}", {
        "runs": rows, "summary": summary.to_dict("records"), "customers": n_customers,
        "seconds": time.perf_counter() - started})


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
                                config=config, calibration_cutoffs=CALIBRATION)
            perf = result.performance
            matured = perf[perf["matured"]]
            alarm_cutoffs = {a.cutoff for a in result.alarms}
            first = min((known_on(a, horizon) for a in result.alarms), default=None)
            brier_in = in_interval(matured, "brier")
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
SPEND_BREAK = (0.7, 0.25)  # (factor, share): 30 % less spend in a quarter of the customers


def break_scenarios(data, seed: int):
    """``{name: (data, start of the change, the right verdict)}`` of one seed's data; the
    spend shift: 30 % less in a quarter of the customers (:data:`SPEND_BREAK`)."""
    from churnml.data.scenarios import missing_event_month, survey_scale_change

    return {
        "unchanged": (data, None, "healthy"),
        "missing event month": (missing_event_month(data, MISSING_MONTH), MISSING_MONTH,
                                "data"),
        "survey scale 1-5": (survey_scale_change(data, SCALE_FROM), SCALE_FROM, "data"),
        "churn shock": (churn_shock(data, SHOCK, plan="basic", monthly_hazard=0.3, seed=seed),
                        SHOCK, "performance"),
        "spend -30% in 25%": (spend_shift(data, SHOCK, SPEND_BREAK[1], SPEND_BREAK[0],
                                          seed=seed), SHOCK, "value"),
    }


def verdict_known_by(alarms, day, horizon_days):
    """The verdict a monitor run on ``day`` gives: the alarms known by then."""
    from churnml.monitoring.verdict import decide

    return decide([a for a in alarms if known_on(a, horizon_days) <= day]).cause


def breaks(seeds: int = N_BREAK_SEEDS, first_seed: int = 1) -> None:
    """Each injected break (and unchanged data) on :data:`N_BREAK_SEEDS` seeds (from
    ``first_seed``), all alarms on (data checks, drift, realized performance, estimate
    intervals on the calibration reference, value checks with a value model): the verdict at
    the end of the replay, the first verdict given, and the detection delay (days from the
    change to the first day an alarm is known, :func:`known_on`)."""
    horizon = ChurnConfig().horizon_days
    config = MonitoringConfig()
    rows, started = [], time.perf_counter()
    for seed in range(first_seed, first_seed + seeds):
        data, spec, model, backtest = fitted(seed)
        value_model = fit_value_model(data, TRAIN_CUTOFFS, spec=spec, n_estimators=100,
                                      seed=0, n_jobs=N_JOBS)
        for name, (run, start, right) in break_scenarios(data, seed).items():
            with tempfile.TemporaryDirectory() as tmp:
                result = replay(run, model, MONITORED, REFERENCE, backtest, tmp, spec=spec,
                                config=config, value_model=value_model,
                                calibration_cutoffs=CALIBRATION)
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
                "alarm_cutoffs": ", ".join(sorted(f"{c:%Y-%m}" for c in {
                    a.cutoff for a in result.alarms})),
                "alarms": {c: len(v) for c, v in verdict.alarms.items()},
                "evidence": verdict.evidence()[:1],
                "first_alarm_known": None if first is None else f"{first:%Y-%m-%d}",
                "delay_days": None if first is None or start is None
                else int((first - start).days),
                "false_alarm_before_change": bool(first is not None and (
                    start is None or first < start)),
            })
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    summary = {
        "seeds": seeds, "first_seed": first_seed, "monitored_cutoffs": len(MONITORED),
        "all_verdicts_right": bool(table["correct"].all()),
        "false_alarm_cutoffs_unchanged": int(
            table.loc[table["scenario"] == "unchanged", "cutoffs_with_alarm"].sum()),
        "median_delay_days": table.groupby("scenario")["delay_days"].median().dropna().to_dict(),
        "seconds": time.perf_counter() - started,
    }
    print_table("Monitoring verdicts on injected breaks", rows, {
        "seed": "seed", "scenario": "scenario", "right_verdict": "right verdict",
        "verdict": "verdict", "first_verdict": "first verdict",
        "cutoffs_with_alarm": "cutoffs with alarm", "alarm_cutoffs": "cutoffs",
        "first_alarm_known": "first alarm known", "delay_days": "delay (days)"})
    print(summary)
    write_json(f"monitoring_breaks_seeds_{first_seed}-{first_seed + seeds - 1}",
               {"runs": rows, "summary": summary})


def drift_features(seeds: int, first_seed: int = 1) -> None:
    """Univariate feature drift on the break scenarios (``--drift``, :data:`N_CUSTOMERS`
    customers): churnml's PSI of each model feature at each monitored cutoff against the
    drift reference (2023-10-01), an alarm above ``psi_alarm`` unless an age feature — the
    monitor's drift check alone, without the data checks that catch the first two breaks
    and the attribution of drift to them. Writes each scenario's features at the
    calibration and monitored cutoffs to :data:`DRIFT_DIR` for ``monitoring_compare.py
    --drift`` and the alarms to ``monitoring_drift_psi.json``."""
    config = MonitoringConfig()
    rows, started = [], time.perf_counter()
    for seed in range(first_seed, first_seed + seeds):
        data, spec, model, _ = fitted(seed)
        columns = [str(c) for c in model.feature_names_in_]
        watched = [c for c in columns
                   if not any(fnmatch(c, pattern) for pattern in config.age_features)]
        for name, (run, start, _) in break_scenarios(data, seed).items():
            features = build_features(run, CALIBRATION.append(MONITORED), spec)
            DRIFT_DIR.mkdir(parents=True, exist_ok=True)
            features[["cutoff", *columns]].to_parquet(
                DRIFT_DIR / f"{name.replace(' ', '_')}_{seed}.parquet", index=False)
            t0 = time.perf_counter()
            reference = profile_frame(features[features["cutoff"] == REFERENCE], columns)
            reference_seconds = time.perf_counter() - t0
            for cutoff in MONITORED:
                t0 = time.perf_counter()
                current = profile_frame(features[features["cutoff"] == cutoff], columns)
                t1 = time.perf_counter()
                psis = {r["column"]: r["psi"] for r in drift_table(reference, current)}
                alarms = sorted(c for c in watched if psis.get(c, 0.0) > config.psi_alarm)
                rows.append({"seed": seed, "scenario": name, "cutoff": f"{cutoff:%Y-%m-%d}",
                             "change": None if start is None else f"{start:%Y-%m-%d}",
                             "alarms": alarms, "n_alarms": len(alarms),
                             "max_psi": max(psis.get(c, 0.0) for c in watched),
                             # profiling (once per scoring run, kept in the history) and PSI
                             "profile_seconds": t1 - t0 + reference_seconds / len(MONITORED),
                             "psi_seconds": time.perf_counter() - t1})
                rows[-1]["seconds"] = rows[-1]["profile_seconds"] + rows[-1]["psi_seconds"]
            print(f"seed {seed}, {name}: PSI alarms per cutoff "
                  f"{[r['n_alarms'] for r in rows[-len(MONITORED):]]}", flush=True)
        write_json("monitoring_drift_psi", {  # so far: a long run can be stopped
            "runs": rows, "features": columns, "watched": watched,
            "seconds": time.perf_counter() - started})


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", choices=["breaks"],
                        help="breaks: verdicts on injected breaks")
    parser.add_argument("--estimate", action="store_true", help="interval coverage by size")
    parser.add_argument("--spend", action="store_true", help="spend-shift scenarios")
    parser.add_argument("--spend-check", action="store_true",
                        help="the within-customer order value check alone, no models")
    parser.add_argument("--drift", action="store_true",
                        help="feature PSI on the breaks, input of monitoring_compare.py")
    parser.add_argument("--sizes", default="3000,10000,20000")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"seeds (default {N_SEEDS}; breaks: {N_BREAK_SEEDS})")
    parser.add_argument("--big-seeds", type=int, default=N_SEEDS,
                        help="seeds at sizes of --big customers or more")
    parser.add_argument("--big", type=int, default=20000)
    parser.add_argument("--customers", type=int, default=N_CUSTOMERS)
    parser.add_argument("--first-seed", type=int, default=1)
    args = parser.parse_args()
    if args.mode == "breaks":
        breaks(args.seeds or N_BREAK_SEEDS, args.first_seed)
    if args.estimate:
        estimate_coverage([int(s) for s in args.sizes.split(",")], args.seeds or N_SEEDS,
                          args.big_seeds, args.big, args.first_seed)
    if args.spend:
        spend_detection(args.seeds or N_SEEDS, args.customers, args.first_seed)
    if args.spend_check:
        paired_check(args.seeds or N_SEEDS, args.customers, args.first_seed)
    if args.drift:
        drift_features(args.seeds or N_SEEDS, args.first_seed)
    if not (args.mode or args.estimate or args.spend or args.spend_check or args.drift):
        main()


if __name__ == "__main__":
    cli()
