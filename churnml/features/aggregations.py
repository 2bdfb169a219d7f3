"""SQL of each aggregation, in two forms.

* **direct**: one conditional aggregate over the rows joined to their cutoff
  (``agg(x) FILTER (WHERE where AND window)``);
* **cumulative** (all-time aggregates over many cutoffs): each row is aggregated once, into
  the bucket ``[previous cutoff, cutoff)`` it falls in (*partials*), and a running window over
  the buckets combines them (*combine*), so a table is scanned once however many cutoffs.

Order-dependent aggregations read helper columns computed before the cutoff join by one
window over the customer's matching rows (those of the feature's ``where``) in time order:
``prev`` and ``next``, the times of the previous and next matching row. Each aggregation
names the helpers it needs in each form (:data:`PREV`, :data:`NEXT`).

* gaps: ``x = time - prev`` (days); a row before the cutoff only looks back, so no leakage;
* distinct days: a calendar day is counted on the *last* of its rows before the window's
  upper bound ``u``, i.e. where ``next`` is missing, ``>= u`` or on a later day; the day has a
  row in the window iff that row's time is in it. Exactly one row per day qualifies whatever
  happens after ``u``, so rows after the cutoff cannot change the count, and ``next`` only
  looks forward, so rows before the window are not needed. This costs a sort of the window's
  rows instead of the hash table of ``count(DISTINCT day)`` over every row. The cumulative
  form counts the *first* row of each day (``prev`` missing or on an earlier day).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from churnml.engine.sql import conjunction, days_between, filtered

Window = Callable[[str], str]  # partial suffix -> its running aggregate over the buckets
PREV, NEXT = "prev", "next"  # helper columns: time of the previous / next matching row
SUM, MIN, MAX = "sum({col})", "min({col})", "max({col})"


@dataclass(frozen=True)
class Ctx:
    """What an aggregate is computed from.

    ``x``: value expression; ``cond``: row condition (None: all rows); ``time``: the time
    column; ``cut``: the cutoff; ``upper``: upper bound of the window (``cut`` less the
    offset); ``prev``/``next``: helper columns (when the aggregation needs them).
    """

    x: str
    cond: str | None
    time: str
    cut: str
    upper: str
    prev: str | None = None
    next: str | None = None


@dataclass(frozen=True)
class Aggregation:
    """How one ``agg`` compiles.

    ``direct(ctx)``; ``partials(ctx)`` -> ``[(suffix, sql, running)]`` where ``running`` is
    the template of the running aggregate over buckets (``{col}``: this partial's column,
    ``{base}``: the prefix of its sibling partials); ``combine(window, cut)`` where
    ``window(suffix)`` is that running aggregate.
    """

    direct: Callable[[Ctx], str]
    partials: Callable[[Ctx], list[tuple[str, str, str]]]
    combine: Callable[[Window, str], str]
    zero_when_empty: bool = False  # a customer with no matching rows gets 0, else NULL
    direct_helpers: tuple[str, ...] = ()  # helper columns the direct form reads
    cumulative_helpers: tuple[str, ...] = ()  # helper columns the cumulative form reads

    def helpers(self, cumulative: bool) -> tuple[str, ...]:
        return self.cumulative_helpers if cumulative else self.direct_helpers


def _simple(fn: str, running: str, zero: bool = False) -> Aggregation:
    """``fn(x)`` directly; per bucket ``fn(x)`` combined by ``running``."""
    return Aggregation(
        direct=lambda c: filtered(f"{fn}({c.x})", c.cond),
        partials=lambda c: [("p", filtered(f"{fn}({c.x})", c.cond), running)],
        combine=lambda w, cut: w("p"),
        zero_when_empty=zero,
    )


def _gap(c: Ctx) -> str:
    return days_between(c.prev or "NULL", c.time)


def _mean(value: Callable[[Ctx], str] = lambda c: c.x, helpers: tuple[str, ...] = ()
          ) -> Aggregation:
    """Mean = running sum / running count of non-null values."""
    return Aggregation(
        direct=lambda c: filtered(f"avg({value(c)})", c.cond),
        partials=lambda c: [
            ("s", filtered(f"sum({value(c)})", c.cond), SUM),
            ("n", filtered(f"count({value(c)})", c.cond), SUM),
        ],
        combine=lambda w, cut: f"({w('s')} / NULLIF({w('n')}, 0))",
        direct_helpers=helpers,
        cumulative_helpers=helpers,
    )


def _std(value: Callable[[Ctx], str] = lambda c: c.x, helpers: tuple[str, ...] = ()
         ) -> Aggregation:
    """Sample standard deviation; cumulatively sqrt((SS - S^2/N) / (N - 1)) from running
    N, S = sum x, SS = sum x^2 (missing when N < 2)."""

    def combine(w: Window, cut: str) -> str:
        n, s, ss = w("n"), w("s"), w("ss")
        var = f"(({ss}) - ({s}) * ({s}) / ({n})) / (({n}) - 1)"
        return f"CASE WHEN {n} >= 2 THEN sqrt(greatest({var}, 0.0)) END"

    return Aggregation(
        direct=lambda c: filtered(f"stddev_samp({value(c)})", c.cond),
        partials=lambda c: [
            ("n", filtered(f"count({value(c)})", c.cond), SUM),
            ("s", filtered(f"sum({value(c)})", c.cond), SUM),
            ("ss", filtered(f"sum(({value(c)}) * ({value(c)}))", c.cond), SUM),
        ],
        combine=combine,
        direct_helpers=helpers,
        cumulative_helpers=helpers,
    )


def _days_since(fn: str) -> Aggregation:
    """Days from ``fn`` (max: latest, min: earliest) of the timestamp to the cutoff."""
    return Aggregation(
        direct=lambda c: days_between(filtered(f"{fn}({c.x})", c.cond), c.cut),
        partials=lambda c: [("p", filtered(f"{fn}({c.x})", c.cond), f"{fn}({{col}})")],
        combine=lambda w, cut: days_between(w("p"), cut),
    )


def _latest_key(c: Ctx) -> str:
    """Order of 'latest': time, then the value itself (ties take the largest value)."""
    return f"struct_pack(k := {c.time}, v := {c.x})"


def _not_null(c: Ctx) -> str:
    return conjunction(c.cond, f"({c.x}) IS NOT NULL") or ""


def _other_day(neighbour: str, time: str) -> str:
    return f"CAST({neighbour} AS DATE) <> CAST({time} AS DATE)"


def _last_of_day(c: Ctx) -> str:
    """The row is its day's last before the window's upper bound."""
    return f"({c.next} IS NULL OR {c.next} >= {c.upper} OR {_other_day(c.next or '', c.time)})"


def _first_of_day(c: Ctx) -> str:
    return f"({c.prev} IS NULL OR {_other_day(c.prev or '', c.time)})"


LATEST = Aggregation(
    direct=lambda c: filtered(f"arg_max({c.x}, {_latest_key(c)})", _not_null(c)),
    partials=lambda c: [
        ("v", filtered(f"arg_max({c.x}, {_latest_key(c)})", _not_null(c)),
         "arg_max({col}, {base}k)"),
        ("k", filtered(f"max({c.time})", _not_null(c)), MAX),
    ],
    combine=lambda w, cut: w("v"),
)

DISTINCT_DAYS = Aggregation(
    direct=lambda c: filtered("count(*)", conjunction(c.cond, _last_of_day(c))),
    partials=lambda c: [("p", filtered("count(*)", conjunction(c.cond, _first_of_day(c))),
                         SUM)],
    combine=lambda w, cut: w("p"),
    zero_when_empty=True,
    direct_helpers=(NEXT,),
    cumulative_helpers=(PREV,),
)

AGGREGATIONS: dict[str, Aggregation] = {
    "count": _simple("count", SUM, zero=True),
    "sum": _simple("sum", SUM, zero=True),
    "mean": _mean(),
    "min": _simple("min", MIN),
    "max": _simple("max", MAX),
    "std": _std(),
    "distinct_days": DISTINCT_DAYS,
    "days_since_last": _days_since("max"),
    "days_since_first": _days_since("min"),
    "latest": LATEST,
    "gap_mean": _mean(_gap, helpers=(PREV,)),
    "gap_std": _std(_gap, helpers=(PREV,)),
}
