"""Compile declarative features into one SQL query (DuckDB dialect, portable to Spark).

Time semantics, enforced here once for every feature:

* A row of a source is known at cutoff ``c`` iff its time column is ``< c``; timestamp columns
  known only once passed (a subscription's ``end_ts``) read NULL while ``>= c``.
* Each source is read in a few *parts*, each a single scan grouped by
  ``(customer_id, cutoff)`` that reads only the columns its features use:

  - **direct** part: rows joined to the cutoffs they are known at, restricted to the longest
    window (``time >= cutoff - bound``) when every feature of the part is windowed; all
    windows are conditional aggregates (``FILTER (WHERE ...)``) of that one scan. With a single
    cutoff the cutoff is a literal and the join is a filter.
  - **cumulative** part (all-time aggregates, several cutoffs): each row falls in exactly one
    bucket ``[previous cutoff, cutoff)``; per-bucket partial aggregates are combined by a
    running window over the buckets, so all-time features cost one pass, not one per cutoff.
  - order-dependent features (gaps, distinct days) read the time of the previous row
    matching their condition, from a window over the part's rows sorted per customer. When
    that sort covers the whole history anyway (gaps, all-time distinct days), every feature
    of the part is aggregated from the sorted rows, which also makes the hash aggregation
    cheap (each customer's rows arrive together). Windowed features that need no earlier
    rows (distinct days of the last ``n`` days) get a narrow **sequence** part of their own
    instead: only the matching rows of that window, sorted, rather than a sort or a
    ``count(DISTINCT)`` of every row.
  - when the rows are not sorted anyway, windowed features go to a **recent** part that
    reads the longest window only (the time filter prunes the scan), so the all-time part
    aggregates every row into narrow states.

* The population at each cutoff is every customer with an *activity* row (transaction, event
  or subscription start) before it.

On Spark (``Relations.engine == 'spark'``) two constructs are compiled differently, because
Spark inlines a CTE at every use and shuffles for every change of partitioning: the
population is the full outer join of the activity parts (not a UNION that rescans their
tables), and gap windows are partitioned by ``customer_id`` alone, the row condition
leading the ordering, so the aggregation after them needs no second shuffle. The physical
plan then holds one scan per part and one shuffle per scan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from churnml.engine.sql import conjunction, flag, shift_days, ts_literal
from churnml.errors import ConfigError, DataValidationError
from churnml.expressions import quote_identifier, render_expression
from churnml.features.aggregations import AGGREGATIONS, MONEY_UNIT, PREV, Ctx
from churnml.features.definitions import (
    CUTOFF,
    SOURCES,
    DerivedFeature,
    Feature,
    Source,
    columns_of,
)

ROWS = "__rows"  # hidden all-time row count of activity sources: defines the population
BUCKET_LO = "bucket_lo"  # start of a cutoff's bucket in the intervals relation
RUNNING = "w"  # name of the running window over buckets
CUMULATIVE_WINDOW = (
    "PARTITION BY g.customer_id ORDER BY g.cutoff "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
)
# Start of the first bucket: earlier than any timestamp the contract accepts.
FIRST_BUCKET_START = pd.Timestamp("1000-01-01")


@dataclass(frozen=True)
class Relations:
    """Physical names: ``table(name)`` for contract tables, the cutoffs relation (column
    ``cutoff``) and, for several cutoffs, the intervals relation (``bucket_lo, cutoff``)."""

    table: Callable[[str], str]
    cutoffs: str
    intervals: str | None = None
    engine: str = "duckdb"  # 'spark': the population is joined, not unioned (see below)


@dataclass
class _Part:
    source: Source
    cte: str
    mode: Literal["direct", "cumulative"]
    bound_days: int | None  # direct: rows at most this many days before the cutoff
    features: list[Feature] = field(default_factory=list)
    # row condition -> helper kinds (PREV) computed over the rows matching it
    helpers: dict[str | None, tuple[str, ...]] = field(default_factory=dict)
    # sequence part: its single row condition is applied before the window
    prefiltered: bool = False

    def columns(self, schema: Mapping[str, list[str]]) -> list[str]:
        """Source columns the part reads after its row condition (in table order): key, time
        and those the features reference."""
        used = {"customer_id", self.source.time}
        for f in self.features:
            if not self.prefiltered:
                used |= f.references()
            elif f.column is not None:
                used |= columns_of(f.column, f.name, "column")
        return [c for c in self.source.columns(schema) if c in used]

    def read(self) -> set[str]:
        """Every source column the part's features, conditions included, read."""
        return {"customer_id", self.source.time}.union(*(f.references() for f in self.features))

    @property
    def needs_history(self) -> bool:
        """Some helper must see rows before the window (no lower time bound)."""
        return any(AGGREGATIONS[f.agg].history for f in self.features)

    def helper_names(self, cond: str | None) -> dict[str, str]:
        """Helper kind -> column name, for the rows matching ``cond``."""
        i = list(self.helpers).index(cond) if cond in self.helpers else -1
        return {h: f"__{h}{i}" for h in self.helpers.get(cond, ())}


