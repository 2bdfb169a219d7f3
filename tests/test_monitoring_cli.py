"""`churnml score` keeps every run in the score history; `churnml monitor` reads it back,
writes its tables, logs to MLflow and exits 1 on an alarm (real SQLite store, no mocks)."""

from __future__ import annotations

import json
import shutil

import mlflow
import pandas as pd
import pytest
import yaml
from scoring_helpers import N_CUSTOMERS, SEED, TRAIN_CUTOFFS, fit_models, simulated
from typer.testing import CliRunner

from churnml.cli import app
from churnml.monitoring import ScoreHistory
from churnml.training.tracking import (
    CHAMPION,
    CHURN_MODEL,
    CHURN_OUTPUT,
    LTV_MODEL,
    LTV_OUTPUT,
    log_metrics,
    log_model,
    log_training_window,
    start_run,
    tracking,
)

runner = CliRunner()
CUTOFFS = ("2024-07-01", "2024-08-01")


@pytest.fixture(scope="module")
def store(tmp_path_factory, migrated_db):
    """Small champions with a training window and backtest metrics in a copied store."""
    folder = tmp_path_factory.mktemp("monitor-cli")
    db = folder / "mlflow.db"
    shutil.copy(migrated_db, db)
    uri = f"sqlite:///{db}"
    churn, ltv, X = fit_models(simulated())
    with start_run("monitor-cli-test", tracking_uri=uri):
        log_training_window(start=TRAIN_CUTOFFS[0], end=TRAIN_CUTOFFS[-1], cutoffs=2,
                            horizon_days=90, rows=len(X))
        log_metrics({"churn.roc_auc": 0.5, "churn.brier": 0.5}, prefix="backtest.")
        log_model(churn, X.head(5), output=CHURN_OUTPUT, registered_model_name=CHURN_MODEL,
                  alias=CHAMPION)
        log_model(ltv, X.head(5), output=LTV_OUTPUT, registered_model_name=LTV_MODEL,
                  alias=CHAMPION)
    return folder, uri


def _config(folder, uri, name: str, **monitoring) -> str:
    cfg = {
        "name": name,
        "data": {"dataset": "simulated", "simulated_customers": N_CUSTOMERS, "seed": SEED},
        "tracking": {"uri": uri, "churn_model_name": CHURN_MODEL, "ltv_model_name": LTV_MODEL},
        "monitoring": monitoring,
        "scoring": {"allow_missing_lineage": True},  # models logged by hand, no lineage tags
        "output_dir": str(folder / name),
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_score_records_history_and_monitor_reports(store):
    folder, uri = store
    config = _config(folder, uri, "quiet")
    for cutoff in (*CUTOFFS, CUTOFFS[0]):  # the first cutoff twice: replaced, not duplicated
        result = runner.invoke(app, ["score", "--config", config, "--cutoff", cutoff])
        assert result.exit_code == 0, result.output
        # trained on cutoffs up to 2024-06-01 with a 90-day label: outcomes up to 2024-08-30
        assert "earlier than the end of the models' latest training label window " \
            "(2024-08-30 00:00:00)" in " ".join(result.output.split())
    history = ScoreHistory(folder / "quiet" / "score_history")
    assert history.cutoffs() == [pd.Timestamp(c) for c in CUTOFFS]
    scores = pd.read_parquet(folder / "quiet" / "scores.parquet")
    stored = history.scores(CUTOFFS[0])
    assert len(stored) == len(scores)
    assert set(stored["customer_id"].astype(str)) == set(scores["customer_id"].astype(str))
    assert history.profile(CUTOFFS[0])  # feature profiles kept, not per-customer features
    result = runner.invoke(app, ["monitor", "--config", config])
    assert result.exit_code == 0, result.output
    perf = pd.read_csv(folder / "quiet" / "monitoring" / "performance.csv")
    assert perf["matured"].all() and perf["real_roc_auc"].between(0.6, 1.0).all()
    drift = pd.read_csv(folder / "quiet" / "monitoring" / "drift.csv")
    assert {"feature", "score"} <= set(drift["kind"])
    signal = json.loads((folder / "quiet" / "monitoring" / "signal.json").read_text())
    assert signal["retrain"] is False
    with tracking(uri):
        runs = mlflow.search_runs(experiment_names=["quiet-monitoring"])
    assert {"score", "monitor"} <= set(runs["tags.churnml.stage"])
    monitor_run = runs[runs["tags.churnml.stage"] == "monitor"].iloc[0]
    assert monitor_run["metrics.real_roc_auc"] == pytest.approx(perf["real_roc_auc"].iloc[-1])


def test_monitor_exits_non_zero_when_a_threshold_is_crossed(store):
    folder, uri = store
    config = _config(folder, uri, "strict", psi_warn=1e-9, psi_alarm=1e-9)
    result = runner.invoke(app, ["score", "--config", config, "--cutoff", CUTOFFS[1]])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["monitor", "--config", config])
    assert result.exit_code == 1
    assert "alarm" in result.output and "Verdict:" in result.output
    signal = json.loads((folder / "strict" / "monitoring" / "signal.json").read_text())
    assert signal["verdict"] != "healthy" and signal["alarms"] and signal["evidence"]


def test_monitor_retrain_refuses_while_a_data_break_stands(store):
    folder, uri = store
    # volume_ratio 0.99: a period whose rows differ by 1 % from the reference's is a break
    config = _config(folder, uri, "broken", volume_ratio=0.99)
    result = runner.invoke(app, ["score", "--config", config, "--cutoff", CUTOFFS[1]])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["monitor", "--config", config, "--retrain"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "refusing to retrain" in text and "Verdict: data break" in text
    assert "rows_per_period" not in text or "per 30 days in the reference" in text
    signal = json.loads((folder / "broken" / "monitoring" / "signal.json").read_text())
    assert signal["verdict"] == "data" and signal["retrain"] is False
    assert signal["alarms"]["data"]["count"] > 0 and signal["evidence"]
    checks = pd.read_csv(folder / "broken" / "monitoring" / "quality.csv")
    assert (checks["level"] == "alarm").any()
    with tracking(uri):  # no training run was started
        assert mlflow.get_experiment_by_name("broken") is None
    # the change acknowledged: no data verdict, nothing refused
    result = runner.invoke(app, ["monitor", "--config", config, "--acknowledge-data", "*"])
    assert result.exit_code in (0, 1), result.output
    assert "refusing" not in result.output
    signal = json.loads((folder / "broken" / "monitoring" / "signal.json").read_text())
    assert signal["verdict"] != "data"
    checks = pd.read_csv(folder / "broken" / "monitoring" / "quality.csv")
    assert not (checks["level"] == "alarm").any() and (checks["level"] == "acknowledged").any()


def test_monitor_without_history_is_a_clear_error(store):
    folder, uri = store
    result = runner.invoke(app, ["monitor", "--config", _config(folder, uri, "empty")])
    assert result.exit_code == 2
    assert "score history" in result.output and "churnml score" in result.output


def test_overlap_warning_uses_the_training_label_window():
    from churnml.scoring.loading import ScoringModels

    models = ScoringModels(None, None, "c", "l", training_window={
        "end": "2024-06-01 00:00:00", "horizon_days": "90", "label_window_days": "104"})
    assert models.label_window_end == pd.Timestamp("2024-09-13")  # 2024-06-01 + 104 days
    assert "optimistic" in models.overlap_warning(pd.Timestamp("2024-09-12"))
    assert models.overlap_warning(pd.Timestamp("2024-09-13")) is None
    assert ScoringModels(None, None, "c", "l").overlap_warning(pd.Timestamp("2000-01-01")) is None
