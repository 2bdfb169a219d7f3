"""Benchmark: NannyML's CBPE and drift, Evidently's drift, beside churnml's, on the same data.

Input: what ``python benchmarks/monitoring.py --estimate`` leaves in ``benchmarks/results/``
for each size and seed: the unchanged deployment's churn probabilities and matured labels
(``monitoring_estimate_frames/<customers>_<seed>.parquet``, the four calibration cutoffs
2023-07..2023-10 and the six monitored cutoffs 2023-11..2024-04, customers at risk) and
churnml's estimate at each monitored cutoff (``monitoring_estimate_*.json``).

NannyML's CBPE (``problem_type='classification_binary'``, its default isotonic calibration,
``metrics=['roc_auc']``; Brier is not among CBPE's metrics) is fitted on the calibration
cutoffs (one chunk a month) and estimates the monitored cutoffs (one chunk each). Recorded
per cutoff: its estimate, its sampling error and confidence band (estimate ± 3 sampling
errors, what NannyML plots and reports as ``lower/upper_confidence_boundary``), the same
estimate ± 1.96 sampling errors (a 95 % band, like churnml's) and the realized ROC AUC it
computes itself; churnml's values of the same cutoff beside them.

``--drift`` (NannyML's univariate drift, :func:`drift`) and ``--evidently`` (Evidently's
``DataDriftPreset``, :func:`evidently_drift`) read the break scenarios' features and
churnml's PSI alarms that ``monitoring.py --drift`` writes.

Neither library runs next to churnml: no NannyML release resolves with churnml's pins
(0.13.1 caps ``lightgbm<4.6``, churnml needs ``>=4.7``; older ones cap more), and
Evidently 0.7.23 resolves but fails on import with pandas 3 (churnml needs ``pandas>=3``;
it imports ``infer_dtype_from_object``, gone from pandas 3). So they run in a venv of their
own, which needs nothing of churnml (this script imports pandas and the two libraries)::

    uv venv /tmp/cmp-venv --python 3.11
    uv pip install -p /tmp/cmp-venv nannyml==0.13.1 statsmodels evidently==0.7.23 "pandas<3" pyarrow
    /tmp/cmp-venv/bin/python benchmarks/monitoring_compare.py     # after monitoring.py --estimate
    /tmp/cmp-venv/bin/python benchmarks/monitoring_compare.py --drift       # after --drift
    /tmp/cmp-venv/bin/python benchmarks/monitoring_compare.py --evidently --seeds 1

(NannyML 0.13.1 imports statsmodels without declaring it; its usage reporting to a web
service is switched off here with ``NML_DISABLE_USAGE_LOGGING``.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FRAMES_DIR = RESULTS_DIR / "monitoring_estimate_frames"
DRIFT_DIR = RESULTS_DIR / "monitoring_drift_frames"
CALIBRATION = pd.date_range("2023-07-01", "2023-10-01", freq="MS")  # as in monitoring.py
PROBABILITY = "churn_probability"
Z95 = 1.959964


def churnml_rows() -> pd.DataFrame:
    """churnml's estimate per (customers, seed, cutoff) of the unchanged deployments, the
    latest JSON of ``monitoring.py --estimate`` for each."""
    found = {}
    for path in sorted(RESULTS_DIR.glob("monitoring_estimate_*.json"), key=lambda p:
                       p.stat().st_mtime):
        for row in json.loads(path.read_text())["runs"]:
            if row["scenario"] == "unchanged":
                found[(row["customers"], row["seed"], row["cutoff"])] = row
    return pd.DataFrame(list(found.values()))


def nannyml_rows(nml, frame: pd.DataFrame) -> tuple[list[dict], float]:
    """NannyML's CBPE on one deployment: per monitored cutoff its estimate, band, realized."""
    frame = frame.copy()
    frame["cutoff"] = pd.to_datetime(frame["cutoff"])
    frame["predicted"] = (frame[PROBABILITY] >= 0.5).astype(int)
    reference = frame[frame["cutoff"].isin(CALIBRATION)]
    analysis = frame[frame["cutoff"] > CALIBRATION[-1]]
    t0 = time.perf_counter()
    cbpe = nml.CBPE(y_pred_proba=PROBABILITY, y_pred="predicted", y_true="churned",
                    timestamp_column_name="cutoff", metrics=["roc_auc"], chunk_period="M",
                    problem_type="classification_binary")
    cbpe.fit(reference)
    result = cbpe.estimate(analysis).filter(period="analysis").to_df()
    seconds = time.perf_counter() - t0
    rows = []
    for _, r in result.iterrows():
        est, se = r[("roc_auc", "value")], r[("roc_auc", "sampling_error")]
        rows.append({
            "cutoff": f"{pd.Timestamp(r[('chunk', 'start_date')]):%Y-%m-%d}",
            "nml_est": est, "nml_se": se, "nml_real": r[("roc_auc", "realized")],
            "nml_low": r[("roc_auc", "lower_confidence_boundary")],
            "nml_high": r[("roc_auc", "upper_confidence_boundary")],
            "nml_low95": est - Z95 * se, "nml_high95": est + Z95 * se,
            "nml_alert": bool(r[("roc_auc", "alert")]),
        })
    return rows, seconds / max(len(rows), 1)


