"""The engine interface: DuckDB-dialect SQL over the contract tables, run by one backend.

A backend registers the contract tables (pandas DataFrames, Parquet files or Spark DataFrames)
under physical names, runs a query written in the DuckDB dialect, and hands the result back as
pandas (or as a Spark DataFrame, when the input tables were Spark DataFrames).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from churnml.data.schema import TABLES
from churnml.engine.sql import render
from churnml.errors import DataValidationError

TS_TABLES = ("transactions", "events", "surveys")  # tables whose rows carry a ``ts`` column
ONE_DAY = pd.Timedelta(days=1)


def observation_end(last_ts: pd.Timestamp) -> pd.Timestamp:
    """End of observation, an exclusive bound: midnight after the latest timestamp (the data
    are taken to cover the whole last day)."""
    return pd.Timestamp(last_ts).normalize() + ONE_DAY


def require_present(
    columns: Mapping[str, Sequence[str]], table: str, why: str, column: str | None = None
) -> None:
    """Raise :class:`DataValidationError` naming ``table``(``.column``) if it is not among
    ``columns`` (table name -> its column names)."""
    if table not in columns:
        raise DataValidationError(table, column, f"table is required {why}")
    if column is not None and column not in columns[table]:
        present = ", ".join(map(str, columns[table]))
        raise DataValidationError(
            table, column, f"column is required {why} (columns present: {present})"
        )


class SqlEngine(ABC):
    """Runs DuckDB-dialect SQL over registered contract tables.

    Subclasses register the tables in ``__init__`` and fill ``self._columns`` (table name ->
    column names, in table order).
    """

    #: True when :meth:`query` results stay distributed (Spark DataFrames in, Spark out).
    returns_native: bool = False
    #: The backend, for SQL shaped for it (see :mod:`churnml.features.compiler`).
    dialect: str = "duckdb"

    def __init__(self) -> None:
        self._columns: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ tables
    @property
    def schema(self) -> dict[str, list[str]]:
        """Contract tables present and their columns."""
        return dict(self._columns)

    def has(self, table: str, column: str | None = None) -> bool:
        cols = self._columns.get(table)
        return cols is not None and (column is None or column in cols)

    def require(self, table: str, why: str, column: str | None = None) -> None:
        """Raise :class:`DataValidationError` naming ``table``(``.column``) if it is absent."""
        require_present(self._columns, table, why, column)

    def _check_contract(self) -> None:
        """Every registered table has the contract's required columns."""
        if "transactions" not in self._columns:
            raise DataValidationError("transactions", None, "table is required")
        for table, cols in self._columns.items():
            if table not in TABLES:
                known = ", ".join(TABLES)
                raise DataValidationError(table, None, f"unknown table (known: {known})")
            for col in TABLES[table].required:
                if col not in cols:
                    self.require(table, "by the data contract", col)

    def observation_span(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """(earliest, latest) timestamp of the data: transactions, events and surveys, plus
        subscription starts and ends."""
        parts = [
            f"SELECT min(ts) AS lo, max(ts) AS hi FROM {self.relation(t)}"
            for t in TS_TABLES if self.has(t)
        ]
        if self.has("subscriptions"):
            sub = self.relation("subscriptions")
            parts.append(f"SELECT min(start_ts) AS lo, max(greatest(start_ts, end_ts)) AS hi "
                         f"FROM {sub}")
        union = " UNION ALL ".join(parts)
        row = self.fetch(f"SELECT min(lo) AS lo, max(hi) AS hi FROM ({union}) x").iloc[0]
        if pd.isna(row["hi"]):
            raise DataValidationError("transactions", "ts", "no rows: the data are empty")
        return pd.Timestamp(row["lo"]), pd.Timestamp(row["hi"])

    # ------------------------------------------------------------------ backend
    @abstractmethod
    def relation(self, table: str) -> str:
        """Physical name of a registered table (contract name or one from :meth:`register`)."""

    @abstractmethod
    def register(self, name: str, frame: pd.DataFrame) -> str:
        """Register a small pandas frame (e.g. the cutoffs) and return its physical name."""

    @abstractmethod
    def query(self, sql: str) -> Any:
        """Run DuckDB-dialect ``sql``; the backend's native result."""

    @abstractmethod
    def to_pandas(self, result: Any) -> pd.DataFrame:
        """A native result as pandas."""

    def fetch(self, sql: str) -> pd.DataFrame:
        """Run ``sql`` and return pandas."""
        return self.to_pandas(self.query(sql))

    def run(self, ctes: list[tuple[str, str]], select: str) -> Any:
        """Run ``WITH ctes select``: pandas, or the native result if :attr:`returns_native`."""
        result = self.query(render(ctes, select))
        return result if self.returns_native else self.to_pandas(result)

    def run_wide(self, ctes: list[tuple[str, str]], select: str) -> Any:
        """Like :meth:`run`, for wide results (e.g. features) that the caller converts to its
        own dtypes: a backend may fetch them through a leaner path."""
        return self.run(ctes, select)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the engine registered."""

    def __enter__(self) -> SqlEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def contract_tables(data: Any) -> dict[str, Any]:
    """The contract tables of ``data`` (a CustomerData or a mapping name -> table)."""
    from churnml.data.customer_data import CustomerData

    if isinstance(data, CustomerData):
        return data.tables()
    if hasattr(data, "tables") and callable(data.tables):  # e.g. SparkData: tables as read
        return data.tables()
    if isinstance(data, Mapping):
        tables = {k: v for k, v in data.items() if v is not None}
        if all(isinstance(v, pd.DataFrame) for v in tables.values()):
            return CustomerData.from_frames(**tables).tables()  # validate and normalise
        return tables
    raise TypeError(
        f"data must be a CustomerData or a mapping table name -> table, got {type(data).__name__}"
    )
