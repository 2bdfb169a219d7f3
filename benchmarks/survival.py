"""Benchmark: time to churn on real course registrations (OULAD) and on the simulator.

**OULAD, time-based split.** ``configs/examples/oulad.yaml`` maps the registrations onto the
data contract (one enrolment = one subscription with its term end; see the README). Each
enrolment enters at its landmark, ``max(day 0, registration)`` (day 0 = the first of the
presentation's start month), if it has not withdrawn by then; churn = withdrawal, censored at
the module end (its ``term_end_ts``), which is known for every enrolment in advance. Durations
are in weeks (``survival.period_days`` = 7 of the config). Models are fitted on the 2013
presentations (2013B, 2013J) and evaluated on the 2014 ones (2014B, 2014J), as a model trained
on past cohorts is used. Covariates known at the landmark: module, the student attributes of
``customers`` (never ``final_result``) and the days registered before day 0 ("attributes");
"attributes + history" adds the student's other enrolments as known at the landmark
(:func:`student_history`: registered, in the same presentation, withdrawn, completed). Every
model of a covariate set gets the same covariates.

* Kaplan-Meier, overall and per module (:class:`churnml.survival.kaplan_meier.
  KaplanMeierBaseline`): the same curve for every enrolment (of a module).
* Cox proportional hazards (:class:`churnml.survival.cox.CoxBaseline`, ridge penalty 1 on the
  standardised design, one-hot categoricals).
* churnml's :class:`~churnml.survival.hazard.DiscreteTimeHazard` on the same covariates
  (durations in whole weeks, :func:`whole_periods`), with each setting tried in
  :data:`OULAD_HAZARD_ATTEMPTS`; the table shows the one with the best Uno C on the
  validation split :data:`VALIDATION` (fit on 2013B, scored on 2013J), so the choice never
  sees the 2014 test rows.

Metrics (:func:`churnml.survival.metrics.survival_scores`): Uno's C (IPCW, censoring fitted on
the training rows, ``tau`` = the end of the grid; risk = each model's own score), Harrell's C,
mean cumulative/dynamic AUC, the integrated IPCW and administrative Brier scores and the
calibration ICI at the end of the grid, over a weekly grid of 1..33 weeks (7..231 days). The
earliest module end is day 234, so nobody is censored inside the grid: the IPCW weights are 1
there and the two Brier scores agree.

**Simulator, oracle known.** ``simulate(contractual=True)`` with the landmark 2024-01-01: the
subscribers then, churn = the end of the running spell, censored at the window end; the
oracle is :func:`churnml.data.simulate.oracle_survival` (the true curve given the latent
state), and the same curve with the base hazard unknown (``base_hazard="posterior"``: the
satisfaction path known, the base hazard through its posterior given the past churns), the
best any model of observable data could do. Training rows for Kaplan-Meier and the censoring
fit: the landmark 2023-07-01.
The churnml hazard model is fitted on every built-in feature plus ``tenure`` at the landmarks
:data:`SIM_TRAIN_CUTOFFS`, durations censored at the test landmark. Also reported: the mean
absolute difference between its ``1 - S(90 d)`` and the churn probability of a
``ChurnClassifier`` trained on the same landmarks (labels ending by the test landmark), its
Uno C with that probability as the risk score, and
the coverage and width of 80 % lifetime-value intervals over 360 days against each
subscriber's realized spend: the customer's past mean spend taken as known (spend CV fitted,
and times :data:`SPEND_CV_FACTORS`), and its Gamma-Gamma posterior given the months observed
(:func:`~churnml.survival.lifetime_value.spend_posterior`), and the interval ``churnml score``
writes (:func:`product_coverage`: the value model's spend, the spread fitted as ``train``
fits it, against the fallback of models logged without one).

**CDNOW**: lifetime-value intervals on the purchase log (:mod:`survival_cdnow`).

    python benchmarks/survival.py      # ~8 min; prints the tables, writes results/survival.json
    python benchmarks/survival.py --parts simulator,cdnow   # results/survival_cdnow_simulator.json
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import survival_cdnow
import yaml
from _quality import N_JOBS, churn_probability, print_table, write_json

from churnml.config import ChurnConfig, Config, resolve_paths
from churnml.data.loaders import load_data
from churnml.data.simulate import customer_truth, oracle_survival, simulate
from churnml.errors import DataWarning
from churnml.labels import build_panel
from churnml.models import ChurnClassifier, LTVModel
from churnml.survival.cox import CoxBaseline
from churnml.survival.durations import build_survival_panel
from churnml.survival.hazard import DiscreteTimeHazard
from churnml.survival.kaplan_meier import KaplanMeierBaseline
from churnml.survival.lifetime_value import (
    fit_spend_cv,
    fit_spend_population,
    lifetime_value,
    realized_value,
    spend_posterior,
)
from churnml.survival.metrics import survival_scores
from churnml.survival.scores import scored_columns
from churnml.survival.spend import (
    SpendModel,
    spend_at_latest_cutoff,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "examples" / "oulad.yaml"
DATA_REL = Path("shared") / "data" / "oulad"
TRAIN, TEST = ("2013B", "2013J"), ("2014B", "2014J")
CATEGORICAL = ["plan", "gender", "region", "highest_education", "imd_band", "age_band",
               "disability"]
NUMERIC = ["num_of_prev_attempts", "studied_credits", "registered_days_before_start"]
HISTORY = ["other_enrolments", "parallel_enrolments", "other_withdrawals", "other_completed"]
GRID_DAYS = np.arange(7, 232, 7)  # weekly, before the earliest module end (day 234)
DAY = pd.Timedelta(days=1)
DTH = "churnml DiscreteTimeHazard"
SIM_TRAIN_CUTOFFS = pd.date_range("2022-05-01", "2023-09-01", freq="2MS")
SIM_KEYS = ["customer_id", "cutoff"]
OULAD_HAZARD_ATTEMPTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "time interactions": {"time_interactions": True},
    "slower, smaller trees": {"learning_rate": 0.02, "num_leaves": 15,
                              "min_child_samples": 100},
    "slower, 7 leaves": {"learning_rate": 0.02, "num_leaves": 7, "min_child_samples": 200},
    "slower, 7 leaves, time interactions": {"learning_rate": 0.02, "num_leaves": 7,
                                            "min_child_samples": 200,
                                            "time_interactions": True},
}
VALIDATION = ("2013B", "2013J")  # the setting is chosen on 2013B -> 2013J, then refitted on 2013
ORACLE_POSTERIOR = "oracle, base hazard unknown (satisfaction path known)"
SPEND_CV_FACTORS = (1.0, 2.0)  # the fitted spread of one period's spend, times


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
    if data_dir is None or not data_dir.is_dir():
        raise SystemExit(f"OULAD data not found ({data_dir}); pass --data PATH/oulad")
    raw = yaml.safe_load(CONFIG.read_text())
    raw["data"]["dir"] = str(data_dir.resolve())
    raw["data"]["allowed_roots"] = [str(data_dir.resolve())]  # read from that folder only
    cfg = resolve_paths(Config.model_validate(raw), CONFIG.parent)
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
    ).join(student_history(subs.assign(id_student=cust["id_student"], landmark=landmark)))
    return frame[keep], period


def student_history(subs: pd.DataFrame) -> pd.DataFrame:
    """The student's other enrolments as known at each enrolment's landmark (index
    ``customer_id``; columns :data:`HISTORY`): those registered by then, of them the ones
    in the same presentation, the ones withdrawn by then and the ones that reached their
    module end by then without a withdrawal. Outcomes (``final_result``) are not read."""
    own = subs[["id_student", "landmark"]].reset_index()
    other = subs[["id_student", "start_ts", "end_ts", "term_end_ts", "code_presentation"]]
    pairs = own.merge(other.reset_index(), on="id_student", suffixes=("", "_other"))
    pairs = pairs[(pairs["customer_id"] != pairs["customer_id_other"])
                  & (pairs["start_ts"] <= pairs["landmark"])]
    withdrawn = pairs["end_ts"].notna() & (pairs["end_ts"] <= pairs["landmark"])
    counts = {
        "other_enrolments": pairs["customer_id"],
        "parallel_enrolments": pairs.loc[
            pairs["code_presentation"] == subs["code_presentation"].reindex(
                pairs["customer_id"]).to_numpy(), "customer_id"],
        "other_withdrawals": pairs.loc[withdrawn, "customer_id"],
        "other_completed": pairs.loc[~withdrawn & (pairs["term_end_ts"] <= pairs["landmark"]),
                                     "customer_id"],
    }
    return pd.DataFrame({k: v.value_counts().reindex(subs.index, fill_value=0)
                         for k, v in counts.items()})


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


def hazard_attempts(train: pd.DataFrame, test: pd.DataFrame, covariates: list[str],
                    times: np.ndarray) -> tuple[list[dict[str, Any]], str]:
    """Each setting of :data:`OULAD_HAZARD_ATTEMPTS` fitted on ``train`` and scored on
    ``test``, plus its Uno C on the validation split (fit on ``VALIDATION[0]``, scored on
    ``VALIDATION[1]``); the choice is the setting with the best validation C, so the test
    rows play no part in it."""
    fit = train[train["presentation"] == VALIDATION[0]]
    val = train[train["presentation"] == VALIDATION[1]]
    attempts = []
    for label, params in OULAD_HAZARD_ATTEMPTS.items():
        model = DiscreteTimeHazard(n_jobs=N_JOBS, **params)
        model.fit(fit[covariates], whole_periods(fit))
        val_c = evaluate("validation", fit, val, model.predict_survival_function(
            val[covariates], times), model.predict_risk(val[covariates]), times)["uno_c"]
        model = DiscreteTimeHazard(n_jobs=N_JOBS, **params)
        model.fit(train[covariates], whole_periods(train))
        surv = model.predict_survival_function(test[covariates], times)
        row = evaluate(f"{DTH} ({label})", train, test, surv, model.predict_risk(
            test[covariates]), times)
        attempts.append({**row, "setting": label, "params": params, "n_iter": model.n_iter_,
                         "validation_uno_c": val_c, "surv": surv})
    choice = max(attempts, key=lambda r: r["validation_uno_c"])["setting"]
    return attempts, choice


def oulad(data_dir: Path | None) -> dict[str, Any]:
    frame, period = oulad_durations(data_dir)
    times = GRID_DAYS / period
    train = frame[frame["presentation"].isin(TRAIN)]
    test = frame[frame["presentation"].isin(TEST)]
    covariate_sets = {"attributes": CATEGORICAL + NUMERIC,
                      "attributes + history": CATEGORICAL + NUMERIC + HISTORY}
    rows, curves = [], []
    for name, model in {"Kaplan-Meier": KaplanMeierBaseline(),
                        "Kaplan-Meier by module": KaplanMeierBaseline(by="plan")}.items():
        surv, risk = fit_predict(model, train, test, CATEGORICAL, times)
        rows.append({**evaluate(name, train, test, surv, risk, times), "covariates": ""})
        curves.append(surv)
    attempts, choices = [], {}
    for cov_name, covariates in covariate_sets.items():
        surv, risk = fit_predict(CoxBaseline(tenure_column=None), train, test, covariates,
                                 times)
        rows.append({**evaluate("Cox PH", train, test, surv, risk, times),
                     "covariates": cov_name})
        curves.append(surv)
        tried, choice = hazard_attempts(train, test, covariates, times)
        choices[cov_name] = choice
        for row in tried:
            surv = row.pop("surv")
            attempts.append({**row, "covariates": cov_name})
            if row["setting"] == choice:
                rows.append({**row, "covariates": cov_name})
                curves.append(surv)
    observed = KaplanMeierBaseline().fit(test[[]], test[["duration", "event"]])
    observed = observed.predict_survival_function(test[[]].iloc[:1], times)[0]
    at = {d: int(np.flatnonzero(GRID_DAYS == d)[0]) for d in (28, 91, 182, 231)}
    for row, s in zip(rows, curves, strict=True):
        row.update({f"mean_S_{d}d": float(s[:, i].mean()) for d, i in at.items()})
    return {
        "rows": rows, "hazard_attempts": attempts, "hazard_choice": choices,
        "validation_split": list(VALIDATION),
        "history_share_test": {c: float((test[c] > 0).mean()) for c in HISTORY},
        "observed_test_km": {f"S_{d}d": float(observed[i]) for d, i in at.items()},
        "n_train": len(train), "n_test": len(test),
        "events_train": int(train["event"].sum()), "events_test": int(test["event"].sum()),
        "period_days": period, "grid_days": GRID_DAYS.tolist(),
        "excluded_no_landmark": "enrolments withdrawn at or before max(day 0, registration)",
    }


def whole_periods(y: pd.DataFrame) -> pd.DataFrame:
    """Durations as whole periods for the discrete-time model: an event in ``(k - 1, k]`` is
    period ``k``; a row censored at ``c`` survived ``floor(c)`` whole periods."""
    d = np.where(y["event"], np.ceil(y["duration"]), np.floor(y["duration"]))
    return pd.DataFrame({"duration": d, "event": y["event"].to_numpy()}, index=y.index)


def period_spend(transactions: pd.DataFrame, ids: pd.Index, landmark: pd.Timestamp,
                 period: int, n_periods: int, sign: int) -> np.ndarray:
    """Spend per customer (rows ``ids``) in each of ``n_periods`` periods after (``sign``
    = 1) or before (-1) ``landmark``: period ``k`` = days ``[(k - 1) p, k p)`` from it."""
    days = (transactions["ts"] - landmark) / DAY * sign
    k = np.floor(days / period).astype("int64") + (1 if sign > 0 else 0)
    if sign < 0:
        k = k + 1  # days (0, p] before the landmark are period 1
    keep = (k >= 1) & (k <= n_periods) & transactions["customer_id"].isin(ids)
    t = transactions[keep]
    out = np.zeros((len(ids), n_periods))
    np.add.at(out, (ids.get_indexer(t["customer_id"]), k[keep].to_numpy() - 1),
              t["amount"].to_numpy(dtype=float))
    return out


def interval_coverage(surv: np.ndarray, mean_spend: np.ndarray, spend_cv: float,
                      churn_period: np.ndarray, realized_spend: np.ndarray, horizon: int,
                      mean_shape: np.ndarray | float = np.inf) -> dict[str, float]:
    """Coverage of the 80 % lifetime-value interval (no discounting) of the realized value;
    ``mean_shape``: uncertainty of each customer's mean spend (inf = taken as known)."""
    value = lifetime_value(surv, mean_spend, horizon, 0.0, spend_cv=spend_cv,
                           mean_shape=mean_shape)
    real = realized_value(churn_period, realized_spend, horizon)
    inside = (real >= value["lifetime_value_low"]) & (real <= value["lifetime_value_high"])
    width = value["lifetime_value_high"] - value["lifetime_value_low"]
    return {"level": 0.8, "coverage": float(inside.mean()),
            "below": float((real < value["lifetime_value_low"]).mean()),
            "above": float((real > value["lifetime_value_high"]).mean()),
            "mean_width": float(width.mean()), "mean_value": float(value["lifetime_value"].mean()),
            "mean_realized": float(real.mean()), "spend_cv": float(spend_cv),
            "n": int(len(real)), "horizon_periods": horizon}


