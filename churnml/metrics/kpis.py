"""One table of every KPI per period: retention, value, voice and engagement."""

from __future__ import annotations

import pandas as pd

from churnml.config import ChurnConfig, Period, VoiceConfig
from churnml.data.customer_data import CustomerData
from churnml.metrics._engine import MetricsEngine, finish, join_frames
from churnml.metrics.engagement import _engagement
from churnml.metrics.retention import _retention
from churnml.metrics.value import _value
from churnml.metrics.voice import _voice


def kpi_table(
    data: CustomerData,
    period: Period = "month",
    by: str | None = None,
    churn: ChurnConfig | None = None,
    voice: VoiceConfig | None = None,
) -> pd.DataFrame:
    """Every KPI per period (and ``by`` segment), one row each, sorted by period.

    Joins :func:`~churnml.metrics.retention.retention_kpis` (customers_start/end, new,
    reactivated, retained, lost, retention_rate, churn_rate, active and acquired
    customers), :func:`~churnml.metrics.value.value_kpis` (revenue, orders, aov, arpu,
    repeat_purchase_rate, ltv, ...), :func:`~churnml.metrics.voice.voice_kpis` (nps,
    csat, ces; NaN without surveys) and
    :func:`~churnml.metrics.engagement.engagement_kpis` (active users, DAU, stickiness,
    engagement and referral rates; NaN without events / referred_by). Periods run
    gap-free from the first to the last period containing data; ``complete=False`` marks
    the last period when the data end before it does. Definitions and units: see those
    functions.
    """
    eng = MetricsEngine(data, churn, voice)
    frames = [
        _retention(eng, period, by), _value(eng, period, by), _voice(eng, period, by),
        _engagement(eng, period, by),
    ]
    return finish(join_frames(frames, by), by)
