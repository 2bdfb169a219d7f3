"""Report section: what each evaluated campaign did, and how well its targeting score ranked.

Reads ``campaign_evaluations.csv`` and ``campaign_outcomes.parquet`` (written by ``churnml
campaign evaluate``, one block of rows per campaign) and, when present, the uplift model's
held-out metrics ``uplift/validation.csv`` (``churnml campaign train``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnml.report.html import figure_html, paragraph, table_html
from churnml.report.inputs import OutputFile, read_output

EVALUATIONS = OutputFile(
    "campaign_evaluations.csv",
    ("campaign_id", "arm", "segment", "n_treated", "n_control", "retention_lift",
     "retention_lift_low", "retention_lift_high", "incremental_revenue", "cost", "net_revenue"),
    "churnml campaign evaluate --campaign ID",
)
OUTCOMES = OutputFile("campaign_outcomes.parquet",
                      ("campaign_id", "arm", "retained", "revenue"),
                      "churnml campaign evaluate --campaign ID")
VALIDATION = "uplift/validation.csv"
PREDICTIONS = "uplift/validation_predictions.parquet"
OVERALL = "(all)"
N_BOOT = 100  # bootstrap resamples of the report's Qini bands


def _interval(low: pd.Series, high: pd.Series, fmt: str) -> pd.Series:
    return "[" + low.map(fmt.format) + ", " + high.map(fmt.format) + "]"


def render(ctx) -> str:
    """The section body (``ctx``: :class:`churnml.report.sections.Context`)."""
    ev = ctx.inputs.get(EVALUATIONS)
    money = "{:,.0f}"
    shown = ev.assign(
        retention_lift_ci=_interval(ev["retention_lift_low"] * 100,
                                    ev["retention_lift_high"] * 100, "{:+.1f}"),
        net_revenue_ci=_interval(ev["net_revenue_low"], ev["net_revenue_high"], money)
        if "net_revenue_low" in ev else "",
        retention_lift=ev["retention_lift"] * 100,
    )
    columns = ["campaign_id", "arm", "segment", "n_treated", "n_control", "retention_lift",
               "retention_lift_ci", "incremental_revenue", "cost", "net_revenue",
               "net_revenue_ci", "qini"]
    overall = shown[shown["segment"] == OVERALL][[c for c in columns if c in shown]]
    by_segment = shown[shown["segment"] != OVERALL][[c for c in columns if c in shown]]
    fmt = {"retention_lift": "{:+.1f}", "incremental_revenue": money, "cost": money,
           "net_revenue": money, "qini": "{:.3f}"}
    body = paragraph(
        f"Each campaign's treated contacts against its random control group over the "
        f"{ctx.horizon_days} days after the contact: retention lift in percentage points "
        f"(treated minus control, with its confidence interval), incremental revenue = "
        f"treated contacts x revenue lift per contact, net = incremental revenue - cost "
        f"({ctx.currency}). Qini (scikit-uplift normalisation; 0 = random, 1 = perfect) "
        "measures how well the score recorded at planning ranked the customers the offer "
        "actually kept.")
    body += table_html(overall, fmt)
    if not by_segment.empty:
        body += paragraph("Per segment (the control group was drawn within each segment):", "")
        body += table_html(by_segment, fmt)
    body += _qini_figures(ctx)
    body += _validation(ctx)
    return body


def _qini_figures(ctx) -> str:
    from churnml.uplift.metrics import curve_band
    from churnml.uplift.plots import plot_qini_curve

    outcomes = ctx.inputs.get(OUTCOMES)
    if outcomes is None or "score" not in outcomes:
        return ""
    html = ""
    for cid, rows in outcomes.groupby("campaign_id", sort=True):
        rows = rows[rows["score"].notna() & rows["retained"].notna()]
        t = (rows["arm"] != "control").to_numpy().astype(int)
        y = rows["retained"].to_numpy(float)
        if len(rows) < 10 or t.min() == t.max() or np.unique(y).size < 2:
            continue
        band = curve_band(y, rows["score"].to_numpy(float), t, n_boot=N_BOOT)
        fig = plot_qini_curve({"targeting score": band},
                              title=f"Campaign {cid}: Qini of the targeting score "
                                    "(retention, 95 % bootstrap band)")
        html += figure_html(fig, f"Qini curve of campaign {cid}")
    return html


def _validation(ctx) -> str:
    from churnml.uplift.metrics import curve_band
    from churnml.uplift.plots import plot_qini_curve

    path = ctx.inputs.out_dir / VALIDATION
    if not path.is_file():
        return ""
    val = read_output(path)
    html = paragraph("Uplift model (churnml campaign train), metrics on the 30 % of contacts "
                     "held out before the final fit; uplift_at_k in outcome units (share "
                     "retained, or currency) for the top 30 %:", "")
    html += table_html(val, {"value": "{:.4f}"})
    pred_path = ctx.inputs.out_dir / PREDICTIONS
    if pred_path.is_file():
        pred = read_output(pred_path)
        t = (pred["arm"] != "control").to_numpy().astype(int)
        bands = {
            outcome: curve_band(pred[outcome].to_numpy(float), pred["uplift"].to_numpy(float),
                                t, n_boot=N_BOOT)
            for outcome in ("retained", "revenue")
        }
        html += figure_html(plot_qini_curve(
            {"uplift model": bands["retained"]},
            title="Held-out Qini curve: retention (95 % bootstrap band)"),
            "held-out Qini curve, retention")
        html += figure_html(plot_qini_curve(
            {"uplift model": bands["revenue"]},
            title="Held-out Qini curve: revenue (95 % bootstrap band)",
            outcome_unit=ctx.currency), "held-out Qini curve, revenue")
    return html
