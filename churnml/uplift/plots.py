"""Thin matplotlib plots of uplift curves with their bootstrap bands, for the report.

Input: the frames of :func:`churnml.uplift.metrics.curve_band` (``share, value, lower, upper,
random``), one per ranking (e.g. per learner, or the targeting score vs an oracle). Figures are
built with :class:`matplotlib.figure.Figure` (no pyplot state, no GUI backend).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

FIGSIZE = (6.4, 4.0)
BAND_ALPHA = 0.2

_LABELS = {
    "qini": "incremental outcome per customer (Qini)",
    "uplift": "uplift × share targeted",
}


def _bands(bands: pd.DataFrame | Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if isinstance(bands, pd.DataFrame):
        return {"model": bands}
    return dict(bands)


def plot_curve(
    bands: pd.DataFrame | Mapping[str, pd.DataFrame],
    kind: str = "qini",
    title: str | None = None,
    outcome_unit: str = "",
) -> Figure:
    """One curve per ranking with its shaded band, and the random-targeting chord.

    ``bands``: one :func:`~churnml.uplift.metrics.curve_band` frame or ``{label: frame}``.
    ``kind``: ``"qini"`` or ``"uplift"`` (axis label only). ``outcome_unit``: e.g. ``"$"``.
    """
    fig = Figure(figsize=FIGSIZE)
    ax = fig.add_subplot()
    frames = _bands(bands)
    for i, (label, band) in enumerate(frames.items()):
        line = ax.plot(band["share"], band["value"], label=label)[0]
        ax.fill_between(band["share"], band["lower"], band["upper"], color=line.get_color(),
                        alpha=BAND_ALPHA, linewidth=0)
        if i == 0:
            ax.plot(band["share"], band["random"], color="grey", linestyle="--",
                    label="random targeting")
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("share of customers targeted (highest predicted uplift first)")
    unit = f" [{outcome_unit}]" if outcome_unit else ""
    ax.set_ylabel(_LABELS.get(kind, kind) + unit)
    ax.set_title(title or f"{kind.capitalize()} curve (95 % bootstrap band)")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def plot_qini_curve(
    bands: pd.DataFrame | Mapping[str, pd.DataFrame], title: str | None = None,
    outcome_unit: str = "",
) -> Figure:
    """Qini curve(s) with bands: incremental outcome per customer of the base vs share."""
    return plot_curve(bands, "qini", title, outcome_unit)


def plot_uplift_curve(
    bands: pd.DataFrame | Mapping[str, pd.DataFrame], title: str | None = None,
    outcome_unit: str = "",
) -> Figure:
    """Uplift curve(s) with bands: (treated mean − control mean) × share targeted."""
    return plot_curve(bands, "uplift", title, outcome_unit)
