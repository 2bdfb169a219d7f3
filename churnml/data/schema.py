"""The data contract: the input tables, their canonical columns and kinds.

Only ``transactions`` is required. Timestamps are timezone-naive ``datetime64`` in the
business's local time zone (see :class:`churnml.config.DataConfig.timezone`); amounts are in
the input currency. Negative amounts are returns / cancellations and are legal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["id", "timestamp", "number", "string", "category"]


@dataclass(frozen=True)
class TableSpec:
    """Canonical columns of one input table: ``required`` and ``optional`` name -> kind."""

    name: str
    required: dict[str, Kind]
    optional: dict[str, Kind] = field(default_factory=dict)
    unique: tuple[str, ...] = ()  # columns whose non-null values must be unique

    @property
    def columns(self) -> dict[str, Kind]:
        return {**self.required, **self.optional}


TRANSACTIONS = TableSpec(
    "transactions",
    required={"customer_id": "id", "ts": "timestamp", "amount": "number"},
    optional={
        "order_id": "id",
        "quantity": "number",
        "category": "category",
        "channel": "category",
    },
    unique=("order_id",),
)
EVENTS = TableSpec(
    "events",
    required={"customer_id": "id", "ts": "timestamp", "event_type": "category"},
    optional={"value": "number"},
)
SURVEYS = TableSpec(
    "surveys",
    required={"customer_id": "id", "ts": "timestamp", "kind": "category", "score": "number"},
)
CUSTOMERS = TableSpec(
    "customers",
    required={"customer_id": "id"},
    optional={
        "signup_ts": "timestamp",
        "referred_by": "id",
        "plan": "category",
        "country": "category",
        "acquisition_channel": "category",
    },
    unique=("customer_id",),
)
SUBSCRIPTIONS = TableSpec(
    "subscriptions",
    required={"customer_id": "id", "start_ts": "timestamp", "end_ts": "timestamp"},
    optional={"plan": "category", "mrr": "number", "term_end_ts": "timestamp"},
)

CAMPAIGNS = TableSpec(
    "campaigns",
    required={"customer_id": "id", "campaign_id": "id", "ts": "timestamp", "arm": "category"},
    optional={"channel": "category", "cost": "number"},
)

TABLES: dict[str, TableSpec] = {
    t.name: t for t in (TRANSACTIONS, EVENTS, SURVEYS, CUSTOMERS, SUBSCRIPTIONS, CAMPAIGNS)
}
CONTROL_ARM = "control"  # the campaigns.arm value of the random holdout
SURVEY_KINDS = ("nps", "csat", "ces")
# Columns that may legitimately be null (everything else in ``required`` must be present).
NULLABLE = {("subscriptions", "end_ts")}
# Money columns: summed as exact decimals by the feature SQL (DECIMAL(18, 4), see
# churnml.engine.sql.MONEY_DECIMAL), so each value must stay below 10^14 in absolute value.
MONEY_COLUMNS = {("transactions", "amount"), ("subscriptions", "mrr")}
MAX_ABS_MONEY = 1e14 - 1
# Count-only logs (transactions without an amount column): each transaction counts this much,
# so "value" is a number of purchases.
COUNT_ONLY_AMOUNT = 1.0
PURCHASES_UNIT = "purchases"


def columns_present(table: str, columns: Iterable[object], expected: Iterable[str] = ()
                    ) -> str:
    """``columns present: a, b`` for an error about a table's columns, when the file looks
    like a table: it shares a column with the contract table (or ``expected``, e.g. mapped
    raw names) or has several columns. A one-column file sharing none is not a table (a
    config file, a key, a note): its header, which may be anything, is not shown."""
    names = [str(c) for c in columns]
    known = set(TABLES[table].columns) | set(expected)
    if known.intersection(names) or len(names) > 1:
        return f"columns present: {', '.join(names)}"
    return (f"none of the {len(names)} column(s) of the file is a {table} column, so it is "
            "not shown; is it the right file?")
