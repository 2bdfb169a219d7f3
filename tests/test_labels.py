"""Churn and LTV labels on hand-built timelines, unlabelled cutoffs and the panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml import CustomerData
from churnml.config import ChurnConfig
from churnml.data.simulate import simulate
from churnml.errors import DataValidationError
from churnml.features import build_features
from churnml.labels import (
    UnlabelledCutoffError,
    build_labels,
    build_panel,
    label_window_days,
    labelled_cutoffs,
)

CUTOFF = pd.Timestamp("2024-01-01")
H = pd.Timedelta(days=90)
DAY = pd.Timedelta(days=1)
US = pd.Timedelta(microseconds=1)
DATA_END = pd.Timestamp("2024-06-30")  # last activity in every hand-built table


def _labels(frame: pd.DataFrame) -> dict[int, tuple[int, float]]:
    return {int(r.customer_id): (int(r.churned), float(r.ltv)) for r in frame.itertuples()}


def _tx(rows: list[tuple[int, pd.Timestamp, float]]) -> pd.DataFrame:
    rows = [*rows, (99, DATA_END, 1.0)]  # customer 99 keeps the data going to DATA_END
    return pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])


# --------------------------------------------------------------------------- non-contractual


@pytest.fixture(scope="module")
def shop() -> CustomerData:
    before = CUTOFF - 31 * DAY
    return CustomerData.from_frames(_tx([
        (1, before, 20.0), (1, CUTOFF, 30.0),                       # buys exactly at cutoff
        (2, before, 20.0), (2, CUTOFF + H, 30.0),                   # buys exactly at c + H
        (3, before, 50.0), (3, CUTOFF + 9 * DAY, -20.0),            # only a return after
        (4, CUTOFF - 400 * DAY, 10.0), (4, CUTOFF + DAY, 10.0),     # inactive in look-back
        (5, before, -5.0), (5, CUTOFF + DAY, 10.0),                 # return-only before
        (6, before, 10.0), (6, CUTOFF + 5 * DAY, 30.0),             # a regular customer
        (6, CUTOFF + 50 * DAY, 20.0), (6, CUTOFF + 60 * DAY, -5.0),
        (7, CUTOFF - 365 * DAY, 10.0),                              # look-back edge: at risk
        (8, CUTOFF - 365 * DAY - US, 10.0),                         # just outside it
    ]))


def test_non_contractual_churn_and_ltv_edges(shop: CustomerData) -> None:
    labels = build_labels(shop, CUTOFF)
    assert list(labels.columns) == ["customer_id", "cutoff", "churned", "ltv"]
    assert (labels["cutoff"] == CUTOFF).all()
    assert _labels(labels) == {
        1: (0, 30.0),   # a purchase exactly at the cutoff is in the horizon
        2: (1, 0.0),    # exactly at cutoff + horizon is outside it
        3: (1, -20.0),  # a return is not a purchase; LTV is negative
        6: (0, 45.0),   # net revenue: 30 + 20 - 5
        7: (1, 0.0),    # bought exactly lookback days before the cutoff: at risk
    }


def test_target_action_can_be_an_event_type(shop: CustomerData) -> None:
    events = pd.DataFrame({
        "customer_id": [1, 1, 2, 3], "event_type": ["login", "login", "login", "session"],
        "ts": [CUTOFF - DAY, CUTOFF + DAY, CUTOFF - DAY, CUTOFF - DAY],
    })
    data = CustomerData.from_frames(shop.transactions, events=events)
    labels = build_labels(data, CUTOFF, ChurnConfig(target_action="login"))
    assert _labels(labels) == {1: (0, 30.0), 2: (1, 0.0)}
    with pytest.raises(DataValidationError, match=r"events\.event_type: table is required"):
        build_labels(shop, CUTOFF, ChurnConfig(target_action="login"))


def test_horizon_and_lookback_come_from_the_config(shop: CustomerData) -> None:
    churn = ChurnConfig(horizon_days=30, lookback_days=30)
    labels = build_labels(shop, CUTOFF + DAY, churn)
    # look-back [Dec 3, Jan 2): only customer 1 (bought Jan 1; the others Dec 1 or earlier);
    # no purchase in the horizon [Jan 2, Feb 1)
    assert _labels(labels) == {1: (1, 0.0)}


# --------------------------------------------------------------------------- contractual


def _subscriptions() -> pd.DataFrame:
    c = CUTOFF
    rows = [
        (1, c - 300 * DAY, None),                                   # open-ended
        (2, c - 200 * DAY, c + 31 * DAY),                           # ends in horizon
        (3, c - 200 * DAY, c + 31 * DAY), (3, c + 40 * DAY, None),  # back after 9 days
        (4, c - 200 * DAY, c + 31 * DAY), (4, c + 50 * DAY, None),  # back after 19 days
        (5, c - 200 * DAY, c + 84 * DAY), (5, c + 95 * DAY, None),  # back after horizon, 11 d
        (6, c - 200 * DAY, c - 17 * DAY),                           # ended before the cutoff
        (7, c + 14 * DAY, None),                                    # starts after the cutoff
        (8, c - 200 * DAY, c + H),                                  # ends exactly at c + H
        (9, c - 200 * DAY, c),                                      # ends exactly at cutoff
        (10, c - 200 * DAY, c + 10 * DAY), (10, c + 24 * DAY, c + 60 * DAY),  # gap = grace,
        (11, c - 200 * DAY, c + 10 * DAY), (11, c + 24 * DAY + US, None),     # grace + 1 us
        (12, c - 200 * DAY, c + 20 * DAY), (12, c - 100 * DAY, None),         # overlapping
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "start_ts", "end_ts"])
    return frame.assign(end_ts=pd.to_datetime(frame["end_ts"]), mrr=10.0)


@pytest.fixture(scope="module")
def subscribers() -> CustomerData:
    tx = _tx([(2, CUTOFF + 5 * DAY, 10.0), (2, CUTOFF + 6 * DAY, -3.0)])
    return CustomerData.from_frames(tx, subscriptions=_subscriptions())


def test_contractual_churn_with_resubscribe_grace(subscribers: CustomerData) -> None:
    churn = ChurnConfig(kind="contractual", resubscribe_grace_days=14)
    labels = build_labels(subscribers, CUTOFF, churn)
    assert _labels(labels) == {
        1: (0, 0.0),
        2: (1, 7.0),   # LTV = 10 - 3 over the horizon
        3: (0, 0.0),   # re-subscribed within the grace period
        4: (1, 0.0),   # re-subscribed too late
        5: (0, 0.0),   # end in the horizon, re-subscription after it but within grace
        8: (0, 0.0),   # ends exactly at cutoff + horizon: outside the horizon
        9: (1, 0.0),   # ends exactly at the cutoff: still active then, ends in the horizon
        10: (1, 0.0),  # gap = grace continues, but the merged spell ends in the horizon
        11: (1, 0.0),  # gap just over the grace: churned
        12: (0, 0.0),  # an overlapping open subscription continues
    }
    strict = build_labels(subscribers, CUTOFF, churn.model_copy(
        update={"resubscribe_grace_days": 5}))
    assert _labels(strict)[3] == (1, 0.0) and _labels(strict)[5] == (1, 0.0)


def test_contractual_needs_subscriptions(shop: CustomerData) -> None:
    with pytest.raises(DataValidationError, match="subscriptions: table is required"):
        build_labels(shop, CUTOFF, ChurnConfig(kind="contractual"))


# --------------------------------------------------------------------------- unlabelled


def test_cutoffs_whose_horizon_passes_the_data_end_raise(shop: CustomerData) -> None:
    end = DATA_END.normalize() + DAY  # midnight after the last timestamp
    last = end - H
    assert len(build_labels(shop, last)) > 0
    with pytest.raises(UnlabelledCutoffError, match=r"1 cutoff\(s\) cannot be labelled"):
        build_labels(shop, [CUTOFF, last + US])
    # the caller may vouch that the data are complete later
    assert len(build_labels(shop, last + DAY, data_end=end + DAY)) >= 0
    contractual = ChurnConfig(kind="contractual", resubscribe_grace_days=14)
    assert label_window_days(contractual) == 104
    cuts = labelled_cutoffs(shop, contractual)
    assert cuts.max() + pd.Timedelta(days=104) <= end
    assert cuts.max() + pd.DateOffset(months=1) + pd.Timedelta(days=104) > end
    assert (cuts.day == 1).all()


# --------------------------------------------------------------------------- panel


def test_panel_joins_features_and_labels_of_customers_at_risk() -> None:
    data = simulate(200, seed=4)
    cutoffs = pd.date_range("2024-02-01", "2024-08-01", freq="MS")
    panel = build_panel(data, cutoffs)
    features = build_features(data, cutoffs)
    labels = build_labels(data, cutoffs)
    expected = features.merge(labels, on=["customer_id", "cutoff"], how="inner")
    pd.testing.assert_frame_equal(panel, expected)
    assert len(panel) == len(labels)  # every customer at risk has features
    # the label is reproducible from the raw transactions for one row
    row = panel.iloc[len(panel) // 2]
    tx = data.transactions[data.transactions["customer_id"] == row["customer_id"]]
    window = tx[(tx["ts"] >= row["cutoff"]) & (tx["ts"] < row["cutoff"] + H)]
    assert row["ltv"] == pytest.approx(window["amount"].sum())
    assert row["churned"] == int(not (window["amount"] > 0).any())
    assert 0.05 < panel["churned"].mean() < 0.95
    assert np.isfinite(panel["days_since_last_purchase"]).all()  # at risk => bought before
