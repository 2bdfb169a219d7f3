"""Hostile and ambiguous inputs to the surface added since the last hardening round: output
folders, commit journals, config paths, the monitor, and user-chosen names. One test per case;
each names what used to go wrong. Real files, a real SQLite MLflow store, the real CLI."""

from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path

import joblib
import mlflow
import pandas as pd
import pytest
import typer
import yaml
from scoring_helpers import N_CUSTOMERS, SEED, TRAIN_CUTOFFS, fit_models, simulated
from typer.testing import CliRunner

from churnml.cli import app
from churnml.config import load_config
from churnml.data.loaders import load_data, load_folder, read_raw
from churnml.errors import ChurnmlError, ConfigError, DataValidationError, OutputWarning
from churnml.monitoring import ScoreHistory
from churnml.monitoring.alarms import Alarm
from churnml.monitoring.jobs import history_root
from churnml.monitoring.monitor import MonitorResult, write_monitor_outputs
from churnml.outputs import JOURNAL
from churnml.scoring.export import score_outputs, write_scores
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
)

runner = CliRunner()
FOREIGN = {"transactions.csv": "customer_id,ts,amount\n007,2024-01-01,5\n",
           "notes.csv": "note\nkeep me\n"}


def _foreign_folder(path: Path) -> dict[Path, bytes]:
    """A folder holding only the user's own CSV files; returns their bytes."""
    path.mkdir(parents=True, exist_ok=True)
    for name, text in FOREIGN.items():
        (path / name).write_text(text)
    return {p: p.read_bytes() for p in path.iterdir()}


def _unchanged(before: dict[Path, bytes]) -> bool:
    return all(p.exists() and p.read_bytes() == b for p, b in before.items())


def _text(result) -> str:
    return " ".join(result.output.split())


def _flat(result) -> str:
    """The output without any white space (rich wraps long paths mid-name)."""
    return "".join(result.output.split())


def _scores(segments: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(len(segments))],
                         "risk_segment": segments, "rank": range(1, len(segments) + 1)})


# --------------------------------------------------------------------------- 1. outputs


def test_segment_folder_of_the_users_csv_files_is_not_replaced(tmp_path):
    """It was replaced whole (rc 0, files gone): any CSV-only folder counted as churnml's."""
    mine = tmp_path / "my_csvs"
    before = _foreign_folder(mine)
    summary = pd.DataFrame({"risk_segment": ["vip"]})
    with pytest.raises(ChurnmlError, match="did not write"):
        write_scores(_scores(["vip"]), tmp_path / "scores.csv", summary,
                     tmp_path / "summary.csv", mine)
    assert _unchanged(before) and not (tmp_path / "scores.csv").exists()
    result = runner.invoke(app, ["score", "--dataset", "simulated", "--out",
                                 str(tmp_path / "s.parquet"), "--segments-dir", str(mine)])
    assert result.exit_code == 2, result.output
    assert "my_csvs" in _flat(result) and "didnotwrite" in _flat(result)
    assert _unchanged(before)


def test_a_planted_journal_cannot_move_or_delete_outside_the_output_set(tmp_path):
    """A journal naming a folder outside the output set replaced that folder on the next run."""
    out = tmp_path / "out"
    write_scores(_scores(["vip"]), out / "scores.csv", pd.DataFrame({"risk_segment": ["vip"]}),
                 out / "summary.csv", out / "segments")
    victim = tmp_path / "documents"
    before = _foreign_folder(victim)
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "x.txt").write_text("attacker")
    (out / JOURNAL).write_text(json.dumps({"moves": [[str(decoy), str(victim)]]}))
    outputs = score_outputs(out / "scores.csv", out / "summary.csv", out / "segments")
    with pytest.warns(OutputWarning, match="not an output of this run"):
        outputs.prepare()
    assert _unchanged(before) and sorted(p.name for p in victim.iterdir()) == sorted(FOREIGN)
    assert (decoy / "x.txt").exists()
    # a journal moving a staged-looking path of another name is refused as well
    sneaky = out / ".scores.csv.0123456789ab.tmp"
    sneaky.write_text("x")
    (out / JOURNAL).write_text(json.dumps({"moves": [[str(sneaky), str(out / "summary.csv")]]}))
    summary_before = (out / "summary.csv").read_bytes()
    with pytest.warns(OutputWarning, match="not a staged output"):
        outputs.recover()
    assert (out / "summary.csv").read_bytes() == summary_before