def _user_sql(text: str | None) -> str | None:
    """A user expression (already checked when its feature was built) as the SQL
    regenerated from its tree, every identifier quoted (never the user's text)."""
    return None if text is None else render_expression(text, where="feature expression")


def cutoff_intervals(cutoffs: pd.DatetimeIndex) -> pd.DataFrame:
    """Buckets ``[bucket_lo, cutoff)`` between consecutive sorted cutoffs."""
    lo = [FIRST_BUCKET_START, *cutoffs[:-1]]
    return pd.DataFrame(
        {BUCKET_LO: pd.DatetimeIndex(lo).astype("datetime64[us]"),
         CUTOFF: cutoffs.astype("datetime64[us]")}
    )


def compile_features(
    features: Sequence[Feature | DerivedFeature],
    schema: Mapping[str, list[str]],
    cutoffs: pd.DatetimeIndex,
    relations: Relations,
) -> tuple[list[tuple[str, str]], str]:
    """``(ctes, select)``: the query returning ``customer_id, cutoff`` and every feature
    (unordered; the population CTE is ``f_population p``).

    ``cutoffs`` are sorted and unique. Raises :class:`DataValidationError` when a feature
    needs a table or column that is absent, :class:`ConfigError` for an inconsistent spec.
    """
    base = [f for f in features if isinstance(f, Feature)]
    derived = [f for f in features if isinstance(f, DerivedFeature)]
    _check_names(features)
    for f in base:
        _check_feature(f, schema)
    single = len(cutoffs) == 1
    parts = _plan(base, schema, single)
    ctes: list[tuple[str, str]] = []
    for part in parts:
        ctes += _part_sql(part, schema, cutoffs, relations, single)
    activity = [p for p in parts if any(f.name == ROWS for f in p.features)]
    if relations.engine == "spark":
        # Spark inlines a CTE at each use: a population UNION of the activity parts would
        # scan their tables again, so the activity parts are full-outer-joined instead
        return ctes, _final_select(features, base, derived, parts, activity)
    population = " UNION ".join(f"SELECT customer_id, cutoff FROM {p.cte}" for p in activity)
    ctes.append(("f_population", population))
    select = _final_select(features, base, derived, parts)
    return ctes, select


# --------------------------------------------------------------------------- checks


def _check_names(features: Sequence[Feature | DerivedFeature]) -> None:
    seen: set[str] = set()
    for f in features:
        if f.name in seen:
            raise ConfigError(f"feature name {f.name!r} is used twice")
        if f.name in ("customer_id", CUTOFF):
            raise ConfigError(f"feature name {f.name!r} is reserved")
        seen.add(f.name)


