"""Reasons in words: word formats, the wording of every feature family (hand-computed
strings), and the choice of drivers (one per family, no repeats, nothing unworded)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.config import ScoringConfig
from churnml.features.definitions import FAMILIES, Feature
from churnml.features.wording import format_value, interval_words
from churnml.scoring.reasons import NO_DRIVER, ReasonWriter
from churnml.scoring.score import feature_descriptions

CUTOFF = pd.Timestamp("2024-06-01")


@pytest.fixture(scope="module")
def definitions():
    return feature_descriptions(event_types=["session", "support_ticket"])


@pytest.fixture(scope="module")
def writer(definitions):
    return ReasonWriter(ScoringConfig().reason_templates, definitions, CUTOFF)


def test_word_formats_worked_examples():
    # rate per day -> typical interval: 1/122 per day = every 122 days = 4.0 months
    assert format_value(1 / 122, "every") == "four months"
    assert format_value(1 / 21, "every") == "three weeks"
    assert format_value(1 / 5, "every") == "five days"
    assert format_value(1.0, "every") == "day" and format_value(3.0, "every") == "day"
    assert format_value(1 / 30, "every") == "month"
    assert format_value(1 / 400, "every") == "year"
    assert format_value(1 / 800, "every") == "two years"
    assert format_value(0.0, "every") == "never"
    assert interval_words(24.0) == "three weeks" and interval_words(25.0) == "month"
    assert interval_words(45.0) == "month" and interval_words(46.0) == "two months"
    assert format_value(1.0, "count purchase") == "1 purchase"
    assert format_value(3.0, "count support ticket") == "3 support tickets"
    # days before the cutoff -> date; the year only when it differs from the cutoff's
    assert format_value(30.0, "date", CUTOFF) == "2 May"
    assert format_value(200.0, "date", pd.Timestamp("2024-01-10")) == "24 June 2023"
    assert format_value(-2.0, "diff") == "2.0 points below"
    assert format_value(1.5, "diff") == "1.5 points above"
    assert format_value(0.01, "diff") == "equal to"
    assert format_value(0.2, "change") == "down 80 %"
    assert format_value(1.25, "change") == "up 25 %"


def _words(writer: ReasonWriter, feature: str, **row: float) -> str | None:
    frame = pd.DataFrame({k: [v] for k, v in row.items()}, dtype="float64")
    return writer.render_feature(frame.assign(value=frame[feature]), feature)[0]


def test_every_built_in_feature_has_a_known_family(definitions):
    for name, f in definitions.items():
        assert f.family in FAMILIES, name
    assert Feature(name="x", table="transactions", agg="count").reason_family == "x"


def test_wording_worked_examples_per_family(writer):
    w = lambda f, **row: _words(writer, f, **row)  # noqa: E731
    nan = float("nan")
    # recency
    assert w("days_since_last_purchase", days_since_last_purchase=74.2,
             purchase_gap_mean_days=21.4) == "last purchase 74 days ago, usually every 21 days"
    assert w("days_since_last_purchase", days_since_last_purchase=74.2,
             purchase_gap_mean_days=nan) == "last purchase 74 days ago"
    assert w("activity_silence_probability", activity_silence_probability=0.0001,
             days_since_last_activity=20.0, activity_rate_per_day=0.5) == (
        "last purchase or engagement 20 days ago, usually one every two days")
    # frequency
    assert w("purchase_rate_per_day", purchase_rate_per_day=1 / 122) == (
        "about one purchase every four months")
    assert w("purchase_rate_per_day", purchase_rate_per_day=2.0) == "about 2 purchases a day"
    assert w("purchases_90d", purchases_90d=0.0) == "no purchase in the last 90 days"
    assert w("purchases_90d", purchases_90d=1.0) == "1 purchase in the last 90 days"
    assert w("purchase_gap_mean_days", purchase_gap_mean_days=nan) == "only one purchase so far"
    assert w("purchases_trend_90d", purchases_trend_90d=0.2) == (
        "purchases down 80 % vs the previous 90 days")
    assert w("purchases_trend_90d", purchases_trend_90d=nan) is None
    # spend
    assert w("spend_90d", spend_90d=1234.5) == "spent 1,234.50 in the last 90 days"
    assert w("spend_90d", spend_90d=0.0) is None
    # returns: a zero is no reason
    assert w("returned_amount_365d", returned_amount_365d=0.0) is None
    assert w("returned_amount_365d", returned_amount_365d=35.0) == (
        "returned 35.00 in the last 365 days")
    assert w("returns_365d", returns_365d=2.0) == "2 returns in the last 365 days"
    # engagement
    assert w("engagement_trend_30d", engagement_trend_30d=0.2) == (
        "engagement down 80 % vs the previous 30 days")
    assert w("session_30d", session_30d=0.0) == "no session in the last 30 days"
    assert w("events_30d", events_30d=1.0) == "1 engagement event in the last 30 days"
    assert w("activity_rate_per_day", activity_rate_per_day=1 / 14) == (
        "about one purchase or engagement every two weeks")
    # survey
    assert w("nps_latest", nps_latest=3.0, nps_detractor=1.0, days_since_last_nps=30.0) == (
        "NPS 3 (detractor) on 2 May")
    assert w("nps_detractor", nps_detractor=1.0, nps_latest=3.0, days_since_last_nps=30.0) == (
        "NPS 3 (detractor) on 2 May")
    assert w("nps_detractor", nps_detractor=1.0, nps_latest=3.0) == "NPS 3 (detractor)"
    assert w("nps_detractor", nps_detractor=0.0, nps_latest=8.0) is None
    assert w("nps_latest", nps_latest=7.0, nps_detractor=0.0, days_since_last_nps=1.0) == (
        "NPS 7 on 31 May")
    assert w("csat_dissatisfied", csat_dissatisfied=1.0, csat_latest=2.0,
             days_since_last_csat=10.0) == "CSAT 2 (dissatisfied) on 22 May"
    assert w("nps_trend", nps_trend=-2.0) == "latest NPS 2.0 points below their average"
    assert w("nps_trend", nps_trend=nan) == "no NPS answer yet"
    assert w("satisfaction_index_60d", satisfaction_index_60d=0.4) == (
        "survey answers averaged 40% of the best score in the last 60 days")
    # support
    assert w("support_tickets_30d", support_tickets_30d=3.0) == (
        "3 support tickets in the last 30 days")
    assert w("support_tickets_30d", support_tickets_30d=0.0) is None
    # subscription
    assert w("active_subscriptions", active_subscriptions=0.0) == "no active subscription"
    assert w("days_since_subscription_end", days_since_subscription_end=12.0) == (
        "a subscription ended 12 days ago")
    assert w("mrr", mrr=0.0) is None
    # referral, tenure
    assert w("customers_referred", customers_referred=0.0) is None
    assert w("customers_referred", customers_referred=2.0) == "referred 2 customers"
    assert w("tenure_days", tenure_days=40.0) == "customer for 40 days"


def test_one_reason_per_family_no_repeats_no_unworded_driver(writer):
    features = ["days_since_last_purchase", "recency_vs_usual_gap", "returned_amount_365d",
                "purchases_90d", "purchases_trend_90d", "nps_detractor", "spend_90d"]
    frame = pd.DataFrame({
        "days_since_last_purchase": [74.0, 10.0], "purchase_gap_mean_days": [21.0, 5.0],
        "recency_vs_usual_gap": [74 / 21, 2.0], "returned_amount_365d": [0.0, 0.0],
        "purchases_90d": [0.0, 4.0], "purchases_trend_90d": [0.0, np.nan],
        "nps_detractor": [1.0, 0.0], "nps_latest": [3.0, 8.0],
        "days_since_last_nps": [30.0, np.nan], "spend_90d": [0.0, 0.0],
    })
    # row 0: every column a candidate, largest first; row 1: only unworded candidates
    drivers = np.array([[0, 1, 2, 3, 4, 5, 6], [2, 4, 5, 6, -1, -1, -1]])
    words, chosen = writer.choose(frame, drivers, features, k=3)
    # recency_vs_usual_gap: recency taken; returned 0.00: no reason; purchases_trend: the
    # frequency family is taken by purchases_90d
    assert words[0].tolist() == ["last purchase 74 days ago, usually every 21 days",
                                 "no purchase in the last 90 days",
                                 "NPS 3 (detractor) on 2 May"]
    assert chosen[0].tolist() == [0, 3, 5]
    assert words[1].tolist() == [None, None, None] and chosen[1].tolist() == [-1, -1, -1]
    assert writer.render(frame, drivers, features, k=3).tolist() == [
        "last purchase 74 days ago, usually every 21 days; no purchase in the last 90 days; "
        "NPS 3 (detractor) on 2 May", NO_DRIVER]
    # k = 1: the first worded driver only
    assert writer.render(frame, drivers, features, k=1)[0] == (
        "last purchase 74 days ago, usually every 21 days")
    # the same words from two families appear once
    same = ReasonWriter({}, {"a": "no purchase for a while", "b": "no purchase for a while",
                             "c": "{value:.0f} visits"}, CUTOFF)
    abc = pd.DataFrame({"a": [1.0], "b": [2.0], "c": [3.0]})
    assert same.render(abc, np.array([[0, 1, 2]]), ["a", "b", "c"]).tolist() == [
        "no purchase for a while; 3 visits"]
