"""Engagement: active users (MAU), DAU, stickiness, engagement rate and referrals."""

from __future__ import annotations

from typing import Any

import pandas as pd

from churnml.config import ChurnConfig, Period
from churnml.data.customer_data import CustomerData
from churnml.engine.sql import ident, literal
from churnml.metrics._engine import (
    SEG,
    MetricsEngine,
    as_of_data,
    engine,
    finish,
    join_frames,
    percent,
    ratio,
)
from churnml.metrics.retention import _retention

ENGAGEMENT_COLUMNS = [
    "active_users", "dau_mean", "stickiness", "engaged_customers", "engagement_rate",
    "referred_customers", "referral_rate", "referrals_made",
]
EVENT_PREFIX = "events_"


def stickiness(dau: Any, mau: Any) -> Any:
    """Stickiness, percent: ``mean DAU / MAU * 100`` (NaN when MAU is 0)."""
    return percent(dau, mau)


def _engagement(eng: MetricsEngine, period: str, by: str | None) -> pd.DataFrame:
    def build() -> pd.DataFrame:
        keys = ["period", "complete"] + ([SEG] if by is not None else [])
        ret = _retention(eng, period, by)[keys + ["customers_end", "acquired_customers"]]
        users = {"active_users": "count(DISTINCT customer_id)"}
        user_days = {"user_days": "count(*)"}
        frames = [
            eng.summarise("SELECT customer_id, ts FROM activity", users, period, by,
                          counts=users),
            eng.summarise("SELECT DISTINCT customer_id, date_trunc('day', ts) AS ts "
                          "FROM activity", user_days, period, by, counts=user_days),
            ret,
        ]
        if eng.has("events"):
            engaged = f"""
                SELECT st.customer_id, st.ts FROM ({eng.status_sql(period)}) st
                SEMI JOIN (
                    SELECT customer_id, date_trunc('{period}', ts) AS ts FROM events
                ) e ON e.customer_id = st.customer_id AND e.ts = st.ts
                WHERE st.in_end"""
            aggs = {"engaged_customers": "count(*)"}
            frames.append(eng.summarise(engaged, aggs, period, by, counts=aggs))
        else:
            frames.append(eng.nan_grid(period, by, ["engaged_customers"]))
        if eng.has("customers", "referred_by"):
            referred = """
                SELECT a.customer_id, a.acq_ts AS ts, c.referred_by
                FROM acquisition a JOIN customers c USING (customer_id)
                WHERE c.referred_by IS NOT NULL"""
            aggs = {"referred_customers": "count(*)"}
            frames.append(eng.summarise(referred, aggs, period, by, counts=aggs))
            made = f"SELECT referred_by AS customer_id, ts FROM ({referred})"
            aggs = {"referrals_made": "count(*)"}
            frames.append(eng.summarise(made, aggs, period, by, counts=aggs))
        else:
            frames.append(eng.nan_grid(period, by, ["referred_customers", "referrals_made"]))
        out = join_frames(frames, by)
        days = eng.periods(period).set_index("period")["days"]
        out["dau_mean"] = ratio(out["user_days"], out["period"].map(days))
        out["stickiness"] = stickiness(out["dau_mean"], out["active_users"])
        out["engagement_rate"] = percent(out["engaged_customers"], out["customers_end"])
        out["referral_rate"] = percent(out["referred_customers"], out["acquired_customers"])
        return out[keys + ["customers_end", "acquired_customers"] + ENGAGEMENT_COLUMNS]

    return eng.memo(("engagement", period, by), build)


def engagement_kpis(
    data: CustomerData,
    period: Period = "month",
    by: str | None = None,
    churn: ChurnConfig | None = None,
) -> pd.DataFrame:
    """Engagement KPIs per period.

    * ``active_users`` = distinct customers with any transaction or event in the period
      (MAU for ``period="month"``, WAU for weeks, ...); ``dau_mean`` = mean over the
      period's (observed) days of the distinct customers active that day; ``stickiness`` =
      dau_mean / active_users * 100 (percent).
    * ``engaged_customers`` = base members at the period end (``customers_end``, E) with
      >= 1 event in the period; ``engagement_rate`` = engaged / E * 100 (percent; NaN
      without an events table).
    * ``referred_customers`` = customers acquired in the period (first target action;
      ``acquired_customers``) whose ``customers.referred_by`` is set; ``referral_rate`` =
      referred / acquired * 100 (percent); ``referrals_made`` = those acquisitions counted
      in the referrer's segment (equal to referred_customers without ``by``). NaN without
      ``customers.referred_by``.
    """
    return finish(_engagement(engine(data, churn), period, by).copy(), by)


def customer_engagement(
    data: CustomerData, as_of: pd.Timestamp | str | None = None
) -> pd.DataFrame:
    """Per-customer engagement signal from rows before ``as_of`` (default: end of data).

    One row per customer seen in any table: ``events_<type>`` (count per event type of the
    whole data, so columns do not depend on ``as_of``), ``events_total``,
    ``last_event_ts``, ``event_days`` (distinct days with an event) and
    ``referrals_made`` (customers naming this one in ``referred_by`` and known by
    ``as_of``: signed up before it, or active before it). Absent tables give 0 counts.
    """
    known, _ = as_of_data(data, as_of)
    eng = MetricsEngine(known)
    types = (
        sorted(data.events["event_type"].dropna().unique()) if data.events is not None else []
    )
    per_type = [
        f"count(*) FILTER (WHERE e.event_type = {literal(t)}) "
        f"AS {ident(EVENT_PREFIX + str(t))}"
        for t in types
    ]
    events = "events" if eng.has("events") else (
        "(SELECT customer_id, NULL::TIMESTAMP AS ts, NULL::VARCHAR AS event_type "
        "FROM universe WHERE FALSE)"
    )
    if eng.has("customers", "referred_by"):
        known_referee = "c.signup_ts IS NOT NULL OR " if eng.has("customers", "signup_ts") \
            else ""
        referrals = f"""
            SELECT c.referred_by AS customer_id, count(*) AS referrals_made
            FROM customers c
            WHERE c.referred_by IS NOT NULL AND ({known_referee}
                  c.customer_id IN (SELECT customer_id FROM activity))
            GROUP BY ALL"""
    else:
        referrals = "SELECT customer_id, 0 AS referrals_made FROM universe WHERE FALSE"
    return eng.con.execute(f"""
        SELECT u.customer_id, {''.join(c + ', ' for c in per_type)}
               count(e.ts) AS events_total, max(e.ts) AS last_event_ts,
               count(DISTINCT e.ts::DATE) AS event_days,
               coalesce(any_value(r.referrals_made), 0)::BIGINT AS referrals_made
        FROM universe u
        LEFT JOIN {events} e USING (customer_id)
        LEFT JOIN ({referrals}) r USING (customer_id)
        GROUP BY u.customer_id ORDER BY u.customer_id""").df()
