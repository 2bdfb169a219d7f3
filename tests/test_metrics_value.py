"""Revenue, orders, AOV, ARPU, repeat purchase rate and LTV."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_metrics_support import random_data, simulated, tx_frame

from churnml import CustomerData
from churnml.metrics import (
    annual_churn_rate,
    arpu,
    average_order_value,
    customer_value,
    expected_lifetime_years,
    ltv,
    repeat_purchase_rate,
    retention_kpis,
    value_kpis,
)

JAN = pd.Timestamp("2024-01-01")


def test_ltv_worked_example() -> None:
    assert ltv(50.0, 4.0, 3.0) == pytest.approx(600.0)
    # 10 % monthly churn -> 71.76 % a year -> 1.39 years expected
    annual = annual_churn_rate(10.0, 12)
    assert annual == pytest.approx(100 * (1 - 0.9**12))
    assert expected_lifetime_years(annual) == pytest.approx(1 / (1 - 0.9**12))
    assert math.isnan(expected_lifetime_years(annual_churn_rate(0.0, 12)))
    assert math.isnan(average_order_value(10.0, 0))
    assert arpu(220.0, 3) == pytest.approx(73.3333333)
    assert repeat_purchase_rate(2, 3) == pytest.approx(66.6666667)


def shop() -> CustomerData:
    return CustomerData.from_frames(tx_frame([
        (1, "2024-01-05", 100.0), (1, "2024-01-20", 50.0),
        (2, "2023-12-15", 30.0), (2, "2024-01-10", 70.0),
        (3, "2024-01-12", 40.0), (3, "2024-01-15", -40.0),
        (4, "2024-02-02", 20.0),
    ]))


def test_arpu_and_repeat_purchase_rate_by_hand() -> None:
    jan = value_kpis(shop(), "month").set_index("period").loc[JAN]
    assert jan["revenue"] == pytest.approx(220.0)
    assert jan["gross_revenue"] == pytest.approx(260.0)
    assert jan["returns"] == pytest.approx(40.0)
    assert (jan["orders"], jan["purchasers"], jan["active_customers"]) == (4, 3, 3)
    assert jan["aov"] == pytest.approx(65.0)
    assert jan["arpu"] == pytest.approx(220.0 / 3)
    assert jan["repeat_purchasers"] == 2  # 1 (two in January) and 2 (one in December)
    assert jan["repeat_purchase_rate"] == pytest.approx(200.0 / 3)
    assert jan["purchases_per_customer"] == pytest.approx(4 / 3)
    assert jan["purchases_per_year"] == pytest.approx(16.0)


def test_ltv_column_follows_its_formula() -> None:
    data = simulated()
    k = value_kpis(data, "month")
    churn = retention_kpis(data, "month")["churn_rate"]
    years = 1 / (1 - (1 - churn / 100) ** 12)
    expected = k["aov"] * k["orders"] / k["active_customers"] * 12 * years
    np.testing.assert_allclose(k["ltv"], expected.replace([np.inf], np.nan))
    # undefined where churn is (S = 0 in the first month) or is 0 (horizon > months 2-3)
    undefined = churn.isna() | (churn == 0)
    assert list(undefined[:4]) == [True, True, True, False]
    assert k["ltv"].isna().equals(undefined)


def test_matches_plain_pandas_on_simulated_data() -> None:
    data = simulated()
    tx = data.transactions.assign(period=lambda d: d["ts"].dt.to_period("M").dt.start_time)
    buy = tx[tx["amount"] > 0]
    ref = pd.DataFrame({
        "revenue": tx.groupby("period")["amount"].sum(),
        "gross_revenue": buy.groupby("period")["amount"].sum(),
        "returns": -tx[tx["amount"] < 0].groupby("period")["amount"].sum(),
        "orders": buy.groupby("period")["order_id"].nunique(),
        "purchasers": buy.groupby("period")["customer_id"].nunique(),
    })
    per = buy.groupby(["customer_id", "period"]).size().rename("n").reset_index()
    per["to_date"] = per.sort_values("period").groupby("customer_id")["n"].cumsum()
    ref["repeat_purchasers"] = per[per["to_date"] >= 2].groupby("period").size()
    ref.index = ref.index.as_unit("us")
    k = value_kpis(data, "month").set_index("period")
    pd.testing.assert_frame_equal(k[ref.columns], ref.fillna(0), check_dtype=False,
                                  check_names=False)
    np.testing.assert_allclose(k["aov"], ref["gross_revenue"] / ref["orders"])
    np.testing.assert_allclose(k["arpu"], ref["revenue"] / ref["purchasers"])
    np.testing.assert_allclose(k["repeat_purchase_rate"],
                               100 * ref["repeat_purchasers"] / ref["purchasers"])


@pytest.mark.parametrize("by", ["plan", "cohort"])
def test_segments_sum_to_totals(by: str) -> None:
    data = simulated()
    cols = ["revenue", "gross_revenue", "returns", "orders", "purchasers", "repeat_purchasers"]
    seg = value_kpis(data, "quarter", by=by).groupby("period")[cols].sum()
    total = value_kpis(data, "quarter").set_index("period")[cols]
    pd.testing.assert_frame_equal(seg, total, check_dtype=False)


def test_customer_value_matches_plain_pandas() -> None:
    data = simulated()
    as_of = pd.Timestamp("2024-03-01")
    cv = customer_value(data, as_of).set_index("customer_id")
    tx = data.transactions[data.transactions["ts"] < as_of]
    buy = tx[tx["amount"] > 0]
    orders = buy.groupby("customer_id").size()
    first = buy.groupby("customer_id")["ts"].min()
    known = cv.loc[orders.index]
    assert (known["orders"] == orders).all()
    np.testing.assert_allclose(known["revenue"], tx.groupby("customer_id")["amount"].sum()
                               .reindex(orders.index))
    np.testing.assert_allclose(known["aov"],
                               buy.groupby("customer_id")["amount"].sum() / orders)
    tenure = np.maximum((as_of - first).dt.total_seconds() / 86400, 30)
    np.testing.assert_allclose(known["purchases_per_year"], orders / tenure * 365.2425)
    assert (known["has_repeat"] == (orders >= 2)).all()
    later = cv.drop(orders.index)  # seen (e.g. an event) but no purchase before as_of
    assert (later["orders"] == 0).all() and (later["purchases_per_year"] == 0).all()
    assert cv.index.max() <= data.customers.loc[data.customers["signup_ts"] < as_of,
                                                "customer_id"].max()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_value_rates_bounded(seed: int) -> None:
    data = random_data(seed)
    k = value_kpis(data, "month", by="plan")
    rate = k["repeat_purchase_rate"].to_numpy()
    assert (np.isnan(rate) | ((rate >= 0) & (rate <= 100))).all()
    np.testing.assert_allclose(k["revenue"], k["gross_revenue"] - k["returns"], atol=1e-9)
    assert (k["repeat_purchasers"] <= k["purchasers"]).all()
