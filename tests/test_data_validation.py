"""Each validation rule: the error names the table, the column and the rows at fault."""

from __future__ import annotations

import pandas as pd
import pytest

from churnml import CustomerData, DataValidationError
from churnml.config import ValidationConfig


def tx(**overrides) -> pd.DataFrame:
    base = {
        "customer_id": [1, 2, 3, 4],
        "ts": ["2024-01-01", "2024-01-02 10:00", "2024-01-03", "2024-01-04"],
        "amount": [10.0, 20.0, -5.0, 7.5],
        "order_id": ["a", "b", "c", "d"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def raises(match_parts: list[str], **tables) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        CustomerData.from_frames(**tables)
    msg = str(info.value)
    for part in match_parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return info.value


def test_valid_tables_normalise_dtypes_and_keep_returns() -> None:
    data = CustomerData.from_frames(tx())
    t = data.transactions
    assert str(t["ts"].dtype) == "datetime64[us]"
    assert t["amount"].dtype == "float64"
    assert t["amount"].tolist() == [10.0, 20.0, -5.0, 7.5]  # the return is kept
    assert t.loc[1, "ts"] == pd.Timestamp("2024-01-02 10:00")


def test_missing_required_column() -> None:
    err = raises(["transactions.ts", "missing required column", "customer_id, amount"],
                 transactions=tx().drop(columns="ts"))
    assert err.table == "transactions" and err.column == "ts"


def test_null_customer_id() -> None:
    err = raises(["transactions.customer_id", "missing id", "row 2"],
                 transactions=tx(customer_id=[1, 2, None, 4]))
    assert err.rows == [2]


def test_unparseable_timestamp_names_rows_and_values() -> None:
    err = raises(["transactions.ts", "unparseable timestamp", "row 1 ('yesterday')",
                  "row 3 ('2024-13-45')", "2 row(s)"],
                 transactions=tx(ts=["2024-01-01", "yesterday", "2024-01-03", "2024-13-45"]))
    assert err.rows == [1, 3]


def test_timestamp_out_of_range() -> None:
    raises(["transactions.ts", "out of range", "row 0"],
           transactions=tx(ts=["1899-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]))
    future = (pd.Timestamp.now() + pd.Timedelta(days=30)).strftime("%Y-%m-%d")
    raises(["transactions.ts", "out of range", "row 3"],
           transactions=tx(ts=["2024-01-01", "2024-01-02", "2024-01-03", future]))


def test_non_numeric_amount() -> None:
    err = raises(["transactions.amount", "not numeric", "row 1 ('12,50 EUR')"],
                 transactions=tx(amount=[1.0, "12,50 EUR", 3.0, 4.0]))
    assert err.rows == [1]


def test_duplicate_order_ids() -> None:
    err = raises(["transactions.order_id", "duplicate id", "row 0", "row 2"],
                 transactions=tx(order_id=["a", "b", "a", "d"]))
    assert err.rows == [0, 2]


def test_duplicate_customer_in_customers_table() -> None:
    customers = pd.DataFrame({"customer_id": [1, 2, 2]})
    raises(["customers.customer_id", "duplicate id", "row 1", "row 2"],
           transactions=tx(), customers=customers)


@pytest.mark.parametrize(
    ("kind", "score", "range_text"),
    [("nps", 11, "[0, 10]"), ("csat", 0, "[1, 5]"), ("ces", 8, "[1, 7]"), ("nps", -1, "[0, 10]")],
)
def test_survey_score_outside_its_kind_range(kind: str, score: float, range_text: str) -> None:
    surveys = pd.DataFrame({
        "customer_id": [1, 2], "ts": ["2024-01-05", "2024-01-06"],
        "kind": ["csat", kind], "score": [5, score],
    })
    err = raises(["surveys.score", f"{kind} score outside {range_text}", "row 1"],
                 transactions=tx(), surveys=surveys)
    assert err.rows == [1]


def test_unknown_survey_kind() -> None:
    surveys = pd.DataFrame({"customer_id": [1], "ts": ["2024-01-05"], "kind": ["stars"],
                            "score": [4]})
    raises(["surveys.kind", "unknown survey kind", "row 0 ('stars')"],
           transactions=tx(), surveys=surveys)


def test_subscription_ending_before_start() -> None:
    subs = pd.DataFrame({"customer_id": [1, 2], "start_ts": ["2024-01-01", "2024-02-01"],
                         "end_ts": [None, "2024-01-15"]})
    raises(["subscriptions.end_ts", "ends before it starts", "row 1"],
           transactions=tx(), subscriptions=subs)


def test_null_end_ts_is_an_active_subscription() -> None:
    subs = pd.DataFrame({"customer_id": [1], "start_ts": ["2024-01-01"], "end_ts": [None]})
    data = CustomerData.from_frames(tx(), subscriptions=subs)
    assert data.subscriptions["end_ts"].isna().all()


def test_negative_amounts_can_be_forbidden_by_config() -> None:
    with pytest.raises(DataValidationError, match=r"transactions\.amount: negative amount"):
        CustomerData.from_frames(tx(), validation=ValidationConfig(allow_negative_amounts=False))


def test_all_problems_reported_together() -> None:
    err = raises(["transactions.customer_id", "and 1 more problem", "transactions.amount"],
                 transactions=tx(customer_id=[None, 2, 3, 4], amount=[1, 2, "x", 4]))
    assert len(err.others) == 1


def test_aware_timestamps_convert_to_business_time_zone() -> None:
    t = tx(ts=["2024-01-01T23:30:00+00:00", "2024-01-02T10:00:00+00:00",
               "2024-01-03T00:00:00+00:00", "2024-01-04T00:00:00+00:00"])
    data = CustomerData.from_frames(t, timezone="Europe/Berlin")
    assert data.transactions.loc[0, "ts"] == pd.Timestamp("2024-01-02 00:30")  # UTC+1


def test_string_and_integer_ids_are_unified() -> None:
    customers = pd.DataFrame({"customer_id": ["1", "2", "3", "4"]})
    data = CustomerData.from_frames(tx(), customers=customers)
    assert data.transactions["customer_id"].tolist() == ["1", "2", "3", "4"]
    assert pd.api.types.is_string_dtype(data.customers["customer_id"])


def test_before_keeps_only_the_past_and_hides_future_subscription_ends() -> None:
    subs = pd.DataFrame({"customer_id": [1, 2, 3], "start_ts": ["2024-01-01"] * 2 + ["2024-03-01"],
                         "end_ts": ["2024-01-02", "2024-02-01", None]})
    data = CustomerData.from_frames(tx(), subscriptions=subs)
    past = data.before("2024-01-03")
    assert past.transactions["order_id"].tolist() == ["a", "b"]
    assert past.subscriptions["customer_id"].tolist() == [1, 2]
    assert past.subscriptions["end_ts"].isna().tolist() == [False, True]
