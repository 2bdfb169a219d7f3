"""Routine runs on own data: every report section rendered after train and score, no absolute
path of the machine in any output, tables readable in 100 columns, no library warnings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from ceilings import HANG_CEILING_S
from typer.testing import CliRunner

from churnml.config import Config, DataConfig, load_config
from churnml.data.simulate import simulate
from churnml.models.logistic import LogisticChurnBaseline
from churnml.paths import portable, portable_values
from churnml.report import SECTION_IDS, build_report

REPO = Path(__file__).resolve().parents[1]
N_CUSTOMERS = 300
WIDTH = 100


def write_folder(folder: Path, tables: tuple[str, ...] | None = None, seed: int = 3) -> Path:
    """A folder of CSV files of simulated data (``tables``: only these)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in simulate(N_CUSTOMERS, seed=seed).tables().items():
        if table is not None and (tables is None or name in tables):
            table.to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def own_data(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("own") / "shop")


def test_portable_paths_worked_examples():
    assert portable("/home/alice/shop/data", cwd="/work") == "data"
    assert portable("/work/project/out", cwd="/work") == "project/out"
    assert portable("/work", cwd="/work") == "."
    assert portable("sqlite:////home/alice/mlflow.db", cwd="/work") == "sqlite:///mlflow.db"
    assert portable("file:///home/alice/mlartifacts", cwd="/work") == "file://mlartifacts"
    for kept in ("out", "sqlite:///mlflow.db", "Europe/Berlin", "models:/churnml-churn/1"):
        assert portable(kept, cwd="/work") == kept
    nested = {"data": {"dir": "/home/alice/shop", "tables": ["/x/a.csv", 3]}, "n": 1.5}
    assert portable_values(nested, cwd="/work") == {
        "data": {"dir": "shop", "tables": ["a.csv", 3]}, "n": 1.5}


def test_relative_paths_for_commands_stay_usable():
    from churnml.paths import relative

    assert relative("sqlite:////home/alice/mlflow.db", cwd="/home/alice/shop") == \
        "sqlite:///../mlflow.db"
    assert relative("/work/out/mlflow.db", cwd="/work") == "out/mlflow.db"
    assert relative("sqlite:///mlflow.db", cwd="/work") == "sqlite:///mlflow.db"


def test_metrics_table_fits_100_columns(own_data, monkeypatch):
    from churnml.cli import app

    monkeypatch.setenv("COLUMNS", str(WIDTH))
    result = CliRunner().invoke(app, ["metrics", "--data", str(own_data)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    assert "…" not in result.stdout  # nothing cut
    # every KPI column is shown: each word of its header appears
    from churnml.data.loaders import load_data
    from churnml.metrics import kpi_table

    kpis = kpi_table(load_data(DataConfig(dir=str(own_data))), period="month")
    words = set(re.findall(r"\w+", result.stdout))
    for column in kpis.columns:
        assert set(column.split("_")) <= words, column
    # and the values: the last period's revenue
    assert f"{kpis['revenue'].iloc[-1]:,.2f}" in result.stdout


def test_logistic_baseline_keeps_an_empty_feature_without_warning():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"recency": rng.exponential(30, 200), "trend": np.nan})
    y = (X["recency"] > 30).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = LogisticChurnBaseline().fit(X, y).predict_proba(X)[:, 1]
    assert np.isfinite(p).all()
    assert np.corrcoef(p, X["recency"])[0, 1] > 0.5


def test_report_computes_absent_metric_tables(own_data, tmp_path):
    cfg = Config(name="shop", data=DataConfig(dir=str(own_data)))
    from churnml.data.loaders import load_data

    calls = []

    def data():
        calls.append(1)
        return load_data(cfg)

    page = build_report(tmp_path, cfg, data=data).read_text()
    assert calls == [1]
    for sid in ("kpi-trends", "cohort-retention", "n-day-retention"):
        body = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S).group(1)
        assert "<img" in body and "churnml demo" not in body, sid
    assert str(own_data) not in page and str(tmp_path) not in page
    # with the files present, the data is not loaded
    for name in ("kpis_month.csv", "cohorts.csv", "n_day_retention.csv"):
        (tmp_path / name).write_text("x\n")  # would fail the contract if read for real
    with pytest.raises(Exception):  # noqa: B017 - the contract error of the fake files
        build_report(tmp_path, cfg, data=data)
    assert calls == [1]


# --------------------------------------------------------------------------- end to end


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The churnml command as a user runs it (default warning filters, own process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHONWARN"))}
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = str(WIDTH)
    code = "from churnml.cli import app; app()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=HANG_CEILING_S)


@pytest.mark.slow
def test_train_score_report_on_own_data_clean_and_portable(tmp_path):
    """Own data without surveys: train, score, report as a user would. Every report section
    is rendered (the metric tables computed from the data), no output names the machine's
    folders, and nothing prints a library warning."""
    write_folder(tmp_path / "shop", tables=("transactions", "events", "customers"))
    config = {
        "name": "shop", "data": {"dir": "shop"}, "output_dir": "out",
        "training": {"n_origins": 1, "ltv_candidates": [],
                     "churn_params": {"n_estimators": 30, "num_leaves": 7},
                     "ltv_params": {"n_estimators": 30, "num_leaves": 7}},
        "tracking": {"uri": "sqlite:///mlflow.db"},
    }
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump(config))
    outputs = {}
    for command in ("train", "score", "report"):
        done = _run([command, "--config", "shop.yaml"], tmp_path)
        assert done.returncode == 0, done.stderr
        outputs[command] = done.stdout + done.stderr
        assert not re.search(r"warn", done.stderr, re.I), (command, done.stderr)
        assert max(len(line) for line in done.stdout.splitlines() or [""]) <= WIDTH
    out = tmp_path / "out"
    page = (out / "report.html").read_text()
    assert re.findall(r'<section id="([^"]+)"', page) == [  # no campaigns, monitoring, survival
        s for s in SECTION_IDS if s not in ("campaigns", "monitoring", "time-to-churn")]
    assert 'class="notice"' not in page and "churnml demo" not in page
    # no absolute path of this machine in any output
    roots = {str(tmp_path), str(tmp_path.resolve())}
    texts = {"report": page, **outputs,
             "scores": pd.read_parquet(out / "scores.parquet").to_csv(),
             "summary": (out / "segment_summary.csv").read_text()}
    texts.update({p.name: p.read_text() for p in (out / "segments").glob("*.csv")})
    from churnml.training.tracking import model_card, tracking

    cfg = load_config(tmp_path / "shop.yaml")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    card = model_card(cfg.tracking.churn_model_name, tracking_uri=uri)
    texts["card"] = str(card)
    with tracking(uri) as client:
        run = client.get_run(card["run_id"])
        texts["params"] = str(run.data.params)
        texts["tags"] = str({k: v for k, v in run.data.tags.items()
                             if not k.startswith("mlflow.")})
    for what, text in texts.items():
        for root in roots:
            assert root not in text, what
    assert run.data.params["config.data.dir"] == "shop"
