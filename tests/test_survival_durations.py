"""Durations and censoring per (customer, cutoff): hand-built timelines, an independent
per-customer reference on random logs, and agreement with the churn labels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from churnml import CustomerData
from churnml.config import ChurnConfig
from churnml.features import build_features
from churnml.labels import build_labels
from churnml.survival.durations import (
    UnobservedCutoffError,
    build_durations,
    build_survival_panel,
    build_tenure,
    tenure_features,
    tenure_from_features,
)

CUTOFF = pd.Timestamp("2024-01-01")
DAY = pd.Timedelta(days=1)
DATA_END = pd.Timestamp("2024-06-30")  # last activity; the data end at midnight after it
END = DATA_END + DAY


def _tx(rows: list[tuple[int, pd.Timestamp, float]]) -> pd.DataFrame:
    rows = [*rows, (99, DATA_END, 1.0)]  # customer 99 keeps the data going to DATA_END
    return pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])


def _rows(frame: pd.DataFrame) -> dict[int, tuple[float, bool, float, float]]:
    return {int(r.customer_id): (r.duration, bool(r.event), r.censor_duration, r.tenure)
            for r in frame.itertuples()}


# --------------------------------------------------------------------------- purchase logs


@pytest.fixture(scope="module")
def shop() -> CustomerData:
    c, before = CUTOFF, CUTOFF - 31 * DAY
    return CustomerData.from_frames(_tx([
        (1, before, 20.0), (1, c, 30.0),                      # buys exactly at the cutoff
        (2, before, 20.0), (2, c + 90 * DAY, 30.0),           # next purchase exactly at c + H
        (3, before, 50.0), (3, c + 9 * DAY, -20.0),           # only a return after
        (6, before, 10.0), (6, c + 5 * DAY, 30.0), (6, c + 50 * DAY, 20.0),
        (7, c - 365 * DAY, 10.0),                             # look-back edge
        (10, before, 10.0), (10, c + 60 * DAY, 10.0), (10, c + 120 * DAY, 10.0),  # open silence
        (11, before, 10.0), (11, c + 10 * DAY, 5.0), (11, c + 110 * DAY, 5.0),  # 100-day gap
        (12, c - 200 * DAY, 5.0), (12, c - 95 * DAY, 5.0), (12, c - 10 * DAY, 5.0),  # new run
    ]))


def test_purchase_log_durations_by_hand(shop: CustomerData) -> None:
    out = build_durations(shop, CUTOFF, ChurnConfig(), period_days=30)
    assert list(out.columns) == ["customer_id", "cutoff", "duration", "event",
                                 "censor_duration", "tenure"]
    # data end Jul 1 = cutoff + 182 days: 6 whole 30-day periods observed
    assert _rows(out) == {
        1: (4.0, True, 6.0, 1.0),   # silence after the purchase at c: lapsed just after c + 90
        2: (3.0, True, 6.0, 1.0),   # nothing in [c, c + 90): lapsed at c + 90, period 3
        3: (3.0, True, 6.0, 1.0),   # a return is not a purchase
        6: (5.0, True, 6.0, 1.0),   # last purchase c + 50: lapsed after c + 140, period 5
        7: (3.0, True, 6.0, 12.0),  # tenure: 365 days since the first purchase
        10: (6.0, False, 6.0, 1.0),  # lapse after c + 210 lies past the data: censored
        11: (4.0, True, 6.0, 1.0),  # gap of 100 days after c + 10: lapsed after c + 100
        12: (3.0, True, 6.0, 3.0),  # the 105-day gap started a new run 95 days before c
    }


def test_purchase_log_event_at_horizon_is_the_churn_label(shop: CustomerData) -> None:
    churn = ChurnConfig(horizon_days=90)
    durations = build_durations(shop, CUTOFF, churn, period_days=30)
    labels = build_labels(shop, CUTOFF, churn)
    merged = labels.merge(durations, on=["customer_id", "cutoff"], validate="1:1")
    assert len(merged) == len(labels) == len(durations)
    churned_by_horizon = merged["event"] & (merged["duration"] <= 3)
    assert (churned_by_horizon.astype(int) == merged["churned"]).all()


# --------------------------------------------------------------------------- subscriptions


@pytest.fixture(scope="module")
def subscribers() -> CustomerData:
    c = CUTOFF
    rows = [
        (1, c - 300 * DAY, None),                                   # open-ended
        (2, c - 200 * DAY, c + 31 * DAY),                           # ends in period 2
        (3, c - 200 * DAY, c + 31 * DAY), (3, c + 40 * DAY, None),  # back within the grace
        (4, c - 200 * DAY, c + 31 * DAY), (4, c + 50 * DAY, None),  # back after 19 days
        (8, c - 200 * DAY, c + 90 * DAY),                           # ends exactly at c + H
        (9, c - 200 * DAY, c),                                      # ends exactly at cutoff
        (13, c - 20 * DAY, c + 160 * DAY),                          # ends in period 6 > 5
        (14, c - 20 * DAY, c + 170 * DAY),                          # ends within the grace
    ]                                                               # of the data end
    subs = pd.DataFrame(rows, columns=["customer_id", "start_ts", "end_ts"])
    subs["end_ts"] = pd.to_datetime(subs["end_ts"])
    tx = _tx([(cid, c - 20 * DAY, 10.0) for cid in subs["customer_id"].unique()])
    return CustomerData.from_frames(tx, subscriptions=subs)


def test_subscription_durations_by_hand(subscribers: CustomerData) -> None:
    churn = ChurnConfig(kind="contractual", resubscribe_grace_days=14)
    out = build_durations(subscribers, CUTOFF, churn, period_days=30)
    # an end is confirmed only 14 days before the data end: c + 168 days, 5 whole periods
    assert _rows(out) == {
        1: (5.0, False, 5.0, 10.0),
        2: (2.0, True, 5.0, 6.0),
        3: (5.0, False, 5.0, 6.0),   # the return within the grace continues the spell
        4: (2.0, True, 5.0, 6.0),    # churn counted at the first end
        8: (4.0, True, 5.0, 6.0),    # active at the instant c + 90: ends in period 4
        9: (1.0, True, 5.0, 6.0),
        13: (5.0, False, 5.0, 0.0),  # the end falls after the last whole period
        14: (5.0, False, 5.0, 0.0),
    }
    # the return of customer 4 is a new spell, followed from a later landmark
    later = build_durations(subscribers, CUTOFF + 60 * DAY, churn, period_days=30)
    assert _rows(later)[4] == (3.0, False, 3.0, 0.0)


def test_a_fixed_term_is_completion_and_censors(subscribers: CustomerData) -> None:
    c = CUTOFF
    rows = [
        (1, c - 20 * DAY, None, c + 100 * DAY),          # still running at the term end
        (2, c - 20 * DAY, c + 40 * DAY, c + 100 * DAY),  # left before the term end: churn
        (3, c - 20 * DAY, c + 100 * DAY, c + 100 * DAY),  # ended with the term: completion
        (4, c - 200 * DAY, None, c - 10 * DAY),          # term over before the cutoff
        (5, c - 20 * DAY, None, None),                   # no fixed term
    ]
    subs = pd.DataFrame(rows, columns=["customer_id", "start_ts", "end_ts", "term_end_ts"])
    for col in ("end_ts", "term_end_ts"):
        subs[col] = pd.to_datetime(subs[col])
    data = CustomerData.from_frames(subscribers.transactions, subscriptions=subs)
    churn = ChurnConfig(kind="contractual", resubscribe_grace_days=14)
    out = build_durations(data, CUTOFF, churn, period_days=30)
    assert _rows(out) == {
        1: (3.0, False, 3.0, 0.0),  # censored at the term end, c + 100: 3 whole periods
        2: (2.0, True, 3.0, 0.0),
        3: (3.0, False, 3.0, 0.0),
        5: (5.0, False, 5.0, 0.0),
    }
    labels = build_labels(data, CUTOFF, churn)
    assert sorted(labels["customer_id"]) == [1, 2, 3, 5]


def test_subscription_event_at_horizon_is_the_churn_label(subscribers: CustomerData) -> None:
    churn = ChurnConfig(kind="contractual", resubscribe_grace_days=14, horizon_days=90)
    durations = build_durations(subscribers, CUTOFF, churn, period_days=30)
    labels = build_labels(subscribers, CUTOFF, churn)
    merged = labels.merge(durations, on=["customer_id", "cutoff"], validate="1:1")
    assert len(merged) == len(labels) == len(durations)
    assert ((merged["event"] & (merged["duration"] <= 3)).astype(int) == merged["churned"]).all()


def test_cutoff_without_a_whole_period_of_data_raises(subscribers: CustomerData) -> None:
    churn = ChurnConfig(kind="contractual", resubscribe_grace_days=14)
    with pytest.raises(UnobservedCutoffError, match="2024-06-01"):
        build_durations(subscribers, [CUTOFF, "2024-06-01"], churn, period_days=30)
    with pytest.raises(ValueError, match="period_days"):
        build_durations(subscribers, CUTOFF, churn, period_days=0)


# --------------------------------------------------------------------------- random logs


def _reference_purchases(tx: pd.DataFrame, cutoffs: list[pd.Timestamp], h: int, lookback: int,
                         p: int, end: pd.Timestamp) -> dict[tuple[int, pd.Timestamp], tuple]:
    """Per customer, per cutoff, in plain Python, from the module's definitions."""
    out = {}
    buys = tx[tx["amount"] > 0]
    H = pd.Timedelta(days=h)
    for cid, g in buys.groupby("customer_id"):
        ts = sorted(g["ts"])
        for c in cutoffs:
            before = [t for t in ts if c - pd.Timedelta(days=lookback) <= t < c]
            if not before:
                continue
            after = [t for t in ts if t >= c]
            if not after or after[0] >= c + H:
                period = math.ceil(h / p)
            else:
                first = next(t for i, t in enumerate(ts) if t >= c and (
                    i + 1 == len(ts) or ts[i + 1] >= t + H))
                period = math.floor(((first - c) / DAY + h) / p) + 1
            run = max(t for i, t in enumerate(ts) if t < c and (i == 0 or t >= ts[i - 1] + H))
            k = math.floor((end - c) / DAY / p)
            out[(cid, c)] = (float(min(period, k)), period <= k, float(k),
                             float(math.floor((c - run) / DAY / p)))
    return out


