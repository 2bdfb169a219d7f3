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
from churnml.monitoring.history import ScoreHistory
from churnml.monitoring.monitor import PROBABILITY, MonitorResult, Reference, monitor
from churnml.monitoring.quality import reference_data_profile


def score_cutoff(data: Any, model: Any, cutoff: Any, spec: FeatureSpec | None = None
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``customer_id, churn_probability`` of every customer at ``cutoff`` and the profiles
    of the model's features."""
    columns = [str(c) for c in model.feature_names_in_]
    features = build_features(data, cutoff, spec)
    scores = pd.DataFrame({"customer_id": features["customer_id"].astype(str),
                           PROBABILITY: model.predict_proba(features[columns])[:, 1]})
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
) -> MonitorResult:
    """Score ``cutoffs`` with ``model`` into a score history under ``root``, take the
    reference at ``reference_cutoff`` (with the model's ``backtest`` ROC AUC / Brier) and
    monitor the history."""
    config = config or MonitoringConfig()
    scores, profile = score_cutoff(data, model, reference_cutoff, spec)
    reference = Reference(pd.Timestamp(reference_cutoff), "replay", profile,
                          profile_frame(scores, [PROBABILITY]), {}, dict(backtest),
                          reference_data_profile(data, reference_cutoff, config))
    history = ScoreHistory(root)
    for cutoff in cutoffs:
        scores, profile = score_cutoff(data, model, cutoff, spec)
        history.write(scores, {"cutoff": cutoff, "model_version": "replay"}, profile)
    return monitor(data, history, reference, churn or ChurnConfig(), config, spec)


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
