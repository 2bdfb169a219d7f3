"""`churnml features`: the written table has one row per (customer, cutoff) and holds the values
of build_features / build_panel; cutoff parsing, the config's `features:` section, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churnml.cli import app
from churnml.cli.features import parse_cutoffs
from churnml.config import load_config
from churnml.data.loaders import load_data
from churnml.features import FeatureSpec, build_features
from churnml.labels import build_panel

N_CUSTOMERS = 200
SEED = 5
HORIZON = pd.Timedelta(days=90)
LOOKBACK = pd.Timedelta(days=365)
runner = CliRunner()


def _config(folder: Path, features: dict | None = None) -> Path:
    raw = {"data": {"dataset": "simulated", "simulated_customers": N_CUSTOMERS, "seed": SEED}}
    if features is not None:
        raw["features"] = features
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli_features")


@pytest.fixture(scope="module")
def config(folder) -> Path:
    return _config(folder)


@pytest.fixture(scope="module")
def data(config):
    return load_data(load_config(config))


def _run(*args: str) -> pd.DataFrame:
    result = runner.invoke(app, ["features", *args])
    assert result.exit_code == 0, result.output
    return result


def _population(data, cutoff: pd.Timestamp) -> set:
    """Customers with a transaction, event or subscription start before ``cutoff``."""
    ids = set(data.transactions.loc[data.transactions["ts"] < cutoff, "customer_id"])
    if data.events is not None:
        ids |= set(data.events.loc[data.events["ts"] < cutoff, "customer_id"])
    if data.subscriptions is not None:
        subs = data.subscriptions
        ids |= set(subs.loc[subs["start_ts"] < cutoff, "customer_id"])
    return ids


def test_one_cutoff_writes_build_features(folder, config, data):
    out = folder / "one.parquet"
    _run("--config", str(config), "--cutoff", "2024-06-01", "--out", str(out))
    got = pd.read_parquet(out)
    cutoff = pd.Timestamp("2024-06-01")
    assert not got.duplicated(["customer_id", "cutoff"]).any()
    assert set(got["customer_id"]) == _population(data, cutoff)
    assert (got["cutoff"] == cutoff).all()
    pd.testing.assert_frame_equal(got, build_features(data, cutoff))


def test_monthly_panel_with_labels(folder, config, data):
    out = folder / "panel.parquet"
    _run("--config", str(config), "--cutoffs", "2024-01-01:2024-04-01:MS", "--labels",
         "--out", str(out))
    got = pd.read_parquet(out)
    cutoffs = pd.DatetimeIndex(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"])
    assert list(pd.DatetimeIndex(got["cutoff"].unique())) == list(cutoffs)
    assert not got.duplicated(["customer_id", "cutoff"]).any()
    pd.testing.assert_frame_equal(got, build_panel(data, cutoffs))
    # labels against plain pandas: at risk = purchased in the look-back; churned = no
    # purchase in the horizon; ltv = net revenue in the horizon
    tx = data.transactions
    buy = tx[tx["amount"] > 0]
    for cutoff, rows in got.groupby("cutoff"):
        before = buy[(buy["ts"] >= cutoff - LOOKBACK) & (buy["ts"] < cutoff)]
        assert set(rows["customer_id"]) == set(before["customer_id"])
        after = buy[(buy["ts"] >= cutoff) & (buy["ts"] < cutoff + HORIZON)]
        churned = (~rows["customer_id"].isin(after["customer_id"])).astype("int64")
        assert (rows["churned"].to_numpy() == churned.to_numpy()).all()
        window = tx[(tx["ts"] >= cutoff) & (tx["ts"] < cutoff + HORIZON)]
        ltv = window.groupby("customer_id")["amount"].sum()
        expected = rows["customer_id"].map(ltv).fillna(0.0).to_numpy()
        assert rows["ltv"].to_numpy() == pytest.approx(expected)


def test_features_section_inline_and_file(folder, data):
    inline = {"groups": ["recency", "frequency"], "windows_days": [30]}
    sub = folder / "inline"
    sub.mkdir()
    out = sub / "f.csv"
    _run("--config", str(_config(sub, {"spec": inline})), "--cutoff", "2024-06-01",
         "--out", str(out))
    got = pd.read_csv(out)
    expected = build_features(data, "2024-06-01", FeatureSpec(**inline))
    assert list(got.columns) == list(expected.columns)
    assert "purchases_30d" in got and "purchases_90d" not in got and "spend_30d" not in got
    assert got["purchases_30d"].to_numpy() == pytest.approx(expected["purchases_30d"])
    # a spec file named relative to the config file
    (sub / "spec.yaml").write_text(yaml.safe_dump({"groups": ["monetary"],
                                                   "windows_days": [7]}))
    out = sub / "g.parquet"
    _run("--config", str(_config(sub, {"spec": "spec.yaml"})), "--cutoff", "2024-06-01",
         "--out", str(out))
    got = pd.read_parquet(out)
    pd.testing.assert_frame_equal(
        got, build_features(data, "2024-06-01", FeatureSpec(groups=["monetary"],
                                                            windows_days=[7])))


def test_parse_cutoffs():
    assert list(parse_cutoffs("2024-01-01:2024-03-01")) == list(
        pd.DatetimeIndex(["2024-01-01", "2024-02-01", "2024-03-01"]))
    weekly = parse_cutoffs("2024-01-01:2024-01-29:7D")
    assert len(weekly) == 5 and (weekly.to_series().diff().dropna() == pd.Timedelta(days=7)).all()
    assert list(parse_cutoffs("2024-06-15 12:00, 2024-01-01")) == [
        pd.Timestamp("2024-06-15 12:00"), pd.Timestamp("2024-01-01")]
    with pytest.raises(ValueError, match="range holds no cutoff"):
        parse_cutoffs("2024-03-02:2024-03-30:MS")
    with pytest.raises(ValueError, match="2024-13-01"):
        parse_cutoffs("2024-13-01,2024-01-01")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cutoff", "2024-06-01", "--cutoffs", "2024-01-01"], "exactly one of"),
        ([], "exactly one of"),
        (["--cutoff", "someday"], "not an ISO 8601 date"),
        (["--cutoff", "01/02/2024"], "not an ISO 8601 date"),
        (["--cutoffs", "2024-01-01,01/02/2024"], "not an ISO 8601 date"),
        (["--cutoffs", "2024-01-01:2030-01-01:YS", "--labels"], "cannot be labelled"),
    ],
)
def test_errors(folder, config, args, message):
    result = runner.invoke(app, ["features", "--config", str(config), *args,
                                 "--out", str(folder / "never.parquet")])
    assert result.exit_code != 0
    assert message in result.output
    assert not (folder / "never.parquet").exists()


# settings that cut Spark's per-query overhead on tiny data
SPARK_CONF = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "1",
              "spark.default.parallelism": "1", "spark.sql.adaptive.enabled": "false"}


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")
@pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")
@pytest.mark.filterwarnings("ignore:Series.values returning an ndarray")
def test_spark_engine_equals_duckdb(folder, data):
    """``--engine spark`` (a session started from the config, or the active one) gives the
    DuckDB values."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+")
    sub = folder / "spark"
    sub.mkdir()
    config = _config(sub, {"spark_master": "local[1]", "spark_conf": SPARK_CONF,
                           "spec": {"groups": ["frequency"]}})
    out = sub / "f.parquet"
    _run("--config", str(config), "--cutoffs", "2024-03-01,2024-06-01", "--engine", "spark",
         "--out", str(out))
    expected = build_features(data, ["2024-03-01", "2024-06-01"],
                              FeatureSpec(groups=["frequency"]))
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_exact=False)
