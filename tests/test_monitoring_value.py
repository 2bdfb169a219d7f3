"""The within-customer order value check of the value monitor
(:func:`churnml.monitoring.value.paired_spend_shift` and its alarm)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.config import MonitoringConfig
from churnml.data.scenarios import spend_shift
from churnml.data.simulate import simulate
from churnml.monitoring.alarms import Alarm
from churnml.monitoring.value import (
    order_value_changes,
    paired_reference,
    paired_spend_alarms,
    paired_spend_shift,
)

CUTOFF = pd.Timestamp("2024-03-01")  # recent: [2024-01-31, 03-01), earlier: [2023-12-02, 01-31)


def _tiny() -> pd.DataFrame:
    rows = [
        ("A", "2023-12-10", 10.0), ("A", "2024-01-20", 40.0),  # earlier geometric mean 20
        ("A", "2024-02-10", 10.0),                               # recent 10: d = log(1/2)
        ("B", "2024-01-05", 25.0),                               # earlier 25
        ("B", "2024-01-31", 50.0),                               # on the split: recent
        ("B", "2024-02-15", -50.0), ("B", "2024-02-16", 0.0),   # a return, a zero: ignored
        ("F", "2023-12-02", 40.0), ("F", "2024-02-28", 60.0),    # d = log 1.5
        ("C", "2024-02-10", 30.0),                               # recent only: not paired
        ("D", "2023-11-01", 30.0), ("D", "2024-02-10", 30.0),    # before the earlier window
        ("E", "2024-01-10", 30.0), ("E", "2024-03-01", 90.0),    # on the cutoff: not seen
    ]
    tx = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    return tx.assign(ts=pd.to_datetime(tx["ts"]))


def test_order_value_changes_by_hand():
    d = order_value_changes(_tiny(), CUTOFF, recent_days=30, earlier_days=60)
    assert d.to_dict() == pytest.approx({"A": np.log(0.5), "B": np.log(2.0),
                                         "F": np.log(1.5)})
    mean, se, n = paired_spend_shift(_tiny(), [CUTOFF], 30, 60, min_pairs=3)
    values = [np.log(0.5), np.log(2.0), np.log(1.5)]
    assert (mean, n) == (pytest.approx(np.log(1.5) / 3), 3)
    assert se == pytest.approx(np.std(values, ddof=1) / np.sqrt(3))
    # fewer pairs than asked for: no statistic
    assert np.isnan(paired_spend_shift(_tiny(), [CUTOFF], 30, 60, min_pairs=4)[0])


def test_pooled_windows_cluster_the_standard_error_by_customer():
    # a month later A and B have their February orders as earlier, new March ones as recent
    later = CUTOFF + pd.Timedelta(days=30)  # recent [03-01, 03-31), earlier [01-01, 03-01)
    tx = pd.concat([_tiny(), pd.DataFrame({
        "customer_id": ["A", "B"], "ts": pd.to_datetime(["2024-03-05", "2024-03-20"]),
        "amount": [20.0, 50.0]})], ignore_index=True)
    second = order_value_changes(tx, later, 30, 60)
    # A: earlier 40 (01-20), 10 (02-10) -> geometric mean 20, recent 20: d = 0
    # B: earlier 25, 50 -> √1250, recent 50: d = log(50 / √1250) = log(√2)
    # E: earlier 30 (01-10), recent 90 (on the first cutoff): d = log 3; F: its 60 of 02-28
    # is earlier now and it has no recent order: not paired
    assert second.to_dict() == pytest.approx({"A": 0.0, "B": 0.5 * np.log(2.0),
                                              "E": np.log(3.0)})
    d = {("A", 1): np.log(0.5), ("B", 1): np.log(2.0), ("F", 1): np.log(1.5),
         ("A", 2): 0.0, ("B", 2): 0.5 * np.log(2.0), ("E", 2): np.log(3.0)}
    mean = np.mean(list(d.values()))
    resid = {c: sum(v - mean for (k, _), v in d.items() if k == c) for c in "ABFE"}
    se = np.sqrt(4 / 3 * sum(r ** 2 for r in resid.values())) / 6
    got = paired_spend_shift(tx, [CUTOFF, later], 30, 60, min_pairs=1)
    assert got == (pytest.approx(mean), pytest.approx(se), 6)


@pytest.fixture(scope="module")
def shop():
    return simulate(3000, start="2022-01-01", end="2024-06-30", seed=3)


def test_a_uniform_spend_scaling_moves_the_statistic_by_its_log(shop):
    cutoff = pd.Timestamp("2024-04-01")
    before = paired_spend_shift(shop.transactions, [cutoff], 30, 180)
    # every amount of the recent window times 0.7: each d_i, hence D, moves by log 0.7
    scaled = spend_shift(shop, cutoff - pd.Timedelta(days=30), share=1.0, factor=0.7)
    after = paired_spend_shift(scaled.transactions, [cutoff], 30, 180)
    assert after[0] - before[0] == pytest.approx(np.log(0.7), abs=1e-9)
    assert after[1:] == (pytest.approx(before[1]), before[2])
    # the whole history scaled: nothing moves
    everything = spend_shift(shop, "2000-01-01", share=1.0, factor=0.7)
    assert paired_spend_shift(everything.transactions, [cutoff], 30, 180)[0] == \
        pytest.approx(before[0], abs=1e-9)


def _alarms(data, cutoffs):
    ref = paired_reference(data.transactions, "2023-10-01", [30, 90], 180)
    alarms: list[Alarm] = []
    for c in cutoffs:
        cur = {w: paired_spend_shift(data.transactions, [c], w, 180) for w in ref}
        row = paired_spend_alarms(c, cur, ref, 3.0, 0.05, 180, alarms)
    return alarms, row


def test_unchanged_data_raise_no_alarm_and_a_spend_cut_in_a_quarter_does(shop):
    cutoffs = pd.date_range("2023-11-01", "2024-04-01", freq="MS")
    alarms, row = _alarms(shop, cutoffs)
    assert alarms == []
    assert abs(row["paired_spend_90d_change"]) < row["paired_spend_90d_limit"]
    assert row["paired_spend_90d_customers"] > 500
    shifted = spend_shift(shop, "2024-01-01", share=0.25, factor=0.7, seed=3)
    alarms, row = _alarms(shifted, cutoffs)
    assert alarms and {a.cause for a in alarms} == {"value"}
    assert min(a.cutoff for a in alarms) > pd.Timestamp("2024-01-01")
    assert {a.check for a in alarms} == {"paired_spend"}
    # 90 days after: about 0.25 × log 0.7 (−8.5 %), within 3 standard errors of it
    assert row["paired_spend_90d_change"] == pytest.approx(np.expm1(0.25 * np.log(0.7)),
                                                           abs=0.04)


def test_the_floor_holds_a_tiny_change_on_a_large_base():
    alarms: list[Alarm] = []
    cutoff = pd.Timestamp("2024-02-01")
    # −2 % at a standard error of 0.001: 20 standard errors, but under the 5 % floor
    row = paired_spend_alarms(cutoff, {30: (np.log(0.98), 0.001, 50_000)},
                              {30: (0.0, 0.001, 50_000)}, 3.0, 0.05, 180, alarms)
    # the floor log(1.05) as a relative change on the side of the change: 1 − 1 / 1.05
    assert alarms == [] and row["paired_spend_30d_limit"] == pytest.approx(1 - 1 / 1.05)
    paired_spend_alarms(cutoff, {30: (np.log(0.9), 0.001, 50_000)},
                        {30: (0.0, 0.001, 50_000)}, 3.0, 0.05, 180, alarms)
    assert [(a.cause, a.check, a.column) for a in alarms] == [
        ("value", "paired_spend", "paired_spend_30d")]
    assert alarms[0].value == pytest.approx(-0.1)
    assert alarms[0].threshold == pytest.approx(1 - 1 / 1.05) and "limit -4.8%" in alarms[0].text


def test_the_check_is_configured_with_positive_distinct_windows():
    config = MonitoringConfig()
    assert (config.spend_change_z, config.spend_change_windows_days,
            config.spend_change_earlier_days) == (3.0, [30, 90], 180)
    assert MonitoringConfig(spend_change_z=None).spend_change_z is None
    for bad in ([0], [30, 30], [-7]):
        with pytest.raises(ValueError, match="spend_change_windows_days"):
            MonitoringConfig(spend_change_windows_days=bad)
