"""SQL of each aggregation, in two forms.

* **direct**: one conditional aggregate over the rows joined to their cutoff
  (``agg(x) FILTER (WHERE where AND window)``);
* **cumulative** (all-time aggregates over many cutoffs): each row is aggregated once, into
  the bucket ``[previous cutoff, cutoff)`` it falls in (*partials*), and a running window over
  the buckets combines them (*combine*), so a table is scanned once however many cutoffs.

Order-dependent aggregations read helper columns computed before the cutoff join by one
window over the customer's matching rows (those of the feature's ``where``) in time order:
``prev``, the time of the previous matching row (:data:`PREV`). Only gaps need that window
over the whole history (:attr:`Aggregation.history`).

* gaps: ``g = time - prev`` in whole microseconds; a row before the cutoff only looks back,
  so no leakage. Mean and sample standard deviation come from the exact integer moments
  ``n = count(g)``, ``s = sum(g)``, ``ss = sum(g^2)`` (DECIMAL(38, 0)):
  ``mean = s / n``, ``sd = sqrt((n ss - s^2) / (n (n - 1)))``, converted to days;
* run start: the latest matching row whose ``prev`` is missing or at least ``gap_days``
  days earlier (the first row after the latest gap of ``gap_days``), as days to the cutoff;
  the rows before the cutoff decide it alone;
* distinct days: a calendar day is counted on the *first* of its rows in the window
  ``[l, u)``: a row in the window whose ``prev`` is missing, ``< l`` or on an earlier day.
  Exactly one row per day with rows in the window qualifies; ``prev`` only looks back, so
  later rows cannot change the count, and rows before the window only matter as ``< l``, so
  the window may be computed over the window's rows alone (a *sequence* part). This costs a
  sort of the window's rows instead of the hash table of ``count(DISTINCT day)`` over every
  row. The cumulative form is the same rule without ``l``.

**Exact sums.** Floating-point sums depend on the order rows are added, which differs from
run to run when several threads aggregate. Sums and means of money (features whose unit
starts with :data:`MONEY_UNIT`) therefore add each value as ``DECIMAL(18, 4)``
(:func:`churnml.engine.sql.money`: exact for amounts in cents; values are rounded to
1/10,000 of the currency unit) into an exact DECIMAL total, and gap statistics use integer
microseconds, so these features are bit-identical whatever the thread count. Means are
``CAST(sum AS DOUBLE) / count``. Other float sums (non-money ``sum``/``mean``, ``std``)
stay DOUBLE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from churnml.engine.sql import (
    MICROSECONDS_PER_DAY,
    conjunction,
    days_between,
    filtered,
    money,
    shift_days,
)

Window = Callable[[str], str]  # partial suffix -> its running aggregate over the buckets
PREV = "prev"  # helper column: time of the previous matching row
SUM, MIN, MAX = "sum({col})", "min({col})", "max({col})"
MONEY_UNIT = "currency"  # features whose unit starts with this are money: summed exactly
EXACT_INTEGER = "DECIMAL(38, 0)"  # integer moments (squared microseconds) without overflow


@dataclass(frozen=True)
class Ctx:
    """What an aggregate is computed from.

    ``x``: value expression; ``cond``: row condition (None: all rows); ``time``: the time
    column; ``cut``: the cutoff; ``lower``: lower bound of the window (None: all time);
    ``prev``: the helper column (when the aggregation needs it); ``money``: ``x`` is money,
    summed exactly; ``gap_days``: the gap that starts a new run.
    """

    x: str
    cond: str | None
    time: str
    cut: str
    lower: str | None = None
    prev: str | None = None
    money: bool = False
    gap_days: int | None = None

    @property
    def summand(self) -> str:
        """What sums add: ``x``, as an exact decimal when it is money."""
        return money(self.x) if self.money else self.x


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
    history: bool = False  # helpers must see rows before the window (no lower bound)

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


def _sum() -> Aggregation:
    """``sum(x)`` (exact for money); per bucket the same, combined by a running sum."""
    return Aggregation(
        direct=lambda c: filtered(f"sum({c.summand})", c.cond),
        partials=lambda c: [("p", filtered(f"sum({c.summand})", c.cond), SUM)],
        combine=lambda w, cut: w("p"),
        zero_when_empty=True,
    )


def _ratio_of(s: str, n: str) -> str:
    return f"(CAST({s} AS DOUBLE) / NULLIF({n}, 0))"


def _mean() -> Aggregation:
    """Mean = sum / count of non-null values (the sum exact for money)."""
    return Aggregation(
        direct=lambda c: _ratio_of(filtered(f"sum({c.summand})", c.cond),
                                   filtered(f"count({c.x})", c.cond)),
        partials=lambda c: [
            ("s", filtered(f"sum({c.summand})", c.cond), SUM),
            ("n", filtered(f"count({c.x})", c.cond), SUM),
        ],
        combine=lambda w, cut: _ratio_of(w("s"), w("n")),
    )


def _std() -> Aggregation:
    """Sample standard deviation; cumulatively sqrt((SS - S^2/N) / (N - 1)) from running
    N, S = sum x, SS = sum x^2 (missing when N < 2)."""

    def combine(w: Window, cut: str) -> str:
        n, s, ss = w("n"), w("s"), w("ss")
        var = f"(({ss}) - ({s}) * ({s}) / ({n})) / (({n}) - 1)"
        return f"CASE WHEN {n} >= 2 THEN sqrt(greatest({var}, 0.0)) END"

    return Aggregation(
        direct=lambda c: filtered(f"stddev_samp({c.x})", c.cond),
        partials=lambda c: [
            ("n", filtered(f"count({c.x})", c.cond), SUM),
            ("s", filtered(f"sum({c.x})", c.cond), SUM),
            ("ss", filtered(f"sum(({c.x}) * ({c.x}))", c.cond), SUM),
        ],
        combine=combine,
    )


def _gap(c: Ctx) -> str:
    """Microseconds since the previous matching row (NULL on the customer's first)."""
    return f"date_diff('microsecond', {c.prev or 'NULL'}, {c.time})"


def _gap_moments(c: Ctx) -> list[tuple[str, str, str]]:
    """Exact partials ``n, s, ss`` of the gaps, each combined by a running sum."""
    squared = f"CAST({_gap(c)} AS {EXACT_INTEGER}) * {_gap(c)}"
    return [
        ("n", filtered(f"count({_gap(c)})", c.cond), SUM),
        ("s", filtered(f"sum({_gap(c)})", c.cond), SUM),
        ("ss", filtered(f"sum({squared})", c.cond), SUM),
    ]


def _gap_mean_of(n: str, s: str) -> str:
    return f"({_ratio_of(s, n)} / {MICROSECONDS_PER_DAY}.0)"


def _gap_std_of(n: str, s: str, ss: str) -> str:
    """``sqrt((n ss - s^2) / (n (n - 1)))`` in days; the numerator is an exact integer."""
    total = f"CAST({s} AS {EXACT_INTEGER})"
    spread = f"CAST(({n}) * ({ss}) - {total} * {total} AS DOUBLE)"
    return (f"(CASE WHEN {n} >= 2 THEN sqrt({spread} / (({n}) * (({n}) - 1.0))) "
            f"/ {MICROSECONDS_PER_DAY}.0 END)")


def _direct_moments(c: Ctx) -> dict[str, str]:
    return {suffix: sql for suffix, sql, _ in _gap_moments(c)}


GAP_MEAN = Aggregation(
    direct=lambda c: _gap_mean_of(_direct_moments(c)["n"], _direct_moments(c)["s"]),
    partials=lambda c: _gap_moments(c)[:2],
    combine=lambda w, cut: _gap_mean_of(w("n"), w("s")),
    direct_helpers=(PREV,),
    cumulative_helpers=(PREV,),
    history=True,
)

GAP_STD = Aggregation(
    direct=lambda c: _gap_std_of(*_direct_moments(c).values()),
    partials=_gap_moments,
    combine=lambda w, cut: _gap_std_of(w("n"), w("s"), w("ss")),
    direct_helpers=(PREV,),
    cumulative_helpers=(PREV,),
    history=True,
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


def _first_of_day(c: Ctx) -> str:
    """The row is its day's first in the window (the caller restricts rows to the window)."""
    before = f" OR {c.prev} < {c.lower}" if c.lower else ""
    return f"({c.prev} IS NULL{before} OR {_other_day(c.prev or '', c.time)})"


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
    direct=lambda c: filtered("count(*)", conjunction(c.cond, _first_of_day(c))),
    partials=lambda c: [("p", filtered("count(*)", conjunction(c.cond, _first_of_day(c))),
                         SUM)],
    combine=lambda w, cut: w("p"),
    zero_when_empty=True,
    direct_helpers=(PREV,),
    cumulative_helpers=(PREV,),
)

def _run_start(c: Ctx) -> str:
    """The row's time when it starts a run (its ``prev`` missing or ``gap_days`` before)."""
    after_gap = shift_days(c.prev or "", c.gap_days or 0)
    return f"CASE WHEN {c.prev} IS NULL OR {c.time} >= {after_gap} THEN {c.time} END"


RUN_START = Aggregation(
    direct=lambda c: days_between(filtered(f"max({_run_start(c)})", c.cond), c.cut),
    partials=lambda c: [("p", filtered(f"max({_run_start(c)})", c.cond), MAX)],
    combine=lambda w, cut: days_between(w("p"), cut),
    direct_helpers=(PREV,),
    cumulative_helpers=(PREV,),
    history=True,
)

AGGREGATIONS: dict[str, Aggregation] = {
    "count": _simple("count", SUM, zero=True),
    "sum": _sum(),
    "mean": _mean(),
    "min": _simple("min", MIN),
    "max": _simple("max", MAX),
    "std": _std(),
    "distinct_days": DISTINCT_DAYS,
    "days_since_last": _days_since("max"),
    "days_since_first": _days_since("min"),
    "latest": LATEST,
    "gap_mean": GAP_MEAN,
    "gap_std": GAP_STD,
    "days_since_run_start": RUN_START,
}
