"""Loading a folder of raw files with a column mapping; the CDNOW example dataset; writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churnml import DataValidationError
from churnml.config import TableSource, load_config
from churnml.data.datasets import load_cdnow, load_dataset
from churnml.data.loaders import load_data, load_folder
from churnml.io import atomic_write, write_table


@pytest.fixture()
def shop(tmp_path: Path) -> Path:
    pd.DataFrame({
        "Customer ID": ["c1", "c2", "c1"],
        "Order Date": ["31/01/2024 20:15", "01/02/2024 08:00", "15/02/2024 12:00"],
        "Total": [25.0, 40.0, -25.0],
        "Order No": [101, 102, 103],
    }).to_csv(tmp_path / "orders.csv", index=False)
    pd.DataFrame({"Customer ID": ["c1", "c2"], "Country": ["DE", "FR"]}).to_parquet(
        tmp_path / "customers.parquet"
    )
    return tmp_path


MAPPING = {
    "transactions": TableSource(
        path="orders.csv", ts_format="%d/%m/%Y %H:%M",
        columns={"customer_id": "Customer ID", "ts": "Order Date", "amount": "Total",
                 "order_id": "Order No"},
    ),
    "customers": TableSource(
        path="customers.parquet", columns={"customer_id": "Customer ID", "country": "Country"}
    ),
}


def test_folder_with_mapping(shop: Path) -> None:
    data = load_folder(shop, MAPPING)
    t = data.transactions
    assert t["customer_id"].tolist() == ["c1", "c2", "c1"]
    assert t["ts"].tolist() == [pd.Timestamp("2024-01-31 20:15"), pd.Timestamp("2024-02-01 08:00"),
                                pd.Timestamp("2024-02-15 12:00")]
    assert t["amount"].sum() == 40.0
    assert data.customers["country"].tolist() == ["DE", "FR"]
    assert data.events is None and data.surveys is None


def test_mapping_to_absent_raw_column_names_it(shop: Path) -> None:
    bad = dict(MAPPING)
    bad["transactions"] = MAPPING["transactions"].model_copy(
        update={"columns": {**MAPPING["transactions"].columns, "amount": "Revenue"}}
    )
    with pytest.raises(DataValidationError, match=r"transactions\.amount: mapped from raw "
                       r"column 'Revenue'.*orders\.csv.*Total"):
        load_folder(shop, bad)


def test_wrong_date_format_names_rows(shop: Path) -> None:
    bad = dict(MAPPING)
    bad["transactions"] = MAPPING["transactions"].model_copy(update={"ts_format": "%Y-%m-%d"})
    with pytest.raises(DataValidationError, match=r"transactions\.ts: unparseable timestamp "
                       r"\(expected format '%Y-%m-%d'\) \[3 row\(s\)"):
        load_folder(shop, bad)


def test_conventional_file_names_need_no_mapping(tmp_path: Path) -> None:
    pd.DataFrame({"customer_id": [1, 2], "ts": ["2024-01-01", "2024-01-02"],
                  "amount": [1.0, 2.0]}).to_parquet(tmp_path / "transactions.parquet")
    pd.DataFrame({"customer_id": [1], "ts": ["2024-01-03"], "kind": ["NPS"], "score": [9]}
                 ).to_csv(tmp_path / "surveys.csv", index=False)
    data = load_folder(tmp_path)
    assert len(data.transactions) == 2
    assert data.surveys["kind"].tolist() == ["nps"]  # kinds are case-insensitive


def test_missing_transactions_file(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="transactions: table is required"):
        load_folder(tmp_path)


def test_config_file_drives_loading(shop: Path) -> None:
    cfg = shop / "shop.yaml"
    cfg.write_text(
        "data:\n  dir: .\n  timezone: UTC\n  tables:\n    transactions:\n      path: orders.csv\n"
        "      ts_format: '%d/%m/%Y %H:%M'\n      columns: {customer_id: Customer ID, "
        "ts: Order Date, amount: Total, order_id: Order No}\n"
    )
    # customers.parquet is found by its conventional name, but its columns are not mapped:
    with pytest.raises(DataValidationError, match=r"customers\.customer_id: missing required "
                       r"column \(columns present: Customer ID, Country\)"):
        load_data(load_config(cfg))
    cfg.write_text(cfg.read_text() + "    customers:\n      columns: {customer_id: Customer ID}\n")
    data = load_data(load_config(cfg))
    assert len(data.transactions) == 3 and data.customers["customer_id"].tolist() == ["c1", "c2"]


def test_cdnow_matches_its_documented_shape() -> None:
    data = load_cdnow()
    t = data.transactions
    assert t["customer_id"].nunique() == 23_570
    assert len(t) == 67_591  # customer-days; 69,659 raw lines
    assert len(load_cdnow(merge_same_day=False).transactions) == 69_659
    assert t["ts"].min() == pd.Timestamp("1997-01-01")
    assert t["ts"].max() == pd.Timestamp("1998-06-30")
    first = t.groupby("customer_id")["ts"].min()
    assert first.max() < pd.Timestamp("1997-04-01")  # all acquired in Q1 1997
    assert round(t["amount"].sum(), 2) == 2_500_315.63
    assert load_dataset("cdnow").transactions.equals(t)


def test_fingerprint_changes_with_content() -> None:
    data = load_cdnow()
    fp = data.fingerprint()
    assert fp["transactions"]["rows"] == 67_591
    assert fp["end"] == "1998-06-30 00:00:00"
    later = data.before("1998-01-01").fingerprint()
    assert later["transactions"]["hash"] != fp["transactions"]["hash"]


@pytest.mark.parametrize("name", ["out.parquet", "out.csv", "out.json"])
def test_write_table_round_trip(tmp_path: Path, name: str) -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    path = write_table(df, tmp_path / name)
    back = {"parquet": pd.read_parquet, "csv": pd.read_csv,
            "json": lambda p: pd.read_json(p, orient="records")}[path.suffix[1:]](path)
    assert back["a"].tolist() == [1, 2] and back["b"].tolist() == ["x", "y"]


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "scores.csv"

    def broken(p: Path) -> None:
        p.write_text("half a fi")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert list(tmp_path.iterdir()) == []
    target.write_text("old")
    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1