def _check_feature(f: Feature, schema: Mapping[str, list[str]]) -> None:
    source = SOURCES[f.table]
    why = f"by feature {f.name!r}"
    if source.table not in schema:
        raise DataValidationError(source.table, None, f"table is required {why}")
    if not source.available(schema):
        raise DataValidationError(source.table, source.time, f"column is required {why}")
    known = set(source.columns(schema)) | {CUTOFF}
    missing = sorted(f.references() - known)
    if missing:
        raise DataValidationError(
            f.table, missing[0],
            f"column is required {why} (columns: {', '.join(sorted(known))})",
        )
    agg = AGGREGATIONS[f.agg]
    dependent = f.references() & (set(source.known_when_passed) | {CUTOFF})
    if (agg.direct_helpers or agg.cumulative_helpers) and f.where and dependent:
        raise ConfigError(
            f"feature {f.name!r}: agg {f.agg!r} orders rows before the cutoff join, so its "
            f"where cannot read cutoff-dependent columns ({', '.join(sorted(dependent))})"
        )


# --------------------------------------------------------------------------- planning


def _hidden_rows(source: str) -> Feature:
    return Feature.model_construct(
        kind="aggregate", name=ROWS, table=source, agg="count", column=None, where=None,
        window_days=None, offset_days=0, unit="rows", description="", dtype="number",
    )


def _plan(base: list[Feature], schema: Mapping[str, list[str]], single: bool) -> list[_Part]:
    """Split each source's features into a direct part, a cumulative part (several cutoffs)
    and the sequence parts of forward-looking windowed features (module docstring)."""
    by_source: dict[str, list[Feature]] = {}
    for name, source in SOURCES.items():
        if source.activity and source.available(schema):
            by_source[name] = [_hidden_rows(name)]
    for f in base:
        by_source.setdefault(f.table, []).append(f)
    parts: list[_Part] = []
    for name, feats in by_source.items():
        source = SOURCES[name]
        direct_only = single or bool(source.known_when_passed) or source.time_nullable
        by_mode: dict[str, list[Feature]] = {}
        for f in feats:
            cumulative = not direct_only and f.all_time and CUTOFF not in f.references()
            by_mode.setdefault("cumulative" if cumulative else "direct", []).append(f)
        for mode, group in by_mode.items():
            parts += _split(source, f"f_{name}_{mode}", mode, group)
    return parts


def _bound(mode: str, features: list[Feature]) -> int | None:
    """Days before the cutoff that the features read (None: all history)."""
    spans = [f.span_days for f in features]
    return None if mode == "cumulative" or None in spans else max(spans)


def _split(source: Source, cte: str, mode: str, features: list[Feature]) -> list[_Part]:
    """One part; a recent part for windowed features when the rows are not sorted; a
    sequence part per condition of windowed order-dependent features when the main part's
    rows are not sorted anyway or reach further back."""
    cumulative = mode == "cumulative"
    kinds: dict[str | None, set[str]] = {}
    for f in features:
        if AGGREGATIONS[f.agg].helpers(cumulative):
            kinds.setdefault(f.where, set()).update(AGGREGATIONS[f.agg].helpers(cumulative))
    # some order-dependent feature sorts the whole history anyway
    sorted_anyway = any(
        AGGREGATIONS[f.agg].helpers(cumulative)
        and (AGGREGATIONS[f.agg].history or f.span_days is None)
        for f in features
    )
    plain = [f for f in features if not AGGREGATIONS[f.agg].helpers(cumulative)]
    parts: list[_Part] = []
    recent = [f for f in plain if f.span_days is not None]
    if not sorted_anyway and not cumulative and 0 < len(recent) < len(plain):
        parts.append(_Part(source, f"{cte}_recent", mode, _bound(mode, recent), recent))
        plain = [f for f in plain if f not in recent]
    plain_bound = _bound(mode, plain) if plain else 0
    merged: dict[str | None, tuple[str, ...]] = {}
    for where, helper_kinds in kinds.items():
        group = [f for f in features
                 if AGGREGATIONS[f.agg].helpers(cumulative) and f.where == where]
        bound = _bound(mode, group)
        if not sorted_anyway and bound is not None and (plain_bound is None
                                                        or bound < plain_bound):
            parts.append(_Part(source, f"{cte}_seq{len(parts)}", mode, bound, group,
                               {where: tuple(sorted(helper_kinds))}, prefiltered=True))
        else:
            merged[where] = tuple(sorted(helper_kinds))
            plain += group
    if plain:
        kept = [f for f in features if f in plain]  # the declared order
        parts.insert(0, _Part(source, cte, mode, _bound(mode, kept), kept, merged))
    return parts


