"""Benchmark: churnml's churn and LTV models on the real CDNOW log, classic protocol.

Protocol (Fader, Hardie & Lee 2005): one transaction per customer-day; calibration
1997-01-01..1997-09-30, holdout 1997-10-01..1998-06-30 (273 days, the horizon of
``configs/cdnow.yaml``); all 23,570 customers (every one made a first purchase in Q1 1997).

* churned = no transaction in the holdout (70.06 % of customers);
* LTV label = holdout revenue in USD ($776,961 in total).

Both numbers are asserted. Labels are computed here with pandas from that definition (not
with :func:`churnml.labels.build_labels`, whose purchase rule ``amount > 0`` leaves out the
70 customers whose calibration transactions are all $0 and would leave 23,500).

Features: :func:`churnml.features.build_features` as of 1997-10-01 with the default groups
(a purchase is any transaction, ``amount >= 0``, as in the label; windows include the
273-day horizon for the last-value baseline) plus :data:`EXTRA`, CDNOW-specific declarative
features (CDs bought, price per CD, recency relative to the customer's own life and rate).

Evaluation: 5-fold customer cross-validation (stratified on churn). Inside each outer
training part a 3-fold inner cross-validation picks the feature set and the LightGBM
settings (and, for LTV, hurdle vs Tweedie) by inner ROC AUC / normalized Gini; the winner is
refitted on the whole training part and scored on the untouched outer fold. Nothing is
tuned on a test fold. Blend candidates (``blend=True``) average two models with equal
weights (no weight is fitted): churn = mean of the regularised LightGBM and the logistic
regression probabilities (:class:`sklearn.ensemble.VotingClassifier`, soft voting); LTV =
mean of the LightGBM value and the BTYD value (Pareto/NBD expected purchases x Gamma-Gamma
order value, :class:`churnml.models.BTYDValueModel`, fitted on the training rows only).

BTYD contenders (:mod:`churnml.models.btyd`, maximum likelihood on each outer training
part): churn probability = P(no purchase in the holdout); value = expected purchases x
Gamma-Gamma order value. Ranking by expected purchases is reported as well (ROC AUC).
Metrics are computed on the pooled out-of-fold predictions (with the mean and standard
deviation over folds in the JSON file).

    python benchmarks/cdnow.py        # prints the table, writes benchmarks/results/cdnow.json
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _quality import (
    N_JOBS,
    PARAM_SETS,
    SEED,
    churn_probability,
    out_of_fold,
    print_table,
    value,
    write_json,
)
from sklearn.ensemble import VotingClassifier, VotingRegressor
from sklearn.model_selection import StratifiedKFold

from churnml.config import load_config
from churnml.data.customer_data import CustomerData
from churnml.data.datasets import load_cdnow
from churnml.features import DerivedFeature, Feature, FeatureSpec, build_features
from churnml.models import (
    BTYDFeatures,
    BTYDValueModel,
    ChurnClassifier,
    LastValueBaseline,
    LogisticChurnBaseline,
    LTVModel,
    RecencyBaseline,
)
from churnml.training.evaluation import classification_metrics, regression_metrics

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "cdnow.yaml"
CALIBRATION_START = pd.Timestamp("1997-01-01")
CUTOFF = pd.Timestamp("1997-10-01")  # first holdout day = prediction instant
HOLDOUT_END = pd.Timestamp("1998-07-01")  # exclusive: the holdout ends 1998-06-30
N_CUSTOMERS = 23_570
CHURN_RATE_PCT = 70.06  # expected share churned, percent (2 decimals)
HOLDOUT_REVENUE_USD = 776_961  # expected holdout revenue, USD (whole dollars)
N_FOLDS = 5
N_INNER_FOLDS = 3
PURCHASE = "amount >= 0"  # CDNOW: every transaction is a purchase ($0 ones included)
WINDOWS_DAYS = [30, 90, 180, 365]  # default windows; the horizon is added to them

EXTRA = [
    Feature(name="items_total", table="transactions", agg="sum", column="quantity",
            where=PURCHASE, unit="items", description="bought {value:.0f} CDs in total"),
    Feature(name="items_180d", table="transactions", agg="sum", column="quantity",
            where=PURCHASE, window_days=180, unit="items",
            description="bought {value:.0f} CDs in the last 180 days"),
    Feature(name="last_order_value", table="transactions", agg="latest", column="amount",
            where=PURCHASE, unit="currency", description="last order {value:,.2f}"),
    DerivedFeature(name="price_per_item", op="ratio", inputs=["spend_total", "items_total"],
                   unit="currency per item", description="pays {value:,.2f} per CD"),
    DerivedFeature(name="items_per_purchase", op="ratio",
                   inputs=["items_total", "purchases_total"], unit="items",
                   description="{value:.1f} CDs per order"),
    DerivedFeature(name="active_span_share", op="expr",
                   expr="(tenure_days - days_since_last_purchase) / NULLIF(tenure_days, 0)",
                   unit="share", description="last purchase at {value:.0%} of the "
                   "customer's life so far"),
    DerivedFeature(name="gaps_since_last_purchase", op="expr",
                   expr="days_since_last_purchase * purchases_total / NULLIF(tenure_days, 0)",
                   unit="average gaps", description="silent for {value:.1f} of the "
                   "customer's average gaps (tenure / purchases)"),
]
RFM = ["days_since_last_purchase", "purchases_total", "spend_total", "tenure_days"]
LTV_KINDS = ("hurdle", "tweedie")
CHURN_FEATURE_SETS = ("rfm", "default", "extended")
LTV_FEATURE_SETS = ("default", "extended")
# blends (module docstring) are compared with the regularised settings only, which the inner
# CV picked in every fold before; LTV blends on the extended set only (its usual winner)
BLEND_PARAMS = "regularised"
CHURN_BLEND_SETS = CHURN_FEATURE_SETS
LTV_BLEND_SETS = ("extended",)
BTYD_KINDS = {"pareto_nbd": "Pareto/NBD", "bgnbd": "BG/NBD"}
BTYD_INPUT = "default"  # feature set the BTYD models read (they use 4 of its columns)

# Anchors measured on exactly this protocol (issue 4) and the targets.
CHURN_ANCHORS = [
    {"model": "anchor: Pareto/NBD (lifetimes)", "roc_auc": 0.769},
    {"model": "anchor: logistic regression on RFM", "roc_auc": 0.772, "brier": 0.158},
    {"model": "anchor: LightGBM on RFM", "roc_auc": 0.770},
]
LTV_ANCHORS = [
    {"model": "anchor: Pareto/NBD x Gamma-Gamma", "normalized_gini": 0.684,
     "top_10_capture": 0.516},
    {"model": "anchor: LightGBM Tweedie on RFM", "normalized_gini": 0.714,
     "top_10_capture": 0.522},
]
TARGETS = {  # metric -> (direction, threshold)
    "roc_auc": (">=", 0.78),
    "brier": ("<=", 0.155),
    "normalized_gini": (">=", 0.73),
    "top_10_capture": (">=", 0.53),
}
CHURN_COLUMNS = {"model": "churn model", "roc_auc": "ROC AUC", "pr_auc": "PR AUC",
                 "brier": "Brier", "log_loss": "log loss", "top_decile_lift": "top-10% lift"}
LTV_COLUMNS = {"model": "LTV model", "normalized_gini": "norm. Gini",
               "top_10_capture": "top-10% capture", "top_20_capture": "top-20% capture",
               "spearman": "Spearman", "total_predicted": "total predicted $",
               "total_actual": "total actual $"}


@dataclass(frozen=True)
class Candidate:
    """One configuration the nested selection compares."""

    features: str
    params: str
    kind: str | None = None  # LTV model kind; None for churn
    blend: bool = False  # average with logistic regression (churn) / BTYD value (LTV)


# --------------------------------------------------------------------------- data


def protocol_labels(data: CustomerData, horizon_days: int) -> pd.DataFrame:
    """``customer_id, churned, ltv`` for every customer, by the protocol's definitions."""
    if CUTOFF + pd.Timedelta(days=horizon_days) != HOLDOUT_END:
        raise ValueError(f"{CONFIG}: horizon_days {horizon_days} does not end the holdout "
                         f"at {HOLDOUT_END:%Y-%m-%d}")
    tx = data.transactions
    holdout = tx[(tx["ts"] >= CUTOFF) & (tx["ts"] < HOLDOUT_END)]
    labels = pd.DataFrame({"customer_id": np.sort(tx["customer_id"].unique())})
    labels["churned"] = (~labels["customer_id"].isin(holdout["customer_id"])).astype("int64")
    revenue = holdout.groupby("customer_id")["amount"].sum()
    labels["ltv"] = labels["customer_id"].map(revenue).fillna(0.0)
    return labels


