"""Acquisition-cohort tables (wide triangle and long format)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_metrics_support import PERIOD_FREQ, purchases, simulated, ts, tx_frame

from churnml import CustomerData
from churnml.config import ChurnConfig
from churnml.metrics import cohort_table, cohort_table_long

JAN, FEB, MAR = ts("2024-01-01", "2024-02-01", "2024-03-01")
SHORT = ChurnConfig(horizon_days=30)


def small() -> CustomerData:
    return CustomerData.from_frames(tx_frame([
        (1, "2024-01-10", 10.0), (1, "2024-02-05", 10.0), (1, "2024-02-06", -5.0),
        (1, "2024-03-20", 10.0),
        (2, "2024-01-20", 10.0), (2, "2024-03-01", 10.0),
        (3, "2024-02-03", 10.0), (3, "2024-02-10", 10.0),
        (4, "2024-02-14", 10.0), (4, "2024-03-02", 10.0),
    ]))


def test_active_triangle_by_hand() -> None:
    wide = cohort_table(small(), "month", "active")
    assert list(wide.index) == [JAN, FEB]
    assert list(wide.columns) == ["cohort_size", 0, 1, 2]
    np.testing.assert_allclose(wide.loc[JAN, [0, 1, 2]].astype(float), [100, 50, 100])
    np.testing.assert_allclose(wide.loc[FEB, [0, 1]].astype(float), [100, 50])
    assert np.isnan(wide.loc[FEB, 2])
    assert list(wide["cohort_size"]) == [2, 2]


def test_revenue_and_retained_base_by_hand() -> None:
    revenue = cohort_table(small(), "month", "revenue")
    np.testing.assert_allclose(revenue.loc[JAN, [0, 1, 2]].astype(float), [10, 2.5, 10])
    base = cohort_table(small(), "month", "retained_base", churn=SHORT)
    # Jan cohort: both in the base on 1 Feb; only 1 on 1 Mar; both at the data end (21 Mar)
    np.testing.assert_allclose(base.loc[JAN, [0, 1, 2]].astype(float), [100, 50, 100])
    # Feb cohort at the data end: customer 3 last bought on 10 Feb (> 30 days before)
    np.testing.assert_allclose(base.loc[FEB, [0, 1]].astype(float), [100, 50])


def test_long_format_and_max_periods() -> None:
    long = cohort_table_long(small(), "month", "active")
    assert list(long.columns) == ["cohort", "period", "periods_since", "complete",
                                  "cohort_size", "customers", "value"]
    assert list(long["periods_since"]) == [0, 1, 2, 0, 1]
    assert list(long["customers"]) == [2, 1, 2, 2, 1]
    assert list(long["complete"]) == [True, True, False, True, False]
    capped = cohort_table(small(), "month", max_periods=1)
    assert list(capped.columns) == ["cohort_size", 0, 1]
    with pytest.raises(ValueError, match="metric must be one of"):
        cohort_table(small(), metric="churn")


def ordinal(values: pd.Series, period: str) -> np.ndarray:
    return values.dt.to_period(PERIOD_FREQ[period]).array.asi8


@pytest.mark.parametrize("period", ["month", "quarter"])
def test_active_and_revenue_match_plain_pandas(period: str) -> None:
    data = simulated()
    p = purchases(data)
    first = p.groupby("customer_id")["ts"].min()
    tx = data.transactions.assign(first=lambda d: d["customer_id"].map(first))
    tx = tx[tx["first"].notna()]
    tx = tx.assign(k=ordinal(tx["ts"], period) - ordinal(tx["first"], period),
                   cohort=tx["first"].dt.to_period(PERIOD_FREQ[period]).dt.start_time)
    size = tx.groupby("cohort")["customer_id"].nunique()
    bought = tx[tx["amount"] > 0]
    active = bought.groupby(["cohort", "k"])["customer_id"].nunique()
    revenue = tx.groupby(["cohort", "k"])["amount"].sum()

    long = cohort_table_long(data, period, "active").set_index(["cohort", "periods_since"])
    ref = 100 * active / size.reindex(active.index.get_level_values(0)).to_numpy()
    got = long["value"].reindex(ref.index)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy())
    assert (long["value"].drop(ref.index) == 0).all()  # cells without a purchase are 0 %
    long_rev = cohort_table_long(data, period, "revenue").set_index(["cohort", "periods_since"])
    np.testing.assert_allclose(long_rev["revenue"].reindex(revenue.index).to_numpy(),
                               revenue.to_numpy())
    wide = cohort_table(data, period)
    assert wide["cohort_size"].sum() == len(first)
    assert (wide[0] == 100).all()


def test_retained_base_matches_plain_pandas() -> None:
    data = simulated()
    p = purchases(data)
    first = p.groupby("customer_id")["ts"].min()
    cohort = first.dt.to_period("Q").dt.start_time
    long = cohort_table_long(data, "quarter", "retained_base")
    horizon = pd.Timedelta(days=90)
    end = data.end.normalize() + pd.Timedelta(days=1)
    for row in long.sample(8, random_state=1).itertuples():
        t = min(row.period + pd.DateOffset(months=3), end)
        members = set(p.loc[(p["ts"] >= t - horizon) & (p["ts"] < t), "customer_id"])
        ids = cohort.index[cohort == row.cohort]
        assert row.customers == len(members.intersection(ids)), row
