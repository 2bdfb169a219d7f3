"""Shared, cheap test fixtures."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PLANS = ["basic", "pro", "vip"]
SPEND_SHAPE = 2.0  # gamma shape of a stayer's spend


@dataclass(frozen=True)
class ModelData:
    """A synthetic feature panel with planted churn and value signal, split train/test."""

    X_train: pd.DataFrame
    X_test: pd.DataFrame
    churn_train: np.ndarray
    churn_test: np.ndarray
    ltv_train: np.ndarray
    ltv_test: np.ndarray
    expected_ltv_test: np.ndarray  # oracle E[max(ltv, 0)] ignoring returns, currency


def make_model_data(n: int = 4000, seed: int = 0, test_share: float = 0.25) -> ModelData:
    """Features: ``days_since_last_purchase`` (exponential), ``frequency`` (Poisson, 10 % missing),
    ``noise``, ``n_tickets`` (int64), ``plan`` (pandas ``str``, 5 % missing) and
    ``spend_90d``. Churn log-odds rise with recency and fall with frequency;
    stayers spend gamma amounts scaled by plan and frequency; 2 % of rows carry a return."""
    rng = np.random.default_rng(seed)
    frequency = rng.poisson(3, n).astype(float)
    plan = rng.choice(PLANS, n)
    X = pd.DataFrame(
        {
            "days_since_last_purchase": rng.exponential(60.0, n),
            "frequency": np.where(rng.random(n) < 0.1, np.nan, frequency),
            "noise": rng.normal(size=n),
            "n_tickets": rng.integers(0, 5, n),
            "plan": pd.Series(np.where(rng.random(n) < 0.05, None, plan), dtype="str"),
        }
    )
    recency = X["days_since_last_purchase"].to_numpy()
    logit = 0.03 * (recency - 60.0) - 0.5 * (frequency - 3.0) + 0.8 * (plan == "basic")
    p_churn = 1.0 / (1.0 + np.exp(-logit))
    churned = (rng.random(n) < p_churn).astype(int)
    scale = 15.0 * (1.0 + frequency) * np.where(plan == "vip", 3.0, 1.0)
    spend = rng.gamma(SPEND_SHAPE, scale)
    expected = (1.0 - p_churn) * SPEND_SHAPE * scale
    returns = np.where(rng.random(n) < 0.02, rng.uniform(1.0, 30.0, n), 0.0)
    ltv = np.where(churned == 0, spend, 0.0) - returns
    X["spend_90d"] = np.where(
        rng.random(n) < 0.1, np.nan, spend * rng.uniform(0.5, 1.5, n) - returns
    )
    cut = int(n * (1.0 - test_share))
    return ModelData(
        X.iloc[:cut].reset_index(drop=True),
        X.iloc[cut:].reset_index(drop=True),
        churned[:cut],
        churned[cut:],
        ltv[:cut],
        ltv[cut:],
        expected[cut:],
    )


@pytest.fixture(scope="session")
def model_data() -> ModelData:
    return make_model_data()


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """One SQLite store migrated by MLflow (Alembic, seconds) per test session; tests copy it."""
    from churnml.training.tracking import tracking

    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    with tracking(f"sqlite:///{path}") as client:
        client.search_experiments()
        client.search_registered_models()
    return path


# Small local Spark session; these settings cut Spark's per-query overhead on tiny data.
SPARK_MASTER = "local[2]"
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "2",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",  # as sessions churnml starts
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.autoBroadcastJoinThreshold": "-1",
}


@pytest.fixture(scope="session")
def spark():
    """One real local SparkSession for the whole test session (Java 17+ required)."""
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+")
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable  # Python workers run this interpreter
    builder = SparkSession.builder.master(SPARK_MASTER).appName("churnml-tests")
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
