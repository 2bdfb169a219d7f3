"""Report section "Time to churn": the survival model's backtest and its scores.

Reads ``survival_curves.csv`` and ``survival_calibration.csv`` (written by ``churnml train``
with ``survival.enabled``) and, when present, the survival columns of ``scores.parquet``.
The section is left out when the survival stage did not run. Plots are thin functions over
the tables: mean predicted survival per model against the Kaplan–Meier curve of the test
customers (latest backtest fold), calibration at ``t0`` (predicted vs Kaplan–Meier survival
within deciles of predicted risk), predicted survival per segment at the score horizons,
and the distributions of remaining lifetime and lifetime value.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from churnml.report.html import figure_html, paragraph, table_html
from churnml.report.inputs import OutputFile

CURVES = OutputFile("survival_curves.csv", ("fold", "period", "model", "survival"),
                    "churnml train (survival.enabled: true)")
CALIBRATION = OutputFile("survival_calibration.csv",
                         ("fold", "decile", "t0", "predicted", "observed"),
                         "churnml train (survival.enabled: true)")
SCORES_FILE = "scores.parquet"
OBSERVED = "observed_km"
P_ACTIVE = re.compile(r"^p_active_(\d+)d$")
WIDTH_IN, HEIGHT_IN = 9.0, 3.2
LABELS = {"survival": "hazard model (churnml)", "kaplan_meier": "Kaplan–Meier (earlier cutoffs)",
          "cox": "Cox PH", OBSERVED: "observed (Kaplan–Meier of the test customers)"}


def _figure(cols: int = 2) -> tuple[Figure, list]:
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), layout="constrained")
    return fig, list(np.atleast_1d(fig.subplots(1, cols)).ravel())


def curves_figure(curves: pd.DataFrame, period_days: int | None = None) -> Figure:
    """Mean predicted survival per model vs the test customers' Kaplan–Meier curve (latest
    fold)."""
    last = curves[curves["fold"] == curves["fold"].max()]
    fig, (ax,) = _figure(1)
    for model, rows in last.groupby("model", sort=False):
        style = {"color": "black", "linestyle": "--"} if model == OBSERVED else {}
        ax.plot(rows["period"], rows["survival"], marker="o", ms=3,
                label=LABELS.get(str(model), str(model)), **style)
    unit = f"periods of {period_days} days" if period_days else "periods"
    ax.set(xlabel=f"time since the cutoff ({unit})", ylabel="share still active", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return fig


def calibration_figure(calibration: pd.DataFrame) -> Figure:
    """Predicted vs observed (Kaplan–Meier) survival at ``t0`` per decile of predicted risk,
    latest fold; the diagonal is perfect calibration."""
    last = calibration[calibration["fold"] == calibration["fold"].max()]
    fig, (ax,) = _figure(1)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":")
    ax.plot(last["predicted"], last["observed"], marker="o")
    t0 = float(last["t0"].iloc[0]) if len(last) else float("nan")
    ax.set(xlabel=f"predicted P(active at period {t0:g})",
           ylabel="observed (Kaplan–Meier)", xlim=(0, 1), ylim=(0, 1))
    return fig


def segment_figure(scores: pd.DataFrame, horizons: list[int]) -> Figure:
    """Mean predicted probability of being active at each score horizon, per segment."""
    fig, (ax,) = _figure(1)
    cols = [f"p_active_{d}d" for d in horizons]
    means = scores.groupby("risk_segment")[cols].mean()
    for segment, row in means.iterrows():
        ax.plot(horizons, row.to_numpy(), marker="o", label=str(segment))
    ax.set(xlabel="days after the scoring cutoff", ylabel="mean P(still active)", ylim=(0, 1.02))
    ax.legend(fontsize=7, ncols=2)
    return fig


def distributions_figure(scores: pd.DataFrame, currency: str) -> Figure:
    """Histograms of expected remaining lifetime (days) and lifetime value."""
    fig, (left, right) = _figure(2)
    left.hist(scores["expected_remaining_lifetime_days"].dropna(), bins=30, color="C0")
    left.set(xlabel="expected remaining lifetime (days)", ylabel="customers")
    if "lifetime_value" in scores:
        right.hist(scores["lifetime_value"].dropna(), bins=30, color="C2")
    right.set(xlabel=f"lifetime value ({currency})", ylabel="customers")
    return fig


def horizons_of(scores: pd.DataFrame) -> list[int]:
    """The ``<d>`` of the ``p_active_<d>d`` columns, ascending."""
    return sorted(int(m.group(1)) for c in scores.columns if (m := P_ACTIVE.match(str(c))))


def render(ctx) -> str:
    """The section body (``ctx``: :class:`churnml.report.sections.Context`)."""
    from churnml.report.inputs import read_output

    curves = ctx.inputs.get(CURVES)
    calibration = ctx.inputs.get(CALIBRATION)
    body = paragraph(
        "Time to churn: for every customer, the probability of still being active at each "
        "period after the cutoff, from a discrete-time hazard model (calibrated LightGBM on "
        "person-period rows, conditional on the time already survived). The backtest curves "
        "compare its mean prediction for the customers at risk at the latest test cutoff "
        "with what happened to them (Kaplan–Meier), beside the Kaplan–Meier and Cox "
        "baselines fitted on the earlier cutoffs.")
    body += figure_html(curves_figure(curves), "predicted vs observed survival")
    body += paragraph(
        "Calibration at the end of the grid: within each tenth of customers by predicted "
        "risk, the mean predicted survival against the Kaplan–Meier survival observed.")
    body += figure_html(calibration_figure(calibration), "calibration at t0")
    path = ctx.inputs.out_dir / SCORES_FILE
    scores = read_output(path) if path.is_file() else None
    if scores is not None and "expected_remaining_lifetime_days" in scores:
        horizons = horizons_of(scores)
        horizon = int(scores["lifetime_horizon_days"].iloc[0]) if len(scores) else 0
        body += paragraph(
            f"Scored customers: mean probability of still being active per segment, and the "
            f"distributions of remaining lifetime and lifetime value, both restricted to "
            f"the next {horizon} days (lifetime value discounted, from the value if retained "
            f"per active period; its low/high columns form a predictive interval for the "
            f"value each customer will actually bring).")
        body += figure_html(segment_figure(scores, horizons), "survival per segment")
        body += figure_html(distributions_figure(scores, ctx.currency),
                            "remaining lifetime and lifetime value")
        table = (scores.groupby("risk_segment")
                 [[f"p_active_{d}d" for d in horizons]
                  + ["expected_remaining_lifetime_days", "lifetime_value"]]
                 .mean().reset_index())
        body += table_html(table, {**{f"p_active_{d}d": "{:.1%}" for d in horizons},
                                   "expected_remaining_lifetime_days": "{:.0f}",
                                   "lifetime_value": ctx.money()})
    return body
