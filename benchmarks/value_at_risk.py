"""Benchmark: value if retained and value at risk, on the simulator's truth and on CDNOW.

Definitions (churnml):

* ``value_if_retained`` (VIR) = E[horizon revenue | not churned], from the LTV model
  (:meth:`~churnml.models.LTVModel.predict_if_retained`); ``expected_value`` = E[horizon
  revenue]; ``value_at_risk`` = churn probability x VIR.
* Lost revenue on real data (:func:`~churnml.training.evaluation.revenue_lost`, the report's
  definition) = churned x net revenue in the horizon before the cutoff.
* True lost value on the simulator (:func:`~churnml.data.simulate.true_lost_value`) = true
  churn (dead by the end of the horizon) x true expected horizon spend had the customer stayed
  alive; the oracle ranks by its expectation given the latent state at the cutoff.

Protocol: the ``train`` backtest of each config, unchanged (``configs/default.yaml``:
20,000 simulated customers, rolling origin over the 3 latest monthly cutoffs;
``configs/cdnow.yaml``: 5-fold customer-grouped cross-validation at 1997-10-01, 39-week
horizon), i.e. out-of-sample predictions of the models that ``churnml train`` registers. It is
run twice: VIR from the hurdle model's conditional part where it applies (``if_retained:
auto``, the default) and from a dedicated regressor on the retained rows (``dedicated``).

Tables: (a) VIR as a predictor of the horizon revenue of the customers who did not churn,
beside trailing-horizon revenue and expected value; (b) simulator: rankings against true lost
value; (c) rankings against lost revenue (simulated and CDNOW). Metrics are means over the
folds (test cutoffs). Writes ``benchmarks/results/value_at_risk.json``.

    python benchmarks/value_at_risk.py [--customers N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _quality import N_JOBS, RESULTS_DIR, print_table, write_json

from churnml.config import Config, load_config
from churnml.data.loaders import load_data
from churnml.data.simulate import simulate, true_lost_value
from churnml.training.backtest import (
    CUTOFF,
    IF_RETAINED,
    VALUE_AT_RISK,
    VAR_SCORES,
    BacktestResult,
    backtest,
    var_score,
)
from churnml.training.evaluation import capture, normalized_gini
from churnml.training.train import build_training_panel

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"simulated": ROOT / "configs" / "default.yaml", "cdnow": ROOT / "configs" / "cdnow.yaml"}
VARIANTS = ("auto", "dedicated")  # LTVModel.if_retained
ORACLE = "oracle"
RECENCY_COLUMN = "days_since_last_purchase"
VIR_COLUMNS = {"model": "predictor", "normalized_gini": "norm. Gini", "spearman": "Spearman",
               "top_10_capture": "top-10 %", "top_20_capture": "top-20 %", "n": "rows"}
VAR_COLUMNS = {"model": "ranking", "var_normalized_gini": "norm. Gini",
               "var_coverage_top_10": "top-10 %", "var_coverage_top_20": "top-20 %"}
TRUE_COLUMNS = {"model": "ranking", "normalized_gini": "norm. Gini", "top_10": "top-10 %",
                "top_20": "top-20 %"}


def run_backtest(cfg: Config, data: Any, panel: pd.DataFrame, variant: str) -> BacktestResult:
    """The config's backtest with every LTV candidate's ``if_retained`` set to ``variant``."""
    t = cfg.training
    training = t.model_copy(update={
        "n_jobs": N_JOBS,
        "ltv_params": {**t.ltv_params, "if_retained": variant},
    })
    return backtest(panel, training, cfg.churn)


def mean_metrics(bt: BacktestResult, metric_set: str, columns: list[str]) -> list[dict]:
    """Fold means of ``columns`` for the models of ``metric_set``, in backtest order."""
    rows = bt.metrics[bt.metrics["metric_set"] == metric_set]
    order = list(dict.fromkeys(rows["model"]))
    means = rows.groupby("model")[[c for c in columns if c in rows and c != "model"]].mean()
    return [{"model": m, **means.loc[m].to_dict()} for m in order]


def true_value_rankings(data: Any, panel: pd.DataFrame, bt: BacktestResult,
                        horizon: int) -> list[dict]:
    """Rankings of the simulator's true lost value, fold means (module docstring)."""
    per_fold: dict[str, list[dict[str, float]]] = {}
    pred = bt.predictions.merge(panel[["customer_id", CUTOFF, RECENCY_COLUMN]],
                                on=["customer_id", CUTOFF], how="left")
    for _, fold in pred.groupby("fold"):
        cutoff = fold[CUTOFF].iloc[0]
        truth = true_lost_value(data, cutoff, horizon).reindex(fold["customer_id"])
        lost = truth["lost_value"].to_numpy()
        scores = {name: var_score(fold, name) for name in VAR_SCORES}
        scores["recency"] = fold[RECENCY_COLUMN].to_numpy(float)
        scores[ORACLE] = truth["oracle_lost_value"].to_numpy()
        for name, s in scores.items():
            per_fold.setdefault(name, []).append({
                "normalized_gini": normalized_gini(lost, s),
                "top_10": capture(lost, s, 0.1), "top_20": capture(lost, s, 0.2),
            })
    return [{"model": name, **pd.DataFrame(rows).mean().to_dict()}
            for name, rows in per_fold.items()]