def check_protocol(data: CustomerData, labels: pd.DataFrame) -> dict[str, float]:
    """Assert the published facts of the protocol; return them."""
    first = data.transactions.groupby("customer_id")["ts"].min()
    facts = {
        "customers": len(labels),
        "churn_rate_pct": round(100 * labels["churned"].mean(), 2),
        "holdout_revenue_usd": round(labels["ltv"].sum()),
    }
    assert facts["customers"] == N_CUSTOMERS, facts
    assert facts["churn_rate_pct"] == CHURN_RATE_PCT, facts
    assert facts["holdout_revenue_usd"] == HOLDOUT_REVENUE_USD, facts
    assert first.min() >= CALIBRATION_START and first.max() < CUTOFF, "first purchases"
    return facts


def features(data: CustomerData, horizon_days: int) -> pd.DataFrame:
    """churnml features of every customer as of the cutoff (default groups + :data:`EXTRA`)."""
    spec = FeatureSpec(purchase_where=PURCHASE,
                       windows_days=sorted({*WINDOWS_DAYS, horizon_days}), extra=EXTRA)
    return build_features(data, CUTOFF, spec).drop(columns="cutoff")


# --------------------------------------------------------------------------- models


def feature_sets(X: pd.DataFrame) -> dict[str, list[str]]:
    """Column lists: ``rfm``, ``default`` (the built-in groups) and ``extended`` (+ EXTRA)."""
    extra = {f.name for f in EXTRA}
    extended = [c for c in X.columns if c != "customer_id"]
    return {"rfm": RFM, "default": [c for c in extended if c not in extra],
            "extended": extended}


