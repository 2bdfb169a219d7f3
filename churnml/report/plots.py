"""Report charts: thin matplotlib functions over the job's tables, each returning a Figure.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state, no GUI backend)
and ``layout="constrained"`` so titles, labels and legends never overlap. Every axis names
its unit: percent, days, customers or money in the data's currency.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from churnml.training.evaluation import N_BINS, calibration_table, cumulative_gains

WIDTH_IN = 9.0  # figure width, inches (the page column is about this wide at the report dpi)
PANEL_HEIGHT_IN = 3.2  # height of one row of panels, inches
BAR_HEIGHT_IN = 0.28  # height per bar of a horizontal bar chart, inches
MAX_TICK_LABELS = 12  # at most this many labels on a categorical axis
MAX_ANNOTATED_CELLS = 160  # heatmaps with more cells than this are not annotated
MAX_CURVE_POINTS = 2000  # longer curves are thinned (evenly spaced points, ends kept)
PERCENT = 100.0
RANDOM_STYLE = {"color": "0.6", "linestyle": ":", "linewidth": 1.0}
INCOMPLETE_NOTE = "hollow marker = period not yet complete"

# KPI panels: (kpi_table column, title, y-axis label); "{cur}" is the currency
KPI_PANELS = (
    ("retention_rate", "Customer retention rate", "% of base at period start"),
    ("churn_rate", "Churn rate", "% of base at period start"),
    ("arpu", "ARPU", "{cur} per active customer"),
    ("nps", "Net Promoter Score", "NPS (-100 to 100)"),
    ("csat", "CSAT", "% satisfied answers"),
    ("ces_mean", "Customer Effort Score", "mean CES (1-7, lower is better)"),
)


def _figure(rows: int = 1, cols: int = 1, height: float | None = None) -> tuple[Figure, list]:
    fig = Figure(figsize=(WIDTH_IN, height or PANEL_HEIGHT_IN * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, list(axes.ravel())


def _no_data(ax, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_axis_off()


def _thin(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """At most MAX_CURVE_POINTS evenly spaced points of equally long arrays (ends kept)."""
    n = len(arrays[0])
    if n <= MAX_CURVE_POINTS:
        return arrays
    keep = np.unique(np.linspace(0, n - 1, MAX_CURVE_POINTS).round().astype(int))
    return tuple(np.asarray(a)[keep] for a in arrays)


def _date_axis(ax) -> None:
    locator = AutoDateLocator(maxticks=MAX_TICK_LABELS // 2)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def kpi_trends(kpis: pd.DataFrame, currency: str, period: str) -> Figure:
    """Retention rate, churn rate, ARPU, NPS, CSAT and CES per ``period`` (one panel each);
    periods flagged ``complete == False`` get a hollow marker."""
    fig, axes = _figure(2, 3)
    when = pd.to_datetime(kpis["period"])
    complete = kpis["complete"].astype(bool) if "complete" in kpis else pd.Series(True, kpis.index)
    for ax, (column, title, unit) in zip(axes, KPI_PANELS, strict=True):
        ax.set_title(title)
        values = kpis[column] if column in kpis else pd.Series(np.nan, index=kpis.index)
        if values.notna().sum() == 0:
            _no_data(ax, f"no {title} data")
            continue
        ax.plot(when, values, marker="o", markersize=3, linewidth=1.5)
        partial = ~complete & values.notna()
        ax.plot(when[partial], values[partial], linestyle="none", marker="o", markersize=6,
                markerfacecolor="white")
        ax.set_ylabel(unit.format(cur=currency))
        ax.set_xlabel(period)
        _date_axis(ax)
        ax.grid(alpha=0.3)
    if (~complete).any():
        fig.supxlabel(INCOMPLETE_NOTE, fontsize="small", color="0.4")
    return fig


def cohort_heatmap(cohorts: pd.DataFrame, period: str) -> Figure:
    """Share of each acquisition cohort active k periods after acquisition, percent.

    ``cohorts``: ``cohort``, ``cohort_size`` and one column per period since acquisition
    (``cohorts.csv``, :func:`churnml.metrics.cohort_table`)."""
    steps = [c for c in cohorts.columns if str(c).isdigit()]
    steps.sort(key=int)
    values = cohorts[steps].to_numpy(dtype=float)
    labels = [
        f"{pd.Timestamp(c):%Y-%m} (n={int(n):,})"
        for c, n in zip(cohorts["cohort"], cohorts["cohort_size"], strict=True)
    ]
    height = max(PANEL_HEIGHT_IN, BAR_HEIGHT_IN * len(labels) + 1.5)
    fig, (ax,) = _figure(height=height)
    image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0, vmax=PERCENT,
                      interpolation="nearest")
    fig.colorbar(image, ax=ax, label="% of cohort active", format=PercentFormatter())
    ax.set_title("Cohort retention: share of each acquisition cohort active")
    ax.set_xlabel(f"{period}s since acquisition")
    ax.set_ylabel(f"acquisition cohort ({period})")
    ax.xaxis.set_major_locator(MaxNLocator(MAX_TICK_LABELS, integer=True))
    ax.set_xticks(ax.get_xticks()[(ax.get_xticks() >= 0) & (ax.get_xticks() < len(steps))])
    stride = max(1, int(np.ceil(len(labels) / (2 * MAX_TICK_LABELS))))
    rows = np.arange(0, len(labels), stride)
    ax.set_yticks(rows, [labels[i] for i in rows], fontsize="small")
    if values.size <= MAX_ANNOTATED_CELLS:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize="x-small",
                        color="white" if v < PERCENT / 2 else "black")
    return fig


def retention_curves(n_day: pd.DataFrame) -> Figure:
    """Day-N retention, percent, against N: calendar days vs 24-hour windows, one panel for
    "on day N" and one for "on or after day N" (``n_day_retention.csv``)."""
    modes = {"on": "Returned on day N", "on_or_after": "Returned on or after day N"}
    fig, axes = _figure(1, len(modes))
    overall = n_day.drop(columns=[c for c in n_day.columns if c == "period"], errors="ignore")
    for ax, (mode, title) in zip(axes, modes.items(), strict=True):
        ax.set_title(title)
        part = overall[overall["mode"] == mode]
        if part.empty:
            _no_data(ax)
            continue
        for window, curve in part.groupby("window", sort=True):
            curve = curve.groupby("day", as_index=False)["retention"].mean()
            label = "calendar days" if window == "calendar" else "24-hour windows"
            ax.plot(curve["day"], curve["retention"], marker="o", label=label)
        ax.set_xlabel("day N since first purchase (days)")
        ax.set_ylabel("% of cohort retained")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    return fig


def roc_pr_curves(y: np.ndarray, scores: Mapping[str, np.ndarray]) -> Figure:
    """ROC curve (with AUC) and precision-recall curve (with average precision) per score."""
    fig, (roc_ax, pr_ax) = _figure(1, 2, height=PANEL_HEIGHT_IN * 1.3)
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(y, score)
        roc_ax.plot(*_thin(fpr, tpr), label=f"{name} (AUC {auc(fpr, tpr):.3f})")
        precision, recall, _ = precision_recall_curve(y, score)
        ap = average_precision_score(y, score)
        pr_ax.plot(*_thin(recall, precision), label=f"{name} (AP {ap:.3f})")
    roc_ax.plot([0, 1], [0, 1], label="random", **RANDOM_STYLE)
    pr_ax.axhline(float(np.mean(y)), label=f"base rate {np.mean(y):.1%}", **RANDOM_STYLE)
    roc_ax.set(title="ROC curve", xlabel="false positive rate (share of stayers flagged)",
               ylabel="true positive rate (share of churners)")
    pr_ax.set(title="Precision-recall curve", xlabel="recall (share of churners found)",
              ylabel="precision (share of flagged who churn)", ylim=(0, 1.02))
    for ax in (roc_ax, pr_ax):
        ax.legend(fontsize="small", loc="best")
        ax.grid(alpha=0.3)
    return fig


def calibration_curves(y: np.ndarray, scores: Mapping[str, np.ndarray],
                       n_bins: int = N_BINS) -> Figure:
    """Observed churn rate against mean predicted probability in quantile bins, percent."""
    fig, (ax,) = _figure(height=PANEL_HEIGHT_IN * 1.3)
    for name, score in scores.items():
        table = calibration_table(y, score, n_bins)
        ax.plot(table["mean_predicted"] * PERCENT, table["observed_rate"] * PERCENT,
                marker="o", label=name)
    ax.plot([0, PERCENT], [0, PERCENT], label="perfect calibration", **RANDOM_STYLE)
    ax.set(title=f"Calibration ({n_bins} equal-size bins of predicted probability)",
           xlabel="mean predicted churn probability (%)", ylabel="observed churn rate (%)",
           xlim=(0, PERCENT), ylim=(0, PERCENT))
    ax.set_aspect("equal")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def gains_curves(panels: Mapping[str, tuple[np.ndarray, Mapping[str, np.ndarray]]]) -> Figure:
    """Cumulative gains: share of the total ``actual`` reached by contacting the top share
    of customers by each score. ``panels`` maps a title to ``(actual, {name: score})``."""
    fig, axes = _figure(1, len(panels), height=PANEL_HEIGHT_IN * 1.3)
    for ax, (title, (actual, scores)) in zip(axes, panels.items(), strict=True):
        ax.set_title(title)
        if not np.sum(actual) > 0:
            _no_data(ax, "nothing to capture")
            continue
        for name, score in scores.items():
            curve = cumulative_gains(actual, score)
            ax.plot(*_thin(curve["population_share"].to_numpy() * PERCENT,
                           curve["value_share"].to_numpy() * PERCENT), label=name)
        ax.plot([0, PERCENT], [0, PERCENT], label="random order", **RANDOM_STYLE)
        ax.set(xlabel="customers contacted, top % by score", ylabel="% of total captured",
               xlim=(0, PERCENT), ylim=(0, PERCENT))
        ax.legend(fontsize="small", loc="lower right")
        ax.grid(alpha=0.3)
    return fig


def ltv_deciles(deciles: pd.DataFrame, currency: str, horizon_days: int) -> Figure:
    """Mean predicted vs actual value per predicted-value decile (1 = highest predictions);
    ``deciles`` has ``decile`` and one column per series to draw."""
    fig, (ax,) = _figure(height=PANEL_HEIGHT_IN * 1.2)
    series = [c for c in deciles.columns if c != "decile"]
    width = 0.8 / len(series)
    x = np.arange(len(deciles))
    for k, name in enumerate(series):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, deciles[name], width, label=name)
    ax.set_xticks(x, deciles["decile"].astype(str))
    ax.set(title=f"Customer value by predicted-value decile (next {horizon_days} days)",
           xlabel="decile of predicted value (1 = highest)",
           ylabel=f"mean value per customer ({currency})")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    return fig


def feature_importance(importance: pd.DataFrame, top: int) -> Figure:
    """Top ``top`` features per model by share of the model's total importance, percent."""
    models = list(dict.fromkeys(importance["model"]))
    tops = []
    for model in models:
        part = importance[importance["model"] == model]
        share = part.groupby("feature")["importance"].sum()
        share = (share / share.sum() * PERCENT).nlargest(top).iloc[::-1]
        tops.append(share)
    rows = max(len(s) for s in tops)
    fig, axes = _figure(1, len(models), height=max(PANEL_HEIGHT_IN, BAR_HEIGHT_IN * rows + 1))
    for ax, model, share in zip(axes, models, tops, strict=True):
        ax.barh(share.index.astype(str), share.to_numpy())
        ax.set(title=f"{model}: top {len(share)} features",
               xlabel="share of total importance (%)")
        ax.tick_params(axis="y", labelsize="small")
        ax.grid(alpha=0.3, axis="x")
    return fig


