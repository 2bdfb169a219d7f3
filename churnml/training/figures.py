"""Backtest figures for MLflow: ROC, calibration, lift, feature importance, LTV deciles.

Each function takes out-of-fold predictions (the ``backtest_predictions.parquet`` layout,
all folds pooled) or the feature-importance table and returns a matplotlib
:class:`~matplotlib.figure.Figure` built without pyplot (no global state, no display).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from churnml.training.backtest import CHURN_SCORES, CHURNED, LTV_SCORES, VAR_LABELS, var_score
from churnml.training.evaluation import (
    calibration_table,
    cumulative_gains,
    lift_table,
    revenue_lost,
)

FIGSIZE = (6.0, 4.5)  # inches
WIDE_FIGSIZE = (10.0, 4.5)
TOP_FEATURES = 20  # bars in the importance figure
DIAGONAL = {"color": "grey", "linestyle": "--", "linewidth": 1}
POOLED = "out-of-fold predictions, all folds"


def roc_figure(pred: pd.DataFrame) -> Figure:
    """ROC curves of the churn model and its baselines."""
    fig = Figure(figsize=FIGSIZE)
    ax = fig.subplots()
    for model, col in CHURN_SCORES.items():
        fpr, tpr, _ = roc_curve(pred[CHURNED], pred[col])
        ax.plot(fpr, tpr, label=model)
    ax.plot([0, 1], [0, 1], **DIAGONAL)
    ax.set(xlabel="false positive rate", ylabel="true positive rate",
           title=f"ROC ({POOLED})")
    ax.legend(loc="lower right")
    return fig


def calibration_figure(pred: pd.DataFrame) -> Figure:
    """Observed churn rate against mean predicted probability (quantile bins)."""
    fig = Figure(figsize=FIGSIZE)
    ax = fig.subplots()
    for model, col in CHURN_SCORES.items():
        table = calibration_table(pred[CHURNED], pred[col])
        ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label=model)
    ax.plot([0, 1], [0, 1], **DIAGONAL)
    ax.set(xlabel="mean predicted churn probability", ylabel="observed churn rate",
           title=f"Calibration ({POOLED})")
    ax.legend(loc="upper left")
    return fig


def lift_figure(pred: pd.DataFrame) -> Figure:
    """Cumulative gains (share of churners found vs share of customers contacted) and
    lift per decile (bin 1 = highest churn probability)."""
    fig = Figure(figsize=WIDE_FIGSIZE)
    gains_ax, lift_ax = fig.subplots(1, 2)
    width = 0.8 / len(CHURN_SCORES)
    for i, (model, col) in enumerate(CHURN_SCORES.items()):
        gains = cumulative_gains(pred[CHURNED], pred[col])
        gains_ax.plot(gains["population_share"], gains["value_share"], label=model)
        lift = lift_table(pred[CHURNED], pred[col])
        lift_ax.bar(lift["bin"] + (i - 1) * width, lift["lift"], width=width, label=model)
    gains_ax.plot([0, 1], [0, 1], **DIAGONAL)
    gains_ax.set(xlabel="share of customers (by score)", ylabel="share of churners",
                 title="Cumulative gains")
    lift_ax.axhline(1.0, **DIAGONAL)
    lift_ax.set(xlabel="decile (1 = highest risk)", ylabel="lift", title="Lift per decile")
    gains_ax.legend(loc="lower right")
    fig.suptitle(POOLED)
    return fig


def importance_figure(importance: pd.DataFrame, top: int = TOP_FEATURES) -> Figure:
    """Largest feature importances (share of total gain) of each model side by side."""
    models = list(dict.fromkeys(importance["model"]))
    fig = Figure(figsize=(WIDE_FIGSIZE[0], max(FIGSIZE[1], 0.25 * top)))
    axes = np.atleast_1d(fig.subplots(1, len(models)))
    for ax, model in zip(axes, models, strict=True):
        rows = importance[importance["model"] == model].nlargest(top, "importance")
        ax.barh(rows["feature"][::-1], rows["importance"][::-1])
        ax.set(xlabel="share of total gain", title=f"{model} model")
    fig.tight_layout()
    return fig


def ltv_deciles_figure(pred: pd.DataFrame) -> Figure:
    """Actual and predicted horizon value summed per predicted-value decile, for the LTV
    model and the last-value baseline (input currency)."""
    fig = Figure(figsize=WIDE_FIGSIZE)
    axes = fig.subplots(1, len(LTV_SCORES), sharey=True)
    for ax, (model, col) in zip(axes, LTV_SCORES.items(), strict=True):
        actual = lift_table(pred["ltv_actual"], pred[col])
        predicted = lift_table(pred[col], pred[col])
        ax.bar(actual["bin"] - 0.2, actual["value"], width=0.4, label="actual")
        ax.bar(predicted["bin"] + 0.2, predicted["value"], width=0.4, label="predicted")
        ax.set(xlabel=f"decile of {model} prediction (1 = highest)", title=model)
    axes[0].set_ylabel("value in the horizon (currency)")
    axes[0].legend()
    fig.suptitle(f"LTV by decile ({POOLED})")
    return fig


def value_at_risk_figure(pred: pd.DataFrame) -> Figure:
    """Cumulative gains of the revenue lost to churn (:func:`revenue_lost`) for each ranking
    of :data:`VAR_SCORES`: value at risk (churn probability x value if retained) against the
    alternatives it replaces."""
    fig = Figure(figsize=FIGSIZE)
    ax = fig.subplots()
    lost = revenue_lost(pred[CHURNED], pred["baseline_ltv"])
    if lost.sum() > 0:
        for name, label in VAR_LABELS.items():
            gains = cumulative_gains(lost, var_score(pred, name))
            ax.plot(gains["population_share"], gains["value_share"], label=label)
    ax.plot([0, 1], [0, 1], **DIAGONAL)
    ax.set(xlabel="share of customers (by ranking)", ylabel="share of revenue lost",
           title=f"Revenue lost to churn ({POOLED})")
    ax.legend(loc="lower right", fontsize="small")
    return fig


FIGURES = {
    "roc": roc_figure,
    "calibration": calibration_figure,
    "lift": lift_figure,
    "ltv_deciles": ltv_deciles_figure,
    "value_at_risk": value_at_risk_figure,
}


def render(pred: pd.DataFrame, folder: str | Path) -> list[Path]:
    """Every :data:`FIGURES` figure of ``pred`` as ``<folder>/<name>.png`` (as
    ``mlflow.log_figure`` saves them); :func:`~churnml.training.train.train` renders them in
    the background while the final models are fitted. Returns the files."""
    out = []
    for name, make in FIGURES.items():
        path = Path(folder) / f"{name}.png"
        make(pred).savefig(path)
        out.append(path)
    return out
