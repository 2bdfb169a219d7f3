"""The report's sections: each turns one or two output files into text, charts and tables.

A section declares the files it reads; when one is absent the report shows a notice naming
the command that writes it (see :mod:`churnml.report.inputs`) instead of the section body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnml.report import campaigns, plots, survival
from churnml.report.html import figure_html, paragraph, table_html
from churnml.report.inputs import (
    BACKTEST_METRICS,
    COHORTS,
    IMPORTANCE,
    MONITOR_DRIFT,
    MONITOR_PERFORMANCE,
    MONITOR_QUALITY,
    MONITOR_SIGNAL,
    N_DAY,
    PREDICTIONS,
    SCORES,
    SEGMENTS,
    OutputFile,
    ReportInputs,
)
from churnml.training.backtest import VAR_LABELS, VIR_COLUMN, var_score
from churnml.training.evaluation import (
    CAPTURE_SHARES,
    LOST_REVENUE_TEXT,
    N_BINS,
    capture,
    normalized_gini,
    revenue_lost,
)

TOP_CUSTOMERS = 25  # rows of the top at-risk table
TOP_FEATURES = 15  # bars per model in the feature-importance chart
REASON_SEPARATOR = "; "
METRIC_KEYS = ("task", "metric_set", "model")  # backtest_metrics.csv row labels
# backtest_metrics.csv columns that describe a fold rather than measure a model
NOT_METRICS = ("fold", "cutoff", "train_first_cutoff", "train_last_cutoff", "n_train", "n")
LOGISTIC_COLUMN = "logistic_probability"  # optional third churn score of the predictions
METRIC_FORMAT = "{:.3f}"
PERCENT_FORMAT = "{:.1%}"


@dataclass(frozen=True)
class Context:
    """What every section may need besides its files."""

    inputs: ReportInputs
    kpis: OutputFile
    period: str
    currency: str
    horizon_days: int
    target_action: str
    top_customers: int = TOP_CUSTOMERS
    top_features: int = TOP_FEATURES
    psi_warn: float = 0.1
    psi_alarm: float = 0.25

    def money(self) -> str:
        return "{:,.2f} " + self.currency


@dataclass(frozen=True)
class SectionSpec:
    """A section: anchor id, title, the files it needs and its renderer. An ``optional``
    section (an optional stage: campaigns, monitoring) is left out when its files are absent,
    instead of showing a notice."""

    id: str
    title: str
    needs: Callable[[Context], tuple[OutputFile, ...]]
    render: Callable[[Context], str]
    optional: bool = False


# --------------------------------------------------------------------------- retention


def _kpi_trends(ctx: Context) -> str:
    kpis = ctx.inputs.get(ctx.kpis)
    latest = kpis[kpis["complete"].astype(bool)] if "complete" in kpis else kpis
    last = latest.tail(1)[["period", *[c for c, _, _ in plots.KPI_PANELS if c in kpis]]]
    return (
        paragraph(
            f"Per {ctx.period}: retention rate = customers in the base at the start still in "
            f"it at the end / base at the start; churn rate = 100 - retention rate; ARPU = "
            "net revenue / active customers; NPS = % promoters - % detractors; CSAT = % "
            "satisfied answers; CES = mean effort score (lower is better)."
        )
        + figure_html(plots.kpi_trends(kpis, ctx.currency, ctx.period), "KPI trends")
        + paragraph(f"Last complete {ctx.period}:", "")
        + table_html(last, {c: "{:,.1f}" for c in last.columns if c != "period"})
    )


def _cohort_retention(ctx: Context) -> str:
    cohorts = ctx.inputs.get(COHORTS)
    return paragraph(
        f"Each row is the cohort of customers whose first {ctx.target_action} fell in that "
        f"{ctx.period}; each cell the share of the cohort with a {ctx.target_action} k "
        f"{ctx.period}s later (column 0 is the acquisition {ctx.period}, 100 %)."
    ) + figure_html(plots.cohort_heatmap(cohorts, ctx.period), "cohort retention heatmap")


def _n_day_retention(ctx: Context) -> str:
    n_day = ctx.inputs.get(N_DAY)
    wide = n_day.pivot_table(index="day", columns=["window", "mode"], values="retention")
    wide.columns = [f"{w} / {m.replace('_', ' ')} (%)" for w, m in wide.columns]
    wide = wide.reset_index()
    return (
        paragraph(
            "Share of the first-purchase cohort that returns on day N (or on day N or later). "
            "Calendar mode counts date changes (8 pm to 6 am next day is day 1); 24-hour "
            "mode counts full 24-hour windows from the first purchase (the same pair is day "
            "0). Customers count only once day N has fully elapsed."
        )
        + figure_html(plots.retention_curves(n_day), "N-day retention curves")
        + table_html(wide, {c: "{:.1f}" for c in wide.columns if c != "day"})
    )


# --------------------------------------------------------------------------- models


def _predictions(ctx: Context, columns: list[str]) -> pd.DataFrame:
    pred = ctx.inputs.get(PREDICTIONS)
    return pred.dropna(subset=columns)


def _pooled_note(pred: pd.DataFrame) -> str:
    parts = [f"{len(pred):,} out-of-sample predictions"]
    for col in ("cutoff", "fold"):
        if col in pred and pred[col].nunique() > 1:
            parts.append(f"pooled over {pred[col].nunique()} {col}s")
    return " ".join(parts) + "."


def _churn_scores(pred: pd.DataFrame) -> dict[str, np.ndarray]:
    scores = {"churn model": pred["churn_probability"].to_numpy(float),
              "recency baseline": pred["baseline_probability"].to_numpy(float)}
    if LOGISTIC_COLUMN in pred and pred[LOGISTIC_COLUMN].notna().all():
        scores["logistic regression"] = pred[LOGISTIC_COLUMN].to_numpy(float)
    return scores


def backtest_summary(metrics: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Mean of every metric over folds / test cutoffs, one table per metric set (or one
    table): rows = models, columns = the metrics that set reports."""
    keys = [c for c in METRIC_KEYS if c in metrics.columns]
    values = [c for c in metrics.columns if c not in (*keys, *NOT_METRICS)
              and pd.api.types.is_numeric_dtype(metrics[c])]
    split = "metric_set" if "metric_set" in keys else None
    groups = metrics.groupby(split, sort=False) if split else [("all", metrics)]
    tables = {}
    for name, part in groups:
        rows = [k for k in keys if k != split]
        table = (part.groupby(rows, sort=False)[values].mean() if rows
                 else part[values].mean().to_frame().T)
        tables[str(name[0] if isinstance(name, tuple) else name)] = (
            table.dropna(axis=1, how="all").reset_index(drop=not rows))
    return tables


