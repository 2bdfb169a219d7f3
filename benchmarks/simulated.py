"""Benchmark: churnml's churn model on simulated data against the simulator's oracle.

The simulator (``churnml.data.simulate``) knows each customer's true purchase rate and churn
hazard; :func:`~churnml.data.simulate.oracle_churn_probability` turns them into the true
probability of no purchase in the horizon, whose ROC AUC is the best any model could expect.
Compared at each test cutoff, on the customers at risk (``configs/default.yaml``: 20,000
customers, seed 42, horizon 90 days, look-back 365 days):

* ``oracle``: the true churn probability;
* ``alive known``: a partial oracle that knows who is alive at the cutoff but must estimate
  the purchase rate from the purchase history (Gamma-Poisson posterior with the simulator's
  own population prior), so the gap to ``oracle`` is the part of the oracle's edge that no
  model of the observed data can recover;
* ``churnml``: :class:`~churnml.models.ChurnClassifier` on every built-in feature (RFM,
  engagement, support tickets, NPS/CSAT/CES, referrals, trends);
* ``RFM only``: the same model on the transaction features alone (the recency, frequency
  and monetary groups), so the gap shows what engagement and voice signals add;
* ``logistic``: :class:`~churnml.models.LogisticChurnBaseline` on every feature.

Protocol: monthly cutoffs; for each of the last :data:`N_TEST_CUTOFFS` labelled cutoffs the
models are trained on the panel of earlier cutoffs whose label window ended by the test
cutoff (rolling origin: no label of the training rows reads past the test cutoff). Target:
churnml ROC AUC >= 0.97 x oracle ROC AUC. Prints a table and writes
``benchmarks/results/simulated.json``.

    python benchmarks/simulated.py
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _quality import N_JOBS, churn_probability, print_table, write_json

from churnml.config import load_config
from churnml.data.simulate import (
    SimulatorConfig,
    latent_state_at,
    oracle_churn_probability,
    simulate,
)
from churnml.features import FeatureSpec
from churnml.labels import build_panel, labelled_cutoffs
from churnml.models import ChurnClassifier, LogisticChurnBaseline
from churnml.training.evaluation import classification_metrics

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "default.yaml"
N_TEST_CUTOFFS = 3
CUTOFF_FREQ = "MS"  # month starts
RFM_GROUPS = ["recency", "frequency", "monetary"]
TARGET_SHARE_OF_ORACLE = 0.97
ORACLE = "oracle (true churn probability)"
ALIVE_KNOWN = "oracle knowing who is alive, purchase rate estimated"
MODEL = "churnml ChurnClassifier (all features)"
KEYS = ["customer_id", "cutoff"]
LABELS = ["churned", "ltv"]
COLUMNS = {"model": "model", "roc_auc": "ROC AUC", "share_of_oracle": "x oracle",
           "pr_auc": "PR AUC", "brier": "Brier", "log_loss": "log loss",
           "top_decile_lift": "top-10% lift"}


def rfm_columns(transaction_columns: list[str]) -> list[str]:
    """Features of the recency/frequency/monetary groups computed from transactions alone."""
    spec = FeatureSpec(groups=RFM_GROUPS)
    return [f.name for f in spec.resolve({"transactions": transaction_columns})]


def alive_known_probability(data: Any, test: pd.DataFrame, cutoff: pd.Timestamp,
                            horizon: int) -> np.ndarray:
    """Churn probability of a partial oracle that knows who is alive at ``cutoff`` but not
    the purchase rate: 1 for the dead; for the living, the probability of no purchase in
    ``H`` days under the Gamma posterior of the base rate (Gamma-Poisson conjugacy, as in
    the NBD part of Pareto/NBD: Schmittlein, Morrison & Colombo 1987, Management Science 33),

        P = ((alpha + T) / (alpha + T + H)) ** (r + x)

    with the simulator's population prior ``Gamma(r, alpha)`` (shape ``r``, rate
    ``alpha = r / mean``, per day), ``x`` repeat purchases (the signup is the first purchase)
    and ``T`` days since signup (``tenure_days``). Seasonality and satisfaction effects on
    the rate are ignored."""
    sim = SimulatorConfig()
    r = sim.purchase_rate_shape
    alpha = r / sim.purchase_rate_mean_per_day
    alive = latent_state_at(data, cutoff)["alive"].reindex(test["customer_id"]).to_numpy()
    x = test["purchases_total"].to_numpy() - 1.0
    tenure = test["tenure_days"].to_numpy()
    quiet = ((alpha + tenure) / (alpha + tenure + horizon)) ** (r + x)
    return np.where(alive, quiet, 1.0)


def models(features: list[str], rfm: list[str]) -> dict[str, tuple[Any, list[str]]]:
    """Name -> (unfitted model, its feature columns)."""
    return {
        MODEL: (ChurnClassifier(n_jobs=N_JOBS), features),
        "churnml ChurnClassifier (RFM only)": (ChurnClassifier(n_jobs=N_JOBS), rfm),
        "churnml LogisticChurnBaseline (all features)": (LogisticChurnBaseline(), features),
    }


def evaluate_cutoff(data: Any, panel: pd.DataFrame, cutoff: pd.Timestamp, horizon: int,
                    features: list[str], rfm: list[str]) -> dict[str, dict[str, float]]:
    """Train on cutoffs whose label window ended by ``cutoff``; score the ``cutoff`` rows."""
    train = panel[panel["cutoff"] + pd.Timedelta(days=horizon) <= cutoff]
    test = panel[panel["cutoff"] == cutoff]
    y = test["churned"].to_numpy()
    oracle = oracle_churn_probability(data, cutoff, horizon)
    out = {
        ORACLE: classification_metrics(y, oracle.reindex(test["customer_id"]).to_numpy()),
        ALIVE_KNOWN: classification_metrics(
            y, alive_known_probability(data, test, cutoff, horizon)),
    }
    for name, (model, cols) in models(features, rfm).items():
        if isinstance(model, ChurnClassifier):
            model.fit(train[cols], train["churned"], groups=train["customer_id"])
        else:
            model.fit(train[cols], train["churned"])
        out[name] = classification_metrics(y, churn_probability(model, test[cols]))
        out[name]["train_rows"] = float(len(train))
    return out


def main() -> None:
    start = time.perf_counter()
    cfg = load_config(CONFIG)
    churn = cfg.churn
    t0 = time.perf_counter()
    data = simulate(cfg.data.simulated_customers, seed=cfg.data.seed)
    simulate_seconds = time.perf_counter() - t0
    cutoffs = labelled_cutoffs(data, churn, freq=CUTOFF_FREQ)
    t0 = time.perf_counter()
    panel = build_panel(data, cutoffs, churn=churn)
    panel_seconds = time.perf_counter() - t0
    features = [c for c in panel.columns if c not in KEYS + LABELS]
    rfm = [c for c in rfm_columns(list(data.transactions.columns)) if c in features]
    print(f"simulated: {cfg.data.simulated_customers:,} customers, {len(cutoffs)} monthly "
          f"cutoffs, panel {len(panel):,} rows x {len(features)} features "
          f"({simulate_seconds:.0f} s simulate, {panel_seconds:.0f} s panel)", flush=True)
    per_cutoff: dict[str, Any] = {}
    for cutoff in cutoffs[-N_TEST_CUTOFFS:]:
        t0 = time.perf_counter()
        per_cutoff[str(cutoff.date())] = evaluate_cutoff(
            data, panel, cutoff, churn.horizon_days, features, rfm)
        print(f"cutoff {cutoff:%Y-%m-%d} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    names = list(next(iter(per_cutoff.values())))
    oracle_name = ORACLE
    rows = []
    for name in names:
        mean = {m: float(np.mean([c[name][m] for c in per_cutoff.values()]))
                for m in per_cutoff[next(iter(per_cutoff))][name]}
        share = [c[name]["roc_auc"] / c[oracle_name]["roc_auc"] for c in per_cutoff.values()]
        rows.append({"model": name, **mean, "share_of_oracle": float(np.mean(share))})
    print_table(f"Churn in the next {churn.horizon_days} days, mean over the last "
                f"{N_TEST_CUTOFFS} monthly cutoffs", rows, COLUMNS)
    model_share = next(r["share_of_oracle"] for r in rows if r["model"] == MODEL)
    met = model_share >= TARGET_SHARE_OF_ORACLE
    print(f"\nTarget: churnml ROC AUC >= {TARGET_SHARE_OF_ORACLE} x oracle: "
          f"{model_share:.4f} ({'met' if met else 'NOT met'})")
    result = {
        "rows": rows, "per_cutoff": per_cutoff,
        "settings": {"customers": cfg.data.simulated_customers, "seed": cfg.data.seed,
                     "horizon_days": churn.horizon_days, "lookback_days": churn.lookback_days,
                     "cutoffs": [str(c.date()) for c in cutoffs],
                     "test_cutoffs": list(per_cutoff), "features": features,
                     "rfm_features": rfm, "lightgbm_threads": N_JOBS},
        "target": {"share_of_oracle": model_share, "threshold": TARGET_SHARE_OF_ORACLE,
                   "met": met},
        "simulate_seconds": simulate_seconds, "panel_seconds": panel_seconds,
        "runtime_seconds": time.perf_counter() - start,
    }
    path = write_json("simulated", result)
    print(f"wrote {path} ({result['runtime_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