def simulator(n_customers: int, seed: int, n_draws: int) -> dict[str, Any]:
    """Oracle, Kaplan-Meier and the churnml hazard model on simulated subscribers
    (durations in 30-day periods), and the churn model's probability against
    ``1 - S(horizon)``."""
    data = simulate(n_customers, start="2022-01-01", end="2024-12-31", seed=seed,
                    contractual=True)
    end = pd.Timestamp("2025-01-01")
    landmark = pd.Timestamp("2024-01-01")
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

    train, test = spells(pd.Timestamp("2023-07-01")), spells(landmark)
    oracle = oracle_survival(data, landmark, grid_days, n_draws=n_draws, seed=seed)
    oracle = oracle.loc[test.index].to_numpy()
    # what the observable data could give at best: the satisfaction path known exactly, the
    # base hazard only through its posterior given the past churns and exposure
    posterior = oracle_survival(data, landmark, grid_days, n_draws=n_draws, seed=seed,
                                base_hazard="posterior").loc[test.index].to_numpy()
    km, km_risk = fit_predict(KaplanMeierBaseline(), train, test, [], times)
    rows = [evaluate("oracle (true curve)", train, test, oracle, 1 - oracle[:, -1], times),
            evaluate(ORACLE_POSTERIOR, train, test, posterior, 1 - posterior[:, -1], times),
            evaluate("Kaplan-Meier", train, test, km, km_risk, times)]
    # churnml: every built-in feature at each training landmark, durations censored at the
    # test landmark (no training row looks past it); test features at the landmark itself
    churn = ChurnConfig(kind="contractual")
    t0 = time.perf_counter()
    panel = build_survival_panel(data, SIM_TRAIN_CUTOFFS, churn=churn, period_days=period,
                                 data_end=landmark)
    at = build_survival_panel(data, [landmark], churn=churn, period_days=period)
    at = at.set_index("customer_id")
    features = [c for c in panel.columns if c not in SIM_KEYS + ["duration", "event",
                                                                  "censor_duration"]]
    panel_seconds = time.perf_counter() - t0
    scored = test.index.intersection(at.index)
    t0 = time.perf_counter()
    hazard = DiscreteTimeHazard(n_jobs=N_JOBS).fit(
        panel[features], panel[["duration", "event"]], groups=panel["customer_id"])
    Xt = at.loc[scored, features]
    surv = hazard.predict_survival_function(Xt, times)
    fit_seconds = time.perf_counter() - t0
    sub = test.loc[scored]
    row = evaluate(DTH, train, sub, surv, hazard.predict_risk(Xt), times)
    rows.append({**row, "n_iter": hazard.n_iter_, "n_periods": hazard.n_periods_})
    # the churn model of training on the same landmarks (labels within the horizon, so the
    # label windows end by the test landmark) against 1 - S(horizon) of the hazard model
    horizon = churn.horizon_days
    labelled = build_panel(data, [c for c in SIM_TRAIN_CUTOFFS
                                  if c + pd.Timedelta(days=horizon) <= landmark], churn=churn)
    labelled = labelled.merge(panel[[*SIM_KEYS, "tenure"]], on=SIM_KEYS)  # same features
    clf = ChurnClassifier(n_jobs=N_JOBS).fit(labelled[features], labelled["churned"],
                                             groups=labelled["customer_id"])
    p_churn = churn_probability(clf, Xt)
    # the churn model's probability as a risk score (no curve: C only)
    rows.append({"model": "churn model's churn_probability (90 d) as risk", **{
        k: v for k, v in evaluate("", train, sub, surv, p_churn, times).items()
        if k in ("uno_c", "harrell_c")}})
    one_minus_s = 1 - surv[:, int(np.flatnonzero(grid_days == horizon)[0])]
    observed = (sub["event"] & (sub["duration"] <= horizon / period)).to_numpy()
    agreement = {
        "horizon_days": horizon, "n": int(len(sub)),
        "mean_abs_difference": float(np.mean(np.abs(one_minus_s - p_churn))),
        "mean_1_minus_S": float(one_minus_s.mean()),
        "mean_churn_probability": float(p_churn.mean()),
        "observed_rate": float(observed.mean()),
        "brier_1_minus_S": float(np.mean((one_minus_s - observed) ** 2)),
        "brier_churn_probability": float(np.mean((p_churn - observed) ** 2)),
        "oracle_mean_1_minus_S": float(1 - oracle[np.isin(test.index, scored),
                                                  int(np.flatnonzero(grid_days == horizon)[0])
                                                  ].mean()),
    }
    # lifetime value over the grid (12 periods = 360 days, undiscounted): spend per active
    # period = the customer's mean over the periods of the last year they were subscribed,
    # spread (CV) fitted on those periods; realized = their spend in the periods paid
    # before churn
    ids = pd.Index(scored)
    past = period_spend(data.transactions, ids, landmark, period, 12, -1)
    months = np.clip(Xt["tenure"].to_numpy(dtype=float), 1, 12)
    active = np.arange(12)[None, :] < months[:, None]
    mean_spend = (past * active).sum(axis=1) / months
    future = period_spend(data.transactions, ids, landmark, period, 12, 1)
    churn_period = np.where(sub["event"], np.ceil(sub["duration"]), np.inf)
    grid = hazard.predict_survival_grid(Xt, 12)
    cv = fit_spend_cv(past, active)
    # the customer's mean spend per period: Gamma-Gamma posterior given the months observed
    # (population q, gamma fitted with p = 1 / cv^2), or the past mean taken as known
    q, gamma = fit_spend_population(mean_spend, months, cv)
    post_mean, alpha = spend_posterior(mean_spend, months, cv, q, gamma)
    curves = {DTH: grid, "oracle (true curve)": oracle[np.isin(test.index, scored)]}
    coverage = [{"model": name, "spend_cv_factor": f, "mean_spend": "past mean, known",
                 **interval_coverage(s, mean_spend, f * cv, churn_period, future, 12)}
                for name, s in curves.items() for f in SPEND_CV_FACTORS]
    coverage += [{"model": name, "spend_cv_factor": 1.0, "mean_spend": "Gamma-Gamma posterior",
                  **interval_coverage(s, post_mean, cv, churn_period, future, 12, alpha)}
                 for name, s in curves.items()]
    coverage += product_coverage(data, panel, labelled, features, hazard, Xt, churn,
                                 churn_period, future)
    assert customer_truth(data).shape[0] == n_customers
    return {"rows": rows, "n_train": len(train), "n_test": len(test),
            "n_test_scored": int(len(scored)), "n_train_landmark_rows": int(len(panel)),
            "train_cutoffs": [str(c.date()) for c in SIM_TRAIN_CUTOFFS],
            "events_test": int(test["event"].sum()), "period_days": period,
            "grid_days": grid_days.tolist(), "n_customers": n_customers, "seed": seed,
            "churn_agreement": agreement, "ltv_coverage": coverage,
            "spend_gamma_gamma": {"p": 1 / cv ** 2, "q": q, "gamma": gamma, "spend_cv": cv},
            "panel_seconds": panel_seconds,
            "hazard_seconds": fit_seconds}


