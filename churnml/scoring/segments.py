"""Segments and suggested actions from configuration.

A rule is a SQL condition (DuckDB dialect) over the scored columns, features, named
thresholds and quantiles (see :class:`churnml.config.ScoringConfig`). Rules are tried in
``priority`` order (lowest first); a customer gets the first rule that holds (a NULL
condition does not hold), else the default segment — so every customer gets exactly one
segment. The same compiled ``CASE`` expression runs in DuckDB and, transpiled, in Spark.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from sqlglot import exp

from churnml.config import ChurnConfig, ScoringConfig
from churnml.errors import ConfigError
from churnml.expressions import (
    SQL_DIALECT,
    expression_columns,
    parse_expression,
    render_expression,
)

SEGMENT = "risk_segment"
ACTION = "suggested_action"
QUANTILE_METHOD = "linear"  # numpy's default; Spark's exact ``percentile`` agrees
CHURN_NAMES = ("horizon_days", "lookback_days")  # ChurnConfig fields usable in rules
# Score columns rules may read (``predicted_value`` is the older name of ``expected_value``).
SCORE_COLUMNS = frozenset({"churn_probability", "predicted_value", "expected_value",
                           "value_if_retained", "value_at_risk"})
SUMMARY_COLUMNS = [SEGMENT, "customers", "value_at_risk", "mean_churn_probability", ACTION]
_FRAME = "churnml_scored"


@dataclass(frozen=True)
class Segment:
    """One segment: its rule (None for the default), action, priority and whether its
    customers get reasons in words."""

    name: str
    action: str
    when: str | None
    priority: int
    reasons: bool


def _entry(raw: Mapping[str, object], where: str, default: bool) -> Segment:
    need = {"name", "action"} | (set() if default else {"when"})
    allowed = need | {"reasons"} | (set() if default else {"priority"})
    missing, unknown = need - set(raw), set(raw) - allowed
    if missing or unknown:
        raise ConfigError(f"scoring.{where}: missing keys {sorted(missing)}, unknown keys "
                          f"{sorted(unknown)} (allowed: {sorted(allowed)})")
    when = None if default else str(raw["when"])
    if when is not None:
        _parse(when, str(raw["name"]))  # the allow-list of churnml.expressions
    priority = int(raw.get("priority", 0)) if not default else np.iinfo(np.int32).max
    return Segment(str(raw["name"]), str(raw["action"]), when, priority,
                   bool(raw.get("reasons", False)))


def parse_segments(config: ScoringConfig) -> list[Segment]:
    """The configured segments in priority order, the default last.

    Names must be unique, and so must priorities (ties would make the order ambiguous).
    """
    rules = [_entry(r, f"segments[{i}]", False) for i, r in enumerate(config.segments)]
    rules.sort(key=lambda s: s.priority)
    segments = [*rules, _entry(config.default_segment, "default_segment", True)]
    names = [s.name for s in segments]
    priorities = [s.priority for s in rules]
    if len(set(names)) < len(names) or len(set(priorities)) < len(priorities):
        raise ConfigError(f"scoring.segments: names and priorities must be unique, got names "
                          f"{names} and priorities {priorities}")
    return segments


def rule_origin(segment: str) -> str:
    """Where a segment's rule comes from, for error messages."""
    return f"scoring.segments[{segment}].when"


def _parse(sql: str, segment: str, names: Collection[str] | None = None) -> exp.Expression:
    """A rule's tree, checked against the allow-list (and ``names``, when given)."""
    return parse_expression(sql, where=rule_origin(segment), columns=names)


def columns_of(sql: str, name: str = "rule") -> set[str]:
    """Names a SQL condition references."""
    return set(expression_columns(sql, where=rule_origin(name)))


def check_rule_names(
    segments: list[Segment], config: ScoringConfig, known: Collection[str]
) -> None:
    """Every name a rule reads is a score column (:data:`SCORE_COLUMNS`), a named value
    (thresholds, quantiles, ``horizon_days`` / ``lookback_days``) or one of ``known`` (the
    features that can exist): a misspelt name is a :class:`ConfigError`, not an empty
    segment."""
    names = set(known) | SCORE_COLUMNS | named_values(config, ChurnConfig())
    for s in segments:
        if s.when is not None:
            _parse(s.when, s.name, names)


def named_values(config: ScoringConfig, churn: ChurnConfig) -> set[str]:
    """Names that rules may use besides columns."""
    return set(config.thresholds) | set(config.quantiles) | set(CHURN_NAMES)


def rule_columns(config: ScoringConfig, churn: ChurnConfig) -> set[str]:
    """Columns (not named values) that the rules and quantiles read."""
    names = named_values(config, churn)
    cols = {c for s in parse_segments(config) if s.when for c in columns_of(s.when, s.name)}
    cols |= {column for column, _ in config.quantiles.values()}
    return cols - names