# --------------------------------------------------------------------------- SQL per part


def _helper_sql(part: _Part, time: str, spark: bool = False) -> str:
    """Time of the previous row matching each condition, per customer.

    On Spark the window is partitioned by ``customer_id`` alone (the condition's flag leads
    the ordering, and a previous row of the other flag reads NULL): the rows are then
    already distributed by customer for the aggregation, which saves a shuffle."""
    fn = {PREV: "lag"}
    out = []
    for cond in part.helpers:
        names = part.helper_names(cond).items()
        sql_cond = flag(_user_sql(cond) or "") if cond else ""
        if spark and cond and not part.prefiltered:
            over = f"OVER (PARTITION BY customer_id ORDER BY {sql_cond}, {time})"
            out += [f", CASE WHEN lag({sql_cond}) {over} = {sql_cond} "
                    f"THEN {fn[h]}({time}) {over} END AS {name}" for h, name in names]
            continue
        by = "customer_id" if part.prefiltered or not cond else f"customer_id, {sql_cond}"
        over = f"OVER (PARTITION BY {by} ORDER BY {time})"
        out += [f", {fn[h]}({time}) {over} AS {name}" for h, name in names]
    return "".join(out)


def _window_cond(f: Feature, time: str, cut: str) -> str | None:
    if f.window_days is None:
        return None
    lower = f"{time} >= {shift_days(cut, -f.span_days)}"
    return conjunction(lower, f"{time} < {shift_days(cut, -f.offset_days)}") if (
        f.offset_days
    ) else lower


def _ctx(f: Feature, part: _Part, time: str, cut: str, window: bool) -> Ctx:
    """What ``f``'s aggregate reads; ``window``: restrict rows to ``f``'s window."""
    if f.column is not None:
        x = _user_sql(f.column) or ""
    elif f.agg in ("days_since_last", "days_since_first"):
        x = time
    else:
        x = "*"
    names = part.helper_names(f.where)
    # a sequence part's rows already satisfy the feature's where
    where = None if part.prefiltered else _user_sql(f.where)
    cond = conjunction(where, _window_cond(f, time, cut)) if window else where
    lower = shift_days(cut, -f.span_days) if window and f.span_days is not None else None
    return Ctx(x=x, cond=cond, time=time, cut=cut, lower=lower,
               prev=names.get(PREV), money=f.unit.startswith(MONEY_UNIT),
               gap_days=f.gap_days)


def _known_before(source: Source, time: str, cut: str, bound: int | None) -> str:
    upper = f"{time} < {cut}"
    if source.time_nullable:
        upper = f"({time} IS NULL OR {upper})"
    lower = f"{time} >= {shift_days(cut, -bound)}" if bound is not None else None
    return conjunction(upper, lower) or upper


def _pre_source(part: _Part, schema: Mapping[str, list[str]], cutoffs: pd.DatetimeIndex,
                relations: Relations) -> str:
    """The part's rows that can be known at some cutoff (its columns only), with the helper
    columns of a sequence part."""
    source = part.source
    base = source.select_sql(relations.table(source.table), schema, only=part.read())
    # gaps look back across the whole history, so only the upper bound applies then; other
    # helpers only compare ``prev`` with the window's lower bound (module docstring)
    bound = None if part.needs_history else part.bound_days
    where = _known_before(source, source.time, ts_literal(cutoffs.max()), None)
    if part.prefiltered:
        where = conjunction(where, *(_user_sql(c) for c in part.helpers))
    if bound is not None:
        earliest = shift_days(ts_literal(cutoffs.min()), -bound)
        where = conjunction(where, f"{source.time} >= {earliest}")
    cols = ", ".join(f"s.{quote_identifier(c)}" for c in part.columns(schema))
    helpers = _helper_sql(part, source.time, relations.engine == "spark")
    return f"SELECT {cols}{helpers} FROM ({base}) s WHERE {where}"