# Every option of the CLI naming a file or folder, by what it names; a new path option must be
# added to one of these lists (test_every_path_option_is_listed), so no output flag escapes
# the foreign-files test below.
INPUT_OPTIONS = {"--config", "--data", "--scores", "--spec", "--models-dir"}  # on any command
INPUT_FLAGS = {("report", "--out-dir")}  # the folder of a job's outputs the report reads
REFUSED = {  # a file (or a folder churnml replaces whole): a folder of the user's files there
    # is an error naming it, before any work
    ("metrics", "--out"): ["metrics", "--dataset", "simulated", "--out", "{f}"],
    ("retention", "--out"): ["retention", "--dataset", "simulated", "--out", "{f}"],
    ("features", "--out"): ["features", "--dataset", "simulated", "--cutoff", "2024-01-01",
                            "--out", "{f}"],
    ("score", "--out"): ["score", "--dataset", "simulated", "--out", "{f}"],
    ("score", "--segments-dir"): ["score", "--dataset", "simulated", "--out",
                                  "{tmp}/s.parquet", "--segments-dir", "{f}"],
    ("report", "--out"): ["report", "--out", "{f}"],
    ("campaign plan", "--log"): ["campaign", "plan", "--campaign", "c1", "--scores",
                                 "{tmp}/scores.csv", "--log", "{f}"],
    ("campaign target", "--out"): ["campaign", "target", "--dataset", "simulated",
                                   "--scores", "{tmp}/scores.csv", "--out", "{f}"],
}
BESIDE = {  # a folder churnml writes its own files into: the user's files stay as they are
    ("train", "--out-dir"), ("demo", "--out-dir"), ("export", "--out"),
}


def _path_options() -> set[tuple[str, str]]:
    """(command, option) of every option of the CLI whose value is a path (by the
    command function's type hints)."""
    found = set()

    def walk(command, name: str) -> None:  # noqa: ANN001 - typer's command objects
        for sub, child in getattr(command, "commands", {}).items():
            walk(child, f"{name} {sub}".strip())
        if command.callback is None:
            return
        hints = typing.get_type_hints(command.callback)
        for param in command.params:
            hint = hints.get(param.name)
            if param.param_type_name == "option" and Path in (typing.get_args(hint)
                                                              or (hint,)):
                found.add((name, max(param.opts, key=len)))

    walk(typer.main.get_command(app), "")
    return found


def test_every_path_option_is_listed():
    """A new output flag must join the foreign-files test (or be listed as an input)."""
    outputs = {k for k in _path_options()
               if k[1] not in INPUT_OPTIONS and k not in INPUT_FLAGS}
    assert outputs == set(REFUSED) | BESIDE


SPARK_REFUSED = {  # the same flags on the Spark route
    ("features", "--out"): ["features", "--dataset", "simulated", "--cutoff", "2024-01-01",
                            "--engine", "spark", "--out", "{f}"],
    ("score", "--out"): ["score", "--config", "{tmp}/spark.yaml", "--out", "{f}"],
    ("score", "--segments-dir"): ["score", "--config", "{tmp}/spark.yaml", "--segments-dir",
                                  "{f}"],
}
CASES = [(flag, args) for flag, args in sorted(REFUSED.items())] + [
    pytest.param(flag, args, marks=pytest.mark.spark, id=" ".join(flag) + " (spark)")
    for flag, args in SPARK_REFUSED.items()]


@pytest.mark.parametrize(("flag", "args"), CASES, ids=lambda v: " ".join(v)
                         if isinstance(v, tuple) else "")
