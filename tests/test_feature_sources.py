"""Feature sources need their key column: a customers table without ``referred_by`` (as in
CDNOW, whose loader gives customers only ``customer_id, signup_ts``) has no referral source,
so the referral feature is left out instead of failing in SQL."""

from __future__ import annotations

import pandas as pd

from churnml import CustomerData
from churnml.features import build_features
from churnml.features.definitions import SOURCES


def _data(with_referrer: bool) -> CustomerData:
    tx = pd.DataFrame({
        "customer_id": [1, 1, 2, 3],
        "ts": pd.to_datetime(["2024-01-05", "2024-02-10", "2024-01-20", "2024-03-01"]),
        "amount": [10.0, 20.0, 5.0, 7.5],
    })
    customers = pd.DataFrame({
        "customer_id": [1, 2, 3],
        "signup_ts": pd.to_datetime(["2024-01-05", "2024-01-20", "2024-03-01"]),
    })
    if with_referrer:
        customers["referred_by"] = pd.array([None, 1, 1], dtype="Int64")
    return CustomerData.from_frames(tx, customers=customers)


def test_referral_source_needs_referred_by() -> None:
    assert not SOURCES["referrals"].available({"customers": ["customer_id", "signup_ts"]})
    assert SOURCES["referrals"].available(
        {"customers": ["customer_id", "signup_ts", "referred_by"]})


def test_customers_without_referrer_column_build() -> None:
    X = build_features(_data(with_referrer=False), "2024-04-01")
    assert "customers_referred" not in X.columns
    assert X["customer_id"].tolist() == [1, 2, 3]
    assert X["days_since_last_purchase"].tolist() == [51.0, 72.0, 31.0]


def test_customers_with_referrer_column_count_referrals() -> None:
    X = build_features(_data(with_referrer=True), "2024-04-01")
    # customer 1 referred customers 2 (signed up 2024-01-20) and 3 (2024-03-01)
    assert X.set_index("customer_id")["customers_referred"].to_dict() == {1: 2.0, 2: 0.0,
                                                                         3: 0.0}