def nannyml_drift(nml, frame: pd.DataFrame, features: list[str], watched: list[str],
                  setting: str) -> tuple[list[dict], float]:
    """Per monitored cutoff, the watched features NannyML's univariate drift alerts on.
    ``defaults``: K-S and Jensen-Shannon for numbers, chi² and Jensen-Shannon for categories,
    an alert beyond 3 standard deviations of the reference chunks' values, the four
    calibration months as reference (one chunk a month); ``js 0.1``: Jensen-Shannon only,
    an alert above 0.1 (Evidently's default for it), the drift reference 2023-10-01 alone
    as reference, as churnml's PSI has."""
    if setting == "defaults":
        reference = frame[frame["cutoff"].isin(CALIBRATION)]
        methods = {"continuous_methods": ["kolmogorov_smirnov", "jensen_shannon"],
                   "categorical_methods": ["chi2", "jensen_shannon"]}
    else:
        reference = frame[frame["cutoff"] == CALIBRATION[-1]]
        methods = {"continuous_methods": ["jensen_shannon"],
                   "categorical_methods": ["jensen_shannon"],
                   "thresholds": {"jensen_shannon": nml.thresholds.ConstantThreshold(
                       lower=None, upper=0.1)}}
    analysis = frame[frame["cutoff"] > CALIBRATION[-1]]
    t0 = time.perf_counter()
    calculator = nml.UnivariateDriftCalculator(
        column_names=features, timestamp_column_name="cutoff", chunk_period="M", **methods)
    calculator.fit(reference)
    result = calculator.calculate(analysis).filter(period="analysis").to_df()
    seconds = (time.perf_counter() - t0) / len(result)
    rows = []
    for _, r in result.iterrows():
        alerted = sorted({c for c in watched for method in ("kolmogorov_smirnov",
                                                            "jensen_shannon", "chi2")
                          if (c, method, "alert") in r.index
                          and bool(r[(c, method, "alert")])})
        rows.append({"cutoff": f"{pd.Timestamp(r[('chunk', 'chunk', 'start_date')]):%Y-%m-%d}",
                     "setting": setting, "alerts": len(alerted), "alerted": alerted})
    return rows, seconds


