"""Scoring a Spark DataFrame (real local SparkSession, the models' code-free state broadcast
to the executors, from the registry or an export) gives the local scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scoring_helpers import SCORE_CUTOFF, SCORED_AT, fit_models, register, simulated

from churnml.engine import open_engine
from churnml.errors import DataValidationError
from churnml.features import build_features
from churnml.features.build import resolve_features
from churnml.scoring import score_features
from churnml.scoring.loading import load_exported_models
from churnml.scoring.reasons import CONTEXT_FEATURES
from churnml.scoring.score import OUTPUT_COLUMNS, feature_descriptions
from churnml.training.export import export_models

pyspark = pytest.importorskip("pyspark")

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    data = simulated()
    churn, ltv, X = fit_models(data)
    store = tmp_path_factory.mktemp("spark-store")
    models = register(churn, ltv, X, store)
    eng, _ = open_engine(data)
    with eng:
        resolved = resolve_features(eng, None)
    features = build_features(data, SCORE_CUTOFF, [*resolved, *CONTEXT_FEATURES])
    descriptions = feature_descriptions(event_types=sorted(data.events["event_type"].unique()))
    exported = tmp_path_factory.mktemp("spark-export")
    export_models(out_dir=exported, tracking_uri=models.tracking_uri)
    return models, features, descriptions, load_exported_models(exported, "churnml-churn",
                                                                 "churnml-ltv")


def _to_spark(spark, features: pd.DataFrame):
    from pyspark.sql import types as T

    fields = [T.StructField("customer_id", T.LongType())] + [
        T.StructField(c, T.DoubleType()) for c in features.columns
        if c not in ("customer_id", "cutoff")
    ]
    frame = features.drop(columns="cutoff").astype(object).where(features.notna(), None)
    return spark.createDataFrame(frame.values.tolist(), T.StructType(fields))


@pytest.mark.parametrize("source", ["registry", "export"])
def test_spark_scores_equal_local_scores(spark, setup, source):
    from churnml.scoring.spark import score_spark

    registered, features, descriptions, exported = setup
    models = registered if source == "registry" else exported
    assert (models.churn_uri is None) == (source == "export")  # an export has no registry URI
    local = score_features(features, registered, descriptions=descriptions,
                           scored_at=SCORED_AT)
    sdf, summary = score_spark(_to_spark(spark, features), models, cutoff=SCORE_CUTOFF,
                               descriptions=descriptions, scored_at=SCORED_AT)
    remote = sdf.toPandas().sort_values("rank").reset_index(drop=True)
    assert list(remote.columns) == OUTPUT_COLUMNS
    exp = local.scores
    assert remote["customer_id"].tolist() == exp["customer_id"].tolist()
    for col in ("churn_probability", "expected_value", "value_if_retained", "value_at_risk"):
        np.testing.assert_allclose(remote[col], exp[col], rtol=1e-12)
    assert remote["rank"].tolist() == exp["rank"].tolist()
    for col in ("risk_segment", "suggested_action", "model_version"):
        assert remote[col].tolist() == exp[col].tolist()
    assert remote["reasons"].fillna("<none>").tolist() == exp["reasons"].fillna(
        "<none>").tolist()
    assert (pd.to_datetime(remote["cutoff"]) == SCORE_CUTOFF).all()
    pd.testing.assert_frame_equal(summary, local.summary, check_exact=False, rtol=1e-9)


def test_spark_refuses_mismatched_types(spark, setup):
    from churnml.scoring.spark import score_spark

    models, features, _, _ = setup
    sdf = _to_spark(spark, features.drop(columns=["purchases_90d"]))
    with pytest.raises(DataValidationError, match="purchases_90d"):
        score_spark(sdf, models, cutoff=SCORE_CUTOFF)
    sdf = _to_spark(spark, features).withColumn("spend_90d", pyspark.sql.functions.lit("x"))
    with pytest.raises(DataValidationError, match=r"spend_90d is string \(model: double\)"):
        score_spark(sdf, models, cutoff=SCORE_CUTOFF)
