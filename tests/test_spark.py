"""The same feature and label definitions on Apache Spark (local mode) equal the DuckDB run."""

from __future__ import annotations

import pandas as pd
import pytest
from scoring_helpers import spark_tables

from churnml import CustomerData
from churnml.config import ChurnConfig
from churnml.data.simulate import simulate
from churnml.engine import open_engine
from churnml.features import build_features
from churnml.features.build import resolve_features, tidy
from churnml.labels import build_labels

pyspark = pytest.importorskip("pyspark")

pytestmark = [
    pytest.mark.spark,
    # PySpark 4.x's own warnings about pandas 3 (its conversions are checked here)
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
    pytest.mark.filterwarnings("ignore:Series.values returning an ndarray"),
]

CUTOFFS = [pd.Timestamp("2024-03-01"), pd.Timestamp("2024-06-01"),
           pd.Timestamp("2024-06-15 12:00")]
@pytest.fixture(scope="module")
def data() -> CustomerData:
    return simulate(150, seed=21, contractual=True)


def test_spark_dataframes_in_spark_dataframe_out_equal_duckdb(spark, data) -> None:
    from pyspark.sql import DataFrame as SparkDataFrame

    result = build_features(spark_tables(spark, data), CUTOFFS, engine="spark")
    assert isinstance(result, SparkDataFrame)
    actual = result.toPandas()
    with open_engine(data)[0] as engine:
        features = resolve_features(engine, None)
    expected = build_features(data, CUTOFFS)
    pd.testing.assert_frame_equal(tidy(actual, features), expected, rtol=1e-6)


def test_spark_single_cutoff_from_pandas_equals_duckdb(spark, data) -> None:
    cutoff = pd.Timestamp("2024-05-17 13:30")
    actual = build_features(data, cutoff, engine="spark", spark=spark)
    pd.testing.assert_frame_equal(actual, build_features(data, cutoff), rtol=1e-9)


@pytest.mark.parametrize("kind", ["non_contractual", "contractual"])
def test_spark_labels_equal_duckdb(spark, data, kind: str) -> None:
    churn = ChurnConfig(kind=kind)
    actual = build_labels(data, CUTOFFS, churn, engine="spark", spark=spark)
    expected = build_labels(data, CUTOFFS, churn)
    assert len(expected) > 50 and expected["churned"].nunique() == 2
    pd.testing.assert_frame_equal(actual, expected)

