"""Declarative features: what to aggregate, from which source, over which window.

A :class:`Feature` aggregates rows of one *source* known at the cutoff; a
:class:`DerivedFeature` combines other features of the same row (ratios, differences,
thresholds). Both carry a unit, a description template used to explain scores in words
(with the word formats of :mod:`churnml.features.wording`), the wording of a zero value and
a *family* (recency, frequency, spend, ...: a customer's reasons name at most one feature
per family)::

    Feature(name="purchases_90d", table="transactions", agg="count", where="amount > 0",
            window_days=90, unit="purchases", family="frequency",
            description="{value:count purchase} in the last 90 days",
            zero_description="no purchase in the last 90 days")

Expressions (``column``, ``where``, ``expr``) are SQL in the DuckDB dialect, kept to portable
constructs so the same definition runs on Spark; they may reference the source's columns and
``cutoff``. The engine, not the feature, restricts rows to those known at the cutoff.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from sqlglot import exp

from churnml.expressions import expression_columns, parse_expression, quote_identifier
from churnml.features.wording import fill

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
CUTOFF = "cutoff"  # column holding the cutoff in every feature query
SQL_DIALECT = "duckdb"

AggName = Literal[
    "count", "sum", "mean", "min", "max", "std", "distinct_days",
    "days_since_last", "days_since_first", "latest", "gap_mean", "gap_std",
    "days_since_run_start",
]
SourceName = Literal[
    "transactions", "events", "surveys", "customers", "subscriptions", "referrals",
]
DerivedOp = Literal["ratio", "difference", "greatest", "at_most", "below", "expr"]
Dtype = Literal["number", "category"]
# Reason families of the built-in features (custom features may name these or their own).
FAMILIES = (
    "recency", "tenure", "frequency", "spend", "returns", "engagement", "support", "survey",
    "subscription", "referral",
)
FAMILY_HELP = ("reason family (recency, frequency, spend, engagement, survey, ...): a "
               "customer's reasons name at most one feature per family (None: its own)")
ZERO_HELP = ("wording of a zero value; '' : a zero value is no reason (e.g. 0 returns); "
             "None: the description")

# Aggregations that need ``column`` (a value expression); ``days_since_*`` take an optional
# timestamp expression (default: the source's time column); the rest take none.
NEEDS_COLUMN = {"sum", "mean", "min", "max", "std", "latest"}
OPTIONAL_COLUMN = {"count", "days_since_last", "days_since_first"}
TIME_AGGS = {"distinct_days", "days_since_last", "days_since_first", "gap_mean", "gap_std",
             "days_since_run_start"}
RUN_AGGS = {"days_since_run_start"}  # need ``gap_days``


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _describe(template: str, zero: str | None, name: str, value: Any,
              context: Mapping[str, Any] | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{name}: unknown"
    if zero and isinstance(value, int | float) and value == 0:
        template = zero
    try:
        return fill(template, {**(context or {}), "value": value})
    except (KeyError, ValueError, TypeError, IndexError):
        return f"{name} = {value}"


class Feature(_Strict):
    """One aggregate of a source's rows known at the cutoff, per customer.

    Rows of the window are those with ``cutoff - (window_days + offset_days) days <= time <
    cutoff - offset_days days`` (``window_days=None``: every row before the cutoff).
    """

    kind: Literal["aggregate"] = "aggregate"
    name: str = Field(pattern=NAME_PATTERN)
    table: SourceName = Field(description="source: a contract table, or 'referrals' (one row "
                              "per customer referred, at the referred customer's signup_ts)")
    agg: AggName
    column: str | None = Field(None, description="SQL value expression over the source")
    where: str | None = Field(None, description="SQL condition selecting the rows")
    window_days: int | None = Field(None, gt=0, description="window length, days (None: all "
                                    "time before the cutoff)")
    offset_days: int = Field(0, ge=0, description="the window ends this many days before "
                             "the cutoff (e.g. 'prior 90 days': window 90, offset 90)")
    unit: str = ""
    description: str = Field("", description="str.format template: {value} and any feature")
    zero_description: str | None = Field(None, description=ZERO_HELP)
    family: str | None = Field(None, pattern=NAME_PATTERN, description=FAMILY_HELP)
    dtype: Dtype = "number"
    gap_days: int | None = Field(None, gt=0, description="days_since_run_start: a gap of at "
                                 "least this many days between matching rows starts a new run")

    @model_validator(mode="after")
    def _consistent(self) -> Feature:
        if (self.agg in RUN_AGGS) != (self.gap_days is not None):
            raise ValueError(f"feature {self.name!r}: gap_days is required by, and only by, "
                             f"agg {' / '.join(sorted(RUN_AGGS))}")
        if self.agg in NEEDS_COLUMN and self.column is None:
            raise ValueError(f"feature {self.name!r}: agg {self.agg!r} needs a column")
        if self.column is not None and self.agg not in NEEDS_COLUMN | OPTIONAL_COLUMN:
            raise ValueError(f"feature {self.name!r}: agg {self.agg!r} takes no column")
        if self.offset_days and self.window_days is None:
            raise ValueError(f"feature {self.name!r}: offset_days needs window_days")
        if self.dtype == "category" and self.agg != "latest":
            raise ValueError(f"feature {self.name!r}: category features use agg 'latest'")
        for field_name in ("column", "where"):
            text = getattr(self, field_name)
            if text is not None:
                parse_sql(text, self.name, field_name)
        return self

    @property
    def all_time(self) -> bool:
        return self.window_days is None

    @property
    def span_days(self) -> int | None:
        """How far back the window reaches, days (``None``: all time)."""
        return None if self.window_days is None else self.window_days + self.offset_days

    def references(self) -> set[str]:
        """Column names the feature's expressions read."""
        return set().union(*(columns_of(t, self.name, k)
                             for k, t in (("column", self.column), ("where", self.where)) if t))

    def describe(self, value: Any, context: Mapping[str, Any] | None = None) -> str:
        """The description with ``value`` (and other features of ``context``) filled in."""
        return _describe(self.description, self.zero_description, self.name, value, context)

    @property
    def reason_family(self) -> str:
        """The family of the feature's reasons (its own name when none is set)."""
        return self.family or self.name


