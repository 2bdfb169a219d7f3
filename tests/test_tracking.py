"""MLflow tracking, registry aliases, loading and file export on a real SQLite store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.types import DataType

from churnml.errors import ModelSourceError
from churnml.models import ChurnClassifier, LTVModel
from churnml.models._state import ModelStateError
from churnml.training.export import export_models, load_exported
from churnml.training.tracking import (
    CHALLENGER,
    CHAMPION,
    CHURN_MODEL,
    CHURN_OUTPUT,
    LTV_MODEL,
    LTV_OUTPUT,
    LTV_OUTPUTS,
    batched,
    default_artifact_location,
    load_model,
    load_pyfunc,
    log_config,
    log_figure,
    log_fingerprint,
    log_metrics,
    log_model,
    log_params,
    log_table,
    log_training_window,
    model_card,
    set_champions,
    start_run,
    to_model_input,
    tracking,
)

# MLflow 3.17's own deprecation noise under pandas 3.1 / SQLAlchemy 2 (not churnml's)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")

EXPERIMENT = "churnml-test"
FAST = {"n_estimators": 60, "n_jobs": 1}


@pytest.fixture
def store(migrated_db, tmp_path) -> str:
    db = tmp_path / "mlflow.db"
    shutil.copyfile(migrated_db, db)
    return f"sqlite:///{db}"


@pytest.fixture(scope="module")
def churn(model_data) -> ChurnClassifier:
    return ChurnClassifier(**FAST).fit(model_data.X_train, model_data.churn_train)


@pytest.fixture(scope="module")
def ltv(model_data) -> LTVModel:
    return LTVModel(**FAST).fit(model_data.X_train, model_data.ltv_train)


def log_version(store, estimator, X, metrics, name=CHURN_MODEL, output=CHURN_OUTPUT):
    with start_run(EXPERIMENT, tracking_uri=store):
        log_metrics(metrics)
        log_training_window(start="2023-01-01", end="2024-06-30", horizon_days=90)
        return log_model(estimator, X, output=output, registered_model_name=name)


def aliases(store, name=CHURN_MODEL) -> dict[str, str]:
    with tracking(store) as client:
        return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}


def test_run_logs_params_metrics_tables_figures_config_fingerprint(store, tmp_path):
    df = pd.DataFrame({"fold": [1, 2], "roc_auc": [0.8, 0.82]})
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    with start_run(EXPERIMENT, tracking_uri=store, run_name="r1") as run:
        log_params({"model": {"num_leaves": 31, "kind": "hurdle"}, "cutoff": pd.Timestamp(0)})
        log_metrics({"test": {"roc_auc": 0.8}, "n": 10})
        log_table(df, "backtest")
        log_table(df, "backtest", fmt="json")
        log_figure(fig, "calibration")
        log_config({"name": "demo", "churn": {"horizon_days": 90}})
        log_fingerprint({"transactions": {"rows": 5, "hash": "ab"}, "start": "2024-01-01"})
    plt.close(fig)
    with tracking(store) as client:
        data = client.get_run(run.info.run_id).data
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        tables = {a.path for a in client.list_artifacts(run.info.run_id, "tables")}
        local = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="tables/backtest.csv", dst_path=str(tmp_path)
        )
        experiment = client.get_experiment_by_name(EXPERIMENT)
    assert data.params["model.num_leaves"] == "31"
    assert data.params["cutoff"] == "1970-01-01 00:00:00"
    assert data.params["config.churn.horizon_days"] == "90"
    assert data.metrics == {"test.roc_auc": 0.8, "n": 10.0}
    assert data.tags["data.transactions.rows"] == "5"
    assert {"config.json", "data_fingerprint.json", "tables", "figures"} <= artifacts
    assert tables == {"tables/backtest.csv", "tables/backtest.json"}
    pd.testing.assert_frame_equal(pd.read_csv(local), df)
    # artifacts live beside the database, not in the working directory
    assert experiment.artifact_location == default_artifact_location(store)
    assert (Path(store.removeprefix("sqlite:///")).parent / "mlartifacts").is_dir()


def test_start_run_leaves_no_active_experiment_behind(store, migrated_db, tmp_path):
    """A run in one store must not leave a process-wide experiment that a later plain
    ``mlflow.start_run()`` against another store would look up (and not find)."""
    for name in ("first", "second"):  # ids 1 and 2 in the first store
        with start_run(name, tracking_uri=store):
            pass
    other = tmp_path / "other.db"
    shutil.copyfile(migrated_db, other)
    with tracking(f"sqlite:///{other}") as client:
        with mlflow.start_run() as run:  # the other store's default experiment
            pass
        assert client.get_run(run.info.run_id).info.experiment_id == "0"


def test_log_register_and_challenger_alias(store, churn, model_data):
    logged = log_version(store, churn, model_data.X_train, {"roc_auc": 0.8})
    assert logged.name == CHURN_MODEL and logged.version == "1"
    assert aliases(store) == {CHALLENGER: "1"}
    second = log_version(store, churn, model_data.X_train, {"roc_auc": 0.7})
    assert second.version == "2" and aliases(store) == {CHALLENGER: "2"}
    card = model_card(CHURN_MODEL, CHALLENGER, tracking_uri=store)
    assert card["features"] == list(churn.feature_names_in_)
    assert card["feature_dtypes"]["plan"] == "category"
    assert card["feature_dtypes"]["n_tickets"] == "float64"
    assert card["training_window"] == {
        "start": "2023-01-01",
        "end": "2024-06-30",
        "horizon_days": "90",
    }
    assert card["metrics"] == {"roc_auc": 0.7}
    assert card["run_id"] == second.run_id and card["version"] == "2"
    pyfunc = load_pyfunc(logged.model_uri, tracking_uri=store)
    schema = pyfunc.metadata.get_input_schema()
    assert schema.input_names() == list(churn.feature_names_in_)
    types = dict(zip(schema.input_names(), schema.input_types(), strict=True))
    assert types["plan"] == DataType.string and types["noise"] == DataType.double


def test_set_champions_moves_both_aliases_ltv_first(store, churn, ltv, model_data):
    X = model_data.X_train
    churn_v = log_version(store, churn, X, {"roc_auc": 0.8}).version
    ltv_v = log_version(store, ltv, X, {"gini": 0.5}, LTV_MODEL, LTV_OUTPUT).version
    written = []
    with tracking(store) as client:
        original = client.set_registered_model_alias

        def record(name, alias, version):
            written.append(name)
            original(name, alias, version)

        client.set_registered_model_alias = record
        set_champions(client, {"churn": (CHURN_MODEL, churn_v), "ltv": (LTV_MODEL, ltv_v)})
    assert written == [LTV_MODEL, CHURN_MODEL]  # the churn alias commits the pair
    assert aliases(store) == {CHAMPION: "1"}  # promoted versions are no challengers
    assert aliases(store, LTV_MODEL) == {CHAMPION: "1"}


def test_load_by_alias_equals_in_memory(store, churn, ltv, model_data):
    X = model_data.X_test
    for est, name, output in ((churn, CHURN_MODEL, CHURN_OUTPUT), (ltv, LTV_MODEL, LTV_OUTPUT)):
        version = log_version(store, est, model_data.X_train, {"m": 1.0}, name, output).version
        with tracking(store) as client:
            client.set_registered_model_alias(name, CHAMPION, version)
    loaded = load_model(f"models:/{CHURN_MODEL}@{CHAMPION}", tracking_uri=store)
    assert type(loaded) is ChurnClassifier
    assert np.array_equal(loaded.predict_proba(X), churn.predict_proba(X))
    pyfunc = load_pyfunc(f"models:/{CHURN_MODEL}@{CHAMPION}", tracking_uri=store)
    out = pyfunc.predict(to_model_input(X, churn.feature_dtypes_))
    assert list(out.columns) == [CHURN_OUTPUT]
    assert np.array_equal(out[CHURN_OUTPUT].to_numpy(), churn.predict_proba(X)[:, 1])
    ltv_pyfunc = load_pyfunc(f"models:/{LTV_MODEL}@{CHAMPION}", tracking_uri=store)
    ltv_out = ltv_pyfunc.predict(to_model_input(X, ltv.feature_dtypes_))
    assert np.array_equal(ltv_out[LTV_OUTPUT].to_numpy(), ltv.predict(X))
    # the signature refuses a table without a feature, and int64 without to_model_input
    with pytest.raises(MlflowException, match="missing inputs"):
        pyfunc.predict(to_model_input(X, churn.feature_dtypes_).drop(columns="frequency"))
    with pytest.raises(MlflowException, match="int64"):
        pyfunc.predict(X)


def test_model_logged_without_an_example_scores_like_the_in_memory_model(
        store, churn, ltv, model_data, recwarn):
    """As ``train`` logs them: no input example (MLflow would load each model back and
    predict it), the explicit signature, and no MLflow warning about the missing example;
    the registered versions score as the fitted estimators do."""
    X = model_data.X_test
    with start_run(EXPERIMENT, tracking_uri=store):
        churn_v = log_model(churn, output=CHURN_OUTPUT, registered_model_name=CHURN_MODEL)
        ltv_v = log_model(ltv, output=LTV_OUTPUT, registered_model_name=LTV_MODEL)
    assert not [w for w in recwarn if "input example" in str(w.message)]
    churn_py = load_pyfunc(f"models:/{CHURN_MODEL}/{churn_v.version}", tracking_uri=store)
    assert churn_py.metadata.saved_input_example_info is None
    assert churn_py.metadata.get_input_schema().input_names() == list(churn.feature_names_in_)
    got = churn_py.predict(to_model_input(X, churn.feature_dtypes_))
    np.testing.assert_allclose(got[CHURN_OUTPUT], churn.predict_proba(X)[:, 1],
                               rtol=1e-12, atol=1e-12)
    ltv_py = load_pyfunc(f"models:/{LTV_MODEL}/{ltv_v.version}", tracking_uri=store)
    out = ltv_py.predict(to_model_input(X, ltv.feature_dtypes_))
    for column, expected in zip(LTV_OUTPUTS, (ltv.predict(X), ltv.predict_if_retained(X)),
                                strict=True):
        np.testing.assert_allclose(out[column], expected, rtol=1e-12, atol=1e-12)


def test_batch_logs_params_metrics_tags_and_files_in_one_go(store, churn, model_data):
    """One ``batched`` block: the run gets every param, tag, file and metric (history by
    step, latest step as the run's value); step-0 metrics are linked to the model logged at
    step 0, as ``mlflow.log_metrics`` links them."""
    with start_run(EXPERIMENT, tracking_uri=store) as run:
        logged = log_model(churn, output=CHURN_OUTPUT)
        with batched() as batch:
            batch.params({"model": {"num_leaves": 31}, "cutoff": pd.Timestamp(0)})
            batch.metrics({"backtest": {"roc_auc": 0.8}})
            batch.metrics({"roc_auc": 0.7}, prefix="fold.", step=0)
            batch.metrics({"roc_auc": 0.9}, prefix="fold.", step=1)
            batch.tags({"data.rows": 5})
            batch.table(pd.DataFrame({"a": [1, 2]}), "t")
            batch.json({"x": 1}, "config.json")
            with pytest.raises(TypeError, match="must be numbers"):
                batch.metrics({"bad": "0.5"})
    run_id = run.info.run_id
    with tracking(store) as client:
        data = client.get_run(run_id).data
        history = client.get_metric_history(run_id, "fold.roc_auc")
        files = {a.path for a in client.list_artifacts(run_id)}
        tables = {a.path for a in client.list_artifacts(run_id, "tables")}
        model = client.get_logged_model(logged.model_uri.removeprefix("models:/"))
    assert data.params["model.num_leaves"] == "31"  # beside the model_config MLflow logs
    assert data.params["cutoff"] == "1970-01-01 00:00:00"
    assert data.metrics == {"backtest.roc_auc": 0.8, "fold.roc_auc": 0.9}
    assert sorted((m.step, m.value) for m in history) == [(0, 0.7), (1, 0.9)]
    assert data.tags["data.rows"] == "5"
    assert {"config.json", "tables"} <= files and tables == {"tables/t.csv"}
    assert {(m.key, m.step, m.value) for m in model.metrics} == {
        ("backtest.roc_auc", 0, 0.8), ("fold.roc_auc", 0, 0.7)}


def test_export_round_trip(store, churn, ltv, model_data, tmp_path):
    X = model_data.X_test
    out_dir = tmp_path / "models"
    with start_run(EXPERIMENT, tracking_uri=store):  # one run: a pair
        log_metrics({"roc_auc": 0.8})
        log_training_window(start="2023-01-01", end="2024-06-30", horizon_days=90)
        churn_v = log_model(churn, model_data.X_train, output=CHURN_OUTPUT,
                            registered_model_name=CHURN_MODEL).version
        ltv_v = log_model(ltv, model_data.X_train, output=LTV_OUTPUT,
                          registered_model_name=LTV_MODEL).version
    # challengers, no champion yet: nothing to export under "champion"
    with pytest.raises(ModelSourceError, match=f"'{CHURN_MODEL}' in MLflow store {store} has "
                       "no version with alias 'champion'"):
        export_models(CHAMPION, out_dir, tracking_uri=store)
    with tracking(store) as client:
        set_champions(client, {"churn": (CHURN_MODEL, churn_v), "ltv": (LTV_MODEL, ltv_v)})
    (out_dir).mkdir()
    (out_dir / "churnml-churn.joblib").write_bytes(b"an earlier export")
    paths = export_models(CHAMPION, out_dir, tracking_uri=store)
    assert set(paths) == {CHURN_MODEL, LTV_MODEL}
    files = sorted(p.name for p in out_dir.iterdir())
    # a file no card of churnml's named is the user's: it stays
    assert files == ["churnml-churn.joblib", "churnml-churn.json", "churnml-churn.model.json",
                     "churnml-ltv.json", "churnml-ltv.model.json"]
    exported = load_exported(out_dir, CHURN_MODEL)
    assert type(exported.estimator) is ChurnClassifier
    assert np.array_equal(exported.estimator.predict_proba(X), churn.predict_proba(X))
    card = json.loads((out_dir / "churnml-churn.json").read_text())
    assert card == exported.card
    assert card["file"] == "churnml-churn.model.json"
    assert card["format"] == "churnml.estimator-state"
    assert card["features"] == list(churn.feature_names_in_)
    assert card["feature_dtypes"] == churn.feature_dtypes_
    assert card["version"] == churn_v and card["alias"] == CHAMPION
    assert card["metrics"] == {"roc_auc": 0.8}
    assert card["training_window"]["end"] == "2024-06-30"
    assert card["mlflow_version"] == mlflow.__version__
    ltv_export = load_exported(out_dir, LTV_MODEL)
    assert ltv_export.card["run_id"] == card["run_id"]
    assert np.array_equal(ltv_export.estimator.predict(X), ltv.predict(X))
    with pytest.raises(ModelSourceError, match="has no version with alias 'gold'"):
        export_models("gold", tmp_path / "none", tracking_uri=store)
    # a state file changed after export is refused (hash), and is never executed
    state = out_dir / "churnml-churn.model.json"
    state.write_text(state.read_text().replace('"calibrator"', '"calibrator" '))
    with pytest.raises(ModelStateError, match="does not match its card"):
        load_exported(out_dir, CHURN_MODEL)
