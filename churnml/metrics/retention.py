"""Customer retention rate (CRR), churn rate and active customers per period.

Membership in the customer base (see :mod:`churnml.metrics._engine`): non-contractual, a
customer is in the base at instant ``t`` if they had a target action in
``[t - horizon_days, t)`` (churned = no target action within the horizon); contractual, if a
subscription covers ``t`` (``start_ts <= t < end_ts``, null end = active).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnml.config import ChurnConfig, Period
from churnml.data.customer_data import CustomerData
from churnml.engine.sql import ts_literal
from churnml.metrics._engine import (
    MetricsEngine,
    engine,
    finish,
    join_frames,
    percent,
)

RETENTION_COLUMNS = [
    "customers_start", "customers_end", "new_customers", "reactivated_customers", "retained",
    "lost", "retention_rate", "churn_rate", "active_customers", "acquired_customers",
]


def customer_retention_rate(customers_end: Any, new_customers: Any, customers_start: Any) -> Any:
    """Customer retention rate, percent: ``CRR = (E - N) / S * 100``.

    ``E`` = customers at the end of the period, ``N`` = customers acquired (new or
    reactivated) during it, ``S`` = customers at its start. NaN when ``S = 0``.
    Works on scalars and arrays. Example: ``(227, 30, 200) -> 98.5``.
    """
    return percent(np.subtract(customers_end, new_customers), customers_start)


def churn_rate(lost: Any, customers_start: Any) -> Any:
    """Churn rate, percent: ``lost / S * 100`` (``= 100 - CRR``); NaN when ``S = 0``."""
    return percent(lost, customers_start)


def _active(eng: MetricsEngine, period: str, by: str | None) -> pd.DataFrame:
    return eng.memo(("active", period, by), lambda: eng.summarise(
        "SELECT customer_id, ts FROM target",
        {"active_customers": "count(DISTINCT customer_id)"}, period, by,
        counts=["active_customers"],
    ))


def _retention(eng: MetricsEngine, period: str, by: str | None) -> pd.DataFrame:
    def build() -> pd.DataFrame:
        status = f"""
            SELECT st.*, a.acq_ts FROM ({eng.status_sql(period)}) st
            LEFT JOIN acquisition a USING (customer_id)"""
        flows = {
            "customers_start": "count(*) FILTER (WHERE in_start)",
            "customers_end": "count(*) FILTER (WHERE in_end)",
            "retained": "count(*) FILTER (WHERE in_start AND in_end)",
            # ts = period start; members at the end were acquired before the end instant
            "new_customers": "count(*) FILTER (WHERE in_end AND NOT in_start AND acq_ts >= ts)",
        }
        acquired = {"acquired_customers": "count(*)"}
        out = join_frames([
            eng.summarise(status, flows, period, by, counts=flows),
            _active(eng, period, by),
            eng.summarise("SELECT customer_id, acq_ts AS ts FROM acquisition", acquired,
                          period, by, counts=acquired),
        ], by)
        out["reactivated_customers"] = (
            out["customers_end"] - out["retained"] - out["new_customers"]
        )
        out["lost"] = out["customers_start"] - out["retained"]
        acquired_in_period = out["new_customers"] + out["reactivated_customers"]
        out["retention_rate"] = customer_retention_rate(
            out["customers_end"], acquired_in_period, out["customers_start"]
        )
        out["churn_rate"] = churn_rate(out["lost"], out["customers_start"])
        return out[[c for c in out.columns if c not in RETENTION_COLUMNS] + RETENTION_COLUMNS]

    return eng.memo(("retention", period, by), build)


def retention_kpis(
    data: CustomerData,
    period: Period = "month",
    by: str | None = None,
    churn: ChurnConfig | None = None,
) -> pd.DataFrame:
    """Customer flows, retention rate and churn rate per period ``[p0, p1)``.

    Counts (customers): ``customers_start`` S = base members at ``p0``; ``customers_end``
    E = members at ``p1`` (for the last, incomplete period: at the end of observation, with
    ``complete=False``); ``retained`` = members at both instants = E - N; ``lost`` =
    S - retained; ``new_customers`` = members at ``p1`` not at ``p0`` whose acquisition
    (first-ever target action; contractual: first subscription start) falls in the
    period; ``reactivated_customers`` = the other members at ``p1`` not at ``p0`` (came
    back), so N = new + reactivated. ``active_customers`` = distinct customers with a target
    action in the period; ``acquired_customers`` = customers whose acquisition falls in the
    period (all of them: a new customer who lapses before ``p1`` is acquired, not in E).

    Rates (percent, NaN when S = 0): ``retention_rate`` = (E - N) / S * 100,
    ``churn_rate`` = lost / S * 100, so retention_rate + churn_rate = 100.

    ``by`` = a column of the customers table, or ``"cohort"`` (acquisition period).
    Periods run gap-free from the first to the last period containing data.
    """
    eng = engine(data, churn)
    return finish(_retention(eng, period, by).copy(), by)


def active_customers(
    data: CustomerData,
    period: Period = "month",
    by: str | None = None,
    churn: ChurnConfig | None = None,
) -> pd.DataFrame:
    """Active customers per period: distinct customers with a target action in the period."""
    return finish(_active(engine(data, churn), period, by).copy(), by)


def base_members(
    data: CustomerData, at: pd.Timestamp | str, churn: ChurnConfig | None = None
) -> pd.Index:
    """Ids of the customers in the base at instant ``at`` (see the module docstring)."""
    eng = engine(data, churn)
    ids = eng.con.execute(
        f"SELECT customer_id FROM ({eng.members_sql(f'SELECT {ts_literal(at)} AS t')}) "
        "ORDER BY customer_id"
    ).df()["customer_id"]
    return pd.Index(ids, name="customer_id")
