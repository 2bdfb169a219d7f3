"""Customer value: revenue, orders, AOV, ARPU, repeat purchase rate and a simple LTV.

Money is in the input currency (``CustomerData.currency``). Revenue is net: returns and
cancellations (negative amounts) are included; an order is a transaction with ``amount > 0``
(distinct ``order_id`` when the column exists, else a row).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnml.config import ChurnConfig, Period
from churnml.data.customer_data import CustomerData
from churnml.metrics._engine import (
    DAYS_PER_YEAR,
    PERCENT,
    PERIODS_PER_YEAR,
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

MIN_TENURE_DAYS = 30.0  # floor of the tenure that annualises a new customer's purchases
REPEAT_MIN_ORDERS = 2  # a repeat purchaser has at least this many orders


def ltv(average_order_value: Any, purchases_per_year: Any, years_retained: Any) -> Any:
    """Simple customer lifetime value, currency:
    ``LTV = average order value * purchases per year * years retained``.

    Example: 50 per order, 4 orders a year, 3 years -> 600.
    """
    return np.multiply(np.multiply(average_order_value, purchases_per_year), years_retained)


def average_order_value(gross_revenue: Any, orders: Any) -> Any:
    """AOV, currency per order: ``gross revenue / orders`` (NaN without orders)."""
    return ratio(gross_revenue, orders)


def arpu(revenue: Any, customers: Any) -> Any:
    """Average revenue per user, currency per customer: ``net revenue / customers``."""
    return ratio(revenue, customers)


def repeat_purchase_rate(repeat_customers: Any, customers: Any) -> Any:
    """Repeat purchase rate, percent: customers with >= 2 orders / customers * 100."""
    return percent(repeat_customers, customers)


def annual_churn_rate(churn_rate: Any, periods_per_year: float) -> Any:
    """Churn rate per period (percent) compounded to a year, percent:
    ``(1 - (1 - churn_rate / 100) ** periods_per_year) * 100``."""
    survive = 1.0 - np.asarray(churn_rate, dtype=float) / PERCENT
    out = (1.0 - survive ** periods_per_year) * PERCENT
    return float(out) if np.ndim(out) == 0 else out


def expected_lifetime_years(annual_churn: Any) -> Any:
    """Expected years a customer stays, ``1 / annual churn`` (geometric lifetime);
    NaN when annual churn (percent) is 0 or undefined."""
    return ratio(PERCENT, annual_churn)


VALUE_SUMS = ["revenue", "gross_revenue", "returns"]
VALUE_COLUMNS = VALUE_SUMS + [
    "orders", "purchasers", "repeat_purchasers", "active_customers", "aov", "arpu",
    "repeat_purchase_rate", "purchases_per_customer", "purchases_per_year", "expected_years",
    "ltv",
]


def _value(eng: MetricsEngine, period: str, by: str | None) -> pd.DataFrame:
    def build() -> pd.DataFrame:
        money = {
            "revenue": "sum(amount)",
            "gross_revenue": "sum(amount) FILTER (WHERE amount > 0)",
            "returns": "-sum(amount) FILTER (WHERE amount < 0)",
            "orders": eng.order_count("amount > 0"),
            "purchasers": "count(DISTINCT customer_id) FILTER (WHERE amount > 0)",
        }
        history = f"""
            WITH o AS (
                SELECT customer_id, date_trunc('{period}', ts) AS ts, {eng.order_count()} AS n
                FROM transactions WHERE amount > 0 GROUP BY ALL
            )
            SELECT customer_id, ts,
                   sum(n) OVER (PARTITION BY customer_id ORDER BY ts) AS orders_to_date
            FROM o"""
        repeat = {
            "repeat_purchasers": f"count(*) FILTER (WHERE orders_to_date >= {REPEAT_MIN_ORDERS})"
        }
        out = join_frames([
            eng.summarise("SELECT * FROM transactions", money, period, by,
                          counts=["orders", "purchasers"], sums=VALUE_SUMS),
            eng.summarise(history, repeat, period, by, counts=repeat),
            _retention(eng, period, by),
        ], by)
        ppy = PERIODS_PER_YEAR[period]
        out["aov"] = average_order_value(out["gross_revenue"], out["orders"])
        out["arpu"] = arpu(out["revenue"], out["active_customers"])
        out["repeat_purchase_rate"] = repeat_purchase_rate(
            out["repeat_purchasers"], out["purchasers"]
        )
        out["purchases_per_customer"] = ratio(out["orders"], out["active_customers"])
        out["purchases_per_year"] = out["purchases_per_customer"] * ppy
        out["expected_years"] = expected_lifetime_years(annual_churn_rate(out["churn_rate"], ppy))
        out["ltv"] = ltv(out["aov"], out["purchases_per_year"], out["expected_years"])
        keys = ["period", "complete"] + ([SEG] if by is not None else [])
        return out[keys + VALUE_COLUMNS]

    return eng.memo(("value", period, by), build)


def value_kpis(
    data: CustomerData,
    period: Period = "month",
    by: str | None = None,
    churn: ChurnConfig | None = None,
) -> pd.DataFrame:
    """Value KPIs per period (money in the input currency).

    * ``revenue`` = net sum of amounts (returns included); ``gross_revenue`` = sum of
      positive amounts; ``returns`` = minus the sum of negative amounts (>= 0), so
      revenue = gross_revenue - returns.
    * ``orders`` = transactions with amount > 0 (distinct ``order_id`` when present);
      ``purchasers`` = customers with an order in the period; ``repeat_purchasers`` = those
      with >= 2 orders in their whole history up to the period end.
    * ``aov`` = gross_revenue / orders; ``arpu`` = revenue / active_customers (target
      action in the period); ``repeat_purchase_rate`` = repeat_purchasers / purchasers * 100
      (percent); ``purchases_per_customer`` = orders / active_customers;
      ``purchases_per_year`` = that times periods per year.
    * ``ltv`` = aov * purchases_per_year * expected_years, with expected_years =
      1 / annual churn and annual churn = 1 - (1 - churn_rate / 100) ^ periods_per_year
      (churn_rate of :func:`~churnml.metrics.retention.retention_kpis`); NaN when churn is
      0 or undefined. For the last, incomplete period the annualisation overstates
      (``complete=False``).
    """
    return finish(_value(engine(data, churn), period, by).copy(), by)


def customer_value(
    data: CustomerData,
    as_of: pd.Timestamp | str | None = None,
    min_tenure_days: float = MIN_TENURE_DAYS,
) -> pd.DataFrame:
    """Per-customer value signal from transactions before ``as_of`` (default: end of data).

    One row per customer seen in any table: ``orders``, ``gross_revenue``, ``revenue``
    (net), ``aov`` (gross / orders), ``first_purchase_ts``, ``last_purchase_ts``,
    ``tenure_days`` (as_of - first purchase), ``purchases_per_year`` = orders /
    max(tenure_days, ``min_tenure_days``) * 365.2425 (0 without orders), ``has_repeat``
    (orders >= 2).
    """
    known, as_of = as_of_data(data, as_of)
    eng = MetricsEngine(known)
    out = eng.con.execute(f"""
        SELECT u.customer_id, coalesce(t.orders, 0)::BIGINT AS orders,
               coalesce(t.gross_revenue, 0.0) AS gross_revenue,
               coalesce(t.revenue, 0.0) AS revenue,
               t.first_purchase_ts, t.last_purchase_ts
        FROM universe u LEFT JOIN (
            SELECT customer_id, {eng.order_count("amount > 0")} AS orders,
                   sum(amount) FILTER (WHERE amount > 0) AS gross_revenue,
                   sum(amount) AS revenue,
                   min(ts) FILTER (WHERE amount > 0) AS first_purchase_ts,
                   max(ts) FILTER (WHERE amount > 0) AS last_purchase_ts
            FROM transactions GROUP BY ALL
        ) t USING (customer_id)
        ORDER BY u.customer_id""").df()
    out["aov"] = average_order_value(out["gross_revenue"], out["orders"])
    out["tenure_days"] = (as_of - out["first_purchase_ts"]) / pd.Timedelta(days=1)
    years = np.maximum(out["tenure_days"], min_tenure_days) / DAYS_PER_YEAR
    out["purchases_per_year"] = np.where(out["orders"] > 0, ratio(out["orders"], years), 0.0)
    out["has_repeat"] = out["orders"] >= REPEAT_MIN_ORDERS
    return out