def segment_bars(summary: pd.DataFrame, currency: str) -> Figure:
    """Customers and total value at risk per risk segment (largest value at risk on top)."""
    ordered = summary.sort_values("value_at_risk")
    fig, (count_ax, value_ax) = _figure(
        1, 2, height=max(PANEL_HEIGHT_IN, BAR_HEIGHT_IN * len(ordered) + 1.2)
    )
    names = ordered["risk_segment"].astype(str)
    count_ax.barh(names, ordered["customers"])
    count_ax.set(title="Customers per segment", xlabel="customers")
    value_ax.barh(names, ordered["value_at_risk"], color="tab:red")
    value_ax.set(title="Value at risk per segment", xlabel=f"value at risk ({currency})")
    value_ax.tick_params(axis="y", labelleft=False)
    for ax in (count_ax, value_ax):
        ax.grid(alpha=0.3, axis="x")
        ax.xaxis.set_major_locator(MaxNLocator(5))
    return fig


def monitoring_performance(perf: pd.DataFrame) -> Figure:
    """Realized (dots) vs estimated (line, 95 % band) ROC AUC and Brier per scored cutoff;
    estimates come from the probabilities alone (CBPE), realized values once labels mature."""
    fig, (ax_auc, ax_brier) = _figure(1, 2)
    cut = pd.to_datetime(perf["cutoff"])
    for ax, metric, title in ((ax_auc, "roc_auc", "ROC AUC"), (ax_brier, "brier", "Brier score")):
        est = perf[f"est_{metric}"].to_numpy(float)
        ax.fill_between(cut, perf[f"est_{metric}_low"], perf[f"est_{metric}_high"],
                        alpha=0.25, label="estimated, 95 % interval")
        ax.plot(cut, est, marker=".", label="estimated (CBPE)")
        real = f"real_{metric}"
        if real in perf and perf[real].notna().any():
            ax.plot(cut, perf[real], "o", color="black", label="realized")
        baseline = perf.get("recency_roc_auc") if metric == "roc_auc" else None
        if baseline is not None and baseline.notna().any():
            ax.plot(cut, baseline, "x", color="0.5", label="recency baseline")
        ax.set_title(f"{title} per scored cutoff")
        ax.set_ylabel(title)
        _date_axis(ax)
    ax_auc.legend(fontsize="small")
    return fig