def _part_sql(part: _Part, schema: Mapping[str, list[str]], cutoffs: pd.DatetimeIndex,
              relations: Relations, single: bool) -> list[tuple[str, str]]:
    pre = _pre_source(part, schema, cutoffs, relations)
    if part.mode == "direct":
        return [(part.cte, _direct_sql(part, schema, cutoffs, relations, single, pre))]
    return _cumulative_sql(part, relations, pre)


def _direct_sql(part: _Part, schema: Mapping[str, list[str]], cutoffs: pd.DatetimeIndex,
                relations: Relations, single: bool, pre: str) -> str:
    source = part.source
    cut = ts_literal(cutoffs[0]) if single else "c.cutoff"
    q = quote_identifier
    cols = [
        f"CASE WHEN t.{q(c)} < {cut} THEN t.{q(c)} END AS {q(c)}"
        if c in source.known_when_passed else f"t.{q(c)}"
        for c in part.columns(schema)
    ] + [f"t.{name}" for cond in part.helpers for name in part.helper_names(cond).values()]
    known = _known_before(source, f"t.{source.time}", cut, part.bound_days)
    if single:
        rows = f"FROM ({pre}) t WHERE {known}"
    else:
        rows = f"FROM ({pre}) t JOIN {relations.cutoffs} c ON {known}"
    joined = f"SELECT {', '.join(cols)}, {cut} AS cutoff {rows}"
    x_cut = cut if single else "x.cutoff"
    aggs = [
        AGGREGATIONS[f.agg].direct(_ctx(f, part, f"x.{source.time}", x_cut, True))
        + f" AS {f.name}"
        for f in part.features
    ]
    # one cutoff: a constant, not a grouping key
    keys = "x.customer_id" if single else "x.customer_id, x.cutoff"
    return (
        f"SELECT x.customer_id, {x_cut} AS cutoff, {', '.join(aggs)}\nFROM ({joined}) x\n"
        f"GROUP BY {keys}"
    )


def _cumulative_sql(part: _Part, relations: Relations, pre: str) -> list[tuple[str, str]]:
    source = part.source
    time = f"t.{source.time}"
    buckets, grid = f"{part.cte}_buckets", f"{part.cte}_grid"
    partial_cols: list[str] = []
    running: list[str] = []
    for f in part.features:
        agg = AGGREGATIONS[f.agg]
        templates: dict[str, str] = {}
        for suffix, sql, template in agg.partials(_ctx(f, part, time, "i.cutoff", False)):
            partial_cols.append(f"{sql} AS {f.name}__{suffix}")
            templates[suffix] = template

        def window(suffix: str, f: Feature = f, templates: dict[str, str] = templates) -> str:
            col, prefix = f"b.{f.name}__{suffix}", f"b.{f.name}__"
            return templates[suffix].format(col=col, base=prefix) + f" OVER {RUNNING}"

        running.append(f"{agg.combine(window, 'g.cutoff')} AS {f.name}")
    bucket_sql = (
        f"SELECT t.customer_id, i.cutoff, {', '.join(partial_cols)}\n"
        f"FROM ({pre}) t JOIN {relations.intervals} i "
        f"ON {time} >= i.{BUCKET_LO} AND {time} < i.cutoff\n"
        f"GROUP BY t.customer_id, i.cutoff"
    )
    grid_sql = (
        f"SELECT f.customer_id, c.cutoff FROM (SELECT customer_id, min(cutoff) AS first_cutoff "
        f"FROM {buckets} GROUP BY customer_id) f JOIN {relations.cutoffs} c "
        f"ON c.cutoff >= f.first_cutoff"
    )
    running_sql = (
        f"SELECT g.customer_id, g.cutoff, {', '.join(running)}\n"
        f"FROM {grid} g LEFT JOIN {buckets} b "
        f"ON b.customer_id = g.customer_id AND b.cutoff = g.cutoff\n"
        f"WINDOW {RUNNING} AS ({CUMULATIVE_WINDOW})"
    )
    return [(buckets, bucket_sql), (grid, grid_sql), (part.cte, running_sql)]


# --------------------------------------------------------------------------- final select