def _backtest_metrics(ctx: Context) -> str:
    tables = backtest_summary(ctx.inputs.get(BACKTEST_METRICS))
    body = paragraph("Out-of-sample metrics of every model and baseline, mean over backtest "
                     "folds / test cutoffs (backtest_metrics.csv).")
    for name, table in tables.items():
        fmt = {c: METRIC_FORMAT for c in table.columns
               if pd.api.types.is_float_dtype(table[c])}
        body += paragraph(name.replace("_", " "), "") + table_html(table, fmt)
    return body


def _discrimination(ctx: Context) -> str:
    pred = _predictions(ctx, ["churned", "churn_probability", "baseline_probability"])
    y = pred["churned"].to_numpy(float)
    return paragraph(
        f"How well the churn probability separates customers who churned (no "
        f"{ctx.target_action} in the next {ctx.horizon_days} days) from those who stayed, "
        f"against the baselines. {_pooled_note(pred)}"
    ) + figure_html(plots.roc_pr_curves(y, _churn_scores(pred)), "ROC and PR curves")


def _calibration(ctx: Context) -> str:
    pred = _predictions(ctx, ["churned", "churn_probability", "baseline_probability"])
    y = pred["churned"].to_numpy(float)
    return paragraph(
        "Do predicted probabilities mean what they say? Customers are sorted into "
        f"{N_BINS} equal-size bins by prediction; a calibrated model lies on the diagonal."
    ) + figure_html(plots.calibration_curves(y, _churn_scores(pred)), "calibration curve")