def monitoring_drift(drift: pd.DataFrame, warn: float, alarm: float, top: int = 15) -> Figure:
    """Drift against the training reference: the largest population stability indexes of the
    latest cutoff (bars; age features, which grow with the calendar, in grey) and, per
    cutoff, the largest feature PSI, the score PSI and the segment-mix PSI (lines), with the
    warn and alarm thresholds."""
    cutoffs = pd.to_datetime(drift["cutoff"])
    latest = drift[cutoffs == cutoffs.max()]
    latest = latest.sort_values("psi", ascending=False).head(top).iloc[::-1]
    height = max(PANEL_HEIGHT_IN, BAR_HEIGHT_IN * len(latest) + 1.2) + PANEL_HEIGHT_IN
    fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    ax_bar, ax_time = fig.subplots(2, 1, height_ratios=[height - PANEL_HEIGHT_IN,
                                                        PANEL_HEIGHT_IN])
    if latest.empty:
        _no_data(ax_bar)
        _no_data(ax_time)
        return fig
    labels = [f"{k}: {c}" if k != "feature" else c
              for k, c in zip(latest["kind"], latest["column"], strict=True)]
    age = latest["level"].astype(str).str.endswith("(age)").to_numpy()
    colors = ["0.7" if a else "tab:red" if v > alarm else "tab:orange" if v > warn
              else "tab:blue" for v, a in zip(latest["psi"], age, strict=True)]
    ax_bar.barh(labels, latest["psi"], color=colors)
    for ax in (ax_bar, ax_time):
        for value, style in ((warn, ":"), (alarm, "--")):
            (ax.axvline if ax is ax_bar else ax.axhline)(value, color="0.3", linestyle=style,
                                                         linewidth=1.0)
    ax_bar.set_title(f"Drift vs the training reference, cutoff {cutoffs.max():%Y-%m-%d} "
                     "(grey: age features, no alarm)")
    ax_bar.set_xlabel(f"population stability index (warn > {warn}, alarm > {alarm})")
    frame = drift.assign(cutoff=cutoffs,
                         age=drift["level"].astype(str).str.endswith("(age)"))
    series = {
        "largest feature PSI": frame[(frame["kind"] == "feature") & ~frame["age"]],
        "churn probability PSI": frame[frame["column"] == "churn_probability"],
        "segment mix PSI": frame[frame["kind"] == "segment_mix"],
    }
    for label, rows in series.items():
        if not rows.empty:
            per_cut = rows.groupby("cutoff")["psi"].max()
            ax_time.plot(per_cut.index, per_cut.to_numpy(), marker="o", label=label)
    ax_time.set_ylabel("PSI")
    ax_time.set_title("Drift per scored cutoff")
    ax_time.legend(fontsize="small")
    _date_axis(ax_time)
    return fig