def product_coverage(data: Any, panel: pd.DataFrame, labelled: pd.DataFrame,
                     features: list[str], hazard: Any, Xt: pd.DataFrame, churn: ChurnConfig,
                     churn_period: np.ndarray, future: np.ndarray) -> list[dict[str, Any]]:
    """Coverage of the interval ``churnml score`` writes (``Scorer.predict_survival``):
    spend per active period from an :class:`~churnml.models.LTVModel`'s value if retained
    over the churn horizon (trained as ``train`` does on the labelled landmarks), the spread
    fitted as ``train`` fits it (:func:`churnml.survival.spend.spend_at_latest_cutoff`: the
    latest training landmark, look-back of the churn config) against the fallback of models logged
    without one; undiscounted over 12 periods, as the rows above."""
    period, horizon = 30, churn.horizon_days
    ltv = LTVModel(n_jobs=N_JOBS).fit(labelled[features], labelled["ltv"],
                                      groups=labelled["customer_id"],
                                      retained=labelled["churned"] == 0)
    fitted = spend_at_latest_cutoff(data.transactions, panel, period, churn.lookback_days)
    if_retained = ltv.predict_if_retained(Xt)
    real = realized_value(churn_period, future, 12)
    rows = []
    for label, spread in (("fitted at training (stored)", fitted),
                          ("fallback (CV 1.0, flat prior)", SpendModel())):
        cols = scored_columns(hazard, Xt, if_retained, spread, churn_horizon_days=horizon,
                              lookback_days=churn.lookback_days, period_days=period,
                              active_days=(period,), horizon_days=12 * period,
                              discount_rate_annual=0.0)
        low, high = cols["lifetime_value_low"], cols["lifetime_value_high"]
        rows.append({"model": f"{DTH} (churnml score)", "spend_cv_factor": 1.0,
                     "mean_spend": f"LTV model's value if retained; spread {label}",
                     "level": 0.8, "coverage": float(((real >= low) & (real <= high)).mean()),
                     "below": float((real < low).mean()), "above": float((real > high).mean()),
                     "mean_width": float((high - low).mean()),
                     "mean_value": float(cols["lifetime_value"].mean()),
                     "mean_realized": float(real.mean()), "spend_cv": spread.spend_cv,
                     "spend_q": spread.q, "spend_gamma": spread.gamma,
                     "n": int(len(real)), "horizon_periods": 12})
    return rows