@pytest.mark.parametrize(("h", "p"), [(90, 30), (28, 7)])
def test_purchase_durations_match_a_per_customer_reference(h: int, p: int) -> None:
    rng = np.random.default_rng(7)
    rows = []
    start = pd.Timestamp("2023-01-01")
    for cid in range(150):
        n = rng.integers(1, 25)
        scale = rng.choice([5, 20, 60])  # frequent, regular and rare buyers
        days = np.cumsum(rng.exponential(scale, n)) + rng.uniform(0, 300)
        for d in days[days < 540]:
            rows.append((cid, start + pd.Timedelta(days=float(np.floor(d))), float(len(rows) + 1)))
    rows.append((999, start + pd.Timedelta(days=560), 1.0))
    tx = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    data = CustomerData.from_frames(tx)
    end = tx["ts"].max().normalize() + DAY
    cutoffs = list(pd.date_range("2023-04-01", "2024-03-01", freq="MS"))
    churn = ChurnConfig(horizon_days=h, lookback_days=120)
    got = build_durations(data, cutoffs, churn, period_days=p)
    ref = _reference_purchases(tx, cutoffs, h, 120, p, end)
    assert len(got) == len(ref) > 500
    assert {(int(r.customer_id), r.cutoff): (r.duration, bool(r.event), r.censor_duration,
                                              r.tenure) for r in got.itertuples()} == ref
    # and the label agrees at every labelled cutoff
    labelled = [c for c in cutoffs if c + pd.Timedelta(days=h) <= end]
    labels = build_labels(data, labelled, churn)
    merged = labels.merge(got, on=["customer_id", "cutoff"], validate="1:1")
    assert len(merged) == len(labels)
    m = h // p
    assert ((merged["event"] & (merged["duration"] <= m)).astype(int)
            == merged["churned"]).all()