class DerivedFeature(_Strict):
    """A function of other features of the same row.

    ``ratio`` = a / b (missing when b = 0); ``difference`` = a - b; ``greatest`` = the largest
    non-missing input; ``at_most`` = 1 if a <= threshold else 0; ``below`` = 1 if
    a < threshold else 0 (flags are missing when a is); ``expr`` = a SQL expression over
    feature names.
    """

    kind: Literal["derived"] = "derived"
    name: str = Field(pattern=NAME_PATTERN)
    op: DerivedOp
    inputs: list[str] = Field(default_factory=list)
    threshold: float | None = None
    expr: str | None = None
    unit: str = ""
    description: str = ""
    zero_description: str | None = Field(None, description=ZERO_HELP)
    family: str | None = Field(None, pattern=NAME_PATTERN, description=FAMILY_HELP)
    dtype: Dtype = "number"

    @model_validator(mode="after")
    def _consistent(self) -> DerivedFeature:
        arity = {"ratio": 2, "difference": 2, "at_most": 1, "below": 1}
        if self.op in arity and len(self.inputs) != arity[self.op]:
            raise ValueError(
                f"feature {self.name!r}: op {self.op!r} takes {arity[self.op]} input(s), "
                f"got {self.inputs}"
            )
        if self.op == "greatest" and not self.inputs:
            raise ValueError(f"feature {self.name!r}: op 'greatest' needs inputs")
        if self.op in ("at_most", "below") and self.threshold is None:
            raise ValueError(f"feature {self.name!r}: op {self.op!r} needs a threshold")
        if self.op == "expr":
            if self.expr is None:
                raise ValueError(f"feature {self.name!r}: op 'expr' needs expr")
            parse_sql(self.expr, self.name, "expr")
        return self

    def dependencies(self) -> list[str]:
        """Names of the features this one is computed from."""
        if self.op == "expr":
            return sorted(columns_of(self.expr or "", self.name, "expr"))
        return list(self.inputs)

    def describe(self, value: Any, context: Mapping[str, Any] | None = None) -> str:
        """The description with ``value`` (and other features of ``context``) filled in."""
        return _describe(self.description, self.zero_description, self.name, value, context)

    @property
    def reason_family(self) -> str:
        """The family of the feature's reasons (its own name when none is set)."""
        return self.family or self.name