COLUMNS = {"model": "model", "covariates": "covariates", "uno_c": "Uno C", "harrell_c": "Harrell C",
           "mean_auc": "mean AUC", "integrated_brier": "IBS (IPCW)",
           "integrated_admin_brier": "IBS (admin.)", "calibration_ici": "ICI"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="OULAD folder")
    parser.add_argument("--sim-customers", type=int, default=20_000)
    parser.add_argument("--sim-draws", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="oulad,simulator,cdnow",
                        help="comma-separated parts to run: oulad, simulator, cdnow")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    if "cdnow" in parts:  # lifetime-value intervals on the CDNOW purchase log
        results["cdnow"] = survival_cdnow.cdnow_coverage()
        print_table("CDNOW: 80 % lifetime-value interval over 9 periods (270 days from "
                    "1997-10-01, undiscounted)", results["cdnow"]["rows"],
                    survival_cdnow.COLUMNS)
    if "oulad" in parts:
        results["oulad"] = _oulad_part(args)
    if "simulator" in parts:
        results["simulator"] = _simulator_part(args)
    seconds = time.perf_counter() - t0
    name = "survival" if parts >= {"oulad", "simulator", "cdnow"} else \
        "survival_" + "_".join(sorted(parts))
    path = write_json(name, {**results, "seconds": seconds})
    print(f"\n{seconds:.0f} s; wrote {path}")


