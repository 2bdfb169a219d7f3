"""The retention metrics layer: KPIs per period, cohort and segment, and per-customer signals.

Everything runs on DuckDB in process over a :class:`~churnml.data.customer_data.CustomerData`
and returns pandas DataFrames. Rates are in percent; money in the input currency.
"""

from churnml.metrics.cohorts import cohort_table, cohort_table_long
from churnml.metrics.engagement import customer_engagement, engagement_kpis, stickiness
from churnml.metrics.kpis import kpi_table
from churnml.metrics.n_day import n_day_retention, n_day_retention_rate
from churnml.metrics.retention import (
    active_customers,
    base_members,
    churn_rate,
    customer_retention_rate,
    retention_kpis,
)
from churnml.metrics.value import (
    annual_churn_rate,
    arpu,
    average_order_value,
    customer_value,
    expected_lifetime_years,
    ltv,
    repeat_purchase_rate,
    value_kpis,
)
from churnml.metrics.voice import ces, csat, csat_mean, customer_voice, nps, nps_class, voice_kpis

__all__ = [
    "active_customers", "annual_churn_rate", "arpu", "average_order_value", "base_members",
    "ces", "churn_rate", "cohort_table", "cohort_table_long", "csat", "csat_mean",
    "customer_engagement", "customer_retention_rate", "customer_value", "customer_voice",
    "engagement_kpis", "expected_lifetime_years", "kpi_table", "ltv", "n_day_retention",
    "n_day_retention_rate", "nps", "nps_class", "repeat_purchase_rate", "retention_kpis",
    "stickiness", "value_kpis", "voice_kpis",
]
