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

* Kaplan-Meier (lifelines), overall and per module: the same curve for every enrolment (of a
  module); risk = 1 - S(tau).
* Cox proportional hazards (``lifelines.CoxPHFitter``, penalizer 0.01, one-hot covariates).

Metrics (scikit-survival): Uno's C (IPCW, censoring fitted on the training rows, ``tau`` =
the end of the grid), Harrell's C and the integrated Brier score over a weekly grid of 1..33
weeks (7..231 days). The earliest module end is day 234, so nobody is censored inside the
grid: the IPCW weights are 1 there and the integrated Brier score is also the administrative
one (Kvamme & Borgan 2023).

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
from lifelines import CoxPHFitter, KaplanMeierFitter
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    integrated_brier_score,
)
from sksurv.util import Surv

from churnml.config import load_config
from churnml.data.loaders import load_data
from churnml.data.simulate import customer_truth, oracle_survival, simulate
from churnml.errors import DataWarning

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "examples" / "oulad.yaml"
DATA_REL = Path("shared") / "data" / "oulad"
TRAIN, TEST = ("2013B", "2013J"), ("2014B", "2014J")
CATEGORICAL = ["plan", "gender", "region", "highest_education", "imd_band", "age_band",
               "disability"]
NUMERIC = ["num_of_prev_attempts", "studied_credits", "registered_days_before_start"]
GRID_DAYS = np.arange(7, 232, 7)  # weekly, before the earliest module end (day 234)
COX_PENALIZER = 0.01
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


def design(frame: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """One-hot categoricals (first level dropped) and numeric covariates; ``columns`` aligns
    a test design to the training one."""
    X = pd.get_dummies(frame[CATEGORICAL], drop_first=True, dtype=float)
    X = pd.concat([X, frame[NUMERIC].astype(float)], axis=1)
    return X if columns is None else X.reindex(columns=columns, fill_value=0.0)


def km_curve(duration: np.ndarray, event: np.ndarray, times: np.ndarray) -> np.ndarray:
    fit = KaplanMeierFitter().fit(duration, event)
    return fit.survival_function_at_times(times).to_numpy()


def evaluate(name: str, train: pd.DataFrame, test: pd.DataFrame, surv: np.ndarray,
             risk: np.ndarray, times: np.ndarray) -> dict[str, Any]:
    """Uno's C (tau = last grid time), Harrell's C and the integrated Brier score."""
    y_train = Surv.from_arrays(train["event"].to_numpy(), train["duration"].to_numpy())
    y_test = Surv.from_arrays(test["event"].to_numpy(), test["duration"].to_numpy())
    tau = float(times[-1])
    uno = concordance_index_ipcw(y_train, y_test, risk, tau=tau)[0]
    harrell = concordance_index_censored(test["event"].to_numpy(), test["duration"].to_numpy(),
                                         risk)[0]
    ibs = integrated_brier_score(y_train, y_test, surv, times)
    return {"model": name, "uno_c": uno, "harrell_c": harrell, "integrated_brier": ibs,
            "tau": tau}


def oulad(data_dir: Path | None) -> dict[str, Any]:
    frame, period = oulad_durations(data_dir)
    times = GRID_DAYS / period
    train = frame[frame["presentation"].isin(TRAIN)]
    test = frame[frame["presentation"].isin(TEST)]
    rows = []
    km = km_curve(train["duration"].to_numpy(), train["event"].to_numpy(), times)
    surv = np.tile(km, (len(test), 1))
    rows.append(evaluate("Kaplan-Meier", train, test, surv, 1 - surv[:, -1], times))

    by_module = np.empty((len(test), times.size))
    for module, part in train.groupby("plan"):
        curve = km_curve(part["duration"].to_numpy(), part["event"].to_numpy(), times)
        by_module[(test["plan"] == module).to_numpy()] = curve
    unseen = ~test["plan"].isin(train["plan"]).to_numpy()
    by_module[unseen] = km  # a module first given in 2014: the overall curve
    rows.append(evaluate("Kaplan-Meier by module", train, test, by_module,
                         1 - by_module[:, -1], times))

    X_train = design(train)
    X_test = design(test, list(X_train.columns))
    cox = CoxPHFitter(penalizer=COX_PENALIZER).fit(
        X_train.assign(duration=train["duration"].to_numpy(), event=train["event"].to_numpy()),
        duration_col="duration", event_col="event")
    surv_cox = cox.predict_survival_function(X_test, times=times).to_numpy().T
    risk_cox = cox.predict_partial_hazard(X_test).to_numpy()
    rows.append(evaluate("Cox PH (lifelines)", train, test, surv_cox, risk_cox, times))

    observed = km_curve(test["duration"].to_numpy(), test["event"].to_numpy(), times)
    at = {d: int(np.flatnonzero(GRID_DAYS == d)[0]) for d in (28, 91, 182, 231)}
    for row, s in zip(rows, (surv, by_module, surv_cox), strict=True):
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
    km = np.tile(km_curve(train["duration"].to_numpy(), train["event"].to_numpy(), times),
                 (len(test), 1))
    rows = [evaluate("oracle (true curve)", train, test, oracle, 1 - oracle[:, -1], times),
            evaluate("Kaplan-Meier", train, test, km, 1 - km[:, -1], times)]
    assert customer_truth(data).shape[0] == n_customers
    return {"rows": rows, "n_train": len(train), "n_test": len(test),
            "events_test": int(test["event"].sum()), "period_days": period,
            "grid_days": grid_days.tolist(), "n_customers": n_customers, "seed": seed}


COLUMNS = {"model": "model", "uno_c": "Uno C", "harrell_c": "Harrell C",
           "integrated_brier": "integrated Brier"}


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
