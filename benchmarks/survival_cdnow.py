"""Benchmark: coverage of the lifetime-value interval on the CDNOW purchase log.

Calibration/holdout split of the literature: features and curves as of the cutoff
1997-10-01 (calibration 1997-01-01 .. 1997-09-30), realized value = each customer's spend over
the holdout horizon of :data:`HORIZON` 30-day periods (270 days, 1997-10-01 .. 1998-06-27),
undiscounted. Every one of the 23,570 customers is scored.

* **Curve**: :class:`~churnml.survival.hazard.DiscreteTimeHazard` (defaults, single
  threaded) on the purchase-log event of :mod:`churnml.survival.durations` (churn = the
  completion of a silence of :data:`LAPSE_DAYS` days), fitted on the landmarks
  :data:`TRAIN_CUTOFFS` with their durations censored at the cutoff (no training row reads
  the holdout); default features plus ``tenure``. Past the model's grid: constant hazard.
  A purchase log pays until its silence *starts*, :data:`LAPSE_DAYS` before the curve's
  event: ``A(t) = S(t + 3)`` (``lag_periods``, as ``churnml score`` does for purchase logs).
* **Spend per active period**: the customer's calibration spend per 30-day period of their
  active run, from the first to the last purchase (at least one period; zero-spend periods
  inside the run included: a purchase log spends in few periods).
  One period's spread ``spend_cv`` is the pooled within-customer coefficient of variation of
  those period spends (moments: ``sum_i sum_t (x_it - m_i)^2 / sum_i (n_i - 1) m_i^2``,
  zeros included, so :func:`~churnml.survival.lifetime_value.fit_spend_cv`, which models
  positive spends, does not apply). The customer's mean: the Gamma-Gamma posterior
  (:func:`~churnml.survival.lifetime_value.spend_posterior`, population fitted by
  :func:`~churnml.survival.lifetime_value.fit_spend_population`), against the calibration
  mean taken as known.

    python benchmarks/survival_cdnow.py   # ~2 min; also run by benchmarks/survival.py
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from _quality import N_JOBS, print_table, write_json

from churnml.config import ChurnConfig
from churnml.data.datasets import load_dataset
from churnml.errors import DataWarning
from churnml.labels import build_panel
from churnml.models import LTVModel
from churnml.survival.durations import build_survival_panel
from churnml.survival.hazard import DiscreteTimeHazard
from churnml.survival.lifetime_value import (
    fit_spend_population,
    lifetime_value,
    spend_posterior,
)
from churnml.survival.scores import scored_columns
from churnml.survival.spend import (
    SpendModel,
    spend_at_latest_cutoff,
)

CUTOFF = pd.Timestamp("1997-10-01")
PERIOD = 30
HORIZON = 9  # periods: 270 days of the 273-day holdout
LAPSE_DAYS = 90  # purchase-log churn: a silence of this long
LAG = LAPSE_DAYS // PERIOD  # periods from the start of the silence to the curve's event
TRAIN_CUTOFFS = pd.date_range("1997-04-01", "1997-07-01", freq="MS")
LEVEL = 0.8
KEYS = ["customer_id", "cutoff"]
DAY = pd.Timedelta(days=1)


def period_spend(tx: pd.DataFrame, ids: pd.Index, start: pd.Series | pd.Timestamp,
                 n_periods: int) -> np.ndarray:
    """Spend per customer (rows ``ids``) in 30-day periods ``k = 1..n_periods`` from
    ``start`` (a timestamp or one per customer): days ``[(k - 1) 30, k 30)``."""
    begin = start if isinstance(start, pd.Timestamp) else tx["customer_id"].map(start)
    k = np.floor((tx["ts"] - begin) / DAY / PERIOD).astype("int64") + 1
    keep = (k >= 1) & (k <= n_periods) & tx["customer_id"].isin(ids)
    out = np.zeros((len(ids), n_periods))
    np.add.at(out, (ids.get_indexer(tx.loc[keep, "customer_id"]), k[keep].to_numpy() - 1),
              tx.loc[keep, "amount"].to_numpy(dtype=float))
    return out


def pooled_cv(x: np.ndarray, active: np.ndarray) -> float:
    """Pooled within-customer coefficient of variation of period spends, zeros included
    (module docstring)."""
    n = active.sum(axis=1)
    m = (x * active).sum(axis=1) / np.maximum(n, 1)
    ok = (n >= 2) & (m > 0)
    ss = (((x - m[:, None]) ** 2) * active).sum(axis=1)
    return float(np.sqrt(ss[ok].sum() / ((n[ok] - 1) * m[ok] ** 2).sum()))


def coverage_row(name: str, value: pd.DataFrame, real: np.ndarray, **extra: Any
                 ) -> dict[str, Any]:
    low, high = value["lifetime_value_low"].to_numpy(), value["lifetime_value_high"].to_numpy()
    return {"model": name, "level": LEVEL,
            "coverage": float(((real >= low) & (real <= high)).mean()),
            "below": float((real < low).mean()), "above": float((real > high).mean()),
            "mean_width": float((high - low).mean()),
            "mean_value": float(value["lifetime_value"].mean()),
            "mean_realized": float(real.mean()), "n": int(len(real)),
            "horizon_periods": HORIZON, "horizon_days": HORIZON * PERIOD, **extra}


def cdnow_coverage() -> dict[str, Any]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = load_dataset("cdnow")
    churn = ChurnConfig(kind="non_contractual", horizon_days=LAPSE_DAYS, lookback_days=365)
    panel = build_survival_panel(data, TRAIN_CUTOFFS, churn=churn, period_days=PERIOD,
                                 data_end=CUTOFF)
    at = build_survival_panel(data, [CUTOFF], churn=churn, period_days=PERIOD)
    at = at.set_index("customer_id")
    features = [c for c in panel.columns
                if c not in [*KEYS, "duration", "event", "censor_duration"]]
    hazard = DiscreteTimeHazard(n_jobs=N_JOBS).fit(
        panel[features], panel[["duration", "event"]], groups=panel["customer_id"])
    Xt = at[features]
    surv = hazard.predict_survival_grid(Xt, HORIZON + LAG)
    ids = pd.Index(at.index)
    tx = data.transactions
    first = tx.groupby("customer_id")["ts"].min()
    cal = tx[tx["ts"] < CUTOFF]
    last = cal.groupby("customer_id")["ts"].max()
    n_cal = (np.floor((last.loc[ids] - first.loc[ids]) / DAY / PERIOD) + 1).to_numpy().astype(int)
    past = period_spend(cal, ids, first, int(n_cal.max()))
    active = np.arange(past.shape[1])[None, :] < n_cal[:, None]
    mean = (past * active).sum(axis=1) / n_cal
    cv = pooled_cv(past, active)
    future = period_spend(tx, ids, CUTOFF, HORIZON)
    real = future.sum(axis=1)
    q, gamma = fit_spend_population(mean, n_cal, cv)
    post_mean, alpha = spend_posterior(mean, n_cal, cv, q, gamma)
    kw = {"level": LEVEL, "spend_cv": cv}
    rows = [
        coverage_row("calibration mean taken as known", lifetime_value(
            surv, mean, HORIZON, 0.0, lag_periods=LAG, **kw), real, spend_cv=cv),
        coverage_row("Gamma-Gamma posterior of the mean", lifetime_value(
            surv, post_mean, HORIZON, 0.0, mean_shape=alpha, lag_periods=LAG, **kw), real,
            spend_cv=cv),
        coverage_row("Gamma-Gamma posterior, paid to the curve's event (no lag)",
                     lifetime_value(surv, post_mean, HORIZON, 0.0, mean_shape=alpha, **kw),
                     real, spend_cv=cv),
    ]
    # the interval `churnml score` writes: the LTV model's value if retained per period,
    # the spread fitted as `train` fits it (latest training landmark), purchase-log lag
    labelled = build_panel(data, TRAIN_CUTOFFS, churn=churn)
    labelled = labelled.merge(panel[[*KEYS, "tenure"]], on=KEYS)
    ltv = LTVModel(n_jobs=N_JOBS).fit(labelled[features], labelled["ltv"],
                                      groups=labelled["customer_id"],
                                      retained=labelled["churned"] == 0)
    fitted = spend_at_latest_cutoff(tx, panel, PERIOD, churn.lookback_days)
    if_retained = ltv.predict_if_retained(Xt)
    for label, spread in (("churnml score: LTV model, spread fitted at training", fitted),
                          ("churnml score: LTV model, fallback spread (CV 1.0)",
                           SpendModel())):
        cols = scored_columns(hazard, Xt, if_retained, spread, churn_horizon_days=LAPSE_DAYS,
                              lookback_days=churn.lookback_days, period_days=PERIOD,
                              active_days=(PERIOD,), horizon_days=HORIZON * PERIOD,
                              discount_rate_annual=0.0, level=LEVEL, lag_periods=LAG)
        rows.append(coverage_row(label, cols.reset_index(drop=True), real,
                                 spend_cv=spread.spend_cv, spend_q=spread.q,
                                 spend_gamma=spread.gamma))
    return {"rows": rows, "spend_cv": cv, "gamma_gamma": {"p": 1 / cv ** 2, "q": q,
                                                          "gamma": gamma},
            "n_customers": len(ids), "n_train_landmark_rows": len(panel),
            "train_cutoffs": [str(c.date()) for c in TRAIN_CUTOFFS], "cutoff": str(CUTOFF.date()),
            "lapse_days": LAPSE_DAYS, "period_days": PERIOD, "hazard_n_periods": hazard.n_periods_,
            "hazard_n_iter": hazard.n_iter_, "mean_S_horizon": float(surv[:, -1].mean()),
            "share_buying_in_horizon": float((real > 0).mean()),
            "mean_S_lag": float(surv[:, LAG - 1].mean()),
            "share_zero_value_realized": float((real == 0).mean()),
            "seconds": time.perf_counter() - t0}


COLUMNS = {"model": "customer's mean spend", "coverage": "coverage", "below": "below",
           "above": "above", "mean_width": "mean width", "mean_value": "mean value",
           "mean_realized": "mean realized"}


def main() -> None:
    res = cdnow_coverage()
    print_table(f"CDNOW: 80 % lifetime-value interval over {HORIZON} periods "
                f"({HORIZON * PERIOD} days from {res['cutoff']}, undiscounted), "
                f"{res['n_customers']:,} customers", res["rows"], COLUMNS)
    gg = res["gamma_gamma"]
    print(f"spend CV {res['spend_cv']:.3f}; Gamma-Gamma p {gg['p']:.3f}, q {gg['q']:.3f}, "
          f"gamma {gg['gamma']:.3f}; hazard grid {res['hazard_n_periods']} periods")
    print(f"wrote {write_json('survival_cdnow', res)}")


if __name__ == "__main__":
    main()
