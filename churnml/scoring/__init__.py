"""Batch scoring: value at risk, ranking, reasons in words, segments and export.

>>> from churnml.scoring import load_registered_pair, score   # doctest: +SKIP
>>> models = load_registered_pair("churnml-churn", "churnml-ltv", "champion",
...                               "sqlite:///mlflow.db")
>>> result = score(data, models, cutoff="2024-07-01")                   # doctest: +SKIP

:mod:`churnml.scoring.spark` scores a Spark DataFrame (import it explicitly).
"""

from churnml.scoring.export import write_scores, write_segments
from churnml.scoring.loading import (
    ScoringModels,
    check_feature_table,
    load_exported_models,
    load_registered,
    load_registered_pair,
)
from churnml.scoring.reasons import PathAttribution, ReasonWriter, contributions, top_drivers
from churnml.scoring.score import Scorer, ScoreResult, score, score_features
from churnml.scoring.segments import Segment, assign_segments, parse_segments

__all__ = [
    "PathAttribution", "ReasonWriter", "ScoreResult", "Scorer", "ScoringModels", "Segment",
    "assign_segments", "check_feature_table", "contributions", "load_exported_models",
    "load_registered", "load_registered_pair", "parse_segments", "score", "score_features",
    "top_drivers", "write_scores", "write_segments",
]
