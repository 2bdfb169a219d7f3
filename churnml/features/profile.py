"""Compact distribution profiles of feature (or score) columns, for drift monitoring.

A profile summarises one column of a table in a few hundred numbers, whatever the number of
rows, so that a scoring run can keep what its features looked like without keeping the
features (1 M customers x 45 features would be ~360 MB per run; their profile is ~40 kB):

* numeric column: ``n``, ``missing`` (share of nulls, 0..1) and ``quantiles``, the values at
  probabilities 0, 0.01, ..., 1 (101 points, linear interpolation, nulls ignored);
* categorical column: ``n``, ``missing`` and ``shares`` (category -> share of non-null
  rows, the :data:`MAX_CATEGORIES` largest, the rest pooled as :data:`OTHER`).

Profiles are JSON-able dicts. :func:`profile_frame` profiles a pandas frame,
:func:`profile_parquet` a Parquet file (streamed by DuckDB, memory bounded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

GRID = np.linspace(0.0, 1.0, 101)  # quantile probabilities of a numeric profile
MAX_CATEGORIES = 50
OTHER = "(other)"
NUMERIC = "numeric"
CATEGORICAL = "categorical"
Profile = dict[str, Any]


def _quote(name: str) -> str:
    """A SQL identifier, double-quoted (embedded quotes doubled): never spliced raw."""
    return '"' + str(name).replace('"', '""') + '"'


def column_kind(dtype: Any) -> str:
    """``numeric`` for numbers and booleans, ``categorical`` for anything else."""
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC
    return CATEGORICAL


def _profiles(con: duckdb.DuckDBPyConnection, source: str, kinds: Mapping[str, str]
              ) -> dict[str, Profile]:
    total = int(con.execute(f"SELECT count(*) FROM {source}").fetchone()[0])
    out: dict[str, Profile] = {}
    grid = "[" + ", ".join(f"{p:.2f}" for p in GRID) + "]"
    for name, kind in kinds.items():
        col = _quote(name)
        if kind == NUMERIC:
            value = f"CAST({col} AS DOUBLE)"
            nulls, qs = con.execute(
                f"SELECT count(*) FILTER (WHERE {col} IS NULL OR isnan({value})), "
                f"quantile_cont({value}, {grid}) FILTER (WHERE NOT isnan({value})) "
                f"FROM {source}"
            ).fetchone()
            quantiles = [None if q is None else float(q) for q in (qs or [])]
            out[name] = {"kind": NUMERIC, "n": total,
                         "missing": nulls / total if total else 0.0,
                         "quantiles": quantiles if quantiles else None}
        else:
            rows = con.execute(
                f"SELECT CAST({col} AS VARCHAR) AS v, count(*) AS n FROM {source} "
                f"GROUP BY 1 ORDER BY n DESC, v"
            ).fetchall()
            out[name] = categorical_profile(rows, total)
    return out



def categorical_profile(rows: Sequence[tuple[str | None, int]], total: int) -> Profile:
    """The profile of a categorical column from its ``(value, count)`` rows, most frequent
    first (``None`` = missing): the shares of the :data:`MAX_CATEGORIES` most frequent values
    among the present ones, the rest pooled as :data:`OTHER`."""
    nulls = sum(n for v, n in rows if v is None)
    present = [(v, n) for v, n in rows if v is not None]
    seen = total - nulls
    shares = {v: n / seen for v, n in present[:MAX_CATEGORIES]} if seen else {}
    if len(present) > MAX_CATEGORIES:
        shares[OTHER] = sum(n for _, n in present[MAX_CATEGORIES:]) / seen
    return {"kind": CATEGORICAL, "n": total,
            "missing": nulls / total if total else 0.0, "shares": shares}

def profile_frame(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> dict[str, Profile]:
    """Profiles of ``columns`` (default: all) of a pandas frame."""
    columns = list(frame.columns if columns is None else columns)
    kinds = {c: column_kind(frame[c].dtype) for c in columns}
    table = frame[columns]
    table = table.assign(**{c: table[c].astype("str").where(table[c].notna(), None)
                            for c, k in kinds.items()
                            if k == CATEGORICAL and not pd.api.types.is_string_dtype(table[c])})
    con = duckdb.connect()
    try:
        con.register("profiled", table)
        return _profiles(con, "profiled", kinds)
    finally:
        con.close()


def profile_spark(sdf: Any, kinds: Mapping[str, str]) -> dict[str, Profile]:
    """Profiles of the columns ``kinds`` of a Spark DataFrame, as :func:`profile_parquet`
    computes them (exact quantiles with linear interpolation: Spark ``percentile``), from
    one aggregate and one grouped count per categorical column: only the profiles reach
    the driver."""
    from pyspark.sql import functions as F

    numeric = [c for c, k in kinds.items() if k == NUMERIC]
    aggs = [F.count(F.lit(1)).alias("__n")]
    for i, name in enumerate(numeric):
        value = F.col(f"`{name}`").cast("double")
        gap = value.isNull() | F.isnan(value)
        aggs += [F.count_if(gap).alias(f"m{i}"),
                 F.percentile(F.when(~gap, value), [float(p) for p in GRID]).alias(f"q{i}")]
    row = sdf.agg(*aggs).first()
    total = int(row["__n"])
    out: dict[str, Profile] = {}
    for name, kind in kinds.items():
        if kind == NUMERIC:
            i = numeric.index(name)
            qs = row[f"q{i}"]
            quantiles = [None if q is None else float(q) for q in (qs or [])]
            quantiles = quantiles if quantiles and any(q is not None for q in quantiles) else None
            out[name] = {"kind": NUMERIC, "n": total,
                         "missing": int(row[f"m{i}"]) / total if total else 0.0,
                         "quantiles": quantiles}
            continue
        counts = (sdf.select(F.col(f"`{name}`").cast("string").alias("v")).groupBy("v")
                  .count().collect())
        rows = sorted(((r["v"], int(r["count"])) for r in counts),
                      key=lambda vn: (-vn[1], vn[0] is None, vn[0] or ""))
        out[name] = categorical_profile(rows, total)
    return out


def profile_parquet(path: str | Path, kinds: Mapping[str, str]) -> dict[str, Profile]:
    """Profiles of the columns ``kinds`` (name -> ``numeric`` | ``categorical``) of a
    Parquet file, streamed by DuckDB."""
    con = duckdb.connect()
    try:
        escaped = str(path).replace("'", "''")
        return _profiles(con, f"read_parquet('{escaped}')", kinds)
    finally:
        con.close()
