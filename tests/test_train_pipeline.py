"""`train` end to end on simulated data against a real SQLite MLflow store, and the
`churnml train` / `churnml export` commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from churnml.cli import app
from churnml.config import ChurnConfig, Config, FeaturesConfig, TrainingConfig, load_config
from churnml.data.loaders import load_data
from churnml.errors import ConfigError
from churnml.labels import labelled_cutoffs
from churnml.paths import relative
from churnml.training.backtest import PREDICTION_COLUMNS
from churnml.training.export import load_exported
from churnml.training.tracking import load_model, load_pyfunc, to_model_input, tracking
from churnml.training.train import (
    FILES,
    build_training_panel,
    feature_spec,
    summary_tables,
    train,
    training_cutoffs,
)

# MLflow 3.17's own deprecation noise under pandas 3.1 / SQLAlchemy 2 (not churnml's)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")

N_CUSTOMERS = 1000
FAST = {"n_estimators": 30}
runner = CliRunner()


def _store(migrated_db: Path, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_db, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="module")
def config_file(migrated_db, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    path = root / "train.yaml"
    path.write_text(yaml.safe_dump({
        "name": "pipeline-test",
        "data": {"dataset": "simulated", "simulated_customers": N_CUSTOMERS, "seed": 5},
        "training": {"n_origins": 2, "churn_params": FAST, "ltv_params": FAST,
                     "ltv_candidates": []},
        "tracking": {"uri": _store(migrated_db, root / "store")},
        "output_dir": str(root / "out"),
    }))
    return path


@pytest.fixture(scope="module")
def cfg(config_file) -> Config:
    return load_config(config_file)


@pytest.fixture(scope="module")
def data(cfg):
    return load_data(cfg)


@pytest.fixture(scope="module")
def runs(cfg, data, config_file):
    """The same training twice, first in Python, then through `churnml train`: the second
    (equal) run must not take the champion alias."""
    first = train(cfg, data, console=Console(quiet=True))
    cli = runner.invoke(app, ["train", "--config", str(config_file)])
    assert cli.exit_code == 0, cli.output
    return first, cli


@pytest.fixture(scope="module")
def X(runs, cfg, data) -> pd.DataFrame:
    """Feature rows of the latest cutoffs, in the models' column order."""
    return build_training_panel(data, cfg).tail(300)[runs[0].models.features]


def test_both_models_registered_and_first_run_is_champion(runs) -> None:
    first, _ = runs
    for task in ("churn", "ltv"):
        reg = first.registrations[task]
        assert reg.version == "1" and reg.promoted and reg.aliases == ["champion"]
    assert first.registrations["churn"].name == "pipeline-test-churn"
    assert first.registrations["ltv"].name == "pipeline-test-ltv"


def test_equal_second_run_does_not_steal_champion(runs, cfg) -> None:
    first, cli = runs
    with tracking(cfg.tracking.uri) as client:
        for name in ("pipeline-test-churn", "pipeline-test-ltv"):
            assert client.get_registered_model(name).aliases == {"champion": 1,
                                                                  "challenger": 2}
        second_run = client.get_model_version("pipeline-test-churn", "2").run_id
        metrics = client.get_run(second_run).data.metrics
    # seeded training: the second run reproduces the backtest numbers (up to BLAS
    # floating-point noise in the logistic fits, far below tracking.min_improvement)
    summary = first.summary.set_index(["model", "metric"])["mean"]
    for model, metric in (("churn", "roc_auc"), ("ltv", "normalized_gini"),
                          ("logistic", "brier")):
        assert metrics[f"backtest.{model}.{metric}"] == pytest.approx(
            summary[(model, metric)], abs=cfg.tracking.min_improvement / 10)
    assert ("pipeline-test-churn v2 aliases=['challenger']: registered as challenger, "
            "champion stays v1") in cli.output
    assert "does not beat champion v1" in cli.output  # the verdict names the numbers
    assert "AUC" in cli.stdout and "Gini" in cli.stdout
    assert f"mlflow ui --backend-store-uri {relative(cfg.tracking.uri)}" in cli.output