def make_model(candidate: Candidate, horizon_days: int) -> Any:
    """Unfitted churn (``kind`` None) or LTV model of ``candidate``."""
    params = {**PARAM_SETS[candidate.params], "n_jobs": N_JOBS}
    if candidate.kind is None:
        model = ChurnClassifier(**params)
        if not candidate.blend:
            return model
        return VotingClassifier([("lightgbm", model), ("logistic", LogisticChurnBaseline())],
                                voting="soft")
    model = LTVModel(kind=candidate.kind, **params)
    if not candidate.blend:
        return model
    return VotingRegressor([("lightgbm", model),
                            ("btyd", BTYDValueModel(horizon_days=horizon_days))])


def candidates(task: str) -> list[Candidate]:
    """Every configuration the nested selection compares for ``task`` (churn or ltv)."""
    if task == "churn":
        return [*(Candidate(f, p) for f, p in itertools.product(CHURN_FEATURE_SETS, PARAM_SETS)),
                *(Candidate(f, BLEND_PARAMS, blend=True) for f in CHURN_BLEND_SETS)]
    return [*(Candidate(f, p, k) for k, f, p in
              itertools.product(LTV_KINDS, LTV_FEATURE_SETS, PARAM_SETS)),
            *(Candidate(f, BLEND_PARAMS, k, blend=True) for k, f in
              itertools.product(LTV_KINDS, LTV_BLEND_SETS))]


def score(candidate: Candidate, y: np.ndarray, pred: np.ndarray) -> float:
    """Selection criterion: ROC AUC (churn) or normalized Gini (LTV); higher is better."""
    if candidate.kind is None:
        return classification_metrics(y, pred)["roc_auc"]
    return regression_metrics(y, pred)["normalized_gini"]


def nested_fit_predict(
    candidates: list[Candidate], sets: dict[str, list[str]], X: pd.DataFrame,
    y: np.ndarray, strata: np.ndarray, train: np.ndarray, test: np.ndarray, horizon_days: int,
) -> tuple[np.ndarray, Candidate, dict[str, float]]:
    """Pick the best candidate by inner CV on ``train`` only; refit it there, predict
    ``test``. Returns predictions, the winner and every candidate's inner score."""
    inner = list(StratifiedKFold(N_INNER_FOLDS, shuffle=True, random_state=SEED)
                 .split(train, strata[train]))
    Xtr, ytr = X.iloc[train], y[train]
    predict = churn_probability if candidates[0].kind is None else value
    inner_scores = {}
    for c in candidates:
        pred = out_of_fold(lambda c=c: make_model(c, horizon_days), Xtr[sets[c.features]], ytr,
                           inner, predict)
        inner_scores[c] = score(c, ytr, pred)
    best = max(candidates, key=lambda c: inner_scores[c])
    model = make_model(best, horizon_days).fit(Xtr[sets[best.features]], ytr)
    pred = predict(model, X.iloc[test][sets[best.features]])
    return pred, best, {_label(c): s for c, s in inner_scores.items()}