def drift(nml) -> None:
    """NannyML's univariate drift (``--drift``, :func:`nannyml_drift`) beside churnml's PSI
    on the break scenarios of ``monitoring.py --drift``: per scenario and setting, the
    monitored cutoffs with an alert on a watched (non-age) feature, the first such cutoff
    and the alerts in all."""
    psi = json.loads((RESULTS_DIR / "monitoring_drift_psi.json").read_text())
    ours = pd.DataFrame(psi["runs"])
    rows = []
    for path in sorted(DRIFT_DIR.glob("*.parquet")):
        frame = pd.read_parquet(path)
        frame["cutoff"] = pd.to_datetime(frame["cutoff"])
        scenario, seed = path.stem.rsplit("_", 1)
        for setting in ("defaults", "js 0.1"):
            theirs, seconds = nannyml_drift(nml, frame, psi["features"], psi["watched"],
                                            setting)
            rows += [{"scenario": scenario.replace("_", " "), "seed": int(seed), **row,
                      "nml_seconds": seconds} for row in theirs]
            print(f"{scenario} seed {seed}, NannyML {setting}: alerts per cutoff "
                  f"{[r['alerts'] for r in theirs]}", flush=True)
    table = pd.DataFrame(rows).merge(ours, on=["scenario", "seed", "cutoff"], how="inner")

    def first(part: pd.DataFrame, column: str) -> str | None:
        flagged = part.loc[part[column] > 0, "cutoff"]
        return flagged.min() if len(flagged) else None

    summary = []
    for (scenario, setting), part in table.groupby(["scenario", "setting"], sort=False):
        ours_part = part.drop_duplicates(["seed", "cutoff"])
        summary.append({
            "scenario": scenario, "setting": setting, "seeds": part["seed"].nunique(),
            "change": part["change"].iloc[0],
            "psi_cutoffs": int((ours_part["n_alarms"] > 0).sum()),
            "psi_first": first(ours_part, "n_alarms"),
            "psi_alarms": int(ours_part["n_alarms"].sum()),
            "nml_cutoffs": int((part["alerts"] > 0).sum()), "nml_first": first(part, "alerts"),
            "nml_alerts": int(part["alerts"].sum()),
            "psi_seconds": ours_part["seconds"].mean(),
            "psi_only_seconds": ours_part["psi_seconds"].mean(),
            "nml_seconds": part["nml_seconds"].mean()})
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print("\nFeature drift alarms (all seeds): churnml PSI vs NannyML univariate drift")
        print(pd.DataFrame(summary).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out = RESULTS_DIR / "monitoring_nannyml_drift.json"
    out.write_text(json.dumps({"nannyml": nml.__version__, "summary": summary,
                               "runs": table.to_dict("records")}, indent=2, default=str)
                   + "\n")
    print(f"wrote {out}")


def evidently_drift(seeds: list[int]) -> None:
    """Evidently's ``DataDriftPreset`` (``--evidently``) on the break scenarios of
    ``monitoring.py --drift`` (``seeds``: one report of 64 columns takes tens of seconds),
    with its defaults: per column a test picked by type and size (above 1,000 rows the
    normed Wasserstein distance for numbers, drift at 0.1; K-S, chi², Z-test p-values below
    0.05 where it picks those), and a data-set drift when half the columns drift; the
    drift reference 2023-10-01 as reference, as churnml's PSI has. Counted on the watched
    (non-age) features, as the PSI alarms."""
    try:
        from evidently import Report
        from evidently.presets import DataDriftPreset
    except ImportError as error:
        sys.exit(f"--evidently needs Evidently 0.7 with pandas < 3 ({error}): see this "
                 "script's docstring for its venv.")
    psi = json.loads((RESULTS_DIR / "monitoring_drift_psi.json").read_text())
    ours = pd.DataFrame(psi["runs"])
    rows = []
    for path in sorted(DRIFT_DIR.glob("*.parquet")):
        scenario, seed = path.stem.rsplit("_", 1)
        if int(seed) not in seeds:
            continue
        frame = pd.read_parquet(path)
        frame["cutoff"] = pd.to_datetime(frame["cutoff"])
        reference = frame.loc[frame["cutoff"] == CALIBRATION[-1], psi["features"]]
        for cutoff in sorted(frame.loc[frame["cutoff"] > CALIBRATION[-1], "cutoff"].unique()):
            t0 = time.perf_counter()
            current = frame.loc[frame["cutoff"] == cutoff, psi["features"]]
            metrics = Report([DataDriftPreset()]).run(
                current_data=current, reference_data=reference).dict()["metrics"]
            seconds = time.perf_counter() - t0
            drifted, share = set(), None
            for metric in metrics:
                config = metric["config"]
                if config["type"].endswith("DriftedColumnsCount"):
                    share = metric["value"]["share"]
                elif "column" in config:
                    p_value = "p_value" in config["method"]
                    value, threshold = metric["value"], config["threshold"]
                    if (value < threshold) if p_value else (value >= threshold):
                        drifted.add(config["column"])
            alerted = sorted(drifted & set(psi["watched"]))
            rows.append({"scenario": scenario.replace("_", " "), "seed": int(seed),
                         "cutoff": f"{pd.Timestamp(cutoff):%Y-%m-%d}",
                         "ev_alerts": len(alerted), "ev_alerted": alerted,
                         "ev_drift_share": share, "ev_dataset_drift": share >= 0.5,
                         "ev_seconds": seconds})
        print(f"{scenario} seed {seed}, Evidently: drifted per cutoff "
              f"{[r['ev_alerts'] for r in rows[-6:]]}", flush=True)
    table = pd.DataFrame(rows).merge(ours, on=["scenario", "seed", "cutoff"], how="inner")
    summary = table.groupby("scenario", sort=False).agg(
        seeds=("seed", "nunique"), psi_cutoffs=("n_alarms", lambda a: int((a > 0).sum())),
        psi_alarms=("n_alarms", "sum"),
        ev_cutoffs=("ev_alerts", lambda a: int((a > 0).sum())),
        ev_alerts=("ev_alerts", "sum"), ev_dataset_drift=("ev_dataset_drift", "sum"),
        ev_share=("ev_drift_share", "mean"), ev_seconds=("ev_seconds", "mean"),
        psi_seconds=("seconds", "mean")).reset_index()
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print("\nFeature drift alarms: churnml PSI vs Evidently DataDriftPreset")
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out = RESULTS_DIR / "monitoring_evidently_drift.json"
    out.write_text(json.dumps({"summary": summary.to_dict("records"),
                               "runs": table.to_dict("records")}, indent=2, default=str)
                   + "\n")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drift", action="store_true",
                        help="univariate drift on the breaks (after monitoring.py --drift)")
    parser.add_argument("--evidently", action="store_true",
                        help="Evidently's data drift on the breaks (after monitoring.py --drift)")
    parser.add_argument("--seeds", default="1", help="--evidently: seeds, e.g. 1,2")
    args = parser.parse_args()
    if args.evidently:
        return evidently_drift([int(s) for s in args.seeds.split(",")])
    # NannyML reports usage to a web service unless told not to
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    try:
        import nannyml as nml
    except ImportError:
        sys.exit("monitoring_compare.py needs NannyML, which does not install next to "
                 "churnml (LightGBM pins): see this script's docstring for its venv.")
    if args.drift:
        return drift(nml)
    ours = churnml_rows()
    if ours.empty or not any(FRAMES_DIR.glob("*.parquet")):
        sys.exit(f"no deployments in {FRAMES_DIR}: run benchmarks/monitoring.py --estimate "
                 "first")
    rows = []
    for path in sorted(FRAMES_DIR.glob("*.parquet")):
        size, seed = (int(v) for v in path.stem.split("_"))
        theirs, seconds = nannyml_rows(nml, pd.read_parquet(path))
        for row in theirs:
            rows.append({"customers": size, "seed": seed, **row, "nml_seconds": seconds})
        print(f"{size} customers, seed {seed}: NannyML {seconds:.2f} s a cutoff", flush=True)
    table = pd.DataFrame(rows).merge(ours, on=["customers", "seed", "cutoff"], how="inner")
    # NannyML's realized AUC is ours (same labels, same probabilities): a check of the join
    assert np.allclose(table["nml_real"], table["real_roc_auc"], atol=2e-4), "realized differ"
    real = table["real_roc_auc"]
    table["nml_in"] = (table["nml_low"] <= real) & (real <= table["nml_high"])
    table["nml_in95"] = (table["nml_low95"] <= real) & (real <= table["nml_high95"])
    table["nml_error"] = (table["nml_est"] - real).abs()
    table["nml_half"] = (table["nml_high"] - table["nml_low"]) / 2
    table["nml_half95"] = Z95 * table["nml_se"]
    table["our_error"] = (table["est_roc_auc"] - real).abs()
    table["our_half"] = (table["est_roc_auc_high"] - table["est_roc_auc_low"]) / 2
    summary = table.groupby("customers").agg(
        seeds=("seed", "nunique"), cutoffs=("cutoff", "size"),
        nml_coverage_3se=("nml_in", "mean"), nml_coverage_95=("nml_in95", "mean"),
        nml_half_3se=("nml_half", "mean"), nml_half_95=("nml_half95", "mean"),
        nml_abs_error=("nml_error", "mean"), nml_alerts=("nml_alert", "sum"),
        nml_seconds=("nml_seconds", "mean"),
        our_coverage=("auc_in", "mean"), our_half=("our_half", "mean"),
        our_abs_error=("our_error", "mean"), our_seconds=("est_seconds", "mean"),
    ).reset_index()
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print("\nROC AUC on unchanged data: NannyML CBPE vs churnml, per size")
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / "monitoring_nannyml.json"
    out.write_text(json.dumps({"nannyml": nml.__version__,
                               "summary": summary.to_dict("records"),
                               "runs": table.to_dict("records")}, indent=2, default=str)
                   + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
