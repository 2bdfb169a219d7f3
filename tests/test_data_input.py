"""Own data read without silent corruption: one timestamp format per column, ids as text,
extreme and duplicate rows, line-level and count-only exports, readable file errors, and
the end of the data (issue 9, data input)."""

from __future__ import annotations

import datetime as dt
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnml import DataValidationError
from churnml.cli._common import parse_iso_timestamp
from churnml.config import DataConfig, TableSource, load_config
from churnml.data.customer_data import (
    check_cutoff,
    cutoff_warnings,
    data_end,
    id_overlap,
    quiet_days,
)
from churnml.data.loaders import load_data, load_folder
from churnml.data.schema import MAX_ABS_MONEY, PURCHASES_UNIT
from churnml.engine.sql import MONEY_DECIMAL
from churnml.errors import ChurnmlError, ConfigError, DataWarning
from churnml.features import build_features
from churnml.labels import labelled_cutoffs
from churnml.pipeline import default_cutoff

FOLDER_SETTINGS = settings(max_examples=15, deadline=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture])


def write_tx(folder: Path, rows: dict, name: str = "transactions.csv", **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False, **kwargs)
    return path


def data_warnings(fn, *args, **kwargs) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


# ------------------------------------------------------------------ timestamps
dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2025, 12, 31))


@FOLDER_SETTINGS
@given(st.lists(dates, min_size=1, max_size=30), st.sampled_from(["%d/%m/%Y", "%m/%d/%Y"]))
def test_day_month_dates_round_trip_with_one_format(tmp_path_factory, days, fmt) -> None:
    """dd/mm (or mm/dd) dates are read back exactly: one format for the whole column, so
    09/10/2024 is never read with another day/month order than 24/07/2024."""
    decisive = dt.date(2024, 7, 24)  # day 24 > 12: only one order reads it
    days = [*days, decisive]
    folder = tmp_path_factory.mktemp("dmy")
    write_tx(folder, {"customer_id": [f"c{i}" for i in range(len(days))],
                      "ts": [d.strftime(fmt) for d in days], "amount": 1.0})
    data = load_folder(folder)
    assert data.transactions["ts"].tolist() == [pd.Timestamp(d) for d in days]


def test_ambiguous_day_month_column_names_table_column_values_and_ts_format(tmp_path) -> None:
    write_tx(tmp_path, {"customer_id": ["a", "b"], "ts": ["09/10/2024", "11/07/2024"],
                        "amount": [1.0, 2.0]})
    with pytest.raises(DataValidationError) as info:
        load_folder(tmp_path)
    msg = str(info.value)
    assert info.value.table == "transactions" and info.value.column == "ts"
    assert "ambiguous" in msg and "'09/10/2024'" in msg and "row 0" in msg
    assert "ts_format: '%d/%m/%Y' or '%m/%d/%Y'" in msg
    # the fix the message names works
    data = load_folder(tmp_path, {"transactions": TableSource(ts_format="%d/%m/%Y")})
    assert data.transactions["ts"].tolist() == [pd.Timestamp("2024-10-09"),
                                                 pd.Timestamp("2024-07-11")]


low_days = dates.filter(lambda d: d.day <= 12)


@FOLDER_SETTINGS
@given(st.lists(low_days, min_size=1, max_size=20).filter(
    lambda ds: any(d.day != d.month for d in ds)))
def test_columns_both_day_month_orders_read_differently_are_always_refused(
        tmp_path_factory, days) -> None:
    folder = tmp_path_factory.mktemp("ambiguous")
    write_tx(folder, {"customer_id": "a", "ts": [d.strftime("%d/%m/%Y") for d in days],
                      "amount": [i + 1.0 for i in range(len(days))]})
    with pytest.raises(DataValidationError, match="ambiguous date format"):
        load_folder(folder)