def _gains(ctx: Context) -> str:
    cols = ["churned", "churn_probability", "baseline_probability", "ltv_predicted",
            VIR_COLUMN, "baseline_ltv"]
    pred = _predictions(ctx, cols)
    churned = pred["churned"].to_numpy(float)
    lost = revenue_lost(churned, pred["baseline_ltv"].to_numpy(float))
    rankings = {label: var_score(pred, name) for name, label in VAR_LABELS.items()}
    panels = {
        "Churners found, ranked by churn probability": (churned, _churn_scores(pred)),
        "Revenue lost covered, by ranking": (lost, rankings),
    }
    table = pd.DataFrame([
        {"ranking": label, "normalized Gini": normalized_gini(lost, score),
         **{f"top {round(k * 100)} %": capture(lost, score, k) for k in CAPTURE_SHARES}}
        for label, score in rankings.items()
    ]) if lost.sum() > 0 else pd.DataFrame()
    return paragraph(
        "If marketing contacts the top X % of customers, which share of all churners (left) "
        "and of all revenue lost to churn (right) does it reach? Revenue lost = "
        f"{LOST_REVENUE_TEXT.format(horizon=ctx.horizon_days)}; value at risk = churn "
        "probability x value if retained (the revenue expected if the customer stays)."
    ) + figure_html(plots.gains_curves(panels), "cumulative gains curves") + (
        paragraph("Share of the revenue lost held by the top of each ranking (out-of-fold, "
                  "all folds pooled):", "")
        + table_html(table, {c: METRIC_FORMAT for c in table.columns if c != "ranking"})
        if not table.empty else "")


def ltv_decile_table(actual: np.ndarray, predictions: dict[str, np.ndarray],
                     rank_by: str, n_bins: int = N_BINS) -> pd.DataFrame:
    """Mean actual value and mean of each prediction per decile of ``predictions[rank_by]``
    (decile 1 = highest; ties broken by row order)."""
    order = pd.Series(predictions[rank_by]).rank(method="first", ascending=False)
    decile = np.ceil(order.to_numpy() * n_bins / len(order)).astype(int)
    frame = pd.DataFrame({"decile": decile, "actual": actual, **predictions})
    return frame.groupby("decile", as_index=False).mean()


def _ltv_deciles(ctx: Context) -> str:
    pred = _predictions(ctx, ["ltv_actual", "ltv_predicted", "baseline_ltv"])
    table = ltv_decile_table(
        pred["ltv_actual"].to_numpy(float),
        {"LTV model": pred["ltv_predicted"].to_numpy(float),
         "baseline (last-window revenue)": pred["baseline_ltv"].to_numpy(float)},
        rank_by="LTV model",
    )
    return paragraph(
        f"Customers ranked by predicted value for the next {ctx.horizon_days} days, split "
        f"into {N_BINS} equal groups; bars compare the mean predicted and actual net "
        f"revenue per customer ({ctx.currency})."
    ) + figure_html(plots.ltv_deciles(table, ctx.currency, ctx.horizon_days), "LTV deciles")


def _feature_importance(ctx: Context) -> str:
    importance = ctx.inputs.get(IMPORTANCE)
    return paragraph(
        "Which signals drive the models overall: each feature's share of the model's "
        "total importance (feature_importance.csv)."
    ) + figure_html(plots.feature_importance(importance, ctx.top_features),
                    "feature importance")


# --------------------------------------------------------------------------- scoring


def _segments(ctx: Context) -> str:
    summary = ctx.inputs.get(SEGMENTS)
    table = summary[["risk_segment", "customers", "value_at_risk", "mean_churn_probability",
                     "suggested_action"]]
    return (
        paragraph("Every scored customer falls in exactly one segment; each segment comes "
                  "with the action marketing should take.")
        + figure_html(plots.segment_bars(summary, ctx.currency), "segment sizes")
        + table_html(table, {"customers": "{:,}", "value_at_risk": ctx.money(),
                             "mean_churn_probability": PERCENT_FORMAT})
    )


def _join_reasons(value: object) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return REASON_SEPARATOR.join(str(v) for v in value)
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _plain(value: object) -> str:
    """A timestamp at midnight as its date, anything else as str."""
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        return f"{value:%Y-%m-%d}"
    return str(value)


