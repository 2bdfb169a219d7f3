"""N-day retention of first-action cohorts ("Day N" and rolling "on or after" retention).

Conventions follow the product-analytics tools (Amplitude, Mixpanel): a cohort is the set of
customers whose first action (day 0) happened; the day index of a later action is counted in
calendar days or in 24-hour windows from the first action; "on" retention asks for an action
on day N exactly, "on or after" for an action on day N or later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd

from churnml.config import ChurnConfig, Period
from churnml.data.customer_data import CustomerData
from churnml.engine.sql import MICROSECONDS_PER_DAY, ts_literal
from churnml.metrics._engine import (
    check_choice,
    engine,
    finish,
    percent,
)

Window = Literal["calendar", "24h"]
Mode = Literal["on", "on_or_after"]
Source = Literal["target", "transactions", "events", "any"]
WINDOWS: tuple[str, ...] = ("calendar", "24h")
MODES: tuple[str, ...] = ("on", "on_or_after")
SOURCES = {
    "target": ("target", None),
    "transactions": ("transactions", "transactions"),
    "events": ("events", "events"),
    "any": ("activity", None),
}
DEFAULT_DAYS = (1, 7, 30)
COUNTS = ["cohort_size", "eligible", "retained"]


def n_day_retention_rate(retained: Any, cohort_size: Any) -> Any:
    """Day-N retention, percent: ``retained / cohort_size * 100`` (NaN for an empty cohort).

    Example: 15 of 100 users back on day 1 -> ``15.0``.
    """
    return percent(retained, cohort_size)


def _day_index(window: str) -> str:
    if window == "calendar":
        return "date_diff('day', f.first_ts::DATE, a.ts::DATE)"
    return f"(epoch_us(a.ts) - epoch_us(f.first_ts)) // {MICROSECONDS_PER_DAY}"


def _eligible(window: str, as_of: str) -> str:
    if window == "calendar":
        return f"f.first_ts::DATE + (d.day + 1)::INTEGER <= {as_of}"
    return f"epoch_us(f.first_ts) + (d.day + 1) * {MICROSECONDS_PER_DAY} <= epoch_us({as_of})"


def n_day_retention(
    data: CustomerData,
    days: Sequence[int] = DEFAULT_DAYS,
    window: Window = "calendar",
    mode: Mode = "on",
    source: Source = "target",
    as_of: pd.Timestamp | str | None = None,
    period: Period | None = None,
    by: str | None = None,
    churn: ChurnConfig | None = None,
) -> pd.DataFrame:
    """Share of a first-action cohort that comes back on (or after) day N, percent.

    * Cohort: customers by their first action (day 0) in ``source`` - ``"target"`` (target
      actions, see :class:`~churnml.config.ChurnConfig`), ``"transactions"`` (any
      transaction row), ``"events"`` or ``"any"`` (transactions and events) - counting only
      actions before ``as_of``.
    * Day index of an action: ``window="calendar"``: ``date(ts) - date(first_ts)`` in days
      (8 pm Monday -> 6 am Tuesday is day 1); ``"24h"``:
      ``floor((ts - first_ts) / 24 h)`` (the same pair is day 0).
    * ``mode="on"``: an action with day index == N; ``"on_or_after"``: any with index >= N.
    * Censoring: a member counts in day N's denominator (``eligible``) only once day N's
      window has fully elapsed by ``as_of`` (default: end of observation = midnight after
      the last timestamp): calendar ``date(first_ts) + N + 1 days <= as_of``; 24h
      ``first_ts + (N + 1) * 24 h <= as_of``. ``retained`` counts eligible members only.

    ``period`` splits cohorts by the period of their first action in ``source``; ``by``
    is a customers column or ``"cohort"`` (acquisition period: first target action).

    Returns one row per (cohort period if ``period`` else overall, ``by``, ``day``):
    ``cohort_size``, ``eligible``, ``retained`` (customers) and
    ``retention = retained / eligible * 100`` (percent, NaN when nobody is eligible).
    """
    check_choice("window", window, WINDOWS)
    check_choice("mode", mode, MODES)
    check_choice("source", source, tuple(SOURCES))
    if not len(days) or any(isinstance(d, bool) or int(d) != d or d < 0 for d in days):
        raise ValueError(f"days must be non-negative integers, got {list(days)!r}")
    day_list = sorted({int(d) for d in days})
    eng = engine(data, churn)
    relation, table = SOURCES[source]
    if table is not None:
        eng.require(table, f"for n_day_retention(source={source!r})")
    as_of_sql = ts_literal(eng.obs_end if as_of is None else as_of)
    if mode == "on":
        returned, join = "i.d IS NOT NULL", "i ON i.customer_id = f.customer_id AND i.d = d.day"
    else:
        returned, join = "l.max_d >= d.day", "l ON l.customer_id = f.customer_id"
    cells = f"""
        WITH a AS (SELECT customer_id, ts FROM {relation} WHERE ts < {as_of_sql}),
        f AS (SELECT customer_id, min(ts) AS first_ts FROM a GROUP BY ALL),
        i AS (
            SELECT DISTINCT a.customer_id, {_day_index(window)} AS d
            FROM a JOIN f USING (customer_id)
        ),
        l AS (SELECT customer_id, max(d) AS max_d FROM i GROUP BY ALL),
        d AS (SELECT unnest({day_list}::BIGINT[]) AS day)
        SELECT f.customer_id, f.first_ts AS ts, d.day,
               {_eligible(window, as_of_sql)} AS eligible, {returned} AS returned
        FROM f CROSS JOIN d LEFT JOIN {join}"""
    aggs = {
        "cohort_size": "count(*)",
        "eligible": "count(*) FILTER (WHERE eligible)",
        "retained": "count(*) FILTER (WHERE eligible AND returned)",
    }
    out = eng.aggregate(cells, aggs, period, by, keys=["day"])
    out[COUNTS] = out[COUNTS].astype("int64")
    out["retention"] = n_day_retention_rate(out["retained"], out["eligible"])
    return finish(out, by, sort=["day"])
