"""N-day retention: calendar vs 24-hour windows, on vs on-or-after, censoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_metrics_support import (
    ONE_DAY,
    obs_end,
    purchases,
    random_data,
    shuffled,
    simulated,
    tx_frame,
)

from churnml import CustomerData, DataValidationError
from churnml.metrics import n_day_retention, n_day_retention_rate

DAYS = [0, 1, 7, 30]


def by_day(res: pd.DataFrame) -> pd.DataFrame:
    return res.set_index("day")


# ----------------------------------------------------------------------------- worked examples


def hundred_users() -> CustomerData:
    """100 users start on 1 Jan; 15 come back on 2 Jan, 10 others on 4 Jan."""
    first = [(i, "2024-01-01 10:00", 10.0) for i in range(1, 101)]
    day1 = [(i, "2024-01-02 09:00", 10.0) for i in range(1, 16)]
    day3 = [(i, "2024-01-04 12:00", 10.0) for i in range(16, 26)]
    return CustomerData.from_frames(tx_frame(first + day1 + day3))


def test_day_one_retention_fifteen_percent() -> None:
    assert n_day_retention_rate(15, 100) == 15.0
    assert np.isnan(n_day_retention_rate(0, 0))
    r = by_day(n_day_retention(hundred_users(), days=[1, 3]))
    assert r.loc[1, "cohort_size"] == 100 and r.loc[1, "eligible"] == 100
    assert r.loc[1, "retained"] == 15 and r.loc[1, "retention"] == pytest.approx(15.0)
    assert r.loc[3, "retention"] == pytest.approx(10.0)
    rolling = by_day(n_day_retention(hundred_users(), days=[1, 3], mode="on_or_after"))
    assert rolling.loc[1, "retention"] == pytest.approx(25.0)
    assert rolling.loc[3, "retention"] == pytest.approx(10.0)


def test_evening_user_back_next_morning_calendar_vs_24h() -> None:
    data = CustomerData.from_frames(
        tx_frame([(1, "2024-01-01 20:00", 5.0), (1, "2024-01-02 06:00", 5.0)])
    )
    as_of = "2024-01-10"
    cal = by_day(n_day_retention(data, days=[0, 1], window="calendar", as_of=as_of))
    h24 = by_day(n_day_retention(data, days=[0, 1], window="24h", as_of=as_of))
    assert cal.loc[1, "retention"] == 100.0  # 2 Jan is calendar day 1
    assert h24.loc[1, "retention"] == 0.0  # 10 hours later is still in the first 24 h
    assert h24.loc[1, "eligible"] == 1
    on_after = by_day(n_day_retention(data, days=[1], window="24h", mode="on_or_after",
                                      as_of=as_of))
    assert on_after.loc[1, "retained"] == 0


def test_censoring_waits_for_day_n_to_elapse() -> None:
    data = CustomerData.from_frames(tx_frame([
        (1, "2024-01-01 12:00", 5.0), (1, "2024-01-02 12:00", 5.0),
        (2, "2024-01-05 23:00", 5.0),  # data end: observed through 5 Jan
    ]))
    r = by_day(n_day_retention(data, days=[0, 1, 4, 5]))
    assert r.loc[1, "cohort_size"] == 2
    # calendar: user 2 started on the last day; day 0 has elapsed, day 1 has not.
    # User 1's day 4 (5 Jan) ends at midnight 6 Jan = data end; day 5 has not elapsed.
    assert list(r["eligible"]) == [2, 1, 1, 0]
    assert r.loc[4, "retention"] == 0.0 and np.isnan(r.loc[5, "retention"])
    h = by_day(n_day_retention(data, days=[0, 1], window="24h"))
    assert list(h["eligible"]) == [1, 1]  # user 2: 23:00 + 24 h is after the data end
    # as_of ignores later actions and shrinks eligibility
    early = by_day(n_day_retention(data, days=[1], as_of="2024-01-02 12:00"))
    assert early.loc[1, "cohort_size"] == 1 and early.loc[1, "eligible"] == 0
    early = by_day(n_day_retention(data, days=[1], as_of="2024-01-03"))
    assert early.loc[1, "retained"] == 1


# ----------------------------------------------------------------------------- vs plain pandas


def ref_n_day(acts: pd.DataFrame, days: list[int], window: str, mode: str,
              as_of: pd.Timestamp) -> pd.DataFrame:
    a = acts[acts["ts"] < as_of]
    first = a.groupby("customer_id")["ts"].min()
    f = a["customer_id"].map(first)
    if window == "calendar":
        idx = (a["ts"].dt.normalize() - f.dt.normalize()).dt.days
        start = first.dt.normalize()
    else:
        idx = (a["ts"] - f) // ONE_DAY
        start = first
    rows = []
    for n in days:
        hit = idx == n if mode == "on" else idx >= n
        back = first.index.isin(a.loc[hit, "customer_id"])
        eligible = (start + (n + 1) * ONE_DAY <= as_of).to_numpy()
        rows.append({"day": n, "cohort_size": len(first), "eligible": int(eligible.sum()),
                     "retained": int((eligible & back).sum())})
    return pd.DataFrame(rows).set_index("day")


@pytest.mark.parametrize("window", ["calendar", "24h"])
@pytest.mark.parametrize("mode", ["on", "on_or_after"])
@pytest.mark.parametrize("source", ["target", "any"])
def test_matches_plain_pandas_on_simulated_data(window: str, mode: str, source: str) -> None:
    data = simulated()
    if source == "target":
        acts = purchases(data)[["customer_id", "ts"]]
    else:
        acts = pd.concat([data.transactions[["customer_id", "ts"]],
                          data.events[["customer_id", "ts"]]])
    as_of = obs_end(data) - pd.Timedelta(days=40)
    res = by_day(n_day_retention(data, DAYS, window=window, mode=mode, source=source,
                                 as_of=as_of))
    ref = ref_n_day(acts, DAYS, window, mode, as_of)
    pd.testing.assert_frame_equal(res[ref.columns], ref, check_dtype=False)
    np.testing.assert_allclose(res["retention"], 100 * ref["retained"] / ref["eligible"])


def test_cohort_periods_and_segments_add_up() -> None:
    data = simulated()
    total = by_day(n_day_retention(data, DAYS, source="transactions"))
    per_month = n_day_retention(data, DAYS, source="transactions", period="month")
    per_plan = n_day_retention(data, DAYS, source="transactions", by="plan")
    cols = ["cohort_size", "eligible", "retained"]
    pd.testing.assert_frame_equal(per_month.groupby("day")[cols].sum(), total[cols])
    pd.testing.assert_frame_equal(per_plan.groupby("day")[cols].sum(), total[cols])
    tx = data.transactions
    cohort = tx.groupby("customer_id")["ts"].min().dt.to_period("M").dt.start_time
    sizes = per_month[per_month["day"] == 1].set_index("period")["cohort_size"]
    assert sizes.to_dict() == {k.as_unit("us"): v for k, v in cohort.value_counts().items()}
    assert list(per_month.columns[:2]) == ["period", "day"]


def test_events_source_needs_events() -> None:
    with pytest.raises(DataValidationError, match="events"):
        n_day_retention(hundred_users(), source="events")


@pytest.mark.parametrize("kwargs,match", [
    ({"window": "hours"}, "window must be one of"),
    ({"mode": "after"}, "mode must be one of"),
    ({"source": "web"}, "source must be one of"),
    ({"days": [-1]}, "non-negative integers"),
    ({"days": [1.5]}, "non-negative integers"),
    ({"days": []}, "non-negative integers"),
    ({"by": "cohort"}, "needs a period"),
])
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        n_day_retention(hundred_users(), **kwargs)


# ----------------------------------------------------------------------------- properties


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), window=st.sampled_from(["calendar", "24h"]),
       days=st.lists(st.integers(0, 60), min_size=1, max_size=4))
def test_on_or_after_at_least_on_and_rates_bounded(seed: int, window: str,
                                                   days: list[int]) -> None:
    data = random_data(seed)
    on = by_day(n_day_retention(data, days, window=window, mode="on", source="any"))
    after = by_day(n_day_retention(data, days, window=window, mode="on_or_after",
                                   source="any"))
    assert (after["retained"] >= on["retained"]).all()
    assert (on["eligible"] == after["eligible"]).all()
    for r in (on, after):
        rate = r["retention"].to_numpy()
        assert (np.isnan(rate) | ((rate >= 0) & (rate <= 100))).all()
        assert (r["retained"] <= r["eligible"]).all() and (r["eligible"] <= r["cohort_size"]).all()
    # rolling retention never rises with N
    assert (np.diff(after.sort_index()["retained"].to_numpy()) <= 0).all()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_shuffling_rows_changes_nothing(seed: int) -> None:
    data = random_data(seed)
    kw = {"days": [0, 1, 7], "window": "24h", "source": "any", "period": "month", "by": "plan"}
    pd.testing.assert_frame_equal(n_day_retention(data, **kw),
                                  n_day_retention(shuffled(data, seed % 997), **kw))
