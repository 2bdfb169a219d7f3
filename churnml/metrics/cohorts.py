"""Acquisition-cohort tables: what each cohort does in the periods after it was acquired.

A cohort is the set of customers acquired in one period (first-ever target action;
contractual: first subscription start). ``periods_since`` k = 0 is the acquisition period.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from churnml.config import ChurnConfig, Period
from churnml.data.customer_data import CustomerData
from churnml.metrics._engine import COHORT, SEG, check_choice, engine, percent, ratio

CohortMetric = Literal["active", "retained_base", "revenue"]
COHORT_METRICS: tuple[str, ...] = ("active", "retained_base", "revenue")


def cohort_table_long(
    data: CustomerData,
    period: Period = "month",
    metric: CohortMetric = "active",
    max_periods: int | None = None,
    churn: ChurnConfig | None = None,
) -> pd.DataFrame:
    """Tidy cohort table: one row per (cohort, period since acquisition).

    ``metric``:

    * ``"active"`` - ``customers`` = cohort members with a target action in the period;
      ``value`` = customers / cohort_size * 100 (percent).
    * ``"retained_base"`` - ``customers`` = cohort members in the customer base at the
      period's end (end of observation for the last period); ``value`` in percent.
    * ``"revenue"`` - ``revenue`` = the cohort's net revenue in the period (currency);
      ``value`` = revenue / cohort_size (currency per acquired customer).

    Columns: ``cohort`` (period start), ``period``, ``periods_since`` (0, 1, ...),
    ``complete``, ``cohort_size`` and the count/revenue and ``value`` above. Cells run up to
    the last period with data (or ``max_periods``).
    """
    check_choice("metric", metric, COHORT_METRICS)
    if max_periods is not None and max_periods < 0:
        raise ValueError(f"max_periods must be >= 0, got {max_periods}")
    eng = engine(data, churn)
    sources = {  # metric -> (source relation, numerator column, aggregate)
        "active": ("SELECT customer_id, ts FROM target", "customers",
                   "count(DISTINCT customer_id)"),
        "retained_base": (f"SELECT customer_id, ts FROM ({eng.status_sql(period)}) "
                          "WHERE in_end", "customers", "count(*)"),
        "revenue": ("SELECT customer_id, ts, amount FROM transactions", "revenue",
                    "sum(amount)"),
    }
    source, name, agg = sources[metric]
    fill = {"sums": [name]} if metric == "revenue" else {"counts": [name]}
    cells = eng.summarise(source, {name: agg}, period, COHORT, **fill)
    cells = cells[cells[SEG].notna()].rename(columns={SEG: COHORT})
    sizes = eng.aggregate(
        "SELECT customer_id, acq_ts AS ts FROM acquisition", {"cohort_size": "count(*)"},
        period, None,
    ).rename(columns={"period": COHORT})
    cells = cells.merge(sizes, on=COHORT, how="left")
    index = eng.periods(period).set_index("period")["period_index"]
    cells["periods_since"] = (
        cells["period"].map(index).to_numpy() - cells[COHORT].map(index).to_numpy()
    )
    if max_periods is not None:
        cells = cells[cells["periods_since"] <= max_periods]
    scale = ratio if metric == "revenue" else percent
    cells["value"] = scale(cells[name], cells["cohort_size"])
    cols = [COHORT, "period", "periods_since", "complete", "cohort_size", name, "value"]
    return cells[cols].sort_values([COHORT, "periods_since"]).reset_index(drop=True)


def cohort_table(
    data: CustomerData,
    period: Period = "month",
    metric: CohortMetric = "active",
    max_periods: int | None = None,
    churn: ChurnConfig | None = None,
) -> pd.DataFrame:
    """Cohort triangle: rows = acquisition cohort (index ``cohort``), a ``cohort_size``
    column, then one column per period since acquisition 0..k holding ``value`` of
    :func:`cohort_table_long` (percent of the cohort for ``"active"`` and
    ``"retained_base"``, currency per acquired customer for ``"revenue"``); NaN where the
    period lies beyond the data."""
    long = cohort_table_long(data, period, metric, max_periods, churn)
    wide = long.pivot(index=COHORT, columns="periods_since", values="value")
    wide.columns = wide.columns.astype("int64")
    wide.columns.name = "periods_since"
    sizes = long.groupby(COHORT)["cohort_size"].first()
    wide.insert(0, "cohort_size", sizes.reindex(wide.index))
    return wide