def test_survival_panel_joins_features_and_durations(shop: CustomerData) -> None:
    panel = build_survival_panel(shop, CUTOFF, churn=ChurnConfig(), period_days=30)
    durations = build_durations(shop, CUTOFF, ChurnConfig(), period_days=30)
    assert list(panel.columns[-4:]) == ["duration", "event", "censor_duration", "tenure"]
    pd.testing.assert_frame_equal(panel[durations.columns], durations)
    assert panel.loc[panel["customer_id"] == 12, "days_since_last_purchase"].item() == 10.0


@pytest.mark.parametrize("kind", ["non_contractual", "contractual"])
def test_tenure_query_equals_the_durations_tenure(kind: str) -> None:
    """The lean tenure query (rows before the cutoff only) gives the durations' tenure at
    every landmark, and rows after the last cutoff change none of it."""
    from dataclasses import replace

    from churnml.data.simulate import simulate

    data = simulate(300, seed=5, contractual=True)
    churn = ChurnConfig(kind=kind)
    cutoffs = ["2023-09-01", "2024-01-01", "2024-03-01", "2024-06-01"]
    durations = build_durations(data, cutoffs, churn, period_days=14)
    tenure = build_tenure(data, cutoffs, churn, period_days=14)
    pd.testing.assert_frame_equal(tenure, durations[["customer_id", "cutoff", "tenure"]])
    assert len(tenure) > 400 and tenure["tenure"].nunique() > 10
    # every customer buys and starts a subscription the day after the last cutoff
    later = pd.Timestamp(cutoffs[-1]) + DAY
    ids = data.transactions["customer_id"].unique()
    tx = pd.DataFrame({"customer_id": ids, "ts": later, "amount": 10.0})
    subs = pd.DataFrame({"customer_id": ids, "start_ts": later, "end_ts": pd.NaT,
                         "plan": "basic", "mrr": 9.99}).astype(data.subscriptions.dtypes)
    appended = replace(data, transactions=pd.concat([data.transactions, tx], ignore_index=True),
                       subscriptions=pd.concat([data.subscriptions, subs], ignore_index=True))
    pd.testing.assert_frame_equal(build_tenure(appended, cutoffs, churn, period_days=14), tenure)