def test_champion_loaded_from_registry_predicts_like_the_in_memory_model(runs, cfg,
                                                                         X) -> None:
    first, _ = runs
    uri = cfg.tracking.uri
    churn = load_pyfunc("models:/pipeline-test-churn@champion", tracking_uri=uri)
    got = churn.predict(to_model_input(X, first.models.churn.feature_dtypes_))
    np.testing.assert_array_equal(got["churn_probability"].to_numpy(),
                                  first.models.churn.predict_proba(X)[:, 1])
    ltv = load_model("models:/pipeline-test-ltv@champion", tracking_uri=uri)
    np.testing.assert_array_equal(ltv.predict(X), first.models.ltv.predict(X))


def test_run_logs_metrics_figures_config_and_fingerprint(runs, cfg, data) -> None:
    first, _ = runs
    summary = first.summary.set_index(["model", "metric"])["mean"]
    with tracking(cfg.tracking.uri) as client:
        run = client.get_run(first.run_id)
        figures = {Path(a.path).name for a in client.list_artifacts(first.run_id, "figures")}
        tables = {Path(a.path).name for a in client.list_artifacts(first.run_id, "tables")}
        experiment = client.get_experiment(run.info.experiment_id).name
    assert experiment == cfg.name
    m = run.data.metrics
    assert m["backtest.churn.roc_auc"] == pytest.approx(summary[("churn", "roc_auc")])
    assert m["backtest.last_value.normalized_gini"] == pytest.approx(
        summary[("last_value", "normalized_gini")])
    assert figures == {f"{n}.png" for n in
                       ("roc", "calibration", "lift", "ltv_deciles", "value_at_risk",
                        "feature_importance")}
    assert {"backtest_metrics.csv", "lift.csv", "calibration.csv"} <= tables
    assert run.data.params["config.training.n_origins"] == "2"
    assert run.data.tags["data.transactions.rows"] == str(len(data.transactions))
    assert run.data.params["window.cutoffs"] == str(len(first.train_cutoffs))


def test_output_files_follow_the_contract(runs, cfg) -> None:
    first, _ = runs
    out = Path(cfg.output_dir)
    pred = pd.read_parquet(out / FILES["backtest_predictions"])  # written by the CLI run
    assert list(pred.columns) == PREDICTION_COLUMNS
    pd.testing.assert_frame_equal(pred, first.backtest.predictions)
    metrics = pd.read_csv(out / FILES["backtest_metrics"])
    assert len(metrics) == len(first.backtest.metrics)
    assert {"model", "fold", "cutoff", "metric_set", "roc_auc", "normalized_gini"} <= set(
        metrics.columns)
    importance = pd.read_csv(out / FILES["feature_importance"])
    assert list(importance.columns) == ["feature", "importance", "model"]
    sums = importance.groupby("model")["importance"].sum()
    assert sums.to_dict() == pytest.approx({"churn": 1.0, "ltv": 1.0})
    tables = summary_tables(first.summary)
    assert list(tables["churn"]["model"]) == ["churn", "logistic", "recency"]
    assert list(tables["ltv"]["model"]) == ["ltv", "last_value"]
    assert list(tables["if_retained"]["model"]) == ["value_if_retained", "expected_value",
                                                    "trailing_value"]
    assert list(tables["value_at_risk"]["model"]) == [
        "churn", "churn_x_expected_value", "churn_x_trailing_value", "recency",
        "recency_x_trailing_value"]


def test_cli_export_writes_the_champions(runs, config_file, X, tmp_path) -> None:
    first, _ = runs
    models = tmp_path / "models"
    res = runner.invoke(app, ["export", "--alias", "champion", "--out", str(models),
                              "--config", str(config_file)])
    assert res.exit_code == 0, res.output
    churn = load_exported(models, "pipeline-test-churn")
    assert churn.card["version"] == "1" and churn.card["alias"] == "champion"
    np.testing.assert_array_equal(churn.estimator.predict_proba(X),
                                  first.models.churn.predict_proba(X))
    ltv = load_exported(models, "pipeline-test-ltv")
    np.testing.assert_array_equal(ltv.estimator.predict(X), first.models.ltv.predict(X))
    res = runner.invoke(app, ["export", "--alias", "gold", "--out", str(tmp_path / "none"),
                              "--config", str(config_file)])
    assert res.exit_code == 2 and "gold" in res.output


