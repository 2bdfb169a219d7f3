"""The shared DuckDB engine of the metrics layer.

One :class:`MetricsEngine` per call holds an in-process DuckDB connection with the
:class:`~churnml.data.customer_data.CustomerData` tables registered (zero-copy) and the
relations every metric reads, defined once here:

* ``target(customer_id, ts)`` - target actions (:class:`~churnml.config.ChurnConfig`):
  ``'purchase'`` = a transaction with ``amount > 0``, anything else = an ``events.event_type``.
* ``activity(customer_id, ts)`` - every transaction and event.
* ``universe(customer_id)`` - every customer id seen in any table (referrers included).
* ``acquisition(customer_id, acq_ts)`` - first-ever target action (contractual: first
  subscription start).
* ``spells(customer_id, lo, hi)`` - intervals of membership in the customer base.
  Non-contractual: a customer is a member at instant ``t`` if they had a target action in
  ``[t - horizon_days, t)``, i.e. ``lo < t <= hi`` over merged spells ``(first action, last
  action + horizon]``. Contractual: a subscription covers ``t``, ``lo <= t < hi``
  (a null ``end_ts`` = still active: ``hi`` = infinity).

Periods are ``date_trunc`` periods (day, ISO week starting Monday, month, quarter, year).
The observation end (``obs_end``) is the end of the last day with data: midnight after the
latest transaction/event/survey timestamp; the last period is ``complete`` only if it ends by
then. Every table-level metric groups a source relation by period (and segment) with
:meth:`MetricsEngine.aggregate` and lays it on the gap-free grid with
:meth:`MetricsEngine.on_grid`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import Any, get_args

import duckdb
import numpy as np
import pandas as pd

from churnml.config import ChurnConfig, Period, VoiceConfig
from churnml.data.customer_data import CustomerData
from churnml.engine.base import observation_end, require_present
from churnml.engine.sql import ident, literal, ts_literal
from churnml.errors import DataValidationError

PERIODS: tuple[str, ...] = get_args(Period)
PERIOD_STEP = {
    "day": "INTERVAL 1 DAY",
    "week": "INTERVAL 7 DAY",
    "month": "INTERVAL 1 MONTH",
    "quarter": "INTERVAL 3 MONTH",
    "year": "INTERVAL 1 YEAR",
}
DAYS_PER_YEAR = 365.2425  # mean Gregorian year
DAYS_PER_WEEK = 7
MONTHS_PER_YEAR = 12
QUARTERS_PER_YEAR = 4
PERIODS_PER_YEAR = {
    "day": DAYS_PER_YEAR,
    "week": DAYS_PER_YEAR / DAYS_PER_WEEK,
    "month": MONTHS_PER_YEAR,
    "quarter": QUARTERS_PER_YEAR,
    "year": 1,
}
PURCHASE = "purchase"
COHORT = "cohort"  # special ``by``: acquisition period of the customer
PERCENT = 100.0
SEG = "seg"  # internal name of the segment column until it is renamed to ``by``


def ratio(numerator: Any, denominator: Any) -> Any:
    """``numerator / denominator`` elementwise, NaN (never inf) where the denominator is 0.

    Scalars in, float out; arrays or Series in, float ndarray out.
    """
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=(den != 0) & ~np.isnan(den))
    return float(out) if out.ndim == 0 else out


def percent(numerator: Any, denominator: Any) -> Any:
    """``numerator / denominator * 100`` (percent), NaN where the denominator is 0."""
    return ratio(np.asarray(numerator, dtype=float) * PERCENT, denominator)


def check_period(period: str) -> str:
    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}, got {period!r}")
    return period


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


class MetricsEngine:
    """DuckDB connection over one :class:`CustomerData`, with the shared relations defined.

    Parameters
    ----------
    data : CustomerData
    churn : ChurnConfig, optional
        Target action, horizon and contractual/non-contractual membership.
    voice : VoiceConfig, optional
        Survey thresholds.
    """

    def __init__(
        self,
        data: CustomerData,
        churn: ChurnConfig | None = None,
        voice: VoiceConfig | None = None,
    ) -> None:
        self.data = data
        self.churn = churn or ChurnConfig()
        self.voice = voice or VoiceConfig()
        self.con = duckdb.connect()
        try:
            self.con.execute("SET enable_progress_bar = false")
        except duckdb.InvalidInputException:  # Jupyter without ipywidgets: it is off already
            pass
        self._cache: dict[tuple, Any] = {}
        self._registered_periods: set[str] = set()
        for name, df in data.tables().items():
            self.con.register(name, df)
        self._define_views()

    # ------------------------------------------------------------------ tables and views
    def has(self, table: str, column: str | None = None) -> bool:
        df = getattr(self.data, table, None)
        return df is not None and (column is None or column in df.columns)

    def require(self, table: str, why: str, column: str | None = None) -> None:
        """Raise a :class:`DataValidationError` naming ``table``(``.column``) if absent."""
        columns = {name: list(df.columns) for name, df in self.data.tables().items()}
        require_present(columns, table, why, column)

    def _define_views(self) -> None:
        churn = self.churn
        if churn.target_action == PURCHASE:
            target = "SELECT customer_id, ts FROM transactions WHERE amount > 0"
        else:
            self.require("events", f"for target_action {churn.target_action!r}", "event_type")
            target = (
                "SELECT customer_id, ts FROM events "
                f"WHERE event_type = {literal(churn.target_action)}"
            )
        ts_tables = [t for t in ("transactions", "events") if self.has(t)]
        activity = " UNION ALL ".join(f"SELECT customer_id, ts FROM {t}" for t in ts_tables)
        ids = [f"SELECT customer_id FROM {t}" for t in self.data.tables()]
        if self.has("customers", "referred_by"):
            ids.append(
                "SELECT referred_by AS customer_id FROM customers WHERE referred_by IS NOT NULL"
            )
        if churn.kind == "contractual":
            self.require("subscriptions", "when churn.kind is 'contractual'")
            acquisition = (
                "SELECT customer_id, min(start_ts) AS acq_ts FROM subscriptions GROUP BY ALL"
            )
            spells = (
                "SELECT customer_id, start_ts AS lo, "
                "coalesce(end_ts, 'infinity'::TIMESTAMP) AS hi FROM subscriptions"
            )
        else:
            acquisition = "SELECT customer_id, min(ts) AS acq_ts FROM target GROUP BY ALL"
            horizon = f"INTERVAL {int(churn.horizon_days)} DAY"
            spells = f"""
                WITH a AS (SELECT DISTINCT customer_id, ts FROM target),
                b AS (
                    SELECT customer_id, ts,
                           coalesce(ts > lag(ts) OVER w + {horizon}, TRUE)::INTEGER AS brk
                    FROM a WINDOW w AS (PARTITION BY customer_id ORDER BY ts)
                ),
                c AS (
                    SELECT customer_id, ts,
                           sum(brk) OVER (PARTITION BY customer_id ORDER BY ts) AS spell
                    FROM b
                )
                SELECT customer_id, min(ts) AS lo, max(ts) + {horizon} AS hi
                FROM c GROUP BY customer_id, spell"""
        views = {
            "target": target,
            "activity": activity,
            "universe": f"SELECT DISTINCT customer_id FROM ({' UNION ALL '.join(ids)})",
            "acquisition": acquisition,
            "spells": spells,
        }
        for name, sql in views.items():
            self.con.execute(f"CREATE TEMP VIEW {name} AS {sql}")

    def member_predicate(self, t: str) -> str:
        """SQL condition: the spell ``s`` makes its customer a base member at instant ``t``."""
        if self.churn.kind == "contractual":
            return f"s.lo <= {t} AND {t} < s.hi"
        return f"s.lo < {t} AND {t} <= s.hi"

    def members_sql(self, instants: str) -> str:
        """Relation ``(customer_id, t)``: base members at each instant ``t`` of ``instants``."""
        return f"""
            SELECT DISTINCT s.customer_id, b.t
            FROM spells s JOIN ({instants}) b ON {self.member_predicate('b.t')}"""

    def status_sql(self, period: str) -> str:
        """Relation ``(customer_id, ts, in_start, in_end)``: membership at the start
        (``ts`` = period start) and at the end (``period_end``) of each period, for customers
        who are members at either instant."""
        periods = self.periods_table(period)
        instants = (
            f"SELECT period AS t FROM {periods} UNION SELECT period_end AS t FROM {periods}"
        )
        return f"""
            WITH m AS ({self.members_sql(instants)})
            SELECT customer_id, ts, bool_or(at_start) AS in_start, bool_or(NOT at_start) AS in_end
            FROM (
                SELECT m.customer_id, p.period AS ts, TRUE AS at_start
                FROM {periods} p JOIN m ON m.t = p.period
                UNION ALL
                SELECT m.customer_id, p.period AS ts, FALSE AS at_start
                FROM {periods} p JOIN m ON m.t = p.period_end
            ) GROUP BY ALL"""

    # ------------------------------------------------------------------ time
    @cached_property
    def span(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """(earliest, latest) transaction/event/survey timestamp."""
        tables = [t for t in ("transactions", "events", "surveys") if self.has(t)]
        union = " UNION ALL ".join(f"SELECT ts FROM {t}" for t in tables)
        lo, hi = self.con.execute(f"SELECT min(ts), max(ts) FROM ({union})").fetchone()
        if lo is None:
            raise DataValidationError("transactions", "ts", "no rows: the data are empty")
        return pd.Timestamp(lo), pd.Timestamp(hi)

    @property
    def obs_end(self) -> pd.Timestamp:
        """End of observation (exclusive), see :func:`observation_end`."""
        return observation_end(self.span[1])

    def periods(self, period: str) -> pd.DataFrame:
        """Gap-free periods from the first to the last one containing data.

        Columns: ``period`` (start), ``period_end`` (``min(next start, obs_end)``),
        ``complete`` (the period ended by ``obs_end``), ``period_index`` (0, 1, ...) and
        ``days`` (observed days in the period).
        """
        check_period(period)

        def build() -> pd.DataFrame:
            start, end = self.span
            step = PERIOD_STEP[period]
            obs_end = ts_literal(self.obs_end)
            return self.con.execute(f"""
                SELECT g AS period, least(g + {step}, {obs_end}) AS period_end,
                       g + {step} <= {obs_end} AS complete,
                       (row_number() OVER (ORDER BY g) - 1)::BIGINT AS period_index,
                       date_diff('day', g, least(g + {step}, {obs_end}))::BIGINT AS days
                FROM generate_series(date_trunc('{period}', {ts_literal(start)}),
                                     date_trunc('{period}', {ts_literal(end)}), {step}) t(g)
                ORDER BY g""").df()

        return self.memo(("periods", period), build)

    def periods_table(self, period: str) -> str:
        """Name of the registered DuckDB relation holding :meth:`periods`."""
        name = f"periods_{period}"
        if name not in self._registered_periods:
            self.con.register(name, self.periods(period))
            self._registered_periods.add(name)
        return name

    # ------------------------------------------------------------------ segments
    def check_by(self, by: str | None) -> None:
        if by is None or by == COHORT:
            return
        if by == "customer_id":
            raise ValueError("by='customer_id' is not a segment; use the per-customer functions")
        self.require("customers", f"for by={by!r}", by)

    def segment_sql(self, by: str, period: str | None) -> str:
        """Relation ``(customer_id, seg)`` over the universe of customers."""
        self.check_by(by)
        if by == COHORT:
            if period is None:
                raise ValueError("by='cohort' needs a period to define acquisition cohorts")
            return f"""
                SELECT u.customer_id, date_trunc('{period}', a.acq_ts) AS {SEG}
                FROM universe u LEFT JOIN acquisition a USING (customer_id)"""
        return f"""
            SELECT u.customer_id, c.{ident(by)} AS {SEG}
            FROM universe u LEFT JOIN customers c USING (customer_id)"""

    def segments(self, by: str, period: str | None) -> pd.DataFrame:
        """Distinct segment values (one column ``seg``; null when a customer has none)."""
        return self.memo(
            ("segments", by, period),
            lambda: self.con.execute(
                f"SELECT DISTINCT {SEG} FROM ({self.segment_sql(by, period)}) "
                f"ORDER BY {SEG} NULLS LAST"
            ).df(),
        )

    # ------------------------------------------------------------------ aggregation
    def order_count(self, where: str | None = None) -> str:
        """SQL aggregate counting orders: distinct ``order_id`` (rows without one count
        singly) when the column exists, else rows."""
        cond = f"{where} AND " if where else ""
        if self.has("transactions", "order_id"):
            return (
                f"(count(DISTINCT order_id) FILTER (WHERE {cond}TRUE) "
                f"+ count(*) FILTER (WHERE {cond}order_id IS NULL))"
            )
        return f"count(*) FILTER (WHERE {cond}TRUE)"

    def aggregate(
        self,
        source: str,
        aggs: dict[str, str],
        period: str | None,
        by: str | None,
        keys: Sequence[str] = (),
    ) -> pd.DataFrame:
        """``SELECT period, seg, keys, aggs FROM source GROUP BY ALL``.

        ``source`` has ``customer_id`` and ``ts`` (the instant assigned to a period by
        ``date_trunc``); ``period=None`` groups over all time. The segment is joined on
        ``customer_id``.
        """
        if period is not None:
            check_period(period)
        select = [f"date_trunc('{period}', x.ts) AS period"] if period else []
        join = ""
        if by is not None:
            select.append(f"s.{SEG}")
            join = f"LEFT JOIN ({self.segment_sql(by, period)}) s USING (customer_id)"
        select += [f"x.{k}" for k in keys]
        select += [f"{expr} AS {name}" for name, expr in aggs.items()]
        sql = f"SELECT {', '.join(select)} FROM ({source}) x {join} GROUP BY ALL"
        return self.con.execute(sql).df()

    def grid(self, period: str, by: str | None) -> pd.DataFrame:
        """Every (period, segment): ``period, [seg], complete``. With ``by='cohort'`` only
        cohorts acquired by the period (and the no-cohort group) appear."""
        grid = self.periods(period)[["period", "complete"]]
        if by is None:
            return grid
        grid = grid.merge(self.segments(by, period), how="cross")
        if by == COHORT:
            grid = grid[grid[SEG].isna() | (grid[SEG] <= grid["period"])]
        return grid.reset_index(drop=True)

    def on_grid(
        self,
        frame: pd.DataFrame,
        period: str,
        by: str | None,
        counts: Iterable[str] = (),
        sums: Iterable[str] = (),
    ) -> pd.DataFrame:
        """Lay an aggregate on :meth:`grid`: empty cells get 0 for ``counts`` (int64) and
        ``sums`` (float), NaN otherwise."""
        keys = ["period"] + ([SEG] if by is not None else [])
        out = self.grid(period, by).merge(frame, on=keys, how="left")
        for c in counts:
            out[c] = out[c].fillna(0).astype("int64")
        for c in sums:
            out[c] = out[c].fillna(0.0).astype("float64")
        return out

    def summarise(
        self,
        source: str,
        aggs: dict[str, str],
        period: str,
        by: str | None,
        counts: Iterable[str] = (),
        sums: Iterable[str] = (),
    ) -> pd.DataFrame:
        """:meth:`aggregate` by period and segment, laid on :meth:`grid`."""
        return self.on_grid(self.aggregate(source, aggs, period, by), period, by, counts, sums)

    def nan_grid(self, period: str, by: str | None, columns: Iterable[str]) -> pd.DataFrame:
        """The grid with ``columns`` all NaN (a table needed for them is absent)."""
        out = self.grid(period, by)
        for c in columns:
            out[c] = np.nan
        return out

    # ------------------------------------------------------------------ misc
    def memo(self, key: tuple, build: Callable[[], Any]) -> Any:
        """Compute once per engine (e.g. retention reused by value and engagement KPIs)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]