def _label(c: Candidate) -> str:
    blend = ("blend" if c.blend else None)
    return "/".join(v for v in (c.kind, c.features, c.params, blend) if v)


def fixed(make: Any, cols: list[str], X: pd.DataFrame, y: np.ndarray, train: np.ndarray,
          test: np.ndarray, predict: Any) -> np.ndarray:
    """Fit ``make()`` on the training part, predict the test fold."""
    return predict(make().fit(X.iloc[train][cols], y[train]), X.iloc[test][cols])


def btyd_fold(X: pd.DataFrame, train: np.ndarray, test: np.ndarray, kind: str,
              horizon_days: int) -> tuple[pd.DataFrame, dict[str, list[float]]]:
    """BTYD outputs for the test fold from a fit on the training part; fitted parameters."""
    btyd = BTYDFeatures(kind=kind, horizon_days=horizon_days).fit(X.iloc[train])
    params = {"transactions_days": btyd.params_.tolist(),
              "gamma_gamma": btyd.spend_params_.tolist()}
    return btyd.predict_frame(X.iloc[test]), params


# --------------------------------------------------------------------------- main


def evaluate(X: pd.DataFrame, labels: pd.DataFrame, horizon_days: int) -> dict[str, Any]:
    sets = feature_sets(X)
    churned = labels["churned"].to_numpy()
    ltv = labels["ltv"].to_numpy()
    last_value = f"spend_{horizon_days}d"
    churn_candidates, ltv_candidates = candidates("churn"), candidates("ltv")
    btyd_outputs = {f"{kind}:{col}" for kind in BTYD_KINDS for col in
                    ("btyd_p_no_purchase", "btyd_expected_purchases", "btyd_expected_value")}
    oof = {name: np.full(len(X), np.nan) for name in
           ("churn", "logistic", "recency", "ltv", "last_value", *btyd_outputs)}
    folds = list(StratifiedKFold(N_FOLDS, shuffle=True, random_state=SEED)
                 .split(X, churned))
    per_fold: list[dict[str, Any]] = []
    for k, (train, test) in enumerate(folds):
        t0 = time.perf_counter()
        oof["churn"][test], churn_best, churn_inner = nested_fit_predict(
            churn_candidates, sets, X, churned, churned, train, test, horizon_days)
        oof["ltv"][test], ltv_best, ltv_inner = nested_fit_predict(
            ltv_candidates, sets, X, ltv, churned, train, test, horizon_days)
        oof["logistic"][test] = fixed(LogisticChurnBaseline, sets["default"], X, churned,
                                      train, test, churn_probability)
        oof["recency"][test] = fixed(RecencyBaseline, sets["default"], X, churned, train,
                                     test, churn_probability)
        oof["last_value"][test] = fixed(lambda: LastValueBaseline(column=last_value),
                                        sets["default"], X, ltv, train, test, value)
        btyd_params = {}
        for kind in BTYD_KINDS:
            frame, btyd_params[kind] = btyd_fold(X[sets[BTYD_INPUT]], train, test, kind,
                                                 horizon_days)
            for col in frame.columns:
                if f"{kind}:{col}" in oof:
                    oof[f"{kind}:{col}"][test] = frame[col].to_numpy()
        per_fold.append({
            "fold": k, "seconds": time.perf_counter() - t0, "btyd_params": btyd_params,
            "churn_selected": asdict(churn_best), "churn_inner_roc_auc": churn_inner,
            "ltv_selected": asdict(ltv_best), "ltv_inner_normalized_gini": ltv_inner,
            "churn": classification_metrics(churned[test], oof["churn"][test]),
            "ltv": regression_metrics(ltv[test], oof["ltv"][test]),
        })
        print(f"fold {k + 1}/{N_FOLDS}: churn {_label(churn_best)}, ltv {_label(ltv_best)} "
              f"({per_fold[-1]['seconds']:.0f} s)", flush=True)
    churn_rows = [
        {"model": "churnml ChurnClassifier or blend (nested selection)",
         **classification_metrics(churned, oof["churn"])},
        {"model": "churnml LogisticChurnBaseline (default features)",
         **classification_metrics(churned, oof["logistic"])},
        {"model": "churnml RecencyBaseline",
         **classification_metrics(churned, oof["recency"])},
        *(row for kind, name in BTYD_KINDS.items() for row in (
            {"model": f"churnml BTYD {name}: P(no purchase)",
             **classification_metrics(churned, oof[f"{kind}:btyd_p_no_purchase"])},
            {"model": f"churnml BTYD {name}: ranked by expected purchases",
             "roc_auc": _ranking_auc(churned, oof[f"{kind}:btyd_expected_purchases"])})),
        *CHURN_ANCHORS,
    ]
    ltv_rows = [
        {"model": "churnml LTVModel or blend (nested selection)",
         **regression_metrics(ltv, oof["ltv"])},
        {"model": f"churnml LastValueBaseline ({last_value})",
         **regression_metrics(ltv, oof["last_value"])},
        *({"model": f"churnml BTYD {name} x Gamma-Gamma",
           **regression_metrics(ltv, oof[f"{kind}:btyd_expected_value"])}
          for kind, name in BTYD_KINDS.items()),
        *LTV_ANCHORS,
    ]
    fold_summary = {
        task: {m: {"mean": float(np.mean([f[task][m] for f in per_fold])),
                   "sd": float(np.std([f[task][m] for f in per_fold], ddof=1))}
               for m in per_fold[0][task]}
        for task in ("churn", "ltv")
    }
    return {"churn": churn_rows, "ltv": ltv_rows, "folds": per_fold,
            "fold_summary": fold_summary}