def test_mixed_formats_in_one_column_are_an_error_naming_the_rows(tmp_path) -> None:
    write_tx(tmp_path, {"customer_id": ["a", "b", "c"],
                        "ts": ["2024-01-02", "24/07/2024", "2024-03-04"], "amount": 1.0})
    with pytest.raises(DataValidationError, match=r"transactions\.ts: .*mixed formats.*"
                       r"dd/mm/YYYY.*ts_format.*row 1 \('24/07/2024'\)"):
        load_folder(tmp_path)


def test_ts_format_list_reads_dates_with_and_without_time(tmp_path) -> None:
    write_tx(tmp_path, {"customer_id": ["a", "b"], "ts": ["24.07.2024 15:04", "03.04.2024"],
                        "amount": 1.0})
    data = load_folder(tmp_path, {"transactions": TableSource(
        ts_format=["%d.%m.%Y %H:%M", "%d.%m.%Y"])})
    assert data.transactions["ts"].tolist() == [pd.Timestamp("2024-07-24 15:04"),
                                                 pd.Timestamp("2024-04-03")]


def test_naive_values_stay_local_when_another_column_is_aware(tmp_path) -> None:
    """An aware column is converted to data.timezone; naive values in the same or another
    table are local time, never read as UTC; a column mixing both is refused."""
    write_tx(tmp_path, {"customer_id": ["a", "b"],
                        "ts": ["2024-01-15T10:00:00+00:00", "2024-07-15T10:00:00Z"],
                        "amount": 1.0})
    pd.DataFrame({"customer_id": ["a"], "ts": ["2024-01-15 10:00"], "event_type": ["visit"]}
                 ).to_csv(tmp_path / "events.csv", index=False)
    data = load_folder(tmp_path, timezone="Europe/Berlin")
    assert data.transactions["ts"].tolist() == [pd.Timestamp("2024-01-15 11:00"),
                                                 pd.Timestamp("2024-07-15 12:00")]
    assert data.events["ts"].tolist() == [pd.Timestamp("2024-01-15 10:00")]
    write_tx(tmp_path, {"customer_id": ["a", "b", "c"],
                        "ts": ["2024-01-15 10:00", "2024-01-16T10:00:00+01:00",
                               "2024-01-17 10:00"], "amount": 1.0})
    with pytest.raises(DataValidationError, match=r"transactions\.ts: mixes 2 naive and 1 "
                       r"timezone-aware.*row 0 \('2024-01-15 10:00'\).*row 1"):
        load_folder(tmp_path, timezone="Europe/Berlin")


