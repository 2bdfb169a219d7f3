"""The loader options (``expressions``, ``order_lines``, ``drop_missing_ids``,
``drop_duplicates``) and timestamp-format detection on Spark give the DuckDB route's tables,
warnings and errors on the same folder."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from churnml.config import Config, DataConfig, TableSource
from churnml.data.loaders import load_folder
from churnml.errors import DataValidationError, DataWarning

pyspark = pytest.importorskip("pyspark")

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

NOW = pd.Timestamp("2025-06-01")
LINES = TableSource(
    path="lines.csv", order_lines=True, drop_missing_ids=True, drop_duplicates=True,
    columns={"customer_id": "CustomerID", "ts": "InvoiceDate", "order_id": "InvoiceNo",
             "quantity": "Quantity"},
    expressions={"amount": "Quantity * UnitPrice"},
)


def _write(folder: Path, dates: list[str] | None = None) -> Path:
    """An order-line export: amount = Quantity x UnitPrice, a line without a customer, an
    exact duplicate line (export twice), day-first dates (no ISO 8601)."""
    dates = dates or ["01/12/2010 08:26", "01/12/2010 08:26", "01/12/2010 08:28",
                      "02/12/2010 09:00", "02/12/2010 10:00", "13/12/2010 11:00",
                      "13/12/2010 11:00"]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "InvoiceNo": ["536365", "536365", "536366", "C536367", "536368", "536369", "536369"],
        "CustomerID": ["17850", "17850", "13047", "17850", None, "13047", "13047"],
        "InvoiceDate": dates,
        "Quantity": [6, 2, 3, -1, 4, 5, 5],
        "UnitPrice": [2.55, 7.65, 1.85, 2.55, 1.0, 0.5, 0.5],
    }).to_csv(folder / "lines.csv", index=False)
    return folder


def _both(spark, folder: Path, source: TableSource) -> dict[str, tuple]:
    """``{engine: (transactions as pandas, DataWarning texts)}``."""
    from churnml.data.spark_loader import load_spark_data

    out = {}
    for engine in ("duckdb", "spark"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            if engine == "duckdb":
                frame = load_folder(folder, {"transactions": source}).transactions
            else:
                cfg = Config(data=DataConfig(dir=str(folder),
                                             tables={"transactions": source}))
                frame = load_spark_data(cfg, spark, now=NOW).frames["transactions"].toPandas()
        notes = sorted(str(w.message) for w in caught if issubclass(w.category, DataWarning))
        out[engine] = (frame, notes)
    return out


def _problems(spark, folder: Path, source: TableSource) -> dict[str, set[tuple]]:
    from churnml.data.spark_loader import load_spark_data

    cfg = Config(data=DataConfig(dir=str(folder), tables={"transactions": source}))
    out = {}
    for engine, load in (("duckdb", lambda: load_folder(folder, {"transactions": source})),
                         ("spark", lambda: load_spark_data(cfg, spark, now=NOW))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            with pytest.raises(DataValidationError) as caught:
                load()
        exc = caught.value
        out[engine] = {(p.table, p.column, p.problem, p.n_rows)
                       for p in [exc, *getattr(exc, "others", [])]}
    return out


def test_loader_options_give_the_duckdb_tables_and_warnings(spark, tmp_path) -> None:
    runs = _both(spark, _write(tmp_path), LINES)
    (duck, duck_notes), (on_spark, spark_notes) = runs["duckdb"], runs["spark"]
    assert duck_notes == spark_notes == [
        "transactions: dropped 1 row(s) identical to an earlier row (drop_duplicates)",
        "transactions: dropped 1 row(s) without a customer id (drop_missing_ids)"]
    cols = ["order_id", "customer_id", "ts", "amount", "quantity"]
    duck = duck[cols].sort_values("order_id").reset_index(drop=True)
    on_spark = on_spark[cols].sort_values("order_id").reset_index(drop=True)
    # hand-computed: order 536365 is two lines, 6 x 2.55 + 2 x 7.65; 536369 was exported twice
    assert duck["order_id"].tolist() == ["536365", "536366", "536369", "C536367"]
    assert duck["amount"].tolist() == pytest.approx([30.6, 5.55, 2.5, -2.55])
    assert duck["quantity"].tolist() == [8.0, 3.0, 5.0, -1.0]
    assert duck["ts"].tolist() == [pd.Timestamp("2010-12-01 08:26"),
                                   pd.Timestamp("2010-12-01 08:28"),
                                   pd.Timestamp("2010-12-13 11:00"),
                                   pd.Timestamp("2010-12-02 09:00")]
    on_spark = on_spark.astype({"customer_id": str, "ts": "datetime64[us]"})
    pd.testing.assert_frame_equal(on_spark, duck.astype({"customer_id": str}), rtol=1e-12)


def test_loader_option_errors_are_the_duckdb_errors(spark, tmp_path) -> None:
    folder = _write(tmp_path)
    for change in ({"order_lines": False}, {"drop_missing_ids": False}):
        found = _problems(spark, folder, LINES.model_copy(update=change))
        assert found["spark"] == found["duckdb"], change
    assert ("transactions", "customer_id", "missing id (set drop_missing_ids: true for this "
            "table to drop such rows)", 1) in found["duckdb"]
    # one order's lines naming two customers
    split = _write(tmp_path / "split")
    lines = pd.read_csv(split / "lines.csv", dtype=str)
    lines.loc[1, "CustomerID"] = "99999"
    lines.to_csv(split / "lines.csv", index=False)
    found = _problems(spark, split, LINES)
    assert found["spark"] == found["duckdb"] == {
        ("transactions", "customer_id",
         "order lines of one order_id name different customers", 2)}


def test_timestamp_formats_are_detected_by_the_duckdb_rule(spark, tmp_path) -> None:
    # month-first dates: the day-first family does not read 12/13/2010
    us = ["12/01/2010 08:26", "12/01/2010 08:26", "12/01/2010 08:28", "12/02/2010 09:00",
          "12/02/2010 10:00", "12/13/2010 11:00", "12/13/2010 11:00"]
    runs = _both(spark, _write(tmp_path / "us", us), LINES)
    assert sorted(runs["spark"][0]["ts"].astype("datetime64[us]")) == sorted(
        runs["duckdb"][0]["ts"]) and runs["duckdb"][0]["ts"].max() == pd.Timestamp(
        "2010-12-13 11:00")
    # every day <= 12: 01/12 is 1 December or 12 January; both routes refuse to guess
    ambiguous = ["01/12/2010 08:26", "01/12/2010 08:26", "01/12/2010 08:28",
                 "02/12/2010 09:00", "02/12/2010 10:00", "11/12/2010 11:00",
                 "11/12/2010 11:00"]
    folder = _write(tmp_path / "amb", ambiguous)
    found = _problems(spark, folder, LINES)
    assert {p[:3] for p in found["spark"]} == {p[:3] for p in found["duckdb"]}
    (problem,) = {p[2] for p in found["duckdb"]}
    assert problem.startswith("ambiguous date format")