@pytest.mark.parametrize("horizon, lookback", [(90, 365), (60, 200)])
def test_tenure_from_the_feature_query_equals_the_durations_tenure(horizon: int, lookback: int
                                                                   ) -> None:
    """Scoring takes a purchase log's tenure from two all-time features of the one feature
    query: equal to the durations' tenure for every customer at risk, 0 for the others."""
    from churnml.data.simulate import simulate

    data = simulate(300, seed=5, contractual=True)
    churn = ChurnConfig(horizon_days=horizon, lookback_days=lookback)
    cutoffs = ["2023-09-01", "2024-01-01", "2024-06-01"]
    features = build_features(data, cutoffs, tenure_features(churn))
    features["tenure"] = tenure_from_features(features, churn, 14)
    expected = build_tenure(data, cutoffs, churn, period_days=14)
    merged = features.merge(expected, on=["customer_id", "cutoff"], how="left",
                            suffixes=("", "_durations"), validate="1:1")
    assert merged["tenure_durations"].notna().sum() == len(expected) > 300
    np.testing.assert_array_equal(merged["tenure"], merged["tenure_durations"].fillna(0.0))
    assert (merged.loc[merged["tenure_durations"].isna(), "tenure"] == 0).all()
    assert merged["tenure_durations"].isna().any()  # some customers are not at risk


# --------------------------------------------------------------------------- Spark


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")
@pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")
@pytest.mark.filterwarnings("ignore:Series.values returning an ndarray")
@pytest.mark.parametrize("kind", ["non_contractual", "contractual"])
def test_spark_runs_the_same_durations_query(spark, kind: str) -> None:
    from churnml.data.simulate import simulate

    data = simulate(150, seed=21, contractual=True)
    churn = ChurnConfig(kind=kind)
    cutoffs = ["2024-03-01", "2024-06-01"]
    expected = build_durations(data, cutoffs, churn, period_days=14)
    actual = build_durations(data, cutoffs, churn, period_days=14, engine="spark", spark=spark)
    assert len(expected) > 50 and expected["event"].nunique() == 2
    pd.testing.assert_frame_equal(actual, expected)
    tenure = build_tenure(data, cutoffs, churn, period_days=14, engine="spark", spark=spark)
    pd.testing.assert_frame_equal(tenure, expected[["customer_id", "cutoff", "tenure"]])
    runs = build_features(data, cutoffs, tenure_features(churn), engine="spark", spark=spark)
    pd.testing.assert_frame_equal(runs, build_features(data, cutoffs, tenure_features(churn)))


def test_tenure_is_known_at_the_cutoff_itself(shop: CustomerData) -> None:
    durations = build_durations(shop, CUTOFF, ChurnConfig(), period_days=30)
    tenure = build_tenure(shop, CUTOFF, ChurnConfig(), period_days=30)
    pd.testing.assert_frame_equal(tenure, durations[["customer_id", "cutoff", "tenure"]])
    at_end = build_tenure(shop, END, ChurnConfig(), period_days=30)  # no period to follow
    # runs of purchases without a 90-day gap: 10 since c + 60 (122 days), 11 since c + 110,
    # 12 since c - 95 (277 days), 2 since c + 90; 7 is out of the look-back by then
    assert dict(zip(at_end["customer_id"], at_end["tenure"], strict=True)) == {
        1: 7.0, 2: 3.0, 3: 7.0, 6: 7.0, 10: 4.0, 11: 2.0, 12: 9.0, 99: 0.0}
