"""Shared set-up of the scoring tests: small models trained on simulated data and registered
in a real SQLite MLflow store (no mocks)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnml.data.simulate import simulate
from churnml.labels import build_panel
from churnml.models import ChurnClassifier, LTVModel
from churnml.scoring.loading import ScoringModels, load_registered
from churnml.training.tracking import (
    CHAMPION,
    CHURN_MODEL,
    CHURN_OUTPUT,
    LTV_MODEL,
    LTV_OUTPUT,
    log_model,
    start_run,
)

N_CUSTOMERS = 1200
SEED = 5
TRAIN_CUTOFFS = ["2024-03-01", "2024-06-01"]
SCORE_CUTOFF = pd.Timestamp("2024-10-01")
SCORED_AT = pd.Timestamp("2024-10-02 08:00", tz="UTC")
SMALL = {"n_estimators": 40, "num_leaves": 7, "max_depth": 4, "n_jobs": 1}
KEYS = ("customer_id", "cutoff", "churned", "ltv")
CHURN_URI = f"models:/{CHURN_MODEL}@{CHAMPION}"
LTV_URI = f"models:/{LTV_MODEL}@{CHAMPION}"


def simulated():
    return simulate(N_CUSTOMERS, seed=SEED)


def fit_models(data) -> tuple[ChurnClassifier, LTVModel, pd.DataFrame]:
    """Small churn and value models on a two-cutoff panel; returns them and the features."""
    panel = build_panel(data, TRAIN_CUTOFFS)
    X = panel[[c for c in panel.columns if c not in KEYS]]
    churn = ChurnClassifier(**SMALL).fit(X, panel["churned"], groups=panel["customer_id"])
    ltv = LTVModel(**SMALL).fit(X, panel["ltv"], groups=panel["customer_id"])
    return churn, ltv, X


def register(
    churn: ChurnClassifier, ltv: LTVModel, example: pd.DataFrame, folder: Path
) -> ScoringModels:
    """Log and register both models as champions in ``folder/mlflow.db``; load them back."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with start_run("churnml-scoring-test", tracking_uri=uri):
        log_model(churn, example, output=CHURN_OUTPUT, registered_model_name=CHURN_MODEL,
                  alias=CHAMPION)
        log_model(ltv, example, output=LTV_OUTPUT, registered_model_name=LTV_MODEL,
                  alias=CHAMPION)
    return load_registered(CHURN_URI, LTV_URI, uri)


def spark_tables(spark, data) -> dict:
    """The contract tables of ``data`` as Spark DataFrames (session-time-zone timestamps)."""
    from pyspark.sql import types as T

    from churnml.engine.spark_engine import spark_schema

    out = {}
    for name, frame in data.tables().items():
        schema = T.StructType([
            T.StructField(f.name, T.TimestampType())
            if isinstance(f.dataType, T.TimestampNTZType) else f
            for f in spark_schema(frame).fields
        ])
        out[name] = spark.createDataFrame(frame, schema=schema)
    return out