UPLIFT_COLUMNS = ("uplift", "targeting_value", "p_negative_uplift", "negative_uplift")


def _top_at_risk(ctx: Context) -> str:
    scores = ctx.inputs.get(SCORES)
    top = scores.sort_values("rank", kind="stable").head(ctx.top_customers)
    top = top.assign(reasons=top["reasons"].map(_join_reasons))
    columns = ["rank", "customer_id", "risk_segment", "churn_probability",
               "value_if_retained", "value_at_risk", "reasons", "suggested_action"]
    uplift = [c for c in UPLIFT_COLUMNS if c in top and top[c].notna().any()]
    columns[columns.index("reasons"):columns.index("reasons")] = uplift
    about = []
    for col in ("cutoff", "model_version"):
        if col in scores and scores[col].notna().any():
            about.append(f"{col.replace('_', ' ')} {_plain(scores[col].dropna().iloc[0])}")
    return paragraph(
        f"The {len(top)} customers with the most value at risk of {len(scores):,} scored"
        + (f" ({', '.join(about)})" if about else "")
        + f". Value if retained is the net revenue expected over the next "
        f"{ctx.horizon_days} days if the customer stays; value at risk = churn probability "
        "x value if retained."
        + (" Uplift is the campaign model's estimated effect of a contact, targeting value "
           "its net incremental value, and negative uplift (do not contact) is set when the "
           "effect is negative with confidence (churnml campaign train)." if uplift else "")
    ) + table_html(top[columns], {"churn_probability": PERCENT_FORMAT,
                                  "value_if_retained": ctx.money(),
                                  "value_at_risk": ctx.money(),
                                  "targeting_value": ctx.money(),
                                  "p_negative_uplift": PERCENT_FORMAT})


# --------------------------------------------------------------------------- monitoring


def _monitoring(ctx: Context) -> str:
    perf = ctx.inputs.get(MONITOR_PERFORMANCE)
    drift = ctx.inputs.get(MONITOR_DRIFT)
    body = _monitoring_verdict(ctx)
    body += paragraph(
        "Every scoring run is kept in the score history. Before a cutoff's horizon has "
        "passed, ROC AUC and Brier are estimated from the calibrated probabilities alone "
        "(CBPE: assumes calibration and no concept drift); once the labels are known the "
        "realized values are computed on the customers at risk, leaving out those a "
        "campaign treated within the horizon.")
    body += figure_html(plots.monitoring_performance(perf), "realized vs estimated performance")
    body += paragraph("Estimate (with its 95 % interval) against the realized value, per "
                      "cutoff; 'in interval' is empty until the cutoff has matured.", "")
    body += table_html(_estimate_vs_realized(perf), {
        c: METRIC_FORMAT for c in ("est_roc_auc", "est_roc_auc_low", "est_roc_auc_high",
                                   "real_roc_auc", "recency_roc_auc", "est_brier",
                                   "est_brier_low", "est_brier_high", "real_brier")})
    body += _monitoring_data_checks(ctx)
    if drift is not None and not drift.empty:
        levels = drift["level"].value_counts()
        body += paragraph(
            f"Drift (population stability index vs the champion's training reference): "
            f"{int(levels.get('alarm', 0))} alarm(s), {int(levels.get('warn', 0))} warning(s) "
            f"over {drift['cutoff'].nunique()} cutoff(s); age features (which grow with the "
            "calendar) are shown but exempt from alarms.")
        body += figure_html(plots.monitoring_drift(drift, ctx.psi_warn, ctx.psi_alarm),
                            "drift per feature")
    return body


def _monitoring_verdict(ctx: Context) -> str:
    """The verdict of ``signal.json``: headline, top evidence, what to do."""
    import html

    from churnml.io import read_json

    path = ctx.inputs.out_dir / MONITOR_SIGNAL
    signal = read_json(path, "monitoring signal") if path.is_file() else None
    if not isinstance(signal, dict) or "verdict" not in signal:
        return ""
    counts = ", ".join(f"{v.get('count', 0)} {k}" for k, v in signal.get("alarms", {}).items())
    head = f"Verdict: {signal.get('headline', signal['verdict'])}" + (
        f" ({counts} alarm(s))." if counts else ".")
    items = "".join(f"<li>{html.escape(str(e))}</li>" for e in signal.get("evidence", []))
    return (paragraph(head, "verdict") + (f"<ul>{items}</ul>" if items else "")
            + paragraph(f"What to do: {signal.get('action', '')}.", ""))