def _oulad_part(args: argparse.Namespace) -> dict[str, Any]:
    res_oulad = oulad(args.data)
    cols = {**COLUMNS, **{f"mean_S_{d}d": f"mean S({d} d)" for d in (28, 91, 182, 231)}}
    print_table(f"OULAD: train 2013 ({res_oulad['n_train']:,} enrolments), test 2014 "
                f"({res_oulad['n_test']:,}); weekly grid 7..231 days", res_oulad["rows"], cols)
    print_table("OULAD: churnml hazard model, settings tried (constructor arguments)",
                res_oulad["hazard_attempts"], {**COLUMNS, "validation_uno_c": "val. Uno C",
                                               "n_iter": "trees"})
    print("chosen on the validation split:", res_oulad["hazard_choice"])
    print("observed (test Kaplan-Meier):",
          ", ".join(f"{k} {v:.3f}" for k, v in res_oulad["observed_test_km"].items()))
    return res_oulad


def _simulator_part(args: argparse.Namespace) -> dict[str, Any]:
    res_sim = simulator(args.sim_customers, args.seed, args.sim_draws)
    print_table(f"Simulator (contractual, {args.sim_customers:,} customers): landmark "
                f"2024-01-01 ({res_sim['n_test']:,} subscribers), monthly grid 30..360 days",
                res_sim["rows"], {k: v for k, v in COLUMNS.items() if k != "covariates"})
    print_table("Simulator: 80 % lifetime-value interval over 12 periods (360 days, "
                "undiscounted)", res_sim["ltv_coverage"],
                {"model": "curve", "mean_spend": "customer's mean spend",
                 "spend_cv_factor": "x fitted spend CV",
                 "spend_cv": "spend CV", "coverage": "coverage", "below": "below",
                 "above": "above", "mean_width": "mean width", "mean_value": "mean value",
                 "mean_realized": "mean realized"})
    agree = res_sim["churn_agreement"]
    print(f"1 - S({agree['horizon_days']} d) of the hazard model against the churn model's "
          f"churn_probability ({agree['n']:,} subscribers): mean |difference| "
          f"{agree['mean_abs_difference']:.3f}; means {agree['mean_1_minus_S']:.3f} and "
          f"{agree['mean_churn_probability']:.3f} (oracle {agree['oracle_mean_1_minus_S']:.3f}, "
          f"observed {agree['observed_rate']:.3f}); Brier {agree['brier_1_minus_S']:.4f} and "
          f"{agree['brier_churn_probability']:.4f}")
    return res_sim


if __name__ == "__main__":
    main()
