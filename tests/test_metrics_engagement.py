"""Active users (MAU), DAU, stickiness, engagement rate and referrals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_metrics_support import (
    members,
    period_grid,
    purchases,
    random_data,
    simulated,
    tx_frame,
)

from churnml import CustomerData
from churnml.metrics import customer_engagement, engagement_kpis, stickiness

JAN = pd.Timestamp("2024-01-01")


def app() -> CustomerData:
    tx = tx_frame([(2, "2024-01-01 09:00", 10.0), (1, "2024-01-03 10:00", 10.0)])
    ev = pd.DataFrame({
        "customer_id": [1, 1, 1, 3, 1],
        "ts": pd.to_datetime(["2024-01-01 08:00", "2024-01-01 18:00", "2024-01-02 07:00",
                              "2024-01-31 23:00", "2024-02-01 10:00"]),
        "event_type": ["session", "session", "email_open", "session", "session"],
    })
    customers = pd.DataFrame({
        "customer_id": [1, 2, 3], "plan": ["premium", "basic", "basic"],
        "referred_by": pd.array([None, 1, None], dtype="Int64"),
    })
    return CustomerData.from_frames(tx, events=ev, customers=customers)


def test_mau_dau_stickiness_by_hand() -> None:
    jan = engagement_kpis(app(), "month").set_index("period").loc[JAN]
    assert jan["complete"] and jan["active_users"] == 3
    # user-days: 1 on 1, 2 and 3 Jan; 2 on 1 Jan; 3 on 31 Jan
    assert jan["dau_mean"] == pytest.approx(5 / 31)
    assert jan["stickiness"] == pytest.approx(100 * (5 / 31) / 3)
    assert stickiness(5 / 31, 3) == pytest.approx(jan["stickiness"])


def test_engagement_and_referral_rates_by_hand() -> None:
    jan = engagement_kpis(app(), "month").set_index("period").loc[JAN]
    # base at 1 Feb: buyers 1 and 2; only 1 had an event in January
    assert (jan["customers_end"], jan["engaged_customers"]) == (2, 1)
    assert jan["engagement_rate"] == pytest.approx(50.0)
    assert (jan["acquired_customers"], jan["referred_customers"]) == (2, 1)
    assert jan["referral_rate"] == pytest.approx(50.0) and jan["referrals_made"] == 1
    seg = engagement_kpis(app(), "month", by="plan").set_index(["period", "plan"])
    assert seg.loc[(JAN, "basic"), "referred_customers"] == 1  # the referee is basic
    assert seg.loc[(JAN, "basic"), "referrals_made"] == 0
    assert seg.loc[(JAN, "premium"), "referrals_made"] == 1  # the referrer is premium
    assert seg.loc[(JAN, "basic"), "referral_rate"] == 100.0


def test_matches_plain_pandas_on_simulated_data() -> None:
    data = simulated()
    act = pd.concat([data.transactions[["customer_id", "ts"]],
                     data.events[["customer_id", "ts"]]])
    act = act.assign(period=act["ts"].dt.to_period("M").dt.start_time.astype("datetime64[us]"),
                     day=act["ts"].dt.normalize())
    grid = period_grid(data, "month").set_index("period")
    days = (grid["period_end"] - grid.index).dt.days
    ev = data.events.assign(period=lambda d: d["ts"].dt.to_period("M").dt.start_time)
    first = purchases(data).groupby("customer_id")["ts"].min()
    acquired = first.dt.to_period("M").dt.start_time
    referred = data.customers.set_index("customer_id")["referred_by"].notna()
    k = engagement_kpis(data, "month").set_index("period")
    for p, row in grid.iterrows():
        in_p = act[act["period"] == p]
        assert k.loc[p, "active_users"] == in_p["customer_id"].nunique()
        dau = in_p.groupby("day")["customer_id"].nunique().sum() / days[p]
        assert k.loc[p, "dau_mean"] == pytest.approx(dau)
        base = members(data, row["period_end"])
        engaged = base & set(ev.loc[ev["period"] == p, "customer_id"])
        assert k.loc[p, "engagement_rate"] == pytest.approx(100 * len(engaged) / len(base))
        new = acquired.index[acquired == p]
        assert k.loc[p, "referral_rate"] == pytest.approx(100 * referred[new].mean())


@pytest.mark.parametrize("by", ["acquisition_channel", "cohort"])
def test_segment_counts_sum_to_totals(by: str) -> None:
    data = simulated()
    cols = ["active_users", "engaged_customers", "referred_customers", "referrals_made"]
    seg = engagement_kpis(data, "quarter", by=by).groupby("period")[cols].sum()
    total = engagement_kpis(data, "quarter").set_index("period")[cols]
    pd.testing.assert_frame_equal(seg, total, check_dtype=False)


def test_customer_engagement_matches_plain_pandas() -> None:
    data = simulated()
    as_of = pd.Timestamp("2024-02-01")
    ce = customer_engagement(data, as_of).set_index("customer_id")
    ev = data.events[data.events["ts"] < as_of]
    per_type = ev.groupby(["customer_id", "event_type"]).size().unstack(fill_value=0)
    for t in data.events["event_type"].unique():
        expected = per_type[t].reindex(ce.index, fill_value=0) if t in per_type else 0
        assert (ce[f"events_{t}"] == expected).all()
    assert (ce["events_total"] == ev.groupby("customer_id").size()
            .reindex(ce.index, fill_value=0)).all()
    cust = data.customers
    known = cust[cust["signup_ts"] < as_of]
    made = known["referred_by"].dropna().astype("int64").value_counts()
    assert (ce["referrals_made"] == made.reindex(ce.index, fill_value=0)).all()
    assert ce["referrals_made"].sum() > 0


def test_without_events_engagement_rate_is_nan() -> None:
    data = CustomerData.from_frames(tx_frame([(1, "2024-01-05", 3.0), (2, "2024-02-05", 3.0)]))
    k = engagement_kpis(data, "month")
    assert k["engagement_rate"].isna().all() and k["referral_rate"].isna().all()
    assert list(k["active_users"]) == [1, 1]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_rates_bounded(seed: int) -> None:
    data = random_data(seed)
    k = engagement_kpis(data, "week", by="plan")
    for col in ("stickiness", "engagement_rate", "referral_rate"):
        v = k[col].to_numpy()
        assert (np.isnan(v) | ((v >= 0) & (v <= 100))).all(), col
    assert (k["dau_mean"] <= k["active_users"]).all()