def _ranking_auc(churned: np.ndarray, expected_purchases: np.ndarray) -> float:
    """ROC AUC of churn ranked by fewer expected purchases (``exp(-E)`` keeps the order)."""
    return classification_metrics(churned, np.exp(-expected_purchases))["roc_auc"]


def targets_met(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target against the churnml model's pooled out-of-fold value."""
    model = {**result["churn"][0], **result["ltv"][0]}
    out = {}
    for metric, (op, threshold) in TARGETS.items():
        got = model[metric]
        out[metric] = {"value": got, "target": f"{op} {threshold}",
                       "met": bool(got >= threshold if op == ">=" else got <= threshold)}
    return out


def main() -> None:
    start = time.perf_counter()
    horizon = load_config(CONFIG).churn.horizon_days
    data = load_cdnow(merge_same_day=True)
    labels = protocol_labels(data, horizon)
    facts = check_protocol(data, labels)
    t0 = time.perf_counter()
    X = features(data, horizon)
    feature_seconds = time.perf_counter() - t0
    if not X["customer_id"].equals(labels["customer_id"]):
        raise AssertionError("build_features must return every customer, sorted by id")
    print(f"CDNOW: {facts['customers']:,} customers, {facts['churn_rate_pct']} % churned, "
          f"holdout revenue ${facts['holdout_revenue_usd']:,}; {X.shape[1] - 1} features "
          f"({feature_seconds:.1f} s)")
    result = evaluate(X, labels, horizon)
    print_table("Churn (no purchase 1997-10-01..1998-06-30), pooled out-of-fold",
                result["churn"], CHURN_COLUMNS)
    print_table("LTV (holdout revenue, USD), pooled out-of-fold", result["ltv"], LTV_COLUMNS)
    met = targets_met(result)
    print("\nTargets: " + "; ".join(
        f"{m} {v['value']:.4f} {v['target']}: {'met' if v['met'] else 'NOT met'}"
        for m, v in met.items()))
    result.update(
        protocol={"calibration": [str(CALIBRATION_START.date()), str(CUTOFF.date())],
                  "holdout_end_exclusive": str(HOLDOUT_END.date()), "horizon_days": horizon,
                  "merge_same_day": True, "purchase_where": PURCHASE, **facts},
        settings={"outer_folds": N_FOLDS, "inner_folds": N_INNER_FOLDS, "seed": SEED,
                  "lightgbm_threads": N_JOBS, "param_sets": PARAM_SETS,
                  "feature_sets": feature_sets(X), "ltv_kinds": list(LTV_KINDS),
                  "candidates": {"churn": [_label(c) for c in candidates("churn")],
                                 "ltv": [_label(c) for c in candidates("ltv")]}},
        targets=met, feature_seconds=feature_seconds,
        runtime_seconds=time.perf_counter() - start,
    )
    path = write_json("cdnow", result)
    print(f"wrote {path} ({result['runtime_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