def join_frames(frames: Sequence[pd.DataFrame], by: str | None) -> pd.DataFrame:
    """Join grid-aligned frames on ``period, [seg], complete`` (columns already present in an
    earlier frame are dropped from later ones)."""
    keys = ["period"] + ([SEG] if by is not None else []) + ["complete"]
    out = frames[0]
    for f in frames[1:]:
        extra = [c for c in f.columns if c not in out.columns]
        out = out.merge(f[keys + extra], on=keys, how="left")
    return out


def finish(frame: pd.DataFrame, by: str | None, sort: Sequence[str] = ()) -> pd.DataFrame:
    """Rename the segment column to ``by`` and sort by period, segment and ``sort``."""
    if by is not None:
        frame = frame.rename(columns={SEG: by})
    lead = [c for c in ("period", by, "complete") if c is not None and c in frame.columns]
    frame = frame[lead + [c for c in frame.columns if c not in lead]]
    order = [c for c in ["period", by, *sort] if c is not None and c in frame.columns]
    return frame.sort_values(order, na_position="last", kind="stable").reset_index(drop=True)


def engine(
    data: CustomerData | MetricsEngine,
    churn: ChurnConfig | None = None,
    voice: VoiceConfig | None = None,
) -> MetricsEngine:
    """An engine over ``data`` (``data`` itself if it already is one)."""
    if isinstance(data, MetricsEngine):
        return data
    return MetricsEngine(data, churn, voice)


def as_of_data(data: CustomerData, as_of: pd.Timestamp | str | None) -> tuple[
    CustomerData, pd.Timestamp
]:
    """The data known at ``as_of`` (rows with ``ts < as_of``; default: end of observation)."""
    if as_of is None:
        return data, observation_end(data.end)
    as_of = pd.Timestamp(as_of)
    return data.before(as_of), as_of
