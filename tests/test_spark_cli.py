"""The whole job from the command line on Spark (`features`, `train`, `score` with
`features.engine: spark` and otherwise the default config) equals the DuckDB run: the same
features, models, scores (to 1e-9) and segments, with the outputs written by Spark."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churnml.cli import app

pyspark = pytest.importorskip("pyspark")

pytestmark = [
    pytest.mark.spark,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

N_CUSTOMERS = 500
SEED = 3
CUTOFF = "2024-06-01"
SCORED_AT = "2025-01-02T08:00:00Z"
runner = CliRunner()


def _config(folder: Path, engine: str, migrated_db: Path) -> Path:
    store = folder / f"{engine}.db"
    shutil.copy(migrated_db, store)
    raw = {"data": {"dataset": "simulated", "simulated_customers": N_CUSTOMERS, "seed": SEED},
           "features": {"engine": engine},
           "tracking": {"uri": f"sqlite:///{store}"},
           "output_dir": str(folder / engine)}
    path = folder / f"{engine}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _run(*args: str) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)


@pytest.fixture(scope="module")
def runs(spark, migrated_db, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("spark_cli")
    out = {}
    for engine in ("spark", "duckdb"):
        config = str(_config(folder, engine, migrated_db))
        _run("features", "--config", config, "--cutoff", CUTOFF)
        _run("train", "--config", config)
        _run("score", "--config", config, "--scored-at", SCORED_AT)
        out[engine] = folder / engine
    return out


def test_spark_outputs_are_written_by_spark(runs) -> None:
    spark_out = runs["spark"]
    assert (spark_out / "features.parquet").is_dir()  # a Parquet folder of part files
    assert list((spark_out / "features.parquet").glob("part-*.parquet"))
    assert (spark_out / "scores.parquet").is_dir()
    assert (runs["duckdb"] / "scores.parquet").is_file()


def test_spark_features_equal_duckdb(runs) -> None:
    keys = ["cutoff", "customer_id"]
    spark = pd.read_parquet(runs["spark"] / "features.parquet").sort_values(keys)
    duck = pd.read_parquet(runs["duckdb"] / "features.parquet").sort_values(keys)
    assert len(duck) > 100 and list(spark.columns) == list(duck.columns)
    spark = spark.astype(duck.dtypes.to_dict()).reset_index(drop=True)
    pd.testing.assert_frame_equal(spark, duck.reset_index(drop=True), rtol=1e-9)


def test_spark_scores_and_segments_equal_duckdb(runs) -> None:
    spark = pd.read_parquet(runs["spark"] / "scores.parquet").sort_values("rank")
    duck = pd.read_parquet(runs["duckdb"] / "scores.parquet").sort_values("rank")
    assert len(duck) > 100 and list(spark.columns) == list(duck.columns)
    assert spark["customer_id"].tolist() == duck["customer_id"].tolist()
    numbers = [c for c in duck.columns if pd.api.types.is_float_dtype(duck[c])]
    assert "churn_probability" in numbers and "value_at_risk" in numbers
    for col in numbers:
        np.testing.assert_allclose(spark[col], duck[col], rtol=0, atol=1e-9, err_msg=col)
    for col in ("rank", "risk_segment", "suggested_action", "model_version", "cutoff"):
        assert spark[col].tolist() == duck[col].tolist(), col
    assert spark["reasons"].fillna("").tolist() == duck["reasons"].fillna("").tolist()
    assert duck["risk_segment"].nunique() >= 3
    summary = {e: pd.read_csv(runs[e] / "segment_summary.csv") for e in runs}
    pd.testing.assert_frame_equal(summary["spark"], summary["duckdb"], rtol=1e-9)
    for name, n in zip(summary["duckdb"]["risk_segment"], summary["duckdb"]["customers"],
                       strict=True):
        files = {e: pd.read_csv(next((runs[e] / "segments").glob(f"{name}.csv")))
                 for e in runs}
        assert len(files["spark"]) == len(files["duckdb"]) == n, name
        assert files["spark"]["customer_id"].tolist() == files["duckdb"]["customer_id"].tolist()
