"""Contract tables read by Spark where they live (Parquet paths, Spark tables), mapped and
validated on Spark: the same features as the DuckDB path, and the same validation errors
(table, column, problem, row count) with example rows named by customer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churnml.config import Config, ConfigError, DataConfig, TableSource, load_config
from churnml.data.loaders import load_folder
from churnml.data.simulate import simulate
from churnml.data.spark_names import parse_table_name, quote_table_name
from churnml.errors import DataValidationError
from churnml.features import build_features

pyspark = pytest.importorskip("pyspark")

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

CUTOFFS = [pd.Timestamp("2024-03-01"), pd.Timestamp("2024-09-01")]
TX_MAP = {"customer_id": "Customer ID", "ts": "Order Time", "amount": "Amount (USD)"}
EV_MAP = {"customer_id": "user", "ts": "at", "event_type": "what"}
NOW = pd.Timestamp("2025-06-01")


def test_table_names_are_parsed_and_quoted() -> None:
    assert parse_table_name("main.sales.orders") == ["main", "sales", "orders"]
    assert parse_table_name("`odd name`.t") == ["odd name", "t"]
    assert quote_table_name("a.`b``c`") == "`a`.`b``c`"
    for bad in ("a.b.c.d", "orders; DROP TABLE x", "a..b", "", "x y", "t.`open"):
        with pytest.raises(ConfigError, match="Spark table name"):
            parse_table_name(bad)


def test_config_validates_table_sources(tmp_path) -> None:
    cfg = Config(data=DataConfig(tables={"transactions": TableSource(table="main.s.tx")}))
    assert cfg.data.dir is None and cfg.data.dataset is None
    with pytest.raises(ValueError, match="not both"):
        TableSource(table="a.b", path="x.parquet")
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  tables:\n    transactions: {table: 'tx; drop'}\n")
    with pytest.raises(ConfigError, match="Spark table name 'tx; drop'"):
        load_config(path)
    path.write_text("data:\n  tables:\n    transactions: {path: t.parquet, format: orc}\n")
    with pytest.raises(ConfigError, match="format"):
        load_config(path)


@pytest.fixture(scope="module")
def data():
    return simulate(120, seed=8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, data) -> Path:
    """Raw files as a business exports them: other column names, CSV timestamps as text."""
    root = tmp_path_factory.mktemp("raw")
    tx = data.transactions[["customer_id", "ts", "amount"]].rename(
        columns={v: k for v, k in ((c, TX_MAP[c]) for c in TX_MAP)})
    tx.to_parquet(root / "orders.parquet", index=False)
    ev = data.events[["customer_id", "ts", "event_type"]].rename(
        columns={c: EV_MAP[c] for c in EV_MAP})
    ev.assign(at=ev["at"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(root / "events.csv",
                                                                    index=False)
    return root


def _same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal values, ids compared as text (a CSV holds them as text for Spark)."""
    def norm(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.assign(customer_id=frame["customer_id"].astype(str))
        return frame.sort_values(["cutoff", "customer_id"]).reset_index(drop=True)

    actual = actual.astype({c: t for c, t in expected.dtypes.items() if c != "customer_id"})
    pd.testing.assert_frame_equal(norm(actual), norm(expected), rtol=1e-9)


def _config(folder: Path, events: TableSource | None = None) -> Config:
    tables = {"transactions": TableSource(path="orders.parquet", columns=TX_MAP),
              "events": events or TableSource(columns=EV_MAP)}
    return Config(data=DataConfig(dir=str(folder), tables=tables))


@pytest.mark.slow
def test_parquet_paths_and_spark_tables_with_mapping_equal_duckdb(spark, folder) -> None:
    from churnml.data.spark_loader import load_spark_data

    cfg = _config(folder)
    expected = build_features(load_folder(folder, cfg.data.tables), CUTOFFS)
    from_files = load_spark_data(cfg, spark, now=NOW)
    assert from_files.stats["transactions"]["rows"] == 0 + len(
        pd.read_parquet(folder / "orders.parquet"))
    _same(build_features(from_files, CUTOFFS).toPandas(), expected)
    # the events as a (global temporary) Spark table named schema.table
    raw = spark.read.option("header", "true").csv(str(folder / "events.csv"))
    raw.createOrReplaceGlobalTempView("churnml_test_events")
    cfg = _config(folder, TableSource(table="global_temp.churnml_test_events", columns=EV_MAP))
    from_table = load_spark_data(cfg, spark, now=NOW)
    _same(build_features(from_table, CUTOFFS).toPandas(), expected)
    assert from_table.fingerprint()["events"] == from_files.fingerprint()["events"]
    missing = _config(folder, TableSource(table="global_temp.no_such_table"))
    with pytest.raises(DataValidationError, match="events: cannot read Spark table"):
        load_spark_data(missing, spark, now=NOW)


def _problems(exc: DataValidationError) -> set[tuple]:
    return {(p.table, p.column, p.problem, p.n_rows) for p in [exc, *getattr(exc, "others", [])]}


def test_validation_errors_match_the_duckdb_path(spark, tmp_path) -> None:
    from churnml.data.spark_loader import load_spark_data

    tx = pd.DataFrame({
        "customer_id": pd.array([1, 2, None, 4, 5, 6], dtype="Int64"),
        "ts": ["2024-01-01 10:00", "yesterday", "2024-01-03", "2024-01-04", "1900-01-01",
               "2024-01-06"],
        "amount": ["10", "12.5", "3", "abc", "7", "8"],
        "order_id": ["a", "b", "c", "d", "d", "e"],
    })
    tx.to_csv(tmp_path / "transactions.csv", index=False)
    sv = pd.DataFrame({"customer_id": [1, 2, 3], "ts": ["2024-01-01"] * 3,
                       "kind": ["NPS", "csat", "mood"], "score": [11, 3, 2]})
    sv.to_csv(tmp_path / "surveys.csv", index=False)
    cfg = Config(data=DataConfig(dir=str(tmp_path)))
    with pytest.raises(DataValidationError) as duck:
        load_folder(tmp_path)
    with pytest.raises(DataValidationError) as on_spark:
        load_spark_data(cfg, spark)
    expected, actual = _problems(duck.value), _problems(on_spark.value)
    assert ("surveys", "score", "nps score outside [0, 10]", 1) in expected
    # the same table, column and row count, and the DuckDB path's wording (which may add a
    # hint about a pandas-route option after it)
    assert {(t, c, n) for t, c, _, n in actual} == {(t, c, n) for t, c, _, n in expected}
    for t, c, problem, n in expected:
        assert any(a[:2] == (t, c) and a[3] == n and problem.startswith(a[2]) for a in actual), (
            t, c, problem)
    message = str(on_spark.value)
    assert "transactions.ts: unparseable timestamp [1 row(s); e.g. row with customer_id '2' " \
           "('yesterday')]" in message
    assert "transactions.amount: not numeric [1 row(s); e.g. row with customer_id '4' ('abc')]" \
        in message
    # the DuckDB route's wording, hints to the loader options included
    assert "transactions.order_id: duplicate id (if rows are order lines, set order_lines: " \
           "true for this table to sum them into orders) [2 row(s)" in message
    assert "transactions.customer_id: missing id (set drop_missing_ids: true for this table " \
           "to drop such rows) [1 row(s); e.g. row with customer_id null" in message


def test_spark_csv_cells_are_escaped_like_write_table(spark, tmp_path) -> None:
    from churnml.io import escape_formulas, write_spark_table, write_table

    frame = pd.DataFrame({"customer_id": ["=HYPERLINK(1)", "a7", "-3", None],
                          "reasons": ["+call", "@me", "ok", "\tx"],
                          "value": [-5.0, 1.0, 2.0, None]})
    sdf = spark.createDataFrame(frame.astype(object).where(frame.notna(), None).values.tolist(),
                                "customer_id string, reasons string, value double")
    write_spark_table(sdf, tmp_path / "spark.csv")
    write_table(frame, tmp_path / "local.csv")
    spark_csv = pd.read_csv(tmp_path / "spark.csv", keep_default_na=False)
    local_csv = pd.read_csv(tmp_path / "local.csv", keep_default_na=False)
    assert spark_csv["customer_id"].tolist()[:3] == ["'=HYPERLINK(1)", "a7", "'-3"]
    assert spark_csv["reasons"].tolist() == escape_formulas(frame)["reasons"].tolist()
    assert spark_csv["value"].astype(str).tolist()[:3] == ["-5.0", "1.0", "2.0"]  # numbers kept
    assert spark_csv["reasons"].tolist() == local_csv["reasons"].tolist()