def test_no_output_flag_replaces_a_folder_of_foreign_files(tmp_path, flag, args):
    """Every output flag given a folder of the user's files: an error naming it, before any
    work, files kept. Spark's features --out replaced such a folder whole (rc 0); score
    --segments-dir (both engines) took a CSV-only folder for churnml's; features, report,
    metrics, retention, campaign target --out and campaign plan --log failed with a raw
    IsADirectoryError (rc 1) after the work. (score --out was refused already: kept so that
    every flag stays covered.)"""
    folder = tmp_path / "mine" / "target.csv"
    before = _foreign_folder(folder)
    _scores(["vip", "standard"]).assign(churn_probability=0.5, value_at_risk=1.0).to_csv(
        tmp_path / "scores.csv", index=False)
    (tmp_path / "spark.yaml").write_text(yaml.safe_dump({
        "data": {"dataset": "simulated"}, "features": {"engine": "spark"},
        "output_dir": str(tmp_path / "out")}))
    args = [a.replace("{f}", str(folder)).replace("{tmp}", str(tmp_path))
            for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "target.csv" in _flat(result) and "Traceback" not in result.output
    assert "error:" in result.output
    assert _unchanged(before) and sorted(p.name for p in folder.iterdir()) == sorted(FOREIGN)


# --------------------------------------------------------------------------- 2. input paths


def _config_file(folder: Path, data: dict, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({"data": data, **extra}))
    return path


def test_a_table_path_leaving_the_data_folder_is_refused_without_echoing_the_file(tmp_path):
    """``../../../../etc/os-release`` was read and its first line printed in the error."""
    target = Path("/etc/os-release")
    if not target.is_file():
        pytest.skip("needs /etc/os-release")
    (tmp_path / "cfg" / "data").mkdir(parents=True)
    depth = "../" * len((tmp_path / "cfg" / "data").resolve().parts)
    cfg = load_config(_config_file(tmp_path / "cfg", {
        "dir": "data", "tables": {"transactions": {"path": f"{depth}etc/os-release"}}}))
    with pytest.raises(ConfigError, match=r"data\.tables\.transactions\.path.*allowed_roots") \
            as caught:
        load_data(cfg)
    first_line = target.read_text().splitlines()[0]
    assert first_line not in str(caught.value)
    result = runner.invoke(app, ["metrics", "--config", str(tmp_path / "cfg" / "config.yaml")])
    assert result.exit_code == 2 and first_line not in result.output


def test_data_dir_outside_the_config_folder_needs_an_allowed_root(tmp_path):
    shop = tmp_path / "shop"
    shop.mkdir()
    pd.DataFrame({"customer_id": ["007", "7"], "ts": ["2024-01-01", "2024-01-02"],
                  "amount": [1.0, 2.0]}).to_csv(shop / "transactions.csv", index=False)
    with pytest.raises(ConfigError, match=r"data\.dir.*allowed_roots"):
        load_config(_config_file(tmp_path / "cfg", {"dir": "../shop"}))
    cfg = load_config(_config_file(tmp_path / "cfg2", {"dir": "../shop",
                                                       "allowed_roots": [".."]}))
    assert cfg.data.allowed_roots == [str(tmp_path.resolve())]
    assert sorted(load_data(cfg).transactions["customer_id"]) == ["007", "7"]
    # a folder given on the command line is the user's own explicit choice
    cli = _config_file(tmp_path / "cfg3", {"dataset": "simulated"})
    result = runner.invoke(app, ["metrics", "--config", str(cli), "--data", str(shop)])
    assert result.exit_code == 0, result.output


def test_a_file_that_is_no_table_is_not_echoed_in_the_error(tmp_path):
    """The header of a non-table file was printed as 'columns present: ...'."""
    (tmp_path / "transactions.csv").write_text("API_KEY=hunter2-secret\nother line\n")
    with pytest.raises(DataValidationError) as caught:
        load_folder(tmp_path)
    assert "hunter2" not in str(caught.value) and "transactions.csv" in str(caught.value) \
        or "not shown" in str(caught.value)
    assert "hunter2" not in str(caught.value)


# --------------------------------------------------------------------------- 5. monitoring


def test_monitoring_history_dir_is_relative_to_the_config_file(tmp_path, monkeypatch):
    """It was resolved against the working folder."""
    path = _config_file(tmp_path / "cfg", {"dataset": "simulated"},
                        monitoring={"history_dir": "history"})
    monkeypatch.chdir(tmp_path)
    assert history_root(load_config(path)) == (tmp_path / "cfg" / "history").resolve()


def _monitor_result(tag: str) -> MonitorResult:
    return MonitorResult(performance=pd.DataFrame({"cutoff": ["2024-01-01"], "run": [tag]}),
                         drift=pd.DataFrame({"cutoff": ["2024-01-01"], "run": [tag]}),
                         calibration=pd.DataFrame({"run": [tag]}),
                         alarms=[Alarm("population", pd.Timestamp("2024-01-01"), "psi", tag)])


def test_monitor_outputs_are_committed_as_one_unit(tmp_path):
    """A run failing (or killed) while writing left half old, half new files."""
    folder = tmp_path / "monitoring"
    write_monitor_outputs(_monitor_result("old"), folder)
    broken = _monitor_result("new")
    broken.calibration = None  # the third table cannot be written
    with pytest.raises(AttributeError):
        write_monitor_outputs(broken, folder)
    runs = {name: pd.read_csv(folder / name)["run"].tolist()
            for name in ("performance.csv", "drift.csv", "calibration.csv")}
    assert runs == {name: ["old"] for name in runs}
    signal = json.loads((folder / "signal.json").read_text())
    assert [a["text"] for a in signal["alarms"]["population"]["items"]] == ["old"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "calibration.csv", "drift.csv", "performance.csv", "quality.csv", "signal.json"]


def test_stray_tmp_folders_in_the_history_are_removed_by_the_next_run(tmp_path):
    """A kill during score left a .tmp folder in the history for good."""
    history = ScoreHistory(tmp_path / "h")
    history.write(_scores(["a"]).assign(churn_probability=0.1), {"cutoff": "2024-01-01"})
    stray = [tmp_path / "h" / ".tmp-cutoff=2024-02-01-1a2b3c4d",
             tmp_path / "h" / ".cutoff=2024-03-01.0123456789ab.tmp"]
    for folder in stray:
        folder.mkdir()
        (folder / "scores.parquet").write_text("partial")
    history.write(_scores(["b"]).assign(churn_probability=0.2), {"cutoff": "2024-04-01"})
    assert not any(p.exists() for p in stray)
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == [
        "cutoff=2024-01-01", "cutoff=2024-04-01"]


def test_a_truncated_run_json_names_its_file(tmp_path):
    """It gave a bare JSON error naming no file."""
    history = ScoreHistory(tmp_path / "h")
    folder = history.write(_scores(["a"]).assign(churn_probability=0.1),
                           {"cutoff": "2024-01-01"})
    text = (folder / "run.json").read_text()
    (folder / "run.json").write_text(text[: len(text) // 2])
    with pytest.raises(ChurnmlError, match=r"cutoff=2024-01-01/run\.json: not a valid"):
        history.run("2024-01-01")
    (folder / "scores.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(ChurnmlError, match=r"cutoff=2024-01-01/scores\.parquet"):
        history.scores("2024-01-01")


# --------------------------------------------------------------------------- 7. names


def test_text_ids_nan_na_and_null_are_ids_not_missing_values(tmp_path):
    """The text id ``NaN`` was read as a missing id."""
    pd.DataFrame({"customer_id": ["NaN", "NA", "null", "007"],
                  "ts": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
                  "amount": ["1", "2", "3", "NA"]}).to_csv(tmp_path / "transactions.csv",
                                                          index=False)
    raw = read_raw(tmp_path / "transactions.csv", None, "transactions")
    assert raw["customer_id"].tolist() == ["NaN", "NA", "null", "007"]
    assert raw["amount"].isna().tolist() == [False, False, False, True]  # other columns:
    (tmp_path / "transactions.csv").write_text(  # pandas' missing-value markers as before
        (tmp_path / "transactions.csv").read_text().replace(",NA\n", ",4\n"))
    tx = load_folder(tmp_path).transactions.sort_values("ts")
    assert tx["customer_id"].tolist() == ["NaN", "NA", "null", "007"]


def test_one_customer_gets_a_clear_training_error(tmp_path):
    """Two years of one customer ended in scikit-learn's raw n_samples=1, test_size message."""
    bursts = [("2022-01-01", "2022-03-31"), ("2022-09-01", "2022-10-31"),
              ("2023-05-01", "2023-06-30"), ("2023-12-01", "2023-12-31")]  # churns, returns
    days = pd.DatetimeIndex([d for a, b in bursts for d in pd.date_range(a, b, freq="7D")])
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"customer_id": "only", "ts": days.strftime("%Y-%m-%d"),
                  "amount": 10.0}).to_csv(data / "transactions.csv", index=False)
    result = runner.invoke(app, ["train", "--data", str(data), "--tracking-uri",
                                 f"sqlite:///{tmp_path / 'mlflow.db'}", "--out-dir",
                                 str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    text = _text(result)
    assert "n_samples" not in text and "at least 2 customer" in text, text


def test_campaign_target_never_unpickles_the_uplift_model(tmp_path):
    """The uplift model is code-free JSON: a pickle in its place is refused by its format,
    even with ``trust_pickle`` (nothing in it is run)."""
    out = tmp_path / "out"
    (out / "uplift").mkdir(parents=True)
    joblib.dump({"not": "an uplift model"}, out / "uplift" / "model.json")
    _scores(["vip"]).to_parquet(out / "scores.parquet")
    path = _config_file(tmp_path, {"dataset": "simulated", "simulated_customers": 200},
                        scoring={"trust_pickle": True}, output_dir="out")
    result = runner.invoke(app, ["campaign", "target", "--config", str(path)])
    assert result.exit_code == 2 and "not a JSON uplift model" in _text(result), result.output


# --------------------------------------------------------------------------- with a store


@pytest.fixture(scope="module")
def store(tmp_path_factory, migrated_db):
    """Small champions with a training window in a copied SQLite store."""
    folder = tmp_path_factory.mktemp("hostile-store")
    db = folder / "mlflow.db"
    shutil.copy(migrated_db, db)
    uri = f"sqlite:///{db}"
    churn, ltv, X = fit_models(simulated())
    with start_run("hostile-test", tracking_uri=uri):
        log_training_window(start=TRAIN_CUTOFFS[0], end=TRAIN_CUTOFFS[-1], cutoffs=2,
                            horizon_days=90, rows=len(X))
        log_metrics({"churn.roc_auc": 0.5, "churn.brier": 0.5}, prefix="backtest.")
        log_model(churn, X.head(5), output=CHURN_OUTPUT, registered_model_name=CHURN_MODEL,
                  alias=CHAMPION)
        log_model(ltv, X.head(5), output=LTV_OUTPUT, registered_model_name=LTV_MODEL,
                  alias=CHAMPION)
    return folder, uri


def _store_config(folder: Path, uri: str, name: str, **extra) -> Path:
    cfg = {"name": name,
           "data": {"dataset": "simulated", "simulated_customers": N_CUSTOMERS, "seed": SEED},
           "tracking": {"uri": uri, "churn_model_name": CHURN_MODEL,
                        "ltv_model_name": LTV_MODEL},
           "output_dir": str(folder / name), **extra}
    # the store's models are logged by hand, without the lineage tags `train` records
    cfg["scoring"] = {"allow_missing_lineage": True, **cfg.get("scoring", {})}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_monitor_exits_2_with_a_clear_message_on_a_corrupt_store(tmp_path):
    """A corrupt MLflow store crashed `monitor` with exit code 1, the retrain signal."""
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is no database " * 100)
    path = _store_config(tmp_path, f"sqlite:///{db}", "corrupt")
    result = runner.invoke(app, ["monitor", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "mlflow.db is not an SQLite database" in _text(result)


def test_a_segment_named_like_a_path_is_scored_and_logged(store):
    """``../../../escape_seg`` broke MLflow logging after the outputs were written (rc 2)."""
    folder, uri = store
    name = "../../../escape_seg"
    path = _store_config(folder, uri, "escape", scoring={"segments": [
        {"name": name, "priority": 10, "action": "call", "when": "churn_probability >= 0"}]})
    result = runner.invoke(app, ["score", "--config", str(path), "--cutoff", "2024-08-01"])
    assert result.exit_code == 0, result.output
    segments = folder / "escape" / "segments"
    assert sorted(p.name for p in segments.glob("*.csv")) == ["escape_seg.csv", "standard.csv"]
    assert not (folder.parent / "escape_seg").exists()
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("escape-monitoring")
    run = client.search_runs([experiment.experiment_id])[0]
    keys = [k for k in run.data.metrics if k.startswith("score.segment.escape")]
    assert len(keys) == 1 and keys[0].startswith("score.segment.escape_seg_")
    scores = pd.read_parquet(folder / "escape" / "scores.parquet")
    assert run.data.metrics[keys[0]] == (scores["risk_segment"] == name).sum() > 0


def test_a_kill_during_score_never_leaves_history_and_scores_disagreeing(store, monkeypatch):
    """The scores were published before the history was written: a kill in between left the
    history without the published run (and a .tmp folder in it for good)."""
    folder, uri = store
    path = _store_config(folder, uri, "killed")
    first = runner.invoke(app, ["score", "--config", str(path), "--cutoff", "2024-07-01"])
    assert first.exit_code == 0, first.output
    real = pd.DataFrame.to_parquet

    def dies_in_the_history(self, target, *args, **kwargs):
        if "score_history" in str(target):
            raise KeyboardInterrupt("killed while writing the score history")
        return real(self, target, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", dies_in_the_history)
    second = runner.invoke(app, ["score", "--config", str(path), "--cutoff", "2024-08-01"])
    monkeypatch.setattr(pd.DataFrame, "to_parquet", real)
    assert second.exit_code != 0
    published = pd.read_parquet(folder / "killed" / "scores.parquet")
    history = ScoreHistory(folder / "killed" / "score_history")
    assert set(published["cutoff"]) == {pd.Timestamp("2024-07-01")}
    assert history.cutoffs() == [pd.Timestamp("2024-07-01")]


def test_export_leaves_files_it_did_not_write(store, tmp_path):
    """A pickle named like the model in the export folder was deleted; a file named like a
    card was overwritten."""
    folder, uri = store
    path = _store_config(folder, uri, "exporter")
    out = tmp_path / "models"
    out.mkdir()
    (out / f"{CHURN_MODEL}.joblib").write_bytes(b"the user's own pickle")
    (out / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["export", "--config", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / f"{CHURN_MODEL}.joblib").read_bytes() == b"the user's own pickle"
    assert (out / "notes.txt").read_text() == "keep me"
    again = runner.invoke(app, ["export", "--config", str(path), "--out", str(out)])
    assert again.exit_code == 0, again.output  # its own files it replaces
    other = tmp_path / "other"
    other.mkdir()
    (other / f"{LTV_MODEL}.json").write_text('{"my": "settings"}')
    refused = runner.invoke(app, ["export", "--config", str(path), "--out", str(other)])
    assert refused.exit_code == 2 and "not a model card churnml wrote" in _text(refused)
    assert (other / f"{LTV_MODEL}.json").read_text() == '{"my": "settings"}'
    assert sorted(p.name for p in other.iterdir()) == [f"{LTV_MODEL}.json"]


FAST = {"n_estimators": 30}


@pytest.mark.parametrize("flag", sorted(BESIDE), ids=" ".join)
def test_output_folders_keep_the_users_files_beside_churnmls(tmp_path, migrated_db, store,
                                                            flag):
    """The folder flags churnml writes its own files into (documented "where outputs go"):
    the user's files there stay byte for byte, churnml's files land beside them."""
    folder = tmp_path / "mine"
    before = _foreign_folder(folder)
    if flag == ("export", "--out"):
        config = _store_config(*store, "beside")
    else:
        shutil.copy(migrated_db, tmp_path / "mlflow.db")
        config = _config_file(
            tmp_path / "cfg", {"dataset": "simulated", "simulated_customers": 600, "seed": 5},
            training={"n_origins": 2, "churn_params": FAST, "ltv_params": FAST,
                      "ltv_candidates": []},
            tracking={"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    extra = ["--metrics-only"] if flag[0] == "demo" else []
    result = runner.invoke(app, [*flag[0].split(), "--config", str(config), flag[1],
                                 str(folder), *extra])
    assert result.exit_code == 0, result.output
    assert _unchanged(before)
    assert set(FOREIGN) < {p.name for p in folder.iterdir()}  # churnml's files beside


def test_output_folders_named_by_the_config_keep_the_users_files(store, tmp_path):
    """Outputs without a flag (``output_dir``'s segment and monitoring folders,
    ``monitoring.history_dir``): a segment folder of the user's files is refused before any
    work; the history and monitoring folders take churnml's files beside the user's."""
    folder, uri = store
    out = tmp_path / "out"
    segments = _foreign_folder(out / "segments")
    refused = runner.invoke(app, ["score", "--config", str(_store_config(
        folder, uri, "config-segments", output_dir=str(out)))])
    assert refused.exit_code == 2 and "didnotwrite" in _flat(refused), refused.output
    assert _unchanged(segments) and sorted(p.name for p in out.iterdir()) == ["segments"]
    history = _foreign_folder(tmp_path / "history")
    monitoring = _foreign_folder(tmp_path / "out2" / "monitoring")
    config = str(_store_config(folder, uri, "config-beside", output_dir=str(tmp_path / "out2"),
                               monitoring={"history_dir": str(tmp_path / "history")}))
    scored = runner.invoke(app, ["score", "--config", config, "--cutoff", "2024-08-01"])
    assert scored.exit_code == 0, scored.output
    monitored = runner.invoke(app, ["monitor", "--config", config])
    assert monitored.exit_code in (0, 1), monitored.output
    assert _unchanged(history) and _unchanged(monitoring)
    assert (tmp_path / "history" / "cutoff=2024-08-01" / "run.json").is_file()
    assert (tmp_path / "out2" / "monitoring" / "performance.csv").is_file()


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                            "ignore::UserWarning")
def test_spark_score_outputs_are_committed_as_one_unit(spark, store, tmp_path, monkeypatch):
    """The Spark route wrote the scores, then the segment files into the live folder, then
    the summary and the history: a kill in between left new scores beside old segments and
    history (and a folder of the user's files at --segments-dir was replaced)."""
    from scoring_helpers import CHURN_URI, LTV_URI, spark_tables

    import churnml.io
    from churnml.pipeline import score_customers_spark
    from churnml.scoring.loading import load_registered

    folder, uri = store
    cfg = load_config(_store_config(folder, uri, "spark-unit", output_dir=str(tmp_path / "out")))
    models = load_registered(CHURN_URI, LTV_URI, uri)
    data = spark_tables(spark, simulated())
    out = tmp_path / "out"
    first = score_customers_spark(data, cfg, models, out, cutoff="2024-07-01")
    assert first.n_scored > 0 and first.history is not None
    old = _snapshot(out)
    real = churnml.io.write_spark_file

    def killed(*args, **kwargs):  # the history's scores: the last file staged
        raise KeyboardInterrupt("killed while writing the score history")

    monkeypatch.setattr(churnml.io, "write_spark_file", killed)
    with pytest.raises(KeyboardInterrupt):
        score_customers_spark(data, cfg, models, out, cutoff="2024-08-01")
    monkeypatch.setattr(churnml.io, "write_spark_file", real)
    assert _snapshot(out) == old  # the previous run's files, all of them, and no litter
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

    second = score_customers_spark(data, cfg, models, out, cutoff="2024-08-01")
    published = pd.read_parquet(out / "scores.parquet")
    assert set(published["cutoff"]) == {pd.Timestamp("2024-08-01")}
    history = ScoreHistory(out / "score_history")
    assert history.cutoffs() == [pd.Timestamp("2024-07-01"), pd.Timestamp("2024-08-01")]
    assert len(history.scores("2024-08-01")) == second.n_scored == len(published)
    segment_rows = sum(len(pd.read_csv(p)) for p in (out / "segments").glob("*.csv"))
    assert segment_rows == len(published)  # every list from this run, none left from the last

    mine = tmp_path / "mine"
    before = _foreign_folder(mine)
    with pytest.raises(ChurnmlError, match="did not write"):
        score_customers_spark(data, cfg, models, out, cutoff="2024-09-01", segments_dir=mine)
    assert _unchanged(before) and sorted(p.name for p in mine.iterdir()) == sorted(FOREIGN)
    assert history.cutoffs()[-1] == pd.Timestamp("2024-08-01")


def test_an_arm_named_like_a_path_is_logged_to_mlflow(tmp_path, migrated_db):
    """An arm ``../../x`` broke MLflow logging of `campaign evaluate` (a traceback)."""
    from churnml.config import Config
    from churnml.uplift.evaluation import OVERALL
    from churnml.uplift.workflow import CampaignEvaluation, _log_evaluation

    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = Config.model_validate({"data": {"dataset": "simulated"}, "tracking": {"uri": uri}})
    table = pd.DataFrame({"arm": ["../../x"], "segment": [OVERALL], "n_treated": [10],
                          "retention_lift": [0.05]})
    run_id = _log_evaluation(cfg, CampaignEvaluation("c1", table, pd.DataFrame()))
    metrics = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id).data.metrics
    assert {k.split(".", 1)[1] for k in metrics} == {"n_treated", "retention_lift"}
    assert all(k.startswith("x_") and "/" not in k and ".." not in k for k in metrics)


def test_two_configs_sharing_a_name_do_not_replace_each_others_champion(tmp_path,
                                                                       migrated_db):
    """A second config with the same ``name`` (another churn definition) promoted its models
    over the first config's champion without a word."""
    from rich.console import Console

    from churnml.training.train import train

    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fast = {"n_estimators": 30}
    base = {"name": "shared", "data": {"dataset": "simulated", "simulated_customers": 800,
                                       "seed": 5},
            "training": {"n_origins": 2, "churn_params": fast, "ltv_params": fast,
                         "ltv_candidates": []},
            "tracking": {"uri": uri}, "output_dir": "out"}
    first_cfg = load_config(_config_file(tmp_path / "a", **base))
    first = train(first_cfg, load_data(first_cfg), console=Console(quiet=True))
    assert first.registrations["churn"].promoted, first.registrations["churn"].message
    client = mlflow.MlflowClient(tracking_uri=uri)
    for key, weak in (("backtest.churn.roc_auc", 0.0), ("backtest.ltv.normalized_gini", -1.0)):
        client.log_metric(first.run_id, key, weak, step=10**6)  # any pair would beat it
    other_cfg = load_config(_config_file(tmp_path / "b", **base, churn={"horizon_days": 60}))
    second = train(other_cfg, load_data(other_cfg), console=Console(quiet=True))
    churn = second.registrations["churn"]
    assert not churn.promoted
    assert "another config of the same name" in churn.message
    assert "promote_across_configs" in churn.message
    champion = client.get_model_version_by_alias(churn.name, CHAMPION)
    assert champion.run_id == first.run_id
