"""Customer retention rate, churn rate, active customers and base membership."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_metrics_support import (
    compare_counts,
    members,
    period_grid,
    purchases,
    random_data,
    ref_retention,
    shuffled,
    simulated,
    ts,
    tx_frame,
)

from churnml import CustomerData, DataValidationError
from churnml.config import ChurnConfig
from churnml.data.datasets import load_cdnow
from churnml.metrics import (
    active_customers,
    base_members,
    churn_rate,
    customer_retention_rate,
    retention_kpis,
)

COUNTS = ["customers_start", "customers_end", "new_customers", "reactivated_customers",
          "retained", "lost", "active_customers"]


# ----------------------------------------------------------------------------- worked examples


def test_pure_helpers_worked_example() -> None:
    assert customer_retention_rate(227, 30, 200) == pytest.approx(98.5)
    assert churn_rate(3, 200) == pytest.approx(1.5)
    assert math.isnan(customer_retention_rate(10, 10, 0))
    assert math.isnan(churn_rate(0, 0))
    got = customer_retention_rate(np.array([227, 5]), np.array([30, 5]), np.array([200, 0]))
    assert got[0] == pytest.approx(98.5) and np.isnan(got[1])


def crr_dataset() -> CustomerData:
    """200 customers in the base on 1 March 2024; 197 stay, 3 lapse; 30 new join in March."""
    stay = [(i, "2024-02-10", 20.0) for i in range(1, 198)]
    lapse = [(i, "2023-12-15", 20.0) for i in range(198, 201)]  # member until 14 March
    new = [(i, "2024-03-10", 20.0) for i in range(201, 231)]
    later = [(1, "2024-04-20", 20.0)]  # data run past March: March is complete
    return CustomerData.from_frames(tx_frame(stay + lapse + new + later))


def test_crr_worked_example_on_a_real_dataset() -> None:
    k = retention_kpis(crr_dataset(), "month").set_index("period")
    march = k.loc[pd.Timestamp("2024-03-01")]
    assert march["complete"]
    assert (march["customers_start"], march["customers_end"]) == (200, 227)
    assert (march["new_customers"], march["reactivated_customers"]) == (30, 0)
    assert (march["retained"], march["lost"]) == (197, 3)
    assert march["retention_rate"] == pytest.approx(98.5)
    assert march["churn_rate"] == pytest.approx(1.5)
    assert march["active_customers"] == 30
    # December: nobody in the base at its start -> NaN, not an error or inf
    dec = k.loc[pd.Timestamp("2023-12-01")]
    assert dec["customers_start"] == 0 and np.isnan(dec["retention_rate"])
    assert np.isnan(dec["churn_rate"])
    assert list(k.index) == ts("2023-12-01", "2024-01-01", "2024-02-01", "2024-03-01",
                               "2024-04-01")
    assert not k["complete"].iloc[-1]


def test_cohort_segments_sum_to_totals_on_transactions_only() -> None:
    data = crr_dataset()
    seg = retention_kpis(data, "month", by="cohort")
    total = retention_kpis(data, "month").set_index("period")[COUNTS]
    pd.testing.assert_frame_equal(seg.groupby("period")[COUNTS].sum(), total)
    march = seg[seg["period"] == pd.Timestamp("2024-03-01")].set_index("cohort")
    assert march.loc[pd.Timestamp("2024-03-01"), "new_customers"] == 30
    assert march.loc[pd.Timestamp("2024-02-01"), "retained"] == 197


def test_reactivated_customer_is_not_new() -> None:
    # customer 1 buys in January, lapses (horizon 30 days), comes back in April
    data = CustomerData.from_frames(tx_frame([
        (1, "2024-01-05", 10.0), (1, "2024-04-10", 10.0), (2, "2024-04-11", 10.0),
        (3, "2024-05-31", 10.0),
    ]))
    k = retention_kpis(data, "month", churn=ChurnConfig(horizon_days=30)).set_index("period")
    april = k.loc[pd.Timestamp("2024-04-01")]
    assert (april["customers_start"], april["customers_end"]) == (0, 2)
    assert (april["new_customers"], april["reactivated_customers"]) == (1, 1)
    feb = k.loc[pd.Timestamp("2024-02-01")]
    assert (feb["customers_start"], feb["customers_end"], feb["lost"]) == (1, 0, 1)
    assert feb["churn_rate"] == 100.0


def test_membership_window_is_half_open() -> None:
    # a purchase at t makes a member on (t, t + horizon]: not at t, still at t + 90 days
    data = CustomerData.from_frames(tx_frame([(1, "2024-01-01", 1.0), (2, "2024-06-01", 1.0)]))
    assert list(base_members(data, "2024-01-01")) == []
    assert list(base_members(data, "2024-01-01 00:00:01")) == [1]
    assert list(base_members(data, pd.Timestamp("2024-01-01") + pd.Timedelta(days=90))) == [1]
    later = pd.Timestamp("2024-01-01") + pd.Timedelta(days=90, microseconds=1)
    assert list(base_members(data, later)) == []


def test_returns_are_not_target_actions() -> None:
    data = CustomerData.from_frames(tx_frame([
        (1, "2024-01-05", 10.0), (2, "2024-01-06", -10.0), (2, "2024-02-06", 0.0),
    ]))
    k = retention_kpis(data, "month").set_index("period")
    assert k.loc[pd.Timestamp("2024-01-01"), "active_customers"] == 1
    assert k.loc[pd.Timestamp("2024-02-01"), "customers_start"] == 1


def test_cdnow_first_month_has_nan_retention_not_an_error() -> None:
    k = retention_kpis(load_cdnow(), "month")
    assert k["customers_start"].iloc[0] == 0
    assert np.isnan(k["retention_rate"].iloc[0]) and np.isnan(k["churn_rate"].iloc[0])
    rest = k.iloc[1:]
    assert (rest["customers_start"] > 0).all()
    assert np.isfinite(rest[["retention_rate", "churn_rate"]].to_numpy()).all()
    assert len(k) == 18 and k["complete"].all()  # 1997-01 .. 1998-06, data end 30 June


# ----------------------------------------------------------------------------- contractual


def subscriptions_dataset() -> CustomerData:
    subs = pd.DataFrame({
        "customer_id": [1, 2, 3, 4, 4],
        "start_ts": pd.to_datetime(["2024-01-01", "2024-01-15", "2024-02-05", "2024-01-01",
                                    "2024-02-20"]),
        "end_ts": pd.to_datetime([None, "2024-02-10", "2024-03-01", "2024-01-20", None]),
    })
    tx = tx_frame([(1, "2024-01-01", 9.0), (2, "2024-01-15", 9.0), (3, "2024-02-05", 9.0),
                   (4, "2024-01-01", 9.0), (4, "2024-02-20", 9.0), (1, "2024-03-31", 9.0)])
    return CustomerData.from_frames(tx, subscriptions=subs)


def test_contractual_membership_on_hand_built_subscriptions() -> None:
    data = subscriptions_dataset()
    k = retention_kpis(data, "month", churn=ChurnConfig(kind="contractual")).set_index("period")
    # members at 1 Jan: 1 and 4 (start <= t); 1 Feb: 1, 2; 1 Mar: 1, 4 (3 ends exactly then)
    jan, feb, mar = (k.loc[pd.Timestamp(f"2024-0{m}-01")] for m in (1, 2, 3))
    assert (jan["customers_start"], jan["customers_end"]) == (2, 2)
    assert (jan["retained"], jan["lost"], jan["new_customers"]) == (1, 1, 1)  # 4 left, 2 new
    assert jan["retention_rate"] == pytest.approx(50.0)
    assert (feb["customers_start"], feb["customers_end"]) == (2, 2)
    assert (feb["new_customers"], feb["reactivated_customers"]) == (0, 1)  # 3 gone by 1 Mar
    assert (feb["retained"], feb["lost"]) == (1, 1)
    assert (mar["customers_start"], mar["customers_end"], mar["lost"]) == (2, 2, 0)
    assert list(base_members(data, "2024-02-06", ChurnConfig(kind="contractual"))) == [1, 2, 3]


def test_contractual_needs_subscriptions() -> None:
    with pytest.raises(DataValidationError, match="subscriptions"):
        retention_kpis(crr_dataset(), churn=ChurnConfig(kind="contractual"))


# ----------------------------------------------------------------------------- vs plain pandas


@pytest.mark.parametrize("period,by,small", [
    ("month", None, False), ("quarter", "plan", False), ("month", "cohort", False),
    ("week", None, True), ("day", "plan", True), ("year", "cohort", True),
])
def test_matches_plain_pandas(period: str, by: str | None, small: bool) -> None:
    data = random_data(5, n_customers=60) if small else simulated()
    res = retention_kpis(data, period, by=by)
    compare_counts(res, ref_retention(data, period, by), by, COUNTS)
    assert list(res["period"].drop_duplicates()) == list(period_grid(data, period)["period"])
    expected_crr = 100 * res["retained"] / res["customers_start"].replace(0, np.nan)
    np.testing.assert_allclose(res["retention_rate"], expected_crr)


def test_contractual_matches_plain_pandas_on_simulated_data() -> None:
    data = simulated(contractual=True)
    churn = ChurnConfig(kind="contractual")
    res = retention_kpis(data, "month", churn=churn)
    compare_counts(res, ref_retention(data, "month", contractual=True), None, COUNTS)
    at = pd.Timestamp("2024-03-15 12:00")
    assert set(base_members(data, at, churn)) == members(data, at, contractual=True)


def test_event_target_action_defines_membership() -> None:
    data = simulated()
    churn = ChurnConfig(target_action="session", horizon_days=30)
    at = pd.Timestamp("2024-06-01")
    ev = data.events
    expected = set(ev.loc[(ev["event_type"] == "session") & (ev["ts"] < at)
                          & (ev["ts"] >= at - pd.Timedelta(days=30)), "customer_id"])
    assert set(base_members(data, at, churn)) == expected
    act = active_customers(data, "quarter", churn=churn).set_index("period")["active_customers"]
    q = ev[ev["event_type"] == "session"]
    ref = q.groupby(q["ts"].dt.to_period("Q").dt.start_time)["customer_id"].nunique()
    assert act.to_dict() == {k.as_unit("us"): v for k, v in ref.items()}


def test_active_customers_and_segment_sums() -> None:
    data = simulated()
    p = purchases(data)
    res = active_customers(data, "month").set_index("period")["active_customers"]
    ref = p.groupby(p["ts"].dt.to_period("M").dt.start_time)["customer_id"].nunique()
    assert res.to_dict() == {k.as_unit("us"): v for k, v in ref.items()}
    for by in ("plan", "country", "cohort"):
        seg = retention_kpis(data, "month", by=by).groupby("period")[COUNTS].sum()
        total = retention_kpis(data, "month").set_index("period")[COUNTS]
        pd.testing.assert_frame_equal(seg, total, check_dtype=False)


# ----------------------------------------------------------------------------- properties


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), horizon=st.integers(5, 120),
       period=st.sampled_from(["week", "month", "quarter"]))
def test_rates_and_identities_hold_on_random_data(seed: int, horizon: int, period: str) -> None:
    data = random_data(seed)
    k = retention_kpis(data, period, churn=ChurnConfig(horizon_days=horizon))
    rates = k[["retention_rate", "churn_rate"]].to_numpy()
    ok = np.isnan(rates) | ((rates >= 0) & (rates <= 100))
    assert ok.all()
    has_base = k["customers_start"] > 0
    np.testing.assert_allclose(k.loc[has_base, "retention_rate"] + k.loc[has_base, "churn_rate"],
                               100.0)
    assert k.loc[~has_base, ["retention_rate", "churn_rate"]].isna().all().all()
    n = k["new_customers"] + k["reactivated_customers"]
    assert (k["retained"] == k["customers_end"] - n).all()
    assert (k["lost"] == k["customers_start"] - k["retained"]).all()
    assert (k[["new_customers", "reactivated_customers", "lost"]] >= 0).all().all()
    # E of one complete period is S of the next
    assert (k["customers_end"].iloc[:-1].to_numpy() == k["customers_start"].iloc[1:]).all()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_shuffling_rows_changes_nothing(seed: int) -> None:
    data = random_data(seed)
    a = retention_kpis(data, "month", by="plan")
    b = retention_kpis(shuffled(data, seed % 1000), "month", by="plan")
    pd.testing.assert_frame_equal(a, b)


# ----------------------------------------------------------------------------- errors


def test_bad_arguments_give_clear_errors() -> None:
    data = crr_dataset()
    with pytest.raises(ValueError, match="period must be one of"):
        retention_kpis(data, "fortnight")
    with pytest.raises(DataValidationError, match=r"customers\.plan: table is required"):
        retention_kpis(data, by="plan")
    with_customers = CustomerData.from_frames(
        data.transactions, customers=pd.DataFrame({"customer_id": [1, 2]})
    )
    with pytest.raises(DataValidationError, match=r"customers\.plan: column is required"):
        retention_kpis(with_customers, by="plan")
    with pytest.raises(DataValidationError, match=r"events\.event_type"):
        retention_kpis(data, churn=ChurnConfig(target_action="login"))
