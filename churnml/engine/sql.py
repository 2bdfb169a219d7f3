"""Portable SQL fragments, written in the DuckDB dialect and transpiled by SQLGlot.

Only constructs that SQLGlot maps to Spark SQL are used: conditional aggregates
(``agg(x) FILTER (WHERE ...)``), ``date_diff('microsecond', a, b)`` (Spark ``DATEDIFF``),
``arg_max`` (Spark ``MAX_BY``), ``struct_pack`` (Spark ``STRUCT``), ``INTERVAL n DAY`` and
window functions with explicit frames.
"""

from __future__ import annotations

import pandas as pd

from churnml.expressions import quote_identifier

MICROSECONDS_PER_DAY = 86_400_000_000
# One money value as an exact decimal: up to 1e14 currency units, 4 decimals (exact for
# amounts in cents). Sums of such values are exact, so they do not depend on the order in
# which threads add rows (float sums do, in their last bits).
MONEY_DECIMAL = "DECIMAL(18, 4)"


def literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted SQL identifier (:func:`churnml.expressions.quote_identifier`)."""
    return quote_identifier(name)


def ts_literal(ts: pd.Timestamp | str) -> str:
    """A naive SQL timestamp literal with microsecond precision."""
    return f"TIMESTAMP '{pd.Timestamp(ts).strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def days_between(start: str, end: str) -> str:
    """``end - start`` in days (fractional, exact to the microsecond)."""
    return f"(date_diff('microsecond', {start}, {end}) / {MICROSECONDS_PER_DAY}.0)"


def shift_days(ts: str, days: int) -> str:
    """``ts`` moved by ``days`` whole days (negative: earlier)."""
    sign = "+" if days >= 0 else "-"
    return f"({ts} {sign} INTERVAL {abs(int(days))} DAY)"


def money(value: str) -> str:
    """``value`` as an exact decimal (:data:`MONEY_DECIMAL`), for order-independent sums:
    ``CAST(sum(money(x)) AS DOUBLE)`` is the same whatever the thread count."""
    return f"CAST({value} AS {MONEY_DECIMAL})"


def filtered(aggregate: str, condition: str | None) -> str:
    """``aggregate FILTER (WHERE condition)``, or the bare aggregate without a condition."""
    return f"{aggregate} FILTER (WHERE {condition})" if condition else aggregate


def conjunction(*conditions: str | None) -> str | None:
    """``c1 AND c2 ...`` over the non-empty conditions (``None`` when there are none)."""
    parts = [f"({c})" for c in conditions if c]
    return " AND ".join(parts) if parts else None


def flag(condition: str) -> str:
    """1 where ``condition`` holds, else 0 (NULL counts as false)."""
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


def render(ctes: list[tuple[str, str]], select: str) -> str:
    """``WITH name AS (sql), ... select``."""
    if not ctes:
        return select
    body = ",\n".join(f"{name} AS (\n{sql}\n)" for name, sql in ctes)
    return f"WITH {body}\n{select}"
