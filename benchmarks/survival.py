"""Benchmark: time to churn on real course registrations (OULAD) and on the simulator.

**OULAD, time-based split.** ``configs/examples/oulad.yaml`` maps the registrations onto the
data contract (one enrolment = one subscription with its term end; see the README). Each
enrolment enters at its landmark, ``max(day 0, registration)`` (day 0 = the first of the
presentation's start month), if it has not withdrawn by then; churn = withdrawal, censored at
the module end (its ``term_end_ts``), which is known for every enrolment in advance. Durations
are in weeks (``survival.period_days`` = 7 of the config). Models are fitted on the 2013
presentations (2013B, 2013J) and evaluated on the 2014 ones (2014B, 2014J), as a model trained
on past cohorts is used. Covariates known at the landmark: module, the student attributes of
``customers`` (never ``final_result``) and the days registered before day 0.

* Kaplan-Meier, overall and per module (:class:`churnml.survival.kaplan_meier.
  KaplanMeierBaseline`): the same curve for every enrolment (of a module).
* Cox proportional hazards (:class:`churnml.survival.cox.CoxBaseline`, ridge penalty 1 on the
  standardised design, one-hot categoricals).

Metrics (:func:`churnml.survival.metrics.survival_scores`): Uno's C (IPCW, censoring fitted on
the training rows, ``tau`` = the end of the grid; risk = each model's own score), Harrell's C,
mean cumulative/dynamic AUC, the integrated IPCW and administrative Brier scores and the
calibration ICI at the end of the grid, over a weekly grid of 1..33 weeks (7..231 days). The
earliest module end is day 234, so nobody is censored inside the grid: the IPCW weights are 1
there and the two Brier scores agree.

**Simulator, oracle known.** ``simulate(contractual=True)`` with the landmark 2024-01-01: the
subscribers then, churn = the end of the running spell, censored at the window end; the
oracle is :func:`churnml.data.simulate.oracle_survival` (the true curve given the latent
state). Training rows for Kaplan-Meier and the censoring fit: the landmark 2023-07-01.

    python benchmarks/survival.py      # ~2 min; prints the tables, writes results/survival.json
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _quality import print_table, write_json

from churnml.config import load_config
from churnml.data.loaders import load_data
from churnml.data.simulate import customer_truth, oracle_survival, simulate
from churnml.errors import DataWarning
from churnml.survival.cox import CoxBaseline
from churnml.survival.kaplan_meier import KaplanMeierBaseline
from churnml.survival.metrics import survival_scores

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "examples" / "oulad.yaml"
DATA_REL = Path("shared") / "data" / "oulad"
TRAIN, TEST = ("2013B", "2013J"), ("2014B", "2014J")
CATEGORICAL = ["plan", "gender", "region", "highest_education", "imd_band", "age_band",
               "disability"]
NUMERIC = ["num_of_prev_attempts", "studied_credits", "registered_days_before_start"]
GRID_DAYS = np.arange(7, 232, 7)  # weekly, before the earliest module end (day 234)
DAY = pd.Timedelta(days=1)


def default_data() -> Path | None:
    """``shared/data/oulad`` beside the checkout or a parent of it."""
    for parent in ROOT.parents:
        if (parent / DATA_REL).is_dir():
            return parent / DATA_REL
    return None


def presentation_start(code: pd.Series) -> pd.Series:
    """Day 0 of a presentation (``2013J``): the first of its start month (B = February,
    J = October), the convention of ``configs/examples/oulad.yaml``."""
    month = code.str[4].map({"B": 2, "J": 10})
    return pd.to_datetime(code.str[:4] + "-" + month.astype(str) + "-01")


def oulad_durations(data_dir: Path | None) -> tuple[pd.DataFrame, int]:
    """One row per enrolment at risk at its landmark: ``presentation``, ``duration``,
    ``event``, ``censor_duration`` (periods from the landmark) and the covariates."""
    cfg = load_config(CONFIG)
    if data_dir is None or not data_dir.is_dir():
        raise SystemExit(f"OULAD data not found ({data_dir}); pass --data PATH/oulad")
    cfg.data.dir = str(data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # count-only transactions
        data = load_data(cfg)
    period = cfg.survival.period_days
    subs = data.subscriptions.set_index("customer_id")
    cust = data.customers.set_index("customer_id").loc[subs.index]
    day0 = presentation_start(cust["code_presentation"])
    landmark = np.maximum(day0, subs["start_ts"])
    keep = subs["end_ts"].isna() | (subs["end_ts"] > landmark)
    event = subs["end_ts"].notna() & (subs["end_ts"] <= subs["term_end_ts"])
    stop = subs["end_ts"].where(event, subs["term_end_ts"])
    frame = cust[CATEGORICAL].fillna("missing").assign(
        presentation=cust["code_presentation"],
        num_of_prev_attempts=cust["num_of_prev_attempts"],
        studied_credits=cust["studied_credits"],
        registered_days_before_start=((day0 - subs["start_ts"]) / DAY).clip(lower=0),
        duration=(stop - landmark) / DAY / period,
        event=event,
        censor_duration=(subs["term_end_ts"] - landmark) / DAY / period,
    )
    return frame[keep], period


def evaluate(name: str, train: pd.DataFrame, test: pd.DataFrame, surv: np.ndarray,
             risk: np.ndarray, times: np.ndarray) -> dict[str, Any]:
    """:func:`~churnml.survival.metrics.survival_scores` of one model on the test rows."""
    scores = survival_scores(
        train["event"].to_numpy(), train["duration"].to_numpy(), test["event"].to_numpy(),
        test["duration"].to_numpy(), test["censor_duration"].to_numpy(), surv, times,
        risk=risk)
    return {"model": name, **scores}


def fit_predict(model: Any, train: pd.DataFrame, test: pd.DataFrame, columns: list[str],
                times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model.fit(train[columns], train[["duration", "event"]])
    return model.predict_survival_function(test[columns], times), model.predict_risk(test[columns])


def oulad(data_dir: Path | None) -> dict[str, Any]:
    frame, period = oulad_durations(data_dir)
    times = GRID_DAYS / period
    train = frame[frame["presentation"].isin(TRAIN)]
    test = frame[frame["presentation"].isin(TEST)]
    covariates = CATEGORICAL + NUMERIC
    models = {
        "Kaplan-Meier": KaplanMeierBaseline(),
        "Kaplan-Meier by module": KaplanMeierBaseline(by="plan"),
        "Cox PH": CoxBaseline(tenure_column=None),
    }
    rows, curves = [], []
    for name, model in models.items():
        surv, risk = fit_predict(model, train, test, covariates, times)
        rows.append(evaluate(name, train, test, surv, risk, times))
        curves.append(surv)
    observed = KaplanMeierBaseline().fit(test[[]], test[["duration", "event"]])
    observed = observed.predict_survival_function(test[[]].iloc[:1], times)[0]
    at = {d: int(np.flatnonzero(GRID_DAYS == d)[0]) for d in (28, 91, 182, 231)}
    for row, s in zip(rows, curves, strict=True):
        row.update({f"mean_S_{d}d": float(s[:, i].mean()) for d, i in at.items()})
    return {
        "rows": rows,
        "observed_test_km": {f"S_{d}d": float(observed[i]) for d, i in at.items()},
        "n_train": len(train), "n_test": len(test),
        "events_train": int(train["event"].sum()), "events_test": int(test["event"].sum()),
        "period_days": period, "grid_days": GRID_DAYS.tolist(),
        "excluded_no_landmark": "enrolments withdrawn at or before max(day 0, registration)",
    }


def simulator(n_customers: int, seed: int, n_draws: int) -> dict[str, Any]:
    """Oracle and Kaplan-Meier on simulated subscribers (durations in 30-day periods)."""
    data = simulate(n_customers, start="2022-01-01", end="2024-12-31", seed=seed,
                    contractual=True)
    end = pd.Timestamp("2025-01-01")
    period = 30
    grid_days = np.arange(30, 361, 30)
    times = grid_days / period

    def spells(cutoff: pd.Timestamp) -> pd.DataFrame:
        sub = data.subscriptions
        run = sub[(sub["start_ts"] <= cutoff) & (sub["end_ts"].isna() | (sub["end_ts"] > cutoff))]
        run = run.set_index("customer_id")
        return pd.DataFrame({
            "duration": (run["end_ts"].fillna(end) - cutoff) / DAY / period,
            "event": run["end_ts"].notna(),
            "censor_duration": (end - cutoff) / DAY / period,
        })

    train, test = spells(pd.Timestamp("2023-07-01")), spells(pd.Timestamp("2024-01-01"))
    oracle = oracle_survival(data, "2024-01-01", grid_days, n_draws=n_draws, seed=seed)
    oracle = oracle.loc[test.index].to_numpy()
    km, km_risk = fit_predict(KaplanMeierBaseline(), train, test, [], times)
    rows = [evaluate("oracle (true curve)", train, test, oracle, 1 - oracle[:, -1], times),
            evaluate("Kaplan-Meier", train, test, km, km_risk, times)]
    assert customer_truth(data).shape[0] == n_customers
    return {"rows": rows, "n_train": len(train), "n_test": len(test),
            "events_test": int(test["event"].sum()), "period_days": period,
            "grid_days": grid_days.tolist(), "n_customers": n_customers, "seed": seed}


COLUMNS = {"model": "model", "uno_c": "Uno C", "harrell_c": "Harrell C",
           "mean_auc": "mean AUC", "integrated_brier": "IBS (IPCW)",
           "integrated_admin_brier": "IBS (admin.)", "calibration_ici": "ICI"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="OULAD folder")
    parser.add_argument("--sim-customers", type=int, default=20_000)
    parser.add_argument("--sim-draws", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    res_oulad = oulad(args.data)
    cols = {**COLUMNS, **{f"mean_S_{d}d": f"mean S({d} d)" for d in (28, 91, 182, 231)}}
    print_table(f"OULAD: train 2013 ({res_oulad['n_train']:,} enrolments), test 2014 "
                f"({res_oulad['n_test']:,}); weekly grid 7..231 days", res_oulad["rows"], cols)
    print("observed (test Kaplan-Meier):",
          ", ".join(f"{k} {v:.3f}" for k, v in res_oulad["observed_test_km"].items()))
    res_sim = simulator(args.sim_customers, args.seed, args.sim_draws)
    print_table(f"Simulator (contractual, {args.sim_customers:,} customers): landmark "
                f"2024-01-01 ({res_sim['n_test']:,} subscribers), monthly grid 30..360 days",
                res_sim["rows"], COLUMNS)
    seconds = time.perf_counter() - t0
    path = write_json("survival", {"oulad": res_oulad, "simulator": res_sim,
                                   "seconds": seconds})
    print(f"\n{seconds:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