def evaluate_dataset(name: str, customers: int | None) -> dict[str, Any]:
    cfg = load_config(CONFIGS[name])
    t0 = time.perf_counter()
    if name == "simulated":
        n = customers or cfg.data.simulated_customers
        data = simulate(n, seed=cfg.data.seed)
    else:
        data = load_data(cfg)
    panel = build_training_panel(data, cfg)
    print(f"{name}: panel {len(panel):,} rows, {panel[CUTOFF].nunique()} cutoff(s) "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    out: dict[str, Any] = {"rows": len(panel), "horizon_days": cfg.churn.horizon_days}
    for variant in VARIANTS:
        t0 = time.perf_counter()
        bt = run_backtest(cfg, data, panel, variant)
        res = {
            "if_retained": mean_metrics(bt, IF_RETAINED, list(VIR_COLUMNS)),
            "lost_revenue": mean_metrics(bt, VALUE_AT_RISK, list(VAR_COLUMNS)),
            "selection": bt.selection.to_dict("records"),
        }
        if name == "simulated":
            res["true_lost_value"] = true_value_rankings(data, panel, bt,
                                                         cfg.churn.horizon_days)
        out[variant] = res
        print(f"  if_retained={variant}: backtest {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def print_dataset(name: str, res: dict[str, Any]) -> None:
    h = res["horizon_days"]
    vir = [{**r, "model": f"{r['model']} ({v})" if r["model"] == "value_if_retained" else
            r["model"]} for v in VARIANTS for r in res[v]["if_retained"]
           if v == VARIANTS[0] or r["model"] == "value_if_retained"]
    print_table(f"{name}: predictors of the {h}-day revenue of customers who did not churn",
                vir, VIR_COLUMNS)
    if "true_lost_value" in res[VARIANTS[0]]:
        print_table(f"{name}: rankings of the true lost value ({h} days)",
                    res[VARIANTS[0]]["true_lost_value"], TRUE_COLUMNS)
    print_table(f"{name}: rankings of the lost revenue (churned x revenue in the {h} days "
                "before the cutoff)", res[VARIANTS[0]]["lost_revenue"], VAR_COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=None,
                        help="simulated customers (default: the config's)")
    parser.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    start = time.perf_counter()
    previous = RESULTS_DIR / "value_at_risk.json"  # datasets not re-run keep their results
    result: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    for name in args.datasets:
        result[name] = evaluate_dataset(name, args.customers)
        print_dataset(name, result[name])
    result[f"runtime_seconds_{'_'.join(args.datasets)}"] = time.perf_counter() - start
    path = write_json("value_at_risk", result)
    print(f"wrote {path} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