def test_unknown_time_zone_is_a_config_error(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  dir: .\n  timezone: Europe/Berlinn\n")
    with pytest.raises(ConfigError, match=r"data\.timezone.*unknown time zone 'Europe/Berlinn'"):
        load_config(cfg)
    cfg.write_text("data:\n  dir: .\n  timezone: America/New_York\n  end: 2024-07-01\n")
    assert load_config(cfg).data.end == "2024-07-01"


@pytest.mark.parametrize("text", ["01/02/2024", "2024/02/01", "Feb 1 2024", "1.2.2024"])
def test_cli_dates_are_iso_8601_only(text: str) -> None:
    with pytest.raises(ValueError, match=r"--cutoff .*not an ISO 8601 date.*01/02/2024"):
        parse_iso_timestamp(text, "--cutoff")
    assert parse_iso_timestamp("2024-02-01", "--cutoff") == pd.Timestamp("2024-02-01")
    assert parse_iso_timestamp("2024-02-01T08:30+01:00", "--cutoff", "UTC") == \
        pd.Timestamp("2024-02-01 07:30")


# ------------------------------------------------------------------ identifiers
ids = st.lists(st.from_regex(r"0{1,3}[0-9]{1,4}", fullmatch=True), min_size=2, max_size=12,
               unique=True)


@FOLDER_SETTINGS
@given(ids)
def test_ids_with_leading_zeros_survive_to_features(tmp_path_factory, customer_ids) -> None:
    """'007' and '7' are two customers, and every id is written back exactly."""
    customer_ids = [*customer_ids, "7", "007"] if "007" not in customer_ids else customer_ids
    customer_ids = list(dict.fromkeys(customer_ids))
    folder = tmp_path_factory.mktemp("ids")
    write_tx(folder, {"customer_id": customer_ids, "ts": "2024-01-10",
                      "amount": [float(i + 1) for i in range(len(customer_ids))]})
    pd.DataFrame({"customer_id": customer_ids}).to_csv(folder / "customers.csv", index=False)
    data = load_folder(folder)
    assert sorted(data.transactions["customer_id"]) == sorted(customer_ids)
    feats = build_features(data, "2024-02-01")
    got = dict(zip(feats["customer_id"], feats["net_revenue_total"], strict=True))
    assert got == {c: float(i + 1) for i, c in enumerate(customer_ids)}


def test_ids_with_leading_zeros_survive_to_the_scores(tmp_path) -> None:
    from scoring_helpers import KEYS, SMALL

    from churnml.data.simulate import simulate
    from churnml.labels import build_panel
    from churnml.models import ChurnClassifier, LTVModel
    from churnml.scoring import score
    from churnml.scoring.loading import ScoringModels

    sim = simulate(300, seed=5)
    panel = build_panel(sim, ["2024-06-01"])
    X = panel[[c for c in panel.columns if c not in KEYS]]
    churn = ChurnClassifier(**SMALL).fit(X, panel["churned"], groups=panel["customer_id"])
    ltv = LTVModel(**SMALL).fit(X, panel["ltv"], groups=panel["customer_id"])
    id_text = {c: f"{c:06d}" for c in sim.customer_ids()}
    for name, table in sim.before("2024-10-01").tables().items():
        table = table.assign(customer_id=table["customer_id"].map(id_text))
        if "referred_by" in table:
            table["referred_by"] = table["referred_by"].map(id_text)
        table.to_csv(tmp_path / f"{name}.csv", index=False)
    data = load_folder(tmp_path)
    result = score(data, ScoringModels(churn, ltv, "churn", "ltv"),
                   cutoff="2024-10-01", scored_at="2024-10-02")
    scored = result.scores["customer_id"]
    assert scored.map(len).eq(6).all() and scored.str.startswith("0").all()
    assert set(scored) <= set(id_text.values())
    assert len(scored) > 100


def test_parquet_integer_ids_are_text_like_csv_ids(tmp_path) -> None:
    pd.DataFrame({"customer_id": [7, 8], "ts": ["2024-01-01", "2024-01-02"],
                  "amount": [1.0, 2.0]}).to_parquet(tmp_path / "transactions.parquet")
    pd.DataFrame({"customer_id": ["7", "8"], "country": ["DE", "FR"]}).to_csv(
        tmp_path / "customers.csv", index=False)
    data, notes = data_warnings(load_folder, tmp_path)
    assert data.transactions["customer_id"].tolist() == ["7", "8"]
    assert data.customers["customer_id"].tolist() == ["7", "8"]
    assert notes == []


def test_ids_that_barely_overlap_warn_with_the_share(tmp_path) -> None:
    write_tx(tmp_path, {"customer_id": ["C1", "C2", "C3", "C4"], "ts": "2024-01-01",
                        "amount": 1.0})
    pd.DataFrame({"customer_id": ["1", "2", "3", "C4"]}).to_csv(tmp_path / "customers.csv",
                                                               index=False)
    data, notes = data_warnings(load_folder, tmp_path)
    assert id_overlap(data.tables())["customers"] == 0.25
    assert len(notes) == 1 and "customers.customer_id: only 25% of the ids" in notes[0]


# ------------------------------------------------------------------ duplicates and extremes
@pytest.mark.parametrize("bad", ["inf", "-inf", "Infinity"])
def test_infinite_amounts_fail_with_rows_named(tmp_path, bad: str) -> None:
    write_tx(tmp_path, {"customer_id": ["a", "b", "c"], "ts": "2024-01-01",
                        "amount": ["1.5", bad, "2"]})
    with pytest.raises(DataValidationError, match=r"transactions\.amount: not a finite number "
                       r"\[1 row\(s\); e\.g\. row 1"):
        load_folder(tmp_path)


def test_amounts_beyond_the_exact_money_range_fail_and_the_bound_fits(tmp_path) -> None:
    digits, scale = map(int, re.findall(r"\d+", MONEY_DECIMAL))
    assert MAX_ABS_MONEY < 10.0 ** (digits - scale)  # the bound fits the feature SQL's type
    write_tx(tmp_path, {"customer_id": ["a", "b"], "ts": "2024-01-01",
                        "amount": [MAX_ABS_MONEY, 1e15]})
    with pytest.raises(DataValidationError, match=r"transactions\.amount: amount beyond the "
                       r"exact money range.*row 1"):
        load_folder(tmp_path)
    write_tx(tmp_path, {"customer_id": ["a", "a"], "ts": ["2024-01-01", "2024-01-02"],
                        "amount": [MAX_ABS_MONEY, -MAX_ABS_MONEY]})
    feats = build_features(load_folder(tmp_path), "2024-02-01")
    assert feats["spend_total"].tolist() == [MAX_ABS_MONEY]
    assert feats["net_revenue_total"].tolist() == [0.0]


def test_duplicate_rows_warn_with_count_and_can_be_dropped(tmp_path) -> None:
    rows = {"customer_id": ["a", "a", "b", "a"], "ts": "2024-01-05",
            "amount": [10.0, 10.0, 5.0, 10.0]}
    write_tx(tmp_path, rows)
    data, notes = data_warnings(load_folder, tmp_path)
    assert data.transactions["amount"].sum() == 35.0  # kept, but not silently
    assert len(notes) == 1 and "2 row(s) identical" in notes[0]
    assert "data.tables.transactions.drop_duplicates: true" in notes[0]
    data, notes = data_warnings(
        load_folder, tmp_path, {"transactions": TableSource(drop_duplicates=True)})
    assert data.transactions["amount"].sum() == 15.0
    assert data.transactions.index.tolist() == [0, 2]
    assert notes == ["transactions: dropped 2 row(s) identical to an earlier row "
                     "(drop_duplicates)"]


# ------------------------------------------------------------------ real-world shapes
def online_retail(folder: Path) -> None:
    """An order-line export: amount = Quantity x UnitPrice, lines without a customer."""
    write_tx(folder, {
        "InvoiceNo": ["536365", "536365", "536366", "C536367", "536368"],
        "CustomerID": ["17850", "17850", "13047", "17850", None],
        "InvoiceDate": ["2010-12-01 08:26", "2010-12-01 08:26", "2010-12-01 08:28",
                        "2010-12-02 09:00", "2010-12-02 10:00"],
        "Quantity": [6, 2, 3, -1, 4],
        "UnitPrice": [2.55, 7.65, 1.85, 2.55, 1.0],
    }, name="lines.csv")


LINES = TableSource(
    path="lines.csv", order_lines=True, drop_missing_ids=True,
    columns={"customer_id": "CustomerID", "ts": "InvoiceDate", "order_id": "InvoiceNo",
             "quantity": "Quantity"},
    expressions={"amount": "Quantity * UnitPrice"},
)


@pytest.mark.filterwarnings("ignore::churnml.errors.DataWarning")
def test_order_lines_with_an_amount_expression_become_orders(tmp_path) -> None:
    online_retail(tmp_path)
    data, notes = data_warnings(load_folder, tmp_path, {"transactions": LINES})
    t = data.transactions.set_index("order_id")
    assert t.loc["536365", "amount"] == pytest.approx(6 * 2.55 + 2 * 7.65)
    assert t.loc["536365", "quantity"] == 8
    assert t.loc["C536367", "amount"] == pytest.approx(-2.55)
    assert sorted(t.index) == ["536365", "536366", "C536367"]
    assert notes == ["transactions: dropped 1 row(s) without a customer id (drop_missing_ids)"]
    # without order_lines the repeated order number is an error that names the option
    plain = LINES.model_copy(update={"order_lines": False})
    with pytest.raises(DataValidationError, match="order_lines: true"):
        load_folder(tmp_path, {"transactions": plain})


def test_missing_ids_are_refused_unless_dropped(tmp_path) -> None:
    online_retail(tmp_path)
    keep = LINES.model_copy(update={"drop_missing_ids": False})
    with pytest.raises(DataValidationError, match=r"customer_id: missing id \(set "
                       r"drop_missing_ids: true.*row 4"):
        load_folder(tmp_path, {"transactions": keep})


@pytest.mark.parametrize("sql", ["(SELECT 1)", "read_csv('/etc/passwd')", "Quantity * Pricee"])
def test_amount_expressions_are_checked_against_the_allow_list(tmp_path, sql: str) -> None:
    online_retail(tmp_path)
    bad = LINES.model_copy(update={"expressions": {"amount": sql}})
    with pytest.raises(ConfigError, match=r"expressions\.amount"):
        load_folder(tmp_path, {"transactions": bad})


def test_count_only_logs_count_purchases(tmp_path) -> None:
    write_tx(tmp_path, {"customer_id": ["a", "a", "b"],
                        "ts": ["2024-01-01", "2024-01-09", "2024-01-03"]})
    data, notes = data_warnings(load_folder, tmp_path, currency="EUR")
    assert data.currency == PURCHASES_UNIT == "purchases"
    assert data.transactions["amount"].tolist() == [1.0, 1.0, 1.0]
    assert "purchases" in notes[0]
    feats = build_features(data, "2024-02-01")
    assert feats["net_revenue_total"].tolist() == feats["purchases_total"].tolist() == [2, 1]


# ------------------------------------------------------------------ file errors
def test_empty_file_names_the_file(tmp_path) -> None:
    (tmp_path / "transactions.csv").write_text("")
    with pytest.raises(DataValidationError, match=r"transactions: .*transactions\.csv: the "
                       r"file is empty"):
        load_folder(tmp_path)
    (tmp_path / "transactions.csv").write_text("customer_id,ts,amount\n")
    with pytest.raises(DataValidationError, match=r"transactions\.csv: the file has a header "
                       "but no rows"):
        load_folder(tmp_path)


def test_non_utf8_file_names_the_file_and_the_encoding_option(tmp_path) -> None:
    write_tx(tmp_path, {"customer_id": ["Müller", "b"], "ts": "2024-01-01", "amount": 1.0},
             encoding="latin-1")
    with pytest.raises(DataValidationError, match=r"transactions\.csv: not utf-8 text.*"
                       r"csv_options: \{encoding: latin-1\}"):
        load_folder(tmp_path)
    data = load_folder(tmp_path, {"transactions": TableSource(
        csv_options={"encoding": "latin-1"})})
    assert data.transactions["customer_id"].tolist() == ["Müller", "b"]


def test_csv_option_typo_is_a_config_error(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  dir: .\n  tables:\n    transactions:\n"
                   "      csv_options: {separator: ';'}\n")
    with pytest.raises(ConfigError, match=r"csv_options.*unknown pandas\.read_csv option "
                       r"'separator'"):
        load_config(cfg)


def test_csv_option_typo_suggests_the_option_meant(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  dir: .\n  tables:\n    transactions:\n"
                   "      csv_options: {seperator: ';'}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    assert ("data.tables.transactions.csv_options: unknown pandas.read_csv option "
            "'seperator' (did you mean 'sep' or 'delimiter'?)") in str(caught.value)
    assert "iterator" not in str(caught.value)
    cfg.write_text("data:\n  dir: .\n  tables:\n    transactions:\n"
                   "      csv_options: {encodng: latin-1}\n")
    with pytest.raises(ConfigError, match=r"'encodng' \(did you mean 'encoding'\?\)"):
        load_config(cfg)


# ------------------------------------------------------------------ end of the data
def test_data_end_is_configured_or_the_latest_timestamp_of_any_table(tmp_path) -> None:
    write_tx(tmp_path, {"customer_id": ["a", "b"], "ts": ["2024-01-05", "2024-03-30 10:00"],
                        "amount": 1.0})
    pd.DataFrame({"customer_id": ["a"], "ts": ["2024-04-02 09:00"], "event_type": ["visit"]}
                 ).to_csv(tmp_path / "events.csv", index=False)
    inferred = load_data(DataConfig(dir=str(tmp_path)))
    assert data_end(inferred) == pd.Timestamp("2024-04-03")  # the events run later
    configured = load_data(DataConfig(dir=str(tmp_path), end="2024-05-01"))
    assert data_end(configured) == default_cutoff(configured) == pd.Timestamp("2024-05-01")
    assert cutoff_warnings(configured, "2024-04-15") == []
    assert "after the end of the data" in cutoff_warnings(configured, "2100-01-01")[0]
    assert "before the start of the data" in cutoff_warnings(configured, "2023-01-01")[0]
    assert cutoff_warnings(configured, "2024-05-02") == [
        "cutoff 2024-05-02 00:00:00 lies after the end of the data (2024-05-01 00:00:00): "
        "every customer looks up to 1 day more inactive than the data show; score at the data "
        "end (the default) or set data.end"]
    _, notes = data_warnings(load_data, DataConfig(dir=str(tmp_path), end="2024-04-01"))
    assert notes == ["events: 1 row(s) at or after data.end (2024-04-01 00:00:00), e.g. "
                     "2024-04-02 09:00:00: scores at the data end ignore them; move data.end "
                     "or drop those rows"]


def test_configured_data_end_keeps_the_last_training_cutoff(tmp_path) -> None:
    from churnml.config import ChurnConfig

    write_tx(tmp_path, {"customer_id": ["a", "b", "a"],
                        "ts": ["2024-01-05", "2024-02-10", "2024-06-28"], "amount": 1.0})
    churn = ChurnConfig(horizon_days=30)
    inferred = labelled_cutoffs(load_data(DataConfig(dir=str(tmp_path))), churn)
    complete = labelled_cutoffs(load_data(DataConfig(dir=str(tmp_path), end="2024-07-01")),
                                churn)
    assert inferred[-1] == pd.Timestamp("2024-05-01")
    assert complete[-1] == pd.Timestamp("2024-06-01")  # June's label window is covered


def test_a_day_without_records_after_the_last_one_is_not_inactivity(tmp_path) -> None:
    """The inferred end (midnight after the last record) is a lower bound: a cutoff one day
    later, or as many days later as the data's longest silent stretch, is not suspicious."""
    write_tx(tmp_path, {"customer_id": ["a", "b", "a", "b"],
                        "ts": ["2024-03-01 09:00", "2024-03-04 10:00", "2024-03-05 11:00",
                               "2024-03-30 10:00"], "amount": 1.0})
    data = load_data(DataConfig(dir=str(tmp_path)))
    # recorded days 03-01, 03-04, 03-05, 03-30: the longest silent run is 03-06 .. 03-29
    assert quiet_days(data) == 24
    assert data_end(data) == pd.Timestamp("2024-03-31")
    assert cutoff_warnings(data, "2024-04-01") == []  # the day after the inferred end
    assert cutoff_warnings(data, "2024-04-24") == []  # 24 silent days happened before
    late = cutoff_warnings(data, "2024-04-25 12:00")
    assert late == ["cutoff 2024-04-25 12:00:00 lies after the end of the data (2024-03-31 "
                    "00:00:00): every customer looks up to 26 days more inactive than the "
                    "data show; score at the data end (the default) or set data.end"]


def test_cutoff_before_any_data_is_a_clear_error(tmp_path) -> None:
    write_tx(tmp_path, {"customer_id": ["a"], "ts": ["2024-01-05"], "amount": 1.0})
    data = load_data(DataConfig(dir=str(tmp_path)))
    with pytest.raises(ChurnmlError) as caught:
        check_cutoff(data, "2000-01-01")
    assert str(caught.value) == (
        "cutoff 2000-01-01 00:00:00 is at or before the first record of the data "
        "(2024-01-05 00:00:00): no customer is known then, so there is nothing to score; "
        "choose a cutoff after 2024-01-05 (the data end, 2024-01-06 00:00:00, is the default)")
    check_cutoff(data, "2024-01-06")  # after the first record: fine
