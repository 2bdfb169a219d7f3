"""Leakage safety: nothing dated at or after a cutoff can change a feature at that cutoff."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnml import CustomerData
from churnml.data.simulate import simulate
from churnml.features import FeatureSpec, build_features

MAX_AFTER_US = 500 * 86_400 * 10**6  # appended rows fall up to 500 days after the cutoff
NEW_ID = 10_000
EXAMPLES = 20

DATA = simulate(120, seed=5, contractual=True)
SPEC = FeatureSpec(event_types=sorted(DATA.events["event_type"].unique()))
IDS = sorted(DATA.customers["customer_id"])

cutoffs = st.datetimes(min_value=datetime(2023, 2, 1), max_value=datetime(2024, 12, 31))
offsets = st.one_of(st.just(0), st.integers(0, MAX_AFTER_US))  # 0: exactly at the cutoff
customers = st.sampled_from([*IDS, NEW_ID])


def _rows(frame: pd.DataFrame, new: dict[str, list]) -> pd.DataFrame:
    """``frame`` with rows appended, dtypes kept."""
    extra = pd.DataFrame(new)
    for col in frame.columns:
        if col not in extra:
            extra[col] = frame[col].iloc[0] if len(frame) else None
    extra = extra[frame.columns].astype(frame.dtypes.to_dict())
    return pd.concat([frame, extra], ignore_index=True)


@st.composite
def later_rows(draw: st.DrawFn) -> dict[str, list[tuple]]:
    """Rows of every table dated at or after the cutoff (as offsets from it)."""
    n = st.integers(0, 6)
    return {
        "transactions": draw(st.lists(st.tuples(
            customers, offsets, st.floats(-200, 500, allow_nan=False)), max_size=6)),
        "events": draw(st.lists(st.tuples(
            customers, offsets, st.sampled_from([*SPEC.event_types, "brand_new_type"])),
            max_size=6)),
        "surveys": draw(st.lists(st.tuples(
            customers, offsets, st.sampled_from(["nps", "csat", "ces"]), st.integers(1, 5)),
            max_size=6)),
        "subscriptions": draw(st.lists(st.tuples(customers, offsets), max_size=draw(n))),
        "signups": draw(st.lists(st.tuples(st.sampled_from(IDS), offsets), max_size=4)),
        "end_active_at": draw(st.lists(offsets, max_size=1)),
    }


def append_after(data: CustomerData, cutoff: pd.Timestamp, rows: dict[str, list[tuple]]
                 ) -> CustomerData:
    """``data`` plus ``rows``; with ``end_active_at``, subscriptions active at the cutoff end
    at or after it."""
    def at(offset: int) -> pd.Timestamp:
        return cutoff + pd.Timedelta(microseconds=offset)

    tx = rows["transactions"]
    ev = rows["events"]
    sv = rows["surveys"]
    sub = rows["subscriptions"]
    subs = data.subscriptions.copy()
    if rows["end_active_at"]:
        active = (subs["start_ts"] < cutoff) & (subs["end_ts"].isna() | (subs["end_ts"] >= cutoff))
        subs.loc[active, "end_ts"] = at(rows["end_active_at"][0])
    signups = rows["signups"]
    new_ids = list(range(NEW_ID + 1, NEW_ID + 1 + len(signups)))
    return replace(
        data,
        transactions=_rows(data.transactions, {
            "customer_id": [r[0] for r in tx], "ts": [at(r[1]) for r in tx],
            "amount": [r[2] for r in tx], "order_id": list(range(10**7, 10**7 + len(tx)))}),
        events=_rows(data.events, {
            "customer_id": [r[0] for r in ev], "ts": [at(r[1]) for r in ev],
            "event_type": [r[2] for r in ev], "value": [np.nan] * len(ev)}),
        surveys=_rows(data.surveys, {
            "customer_id": [r[0] for r in sv], "ts": [at(r[1]) for r in sv],
            "kind": [r[2] for r in sv], "score": [float(r[3]) for r in sv]}),
        subscriptions=_rows(subs, {
            "customer_id": [r[0] for r in sub], "start_ts": [at(r[1]) for r in sub],
            "end_ts": [pd.NaT] * len(sub), "plan": ["premium"] * len(sub),
            "mrr": [99.0] * len(sub)}),
        customers=_rows(data.customers, {
            "customer_id": new_ids, "signup_ts": [at(r[1]) for r in signups],
            "referred_by": [r[0] for r in signups]}),
    )


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cutoff=cutoffs, rows=later_rows())
def test_rows_at_or_after_the_cutoff_change_no_feature(cutoff: datetime, rows: dict) -> None:
    cutoff = pd.Timestamp(cutoff)
    before = build_features(DATA, cutoff, SPEC)
    after = build_features(append_after(DATA, cutoff, rows), cutoff, SPEC)
    pd.testing.assert_frame_equal(before, after)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(cutoffs, min_size=2, max_size=4, unique=True))
def test_each_cutoff_of_a_panel_sees_only_its_past(cuts: list[datetime]) -> None:
    panel = build_features(DATA, cuts, SPEC)
    for cutoff in sorted(pd.Timestamp(c) for c in cuts):
        alone = build_features(DATA.before(cutoff), cutoff, SPEC)
        rows = panel[panel["cutoff"] == cutoff].reset_index(drop=True)
        pd.testing.assert_frame_equal(rows, alone, rtol=1e-9)


def test_appended_rows_do_change_later_cutoffs() -> None:
    """The invariant is not vacuous: the same rows move features one day later."""
    cutoff = pd.Timestamp("2024-06-01")
    customer = int(build_features(DATA, cutoff, SPEC)["customer_id"].iloc[0])
    rows = {"transactions": [(customer, 0, 50.0)], "events": [], "surveys": [],
            "subscriptions": [], "signups": [], "end_active_at": []}
    later = cutoff + pd.Timedelta(days=1)
    before = build_features(DATA, later, SPEC).set_index("customer_id")
    after = build_features(append_after(DATA, cutoff, rows), later, SPEC).set_index(
        "customer_id")
    assert after.loc[customer, "purchases_30d"] == before.loc[customer, "purchases_30d"] + 1
    assert after.loc[customer, "days_since_last_purchase"] == pytest.approx(1.0)
