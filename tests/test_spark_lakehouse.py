"""The lakehouse config (every table a Spark table, no ``data.dir``, ``features.engine:
spark``) from the command line: ``score`` on Spark keeps the run in the score history with
the DuckDB route's layout, and ``metrics``, ``monitor`` and ``report`` (computed by DuckDB on
the tables Spark read) run, ``metrics`` giving the results of the same data read from a
folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churnml.cli import app
from churnml.data.simulate import simulate
from churnml.monitoring.history import COLUMNS, ScoreHistory

pyspark = pytest.importorskip("pyspark")

pytestmark = [
    pytest.mark.spark,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

N_CUSTOMERS = 300
SEED = 5
SCORE_AT = "2024-09-01"  # its 90-day horizon is inside the data: monitor realises it
SCORED_AT = "2025-01-02T08:00:00Z"
TABLES = ("transactions", "events", "surveys", "customers")
runner = CliRunner()


def _run(*args: str, codes: tuple[int, ...] = (0,)) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code in codes, result.output + repr(result.exception)
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture(scope="module")
def lakehouse(spark, migrated_db, tmp_path_factory) -> dict[str, Path]:
    """The simulated tables as Parquet files (the folder config) and as global temporary
    Spark views of the same files (the lakehouse config); models trained from the lakehouse
    tables (read by Spark, fitted by the DuckDB route: the same lineage), scored on Spark."""
    root = tmp_path_factory.mktemp("lakehouse")
    data = simulate(N_CUSTOMERS, seed=SEED)
    raw = root / "raw"
    raw.mkdir()
    tables = data.tables()
    for name in TABLES:
        tables[name].to_parquet(raw / f"{name}.parquet", index=False)
        spark.read.parquet(str(raw / f"{name}.parquet")).createOrReplaceGlobalTempView(
            f"churnml_lakehouse_{name}")
    store = root / "mlflow.db"
    shutil.copy(migrated_db, store)
    common = {"name": "lakehouse", "tracking": {"uri": f"sqlite:///{store}"},
              "training": {"n_origins": 1, "ltv_candidates": [{"kind": "hurdle"}]},
              "output_dir": str(root / "spark")}
    lake = {"tables": {t: {"table": f"global_temp.churnml_lakehouse_{t}"} for t in TABLES}}
    configs = {}
    for name, data_cfg, engine in (("spark", lake, "spark"), ("train", lake, "duckdb"),
                                   ("duckdb", {"dir": str(raw)}, "duckdb")):
        configs[name] = root / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump(
            {**common, "data": data_cfg, "features": {"engine": engine}}))
    _run("train", "--config", str(configs["train"]))
    _run("score", "--config", str(configs["spark"]), "--cutoff", SCORE_AT, "--scored-at",
         SCORED_AT)
    return {**configs, "root": root}


def test_spark_scores_are_kept_in_the_score_history(lakehouse) -> None:
    out = lakehouse["root"] / "spark"
    history = ScoreHistory(out / "score_history")
    assert history.cutoffs() == [pd.Timestamp(SCORE_AT)]
    partition = out / "score_history" / "cutoff=2024-09-01"
    # the DuckDB route's layout: one Parquet file and the run's JSON files (and the hidden
    # marker of a churnml output)
    assert sorted(p.name for p in partition.iterdir() if not p.name.startswith(".")) == [
        "profile.json", "run.json", "scores.parquet"]
    assert (partition / "scores.parquet").is_file()
    kept = history.scores(SCORE_AT)
    scores = pd.read_parquet(out / "scores.parquet").sort_values("rank").reset_index(drop=True)
    assert list(kept.columns) == [c for c in COLUMNS if c in scores.columns]
    assert len(kept) == len(scores) > 50
    pd.testing.assert_frame_equal(kept, scores[list(kept.columns)])  # rank order kept
    run = history.run(SCORE_AT)
    assert run["rows"] == len(scores) and run["horizon_days"] == 90
    assert run["segments"] == {str(k): int(v) for k, v in
                               scores["risk_segment"].value_counts().items()}
    assert run["scored_at"] == str(pd.Timestamp(SCORED_AT))
    profile = history.profile(SCORE_AT)
    assert len(profile) > 10 and all(p["n"] == len(scores) for p in profile.values())
    numeric = [p for p in profile.values() if p["kind"] == "numeric" and p["quantiles"]]
    assert numeric and all(len(p["quantiles"]) == 101 for p in numeric)
    assert all(np.all(np.diff(p["quantiles"]) >= 0) for p in numeric)


def test_monitor_runs_on_the_spark_scored_history(lakehouse) -> None:
    output = _run("monitor", "--config", str(lakehouse["spark"]), codes=(0, 1))
    assert "Monitoring" in output
    performance = lakehouse["root"] / "spark" / "monitoring"
    assert any(performance.iterdir())


def test_metrics_and_report_run_on_the_lakehouse_config(lakehouse, tmp_path) -> None:
    kpis = {}
    for engine in ("spark", "duckdb"):
        out = tmp_path / f"{engine}.csv"
        _run("metrics", "--config", str(lakehouse[engine]), "--format", "csv",
             "--out", str(out))
        kpis[engine] = pd.read_csv(out)
    assert len(kpis["duckdb"]) > 6
    pd.testing.assert_frame_equal(kpis["spark"], kpis["duckdb"], rtol=1e-9)
    report = tmp_path / "report.html"
    _run("report", "--config", str(lakehouse["spark"]), "--out", str(report))
    assert report.stat().st_size > 10_000
