"""Spark backend: the same DuckDB-dialect SQL, transpiled by SQLGlot and run by ``spark.sql``.

Tables become temporary views with a per-engine prefix (dropped by :meth:`SparkEngine.close`).
pandas tables of more than :data:`STAGE_MIN_ROWS` rows are written to a temporary Parquet
folder and read back by Spark on a local master, rather than shipped through the driver JVM
(a heap the size of the tables; the old cause of driver out-of-memory failures).
Timestamps are handled as Spark ``TIMESTAMP_NTZ`` (naive, like the contract): pandas columns are
converted with an explicit schema and Spark ``TIMESTAMP`` columns are cast to ``TIMESTAMP_NTZ``
(their wall-clock time in the session time zone).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import sqlglot
from sqlglot import exp

from churnml.engine.base import SqlEngine
from churnml.engine.sql import MONEY_DECIMAL

READ_DIALECT = "duckdb"
WRITE_DIALECT = "spark"
# PySpark 4.x warns on every pandas conversion that pandas 3 is not fully supported; the
# conversions used here (explicit schema, Arrow off or on) are covered by churnml's tests.
_PANDAS_WARNING = "PySpark does not yet fully support pandas"
MONEY_UNITS = 10_000  # 1 / 10^(scale of MONEY_DECIMAL)
STAGE_MIN_ROWS = 10_000  # larger pandas tables go to Spark through Parquet (local masters)


def transpile(sql: str) -> str:
    """DuckDB-dialect SQL as Spark SQL, exact money sums as integer sums (see
    :func:`_integer_money`)."""
    tree = sqlglot.parse_one(sql, read=READ_DIALECT)
    return tree.transform(_integer_money).transform(_double_literal).sql(dialect=WRITE_DIALECT)


def _double_literal(node: exp.Expression) -> exp.Expression:
    """A literal with a decimal point is DOUBLE, as DuckDB's arithmetic treats it (Spark
    would make ``x / 86400000000.0`` a DECIMAL quotient rounded to 13 decimals)."""
    if isinstance(node, exp.Literal) and node.is_number and "." in node.this:
        return exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE"))
    return node


def _is_money_sum(node: exp.Expression) -> bool:
    return (isinstance(node, exp.Sum) and isinstance(node.this, exp.Cast)
            and node.this.to.sql(READ_DIALECT) == MONEY_DECIMAL)


def _integer_money(node: exp.Expression) -> exp.Expression:
    """``SUM(CAST(x AS DECIMAL(18, 4)))`` -> ``CAST(SUM(<x in 1/10,000 units, BIGINT>) AS
    DECIMAL(38, 0)) / 10000``.

    Both are exact and independent of the order of the rows (amounts have at most 4
    decimals; halves round away from zero as the decimal cast does), and the result is a
    DECIMAL, as DuckDB's: a running sum of per-bucket sums (the cumulative panel) stays
    exact, and its final DOUBLE cast is the correctly rounded double on both engines (a
    per-bucket DOUBLE quotient would add rounding errors across buckets). Spark keeps a
    DECIMAL sum in a ``java.math.BigDecimal`` per row update: the BIGINT sum is several
    times cheaper, and only one decimal per group is made."""
    inner = node.this if isinstance(node, exp.Filter) else node
    if not _is_money_sum(inner):
        return node
    x = inner.this.this.sql(READ_DIALECT)
    units = sqlglot.parse_one(
        f"CAST(SIGN({x}) * FLOOR(ABS({x}) * {MONEY_UNITS} + 0.5) AS BIGINT)", read=READ_DIALECT)
    total: exp.Expression = exp.Sum(this=units)
    if isinstance(node, exp.Filter):
        total = exp.Filter(this=total, expression=node.expression)
    exact = exp.Cast(this=total, to=exp.DataType.build("DECIMAL(38, 0)"))
    return exp.Paren(this=exp.Div(this=exact, expression=exp.Literal.number(MONEY_UNITS)))


class SparkEngine(SqlEngine):
    """Contract tables as temporary views of ``spark``.

    Parameters
    ----------
    tables : mapping
        Contract name -> pandas DataFrame or Spark DataFrame. When every table is a Spark
        DataFrame, results stay Spark DataFrames; otherwise they are returned as pandas.
    spark : SparkSession, optional
        Defaults to the active session.
    """

    dialect = "spark"

    def __init__(self, tables: Mapping[str, Any], spark: Any = None) -> None:
        super().__init__()
        from pyspark.sql import DataFrame as SparkDataFrame
        from pyspark.sql import SparkSession

        self.spark = spark or SparkSession.getActiveSession()
        if self.spark is None:
            raise ValueError("engine='spark' needs a SparkSession: pass spark=... or start one")
        self.prefix = f"churnml_{uuid.uuid4().hex[:10]}_"
        self._views: list[str] = []
        self._staging: str | None = None
        self.returns_native = all(isinstance(t, SparkDataFrame) for t in tables.values())
        for name, table in tables.items():
            if isinstance(table, pd.DataFrame):
                sdf = self._from_pandas(table)
            elif isinstance(table, SparkDataFrame):
                sdf = _naive_timestamps(table)
            else:
                raise TypeError(
                    f"{name}: the Spark engine reads pandas or Spark DataFrames, "
                    f"got {type(table).__name__}"
                )
            self._create_view(name, sdf)
            self._columns[name] = list(sdf.columns)
        self._check_contract()

    def _create_view(self, name: str, sdf: Any) -> str:
        view = self.prefix + name
        sdf.createOrReplaceTempView(view)
        self._views.append(view)
        return view

    def _from_pandas(self, frame: pd.DataFrame) -> Any:
        master = self.spark.sparkContext.master
        if len(frame) < STAGE_MIN_ROWS or not master.startswith("local"):
            return from_pandas(self.spark, frame)
        if self._staging is None:
            self._staging = tempfile.mkdtemp(prefix="churnml-spark-")
        path = Path(self._staging) / f"{uuid.uuid4().hex}.parquet"
        frame.to_parquet(path, index=False)
        return self.spark.read.parquet(str(path))

    def relation(self, table: str) -> str:
        return self.prefix + table

    def register(self, name: str, frame: pd.DataFrame) -> str:
        return self._create_view(name, self._from_pandas(frame))

    def query(self, sql: str) -> Any:
        return self.spark.sql(transpile(sql))

    def to_pandas(self, result: Any) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PANDAS_WARNING)
            return result.toPandas()

    def close(self) -> None:
        for view in self._views:
            self.spark.catalog.dropTempView(view)
        self._views.clear()
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


def from_pandas(spark: Any, frame: pd.DataFrame) -> Any:
    """A (small) pandas frame as a Spark DataFrame, through Arrow with an explicit schema."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PANDAS_WARNING)
        return spark.createDataFrame(frame, schema=spark_schema(frame))