def test_cli_score_alias_scores_the_challenger(runs, config_file, tmp_path) -> None:
    """`score --alias challenger` scores with the pair that did not become champion (v2)."""
    res = runner.invoke(app, ["score", "--config", str(config_file), "--alias", "challenger",
                              "--out", str(tmp_path / "scores.parquet"),
                              "--segments-dir", str(tmp_path / "segments")])
    assert res.exit_code == 0, res.output
    assert "scored with pipeline-test-churn v2, pipeline-test-ltv v2" in res.output
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert set(scores["model_version"]) == {"pipeline-test-churn v2, pipeline-test-ltv v2"}


def test_cli_score_before_any_data_is_a_clear_error(runs, config_file, tmp_path) -> None:
    res = runner.invoke(app, ["score", "--config", str(config_file), "--cutoff", "2000-01-01",
                              "--out", str(tmp_path / "s.parquet")])
    assert res.exit_code == 2, res.output
    out = " ".join(res.output.split())
    assert "error: cutoff 2000-01-01 00:00:00 is at or before the first record of the data" \
        in out
    assert "nothing to score" in out and "No objects to concatenate" not in out
    assert "warning" not in out
    assert not (tmp_path / "s.parquet").exists()


def test_grouped_kfold_trains_at_one_cutoff(cfg, data) -> None:
    kfold = cfg.model_copy(update={"training": TrainingConfig(backtest="grouped_kfold")})
    latest = labelled_cutoffs(data, cfg.churn)[-1]
    assert list(training_cutoffs(data, kfold)) == [latest]
    pinned = cfg.model_copy(update={"training": TrainingConfig(
        backtest="grouped_kfold", kfold_cutoff="2024-03-01")})
    assert list(training_cutoffs(data, pinned)) == [pd.Timestamp("2024-03-01")]
    rolling = training_cutoffs(data, cfg)
    assert list(rolling) == list(labelled_cutoffs(data, cfg.churn))


def test_bad_training_settings_name_the_config_key(cfg, data) -> None:
    weekly_typo = cfg.model_copy(update={"training": TrainingConfig(cutoff_frequency="WX")})
    with pytest.raises(ConfigError, match="training.cutoff_frequency"):
        training_cutoffs(data, weekly_typo)
    no_date = cfg.model_copy(update={"training": TrainingConfig(backtest="grouped_kfold",
                                                                kfold_cutoff="soon")})
    with pytest.raises(ConfigError, match="training.kfold_cutoff"):
        training_cutoffs(data, no_date)


def test_first_cutoff_after_the_data_says_so(cfg, data) -> None:
    late = cfg.model_copy(update={"training": TrainingConfig(first_cutoff="2100-01-01")})
    with pytest.raises(ConfigError) as caught:
        training_cutoffs(data, late)
    text = str(caught.value)
    assert text.startswith(f"training.first_cutoff 2100-01-01 00:00:00 is after all the data "
                           f"(the data run from {data.start} to {data.end}): no cutoff to "
                           "train on; set it at least 90 days (the label window) before")
    assert "shorter than" not in text
    end = pd.Timestamp(data.end)
    close = cfg.model_copy(update={"training": TrainingConfig(
        first_cutoff=str((end - pd.Timedelta(days=30)).date()))})
    with pytest.raises(ConfigError, match="leaves less than the 90-day label window before "
                       "the end of the data"):
        training_cutoffs(data, close)


def test_feature_spec_follows_the_config_and_adds_the_horizon(cfg) -> None:
    custom = cfg.model_copy(update={
        "features": FeaturesConfig(spec={"groups": ["recency", "monetary"],
                                         "windows_days": [30, 365]}),
        "churn": ChurnConfig(horizon_days=60),
    })
    spec = feature_spec(custom)
    assert spec.groups == ["recency", "monetary"]
    assert spec.windows_days == [30, 60, 365]
    assert feature_spec(cfg).windows_days == [30, 90, 180, 365]  # 90 already there
