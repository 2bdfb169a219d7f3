"""Training: evaluation metrics (:mod:`.evaluation`), MLflow tracking and registry
(:mod:`.tracking`) and file export of registered models (:mod:`.export`).

Only the evaluation metrics are imported here; :mod:`.tracking` and :mod:`.export` import
MLflow, which takes a while, so import them explicitly.
"""

from churnml.training.evaluation import (
    calibration_table,
    capture,
    classification_metrics,
    cumulative_gains,
    decile_mape,
    lift_table,
    normalized_gini,
    regression_metrics,
    value_at_risk_coverage,
)

__all__ = [
    "calibration_table",
    "capture",
    "classification_metrics",
    "cumulative_gains",
    "decile_mape",
    "lift_table",
    "normalized_gini",
    "regression_metrics",
    "value_at_risk_coverage",
]
