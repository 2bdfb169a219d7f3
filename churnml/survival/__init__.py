"""Time to churn: survival curves, remaining lifetime and lifetime value per customer.

Each cutoff is a landmark: :func:`build_durations` follows the customers at risk there until
they churn or the data end (periods of ``period_days``; event and censoring of subscriptions
and purchase logs in :mod:`churnml.survival.durations`). :class:`DiscreteTimeHazard` fits a
calibrated per-period hazard on person-period rows and predicts ``S(t | x, survived so
far)``; :func:`curve_summary` and :func:`lifetime_value` turn curves into per-customer
columns (probability active at horizons, restricted mean lifetime, median time to churn,
lifetime value with a predictive interval).

Baselines of the same protocol: :class:`KaplanMeierBaseline` (overall or per group),
:class:`ShiftedBetaGeometric` (Fader & Hardie's sBG) and ``CoxBaseline`` (imported on first
use: it loads scikit-survival); metrics in :mod:`churnml.survival.metrics`.

Every model follows one protocol: ``fit(X, y)`` with ``y`` holding ``duration`` and
``event``, ``predict_survival_function(X, times)`` of shape ``(n, len(times))`` and
``predict_risk(X)`` (higher = churns sooner).
"""

from typing import Any

from churnml.survival.curves import (
    curve_summary,
    expected_remaining_lifetime,
    extend_constant_hazard,
    extend_survival,
    median_time_to_churn,
    p_active,
    survival_at,
)
from churnml.survival.durations import (
    DURATION_COLUMNS,
    UnobservedCutoffError,
    build_durations,
    build_survival_panel,
    build_tenure,
)
from churnml.survival.hazard import DiscreteTimeHazard
from churnml.survival.kaplan_meier import KaplanMeierBaseline
from churnml.survival.lifetime_value import (
    fit_spend_cv,
    lifetime_value,
    per_period_rate,
    realized_value,
)
from churnml.survival.person_period import person_period
from churnml.survival.sbg import ShiftedBetaGeometric
from churnml.survival.scores import scored_columns, spend_per_period, survival_columns
from churnml.survival.spend import SpendModel, fit_spend_model, spend_at_latest_cutoff

__all__ = [
    "CoxBaseline",
    "DURATION_COLUMNS",
    "DiscreteTimeHazard",
    "KaplanMeierBaseline",
    "ShiftedBetaGeometric",
    "SpendModel",
    "UnobservedCutoffError",
    "build_durations",
    "build_survival_panel",
    "build_tenure",
    "curve_summary",
    "expected_remaining_lifetime",
    "extend_constant_hazard",
    "extend_survival",
    "fit_spend_cv",
    "fit_spend_model",
    "lifetime_value",
    "median_time_to_churn",
    "p_active",
    "scored_columns",
    "spend_at_latest_cutoff",
    "per_period_rate",
    "person_period",
    "realized_value",
    "spend_per_period",
    "survival_at",
    "survival_columns",
]


def __getattr__(name: str) -> Any:
    if name == "CoxBaseline":  # scikit-survival loads only when the Cox model is used
        from churnml.survival.cox import CoxBaseline

        return CoxBaseline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