def spark_schema(frame: pd.DataFrame) -> Any:
    """Spark schema of a pandas frame: naive datetimes -> TIMESTAMP_NTZ, integers -> LONG,
    floats -> DOUBLE, booleans -> BOOLEAN, anything else -> STRING."""
    from pyspark.sql import types as T

    fields = []
    for col, dtype in frame.dtypes.items():
        if pd.api.types.is_datetime64_any_dtype(dtype):
            spark_type = T.TimestampNTZType()
        elif pd.api.types.is_bool_dtype(dtype):
            spark_type = T.BooleanType()
        elif pd.api.types.is_integer_dtype(dtype):
            spark_type = T.LongType()
        elif pd.api.types.is_float_dtype(dtype):
            spark_type = T.DoubleType()
        else:
            spark_type = T.StringType()
        fields.append(T.StructField(str(col), spark_type, nullable=True))
    return T.StructType(fields)


def _naive_timestamps(sdf: Any) -> Any:
    """Cast Spark ``TIMESTAMP`` (session-time-zone) columns to ``TIMESTAMP_NTZ``."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    casts = [
        F.col(f.name).cast(T.TimestampNTZType()).alias(f.name)
        if isinstance(f.dataType, T.TimestampType)
        else F.col(f.name)
        for f in sdf.schema.fields
    ]
    return sdf.select(*casts)