def _kind(value: Any) -> str:
    """Discriminator of :data:`AnyFeature`: ``kind``, an aggregate when absent."""
    if isinstance(value, Mapping):
        return value.get("kind", "aggregate")
    return getattr(value, "kind", "aggregate")


AnyFeature = Annotated[
    Annotated[Feature, Tag("aggregate")] | Annotated[DerivedFeature, Tag("derived")],
    Discriminator(_kind),
]


def describe(features: list[Feature | DerivedFeature], row: Mapping[str, Any]) -> dict[str, str]:
    """Each feature of ``row`` (name -> value) in words, e.g.
    ``{"purchases_90d": "3 purchases in the last 90 days"}``; missing values read
    ``"<name>: unknown"``."""
    return {f.name: f.describe(row.get(f.name), row) for f in features if f.name in row}


def parse_sql(text: str, feature: str, field: str = "expression") -> exp.Expression:
    """Parse one SQL expression against the allow-list of :mod:`churnml.expressions`; a
    :class:`~churnml.errors.ConfigError` names the feature and field if it is not allowed."""
    return parse_expression(text, where=f"feature {feature!r} {field}")


def columns_of(text: str, feature: str, field: str = "expression") -> frozenset[str]:
    """Column names referenced by a SQL expression."""
    return expression_columns(text, where=f"feature {feature!r} {field}")


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """Where a feature's rows come from and when each row becomes known.

    A row is known at a cutoff when ``time < cutoff`` (``time_nullable``: rows without a time
    are static and always known). ``known_when_passed`` columns are timestamps that are only
    known once they have passed: the engine shows them as NULL while ``>= cutoff`` (e.g. a
    subscription's ``end_ts``). ``activity`` rows make a customer part of the population.
    """

    name: str
    table: str
    time: str
    key: str = "customer_id"
    where: str | None = None
    renames: tuple[tuple[str, str], ...] = ()  # (source column, table column)
    time_nullable: bool = False
    known_when_passed: tuple[str, ...] = ()
    activity: bool = False

    def columns(self, schema: Mapping[str, list[str]]) -> list[str]:
        """Columns of the source relation (``customer_id`` first) given the table schema."""
        renamed = {table_col for _, table_col in self.renames}
        cols = ["customer_id"] + [name for name, _ in self.renames]
        return cols + [
            c for c in schema[self.table] if c not in renamed and c not in (self.key,)
            and c != "customer_id"
        ]

    def available(self, schema: Mapping[str, list[str]]) -> bool:
        return self.table in schema and all(
            c in schema[self.table] for c in (self.time, self.key, *(c for _, c in self.renames))
        )

    def select_sql(
        self, relation: str, schema: Mapping[str, list[str]], only: set[str] | None = None
    ) -> str:
        """``SELECT ... FROM relation`` exposing :meth:`columns` (those in ``only``, when
        given), every name quoted: a data column's name never reads as SQL."""
        renamed = dict(self.renames)
        q = quote_identifier
        cols = [c for c in self.columns(schema)[1:] if only is None or c in only]
        parts = [f"{q(self.key)} AS customer_id"] + [
            f"{q(renamed[c])} AS {q(c)}" if c in renamed else q(c) for c in cols
        ]
        where = f" WHERE {self.where}" if self.where else ""
        return f"SELECT {', '.join(parts)} FROM {relation}{where}"


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("transactions", "transactions", "ts", activity=True),
        Source("events", "events", "ts", activity=True),
        Source("surveys", "surveys", "ts"),
        Source("subscriptions", "subscriptions", "start_ts", known_when_passed=("end_ts",),
               activity=True),
        Source("customers", "customers", "signup_ts", time_nullable=True),
        Source("referrals", "customers", "signup_ts", key="referred_by",
               where="referred_by IS NOT NULL", renames=(("referred_id", "customer_id"),)),
    )
}