def _derived_sql(f: DerivedFeature, sql_of: Mapping[str, str]) -> str:
    args = [sql_of[i] for i in f.dependencies()]
    if f.op == "ratio":
        return f"({args[0]} / NULLIF({args[1]}, 0))"
    if f.op == "difference":
        return f"({args[0]} - {args[1]})"
    if f.op == "greatest":  # Spark's greatest() needs two or more arguments, DuckDB's one
        return f"greatest({', '.join(args)})" if len(args) > 1 else f"({args[0]})"
    if f.op in ("at_most", "below"):
        cmp = "<=" if f.op == "at_most" else "<"
        return (
            f"(CASE WHEN {args[0]} IS NULL THEN NULL WHEN {args[0]} {cmp} {f.threshold!r} "
            f"THEN 1.0 ELSE 0.0 END)"
        )
    return render_expression(f.expr or "", where=f"feature {f.name!r} expr",
                             replace={n: sql_of[n] for n in f.dependencies()})


def _final_select(features: Sequence[Feature | DerivedFeature], base: list[Feature],
                  derived: list[DerivedFeature], parts: list[_Part],
                  joined: list[_Part] | None = None) -> str:
    """The final SELECT (aliased ``p``); ``joined``: activity parts whose full outer join
    defines the population (instead of the ``f_population`` CTE)."""
    owner = {f.name: p.cte for p in parts for f in p.features if f.name != ROWS}
    sql_of: dict[str, str] = {}
    for f in base:
        col = f"{owner[f.name]}.{f.name}"
        if AGGREGATIONS[f.agg].zero_when_empty:
            col = f"COALESCE({col}, 0)"
        sql_of[f.name] = f"CAST({col} AS DOUBLE)" if f.dtype == "number" else col
    pending = {f.name: f for f in derived}

    def resolve(name: str, stack: tuple[str, ...] = ()) -> str:
        if name in sql_of:
            return sql_of[name]
        if name not in pending:
            raise ConfigError(f"feature {stack[-1]!r} depends on unknown feature {name!r}")
        if name in stack:
            raise ConfigError(f"features depend on each other in a cycle: {' -> '.join(stack)}")
        f = pending[name]
        for dep in f.dependencies():
            resolve(dep, (*stack, name))
        sql_of[name] = _derived_sql(f, sql_of)
        return sql_of[name]

    for f in derived:
        resolve(f.name)
    # numbers are DOUBLE on every engine (Spark types a literal 1.0 as DECIMAL)
    cols = ", ".join(
        f"{sql_of[f.name]} AS {f.name}" if f.dtype != "number" or isinstance(f, Feature)
        else f"CAST({sql_of[f.name]} AS DOUBLE) AS {f.name}" for f in features)
    if joined:
        return _joined_select(cols, parts, joined)
    joins = "".join(
        f"\nLEFT JOIN {p.cte} ON {p.cte}.customer_id = p.customer_id "
        f"AND {p.cte}.cutoff = p.cutoff"
        for p in parts
    )
    return f"SELECT p.customer_id, p.cutoff, {cols}\nFROM f_population p{joins}"


def _joined_select(cols: str, parts: list[_Part], joined: list[_Part]) -> str:
    """``SELECT * FROM (...) p`` over the activity parts' full outer join, the other parts
    left-joined to it."""
    def key(column: str, upto: int) -> str:
        names = [f"{p.cte}.{column}" for p in joined[:upto]]
        return names[0] if len(names) == 1 else f"COALESCE({', '.join(names)})"

    body = joined[0].cte
    for i, p in enumerate(joined[1:], 1):
        body += (f"\nFULL OUTER JOIN {p.cte} ON {p.cte}.customer_id = {key('customer_id', i)} "
                 f"AND {p.cte}.cutoff = {key('cutoff', i)}")
    n = len(joined)
    for p in parts:
        if p not in joined:
            body += (f"\nLEFT JOIN {p.cte} ON {p.cte}.customer_id = {key('customer_id', n)} "
                     f"AND {p.cte}.cutoff = {key('cutoff', n)}")
    inner = (f"SELECT {key('customer_id', n)} AS customer_id, {key('cutoff', n)} AS cutoff, "
             f"{cols}\nFROM {body}")
    return f"SELECT * FROM ({inner}) p"
