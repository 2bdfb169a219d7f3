"""Replay a deployment: score past cutoffs with a fitted churn model, keep every run in a
score history and monitor it — to try thresholds on one's own data, or on a scenario with a
known change (:mod:`churnml.data.scenarios`) before trusting the alarms."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from churnml.config import ChurnConfig, MonitoringConfig
from churnml.features.build import build_features
from churnml.features.profile import profile_frame
from churnml.features.spec import FeatureSpec
from churnml.labels import build_labels, label_window_days, observation_end_of
from churnml.monitoring.history import ScoreHistory
from churnml.monitoring.monitor import (
    PROBABILITY,
    RETAINED,
    SCORE_COLUMNS,
    VAR,
    MonitorResult,
    Reference,
    monitor,
    reference_outcomes,
)
from churnml.monitoring.quality import reference_data_profile
from churnml.monitoring.value import VALUE


def score_cutoff(data: Any, model: Any, cutoff: Any, spec: FeatureSpec | None = None,
                 value_model: Any = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``customer_id, churn_probability`` of every customer at ``cutoff`` (with a
    ``value_model``, an :class:`~churnml.models.LTVModel`, also ``expected_value``,
    ``value_if_retained`` and ``value_at_risk``) and the profiles of the models' features."""
    columns = [str(c) for c in model.feature_names_in_]
    if value_model is not None:
        columns += [str(c) for c in value_model.feature_names_in_ if str(c) not in columns]
    features = build_features(data, cutoff, spec)
    scores = pd.DataFrame({"customer_id": features["customer_id"].astype(str),
                           PROBABILITY: model.predict_proba(
                               features[[str(c) for c in model.feature_names_in_]])[:, 1]})
    if value_model is not None:
        X = features[[str(c) for c in value_model.feature_names_in_]]
        scores[VALUE] = value_model.predict(X)
        scores[RETAINED] = value_model.predict_if_retained(X)
        scores[VAR] = scores[PROBABILITY] * scores[RETAINED].clip(lower=0.0)
    return scores, profile_frame(features, columns)


def replay(
    data: Any,
    model: Any,
    cutoffs: Sequence[Any],
    reference_cutoff: Any,
    backtest: dict[str, float],
    root: str | Path,
    *,
    spec: FeatureSpec | None = None,
    churn: ChurnConfig | None = None,
    config: MonitoringConfig | None = None,
    value_model: Any = None,
    calibration_cutoffs: Sequence[Any] | None = None,
) -> MonitorResult:
    """Score ``cutoffs`` with ``model`` (and ``value_model``) into a score history under
    ``root``, take the reference at ``reference_cutoff`` (with the model's ``backtest`` ROC
    AUC / Brier) and monitor the history. The calibration reference holds the outcomes at
    ``calibration_cutoffs`` (default: the reference cutoff; cutoffs the model did not train
    on; those whose labels have not matured are left out; ``[]``: none)."""
    churn = churn or ChurnConfig()
    config = config or MonitoringConfig()
    cutoff0 = pd.Timestamp(reference_cutoff)
    scores, profile = score_cutoff(data, model, cutoff0, spec, value_model)
    window = pd.Timedelta(days=label_window_days(churn))
    matured = [pd.Timestamp(c) for c in (
        [cutoff0] if calibration_cutoffs is None else calibration_cutoffs)
        if pd.Timestamp(c) + window <= observation_end_of(data)]
    frames = []
    for cutoff in matured:
        scored = scores if cutoff == cutoff0 else score_cutoff(data, model, cutoff, spec,
                                                               value_model)[0]
        labels = build_labels(data, cutoff, churn)
        labels["customer_id"] = labels["customer_id"].astype(str)
        frames.append(scored.merge(labels[["customer_id", "cutoff", "churned", "ltv"]],
                                   on="customer_id"))
    calibration, value = reference_outcomes(pd.concat(frames)) if frames else (None, {})
    reference = Reference(cutoff0, "replay", profile,
                          profile_frame(scores, [c for c in SCORE_COLUMNS if c in scores]), {},
                          dict(backtest), reference_data_profile(data, cutoff0, config),
                          calibration=calibration, value=value)
    history = ScoreHistory(root)
    for cutoff in cutoffs:
        scores, profile = score_cutoff(data, model, cutoff, spec, value_model)
        history.write(scores, {"cutoff": cutoff, "model_version": "replay"}, profile)
    return monitor(data, history, reference, churn, config, spec)


def fit_deployed_model(
    data: Any,
    train_cutoffs: Sequence[Any],
    backtest_cutoff: Any,
    *,
    spec: FeatureSpec | None = None,
    churn: ChurnConfig | None = None,
    **params: Any,
) -> tuple[Any, dict[str, float]]:
    """The model a deployment would have scored with: a
    :class:`~churnml.models.ChurnClassifier` (``params``) fitted on the panel of
    ``train_cutoffs``, and its out-of-time ROC AUC and Brier at ``backtest_cutoff`` (the
    ``backtest`` that :func:`replay` compares realized performance with)."""
    from churnml.labels import build_panel
    from churnml.models import ChurnClassifier
    from churnml.training.evaluation import classification_metrics

    churn = churn or ChurnConfig()
    keys = ["customer_id", "cutoff", "churned", "ltv"]
    panel = build_panel(data, train_cutoffs, spec, churn)
    model = ChurnClassifier(**params).fit(panel.drop(columns=keys), panel["churned"])
    test = build_panel(data, [backtest_cutoff], spec, churn)
    p = model.predict_proba(test.drop(columns=keys))[:, 1]
    m = classification_metrics(test["churned"], p)
    return model, {"roc_auc": m["roc_auc"], "brier": m["brier"]}


def fit_value_model(
    data: Any,
    train_cutoffs: Sequence[Any],
    *,
    spec: FeatureSpec | None = None,
    churn: ChurnConfig | None = None,
    **params: Any,
) -> Any:
    """The value model a deployment would have scored with: a
    :class:`~churnml.models.LTVModel` (``params``) fitted on the panel of ``train_cutoffs``
    (label ``ltv``; the retained rows teach its value if retained)."""
    from churnml.labels import build_panel
    from churnml.models import LTVModel

    keys = ["customer_id", "cutoff", "churned", "ltv"]
    panel = build_panel(data, train_cutoffs, spec, churn or ChurnConfig())
    return LTVModel(**params).fit(panel.drop(columns=keys), panel["ltv"],
                                  retained=(panel["churned"] == 0).to_numpy())
