"""The joined KPI table."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from test_metrics_support import random_data, shuffled, simulated, ts, tx_frame

from churnml import CustomerData
from churnml.config import ChurnConfig, VoiceConfig
from churnml.metrics import (
    engagement_kpis,
    kpi_table,
    retention_kpis,
    value_kpis,
    voice_kpis,
)

REQUIRED = [
    "period", "complete", "customers_start", "customers_end", "new_customers",
    "reactivated_customers", "retained", "lost", "retention_rate", "churn_rate",
    "active_customers", "revenue", "orders", "aov", "arpu", "repeat_purchase_rate", "ltv",
    "nps", "promoters_pct", "detractors_pct", "csat", "csat_mean", "ces_mean",
    "active_users", "dau_mean", "stickiness", "engagement_rate", "referral_rate",
    "referrals_made",
]
PERCENT_COLUMNS = [
    "retention_rate", "churn_rate", "repeat_purchase_rate", "promoters_pct",
    "passives_pct", "detractors_pct", "csat", "stickiness", "engagement_rate",
    "referral_rate",
]


def test_columns_and_consistency_with_the_parts() -> None:
    data = simulated()
    k = kpi_table(data, "month")
    assert set(REQUIRED) <= set(k.columns)
    assert k["period"].is_monotonic_increasing and k["period"].is_unique
    assert len(k) == 24 and k["complete"].all()
    parts = [retention_kpis(data, "month"), value_kpis(data, "month"),
             voice_kpis(data, "month"), engagement_kpis(data, "month")]
    for part in parts:
        pd.testing.assert_frame_equal(k[part.columns], part)


def test_periods_are_gap_free_and_empty_periods_present() -> None:
    data = CustomerData.from_frames(tx_frame([
        (1, "2024-01-10", 10.0), (2, "2024-01-20", 10.0), (1, "2024-05-03", 30.0),
    ]))
    k = kpi_table(data, "month", churn=ChurnConfig(horizon_days=30)).set_index("period")
    assert list(k.index) == ts("2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01",
                               "2024-05-01")
    empty = k.loc[ts("2024-03-01", "2024-04-01")]
    assert (empty[["customers_start", "active_customers", "orders"]] == 0).all().all()
    assert (empty["revenue"] == 0).all()
    assert empty[["retention_rate", "aov", "arpu", "repeat_purchase_rate"]].isna().all().all()
    assert list(k["complete"]) == [True, True, True, True, False]
    # no surveys, events or customers: those KPIs exist and are NaN
    assert k[["nps", "csat", "ces_mean", "engagement_rate", "referral_rate"]].isna().all().all()
    assert list(k["active_users"]) == [2, 0, 0, 0, 1]


def test_by_segment_sums_match_totals() -> None:
    data = simulated()
    cols = ["customers_start", "customers_end", "active_customers", "orders", "revenue",
            "nps_responses", "active_users", "referred_customers"]
    seg = kpi_table(data, "quarter", by="plan")
    assert list(seg.columns[:3]) == ["period", "plan", "complete"]
    assert seg[["period", "plan"]].equals(seg[["period", "plan"]].sort_values(["period", "plan"]))
    total = kpi_table(data, "quarter").set_index("period")[cols]
    pd.testing.assert_frame_equal(seg.groupby("period")[cols].sum(), total, check_dtype=False)


def test_configs_are_used() -> None:
    data = simulated()
    short = kpi_table(data, "month", churn=ChurnConfig(horizon_days=30))
    default = kpi_table(data, "month")
    assert (short["churn_rate"].iloc[2:] > default["churn_rate"].iloc[2:]).all()
    strict = kpi_table(data, "month", voice=VoiceConfig(nps_promoter_min=10))
    assert (strict["nps"] <= default["nps"]).all() and (strict["nps"] < default["nps"]).any()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), period=st.sampled_from(["week", "month", "quarter"]),
       by=st.sampled_from([None, "plan", "cohort"]))
def test_rates_bounded_and_row_order_free(seed: int, period: str, by: str | None) -> None:
    data = random_data(seed)
    k = kpi_table(data, period, by=by)
    rates = k[PERCENT_COLUMNS].to_numpy(dtype=float)
    assert (np.isnan(rates) | ((rates >= 0) & (rates <= 100))).all()
    nps = k["nps"].to_numpy()
    assert (np.isnan(nps) | ((nps >= -100) & (nps <= 100))).all()
    assert not np.isinf(k.select_dtypes("number").to_numpy(dtype=float)).any()
    pd.testing.assert_frame_equal(k, kpi_table(shuffled(data, seed % 967), period, by=by))


def test_missing_segment_values_form_their_own_group() -> None:
    data = random_data(4)
    cust = data.customers.copy()
    cust.loc[cust.index[:10], "plan"] = None
    data = CustomerData.from_frames(data.transactions, data.events, data.surveys,
                                    cust.iloc[:-5])  # and 5 customers absent from the table
    seg = kpi_table(data, "month", by="plan")
    assert seg["plan"].isna().any() and set(seg["plan"].dropna()) == {"basic", "premium"}
    cols = ["customers_start", "customers_end", "active_customers", "revenue", "orders",
            "nps_responses", "active_users", "referrals_made"]
    total = kpi_table(data, "month").set_index("period")[cols]
    pd.testing.assert_frame_equal(seg.groupby("period")[cols].sum(), total, check_dtype=False)


def test_string_customer_ids_give_the_same_kpis() -> None:
    data = random_data(6)
    tables = {name: df.copy() for name, df in data.tables().items()}
    for df in tables.values():
        df["customer_id"] = "c" + df["customer_id"].astype(str)
    ref = tables["customers"]["referred_by"]
    tables["customers"]["referred_by"] = ("c" + ref.astype(str)).where(ref.notna())
    as_str = CustomerData.from_frames(**tables)
    pd.testing.assert_frame_equal(kpi_table(as_str, "month"), kpi_table(data, "month"))
