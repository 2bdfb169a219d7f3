"""Query engines: DuckDB (embedded default) and Spark, running the same DuckDB-dialect SQL.

:func:`open_engine` turns the ``data`` / ``engine`` arguments of the feature and label builders
into a :class:`SqlEngine`. ``data`` is a :class:`~churnml.data.customer_data.CustomerData` or a
mapping table name -> pandas DataFrame (validated through ``CustomerData.from_frames``),
Parquet path (DuckDB) or Spark DataFrame (Spark; results then stay Spark DataFrames).
"""

from __future__ import annotations

from typing import Any, Literal

from churnml.engine.base import SqlEngine, contract_tables
from churnml.engine.duckdb_engine import DuckDBEngine

EngineName = Literal["duckdb", "spark"]

__all__ = ["DuckDBEngine", "EngineName", "SqlEngine", "open_engine"]


def open_engine(
    data: Any,
    engine: EngineName | SqlEngine = "duckdb",
    *,
    spark: Any = None,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> tuple[SqlEngine, bool]:
    """``(engine, owned)``: a ready engine over ``data`` and whether the caller must close it.

    An :class:`SqlEngine` passed as ``engine`` is used as is (``data`` is then ignored).
    ``threads`` and ``memory_limit`` configure DuckDB.
    """
    if isinstance(engine, SqlEngine):
        return engine, False
    tables = contract_tables(data)
    if engine == "duckdb" and tables and all(_is_spark(t) for t in tables.values()):
        engine = "spark"  # Spark DataFrames (e.g. SparkData) run where they live
    if engine == "duckdb":
        return DuckDBEngine(tables, threads=threads, memory_limit=memory_limit), True
    if engine == "spark":
        from churnml.engine.spark_engine import SparkEngine

        return SparkEngine(tables, spark=spark), True
    raise ValueError(f"engine must be 'duckdb', 'spark' or an SqlEngine, got {engine!r}")


def _is_spark(table: Any) -> bool:
    return type(table).__module__.startswith("pyspark.")