def thresholds(
    frame: pd.DataFrame, config: ScoringConfig, churn: ChurnConfig
) -> dict[str, float]:
    """Named values for the rules: fixed thresholds, ``horizon_days`` / ``lookback_days``,
    and each quantile ``(column, q)`` of ``frame`` (missing values ignored; NaN when the
    column is absent or empty)."""
    out = {name: float(getattr(churn, name)) for name in CHURN_NAMES}
    out.update({k: float(v) for k, v in config.thresholds.items()})
    for name, (column, q) in config.quantiles.items():
        values = frame[column].dropna().to_numpy(float) if column in frame else np.empty(0)
        out[name] = float(np.quantile(values, q, method=QUANTILE_METHOD)) if len(values) else (
            float("nan"))
    return out


def _bind(tree: exp.Expression, values: Mapping[str, float]) -> exp.Expression:
    def sub(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in values:
            v = float(values[node.name])
            if math.isnan(v):
                return exp.Null()
            if math.isinf(v):
                return exp.cast(exp.Literal.string(repr(v)), exp.DataType.build("DOUBLE"))
            return exp.Literal.number(repr(v))
        return node

    return tree.transform(sub)


def case_sql(
    segments: list[Segment],
    values: Mapping[str, float],
    columns: set[str] | list[str],
    dialect: str = SQL_DIALECT,
) -> str:
    """``CASE WHEN rule THEN name ... ELSE default END`` with the named values bound.

    A rule that reads a column not in ``columns`` is left out with a warning (e.g. the
    detractor rule when there is no surveys table). The SQL is regenerated from each rule's
    checked tree with every identifier quoted (never the configured text).
    """
    columns = set(columns)
    parts = []
    for s in segments[:-1]:
        tree = _bind(_parse(s.when or "", s.name), values)
        unknown = {c.name for c in tree.find_all(exp.Column)} - columns
        if unknown:
            warnings.warn(f"segment {s.name!r} skipped: no column(s) {sorted(unknown)} "
                          "in the scored data", stacklevel=2)
            continue
        name = exp.Literal.string(s.name).sql(dialect=dialect)
        parts.append(f"WHEN {render_expression(tree, dialect=dialect)} THEN {name}")
    default = exp.Literal.string(segments[-1].name).sql(dialect=dialect)
    if not parts:
        return default
    return f"CASE {' '.join(parts)} ELSE {default} END"


def assign_segments(
    frame: pd.DataFrame, segments: list[Segment], values: Mapping[str, float]
) -> pd.Series:
    """The segment of each row of ``frame`` (same index), by rule priority."""
    sql = case_sql(segments, values, [str(c) for c in frame.columns])
    con = duckdb.connect()
    try:
        con.register(_FRAME, frame)
        out = con.sql(f"SELECT {sql} AS {SEGMENT} FROM {_FRAME}").fetchnumpy()[SEGMENT]
    finally:
        con.close()
    return pd.Series(np.asarray(out, dtype=object), index=frame.index, name=SEGMENT,
                     dtype="str")


def actions(segments: list[Segment]) -> dict[str, str]:
    """Segment name -> suggested action."""
    return {s.name: s.action for s in segments}


def summary(aggregates: pd.DataFrame, segments: list[Segment]) -> pd.DataFrame:
    """Per-segment table in priority order (every configured segment, empty ones with 0
    customers): ``risk_segment, customers, value_at_risk`` (sum, currency),
    ``mean_churn_probability, suggested_action``.

    ``aggregates`` holds ``risk_segment, customers, value_at_risk, mean_churn_probability``
    for the non-empty segments (from pandas or Spark).
    """
    order = pd.DataFrame({SEGMENT: [s.name for s in segments],
                          ACTION: [s.action for s in segments]})
    out = order.merge(aggregates, on=SEGMENT, how="left")
    out["customers"] = out["customers"].fillna(0).astype("int64")
    out["value_at_risk"] = out["value_at_risk"].fillna(0.0).astype("float64")
    out["mean_churn_probability"] = out["mean_churn_probability"].astype("float64")
    return out[SUMMARY_COLUMNS]


def aggregate(scores: pd.DataFrame) -> pd.DataFrame:
    """Count, total value at risk and mean churn probability per segment (pandas)."""
    g = scores.groupby(SEGMENT, observed=True)
    return pd.DataFrame({
        "customers": g.size(),
        "value_at_risk": g["value_at_risk"].sum(),
        "mean_churn_probability": g["churn_probability"].mean(),
    }).reset_index()