def _estimate_vs_realized(perf: pd.DataFrame) -> pd.DataFrame:
    out = perf[[c for c in ("cutoff", "matured", "at_risk", "treated_excluded") if c in perf]
               ].copy()
    for metric in ("roc_auc", "brier"):
        cols = [f"est_{metric}", f"est_{metric}_low", f"est_{metric}_high", f"real_{metric}"]
        for c in cols:
            if c in perf:
                out[c] = perf[c]
        if all(c in perf for c in cols):
            inside = perf[cols[1]].le(perf[cols[3]]) & perf[cols[3]].le(perf[cols[2]])
            out[f"{metric}_in_interval"] = np.where(perf[cols[3]].notna(),
                                                    np.where(inside, "yes", "no"), "")
    if "recency_roc_auc" in perf:
        out["recency_roc_auc"] = perf["recency_roc_auc"]
    return out


def _monitoring_data_checks(ctx: Context) -> str:
    """The data checks: a count per cutoff and the failed (or acknowledged) ones."""
    if ctx.inputs.absent(MONITOR_QUALITY):
        return ""
    checks = ctx.inputs.get(MONITOR_QUALITY)
    if checks is None or checks.empty:
        return paragraph("Data checks: none (the reference has no data profile).", "")
    per = checks.groupby("cutoff")["level"].agg(
        checks="size", alarms=lambda x: int((x == "alarm").sum()),
        acknowledged=lambda x: int((x == "acknowledged").sum())).reset_index()
    failed = checks[checks["level"] != "ok"][["cutoff", "column", "check", "level", "text"]]
    body = paragraph(
        "Data checks before drift (row and customer counts per period, missing and zero "
        "shares, categories, scales and distributions of the input tables over the window "
        "before each cutoff, against the training reference's data profile):", "")
    body += table_html(per)
    if not failed.empty:
        body += table_html(failed.head(50))
    return body


def _files(*specs: OutputFile) -> Callable[[Context], tuple[OutputFile, ...]]:
    return lambda ctx: specs


SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("kpi-trends", "KPI trends", lambda ctx: (ctx.kpis,), _kpi_trends),
    SectionSpec("cohort-retention", "Cohort retention", _files(COHORTS), _cohort_retention),
    SectionSpec("n-day-retention", "N-day retention (calendar vs 24-hour)", _files(N_DAY),
                _n_day_retention),
    SectionSpec("backtest-metrics", "Backtest metrics", _files(BACKTEST_METRICS),
                _backtest_metrics),
    SectionSpec("churn-roc-pr", "Churn model: ROC and precision-recall",
                _files(PREDICTIONS), _discrimination),
    SectionSpec("churn-calibration", "Churn model: calibration", _files(PREDICTIONS),
                _calibration),
    SectionSpec("cumulative-gains", "Cumulative gains: customers and value at risk",
                _files(PREDICTIONS), _gains),
    SectionSpec("ltv-deciles", "Customer value (LTV) by decile", _files(PREDICTIONS),
                _ltv_deciles),
    SectionSpec("feature-importance", "Global feature importance", _files(IMPORTANCE),
                _feature_importance),
    SectionSpec("segments", "Segments: size and value at risk", _files(SEGMENTS), _segments),
    SectionSpec("top-at-risk", "Top at-risk customers and why", _files(SCORES), _top_at_risk),
    SectionSpec("campaigns", "Campaigns and uplift", _files(campaigns.EVALUATIONS),
                campaigns.render, optional=True),
    SectionSpec("monitoring", "Monitoring: verdict, realized vs estimated performance, drift",
                _files(MONITOR_PERFORMANCE), _monitoring, optional=True),
    SectionSpec("time-to-churn", "Time to churn: survival, remaining lifetime, lifetime value",
                _files(survival.CURVES, survival.CALIBRATION), survival.render, optional=True),
)
SECTION_IDS: tuple[str, ...] = tuple(s.id for s in SECTIONS)
