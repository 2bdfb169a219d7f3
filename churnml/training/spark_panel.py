"""The training panel built on Spark and collected to the driver for LightGBM.

Features and labels are computed where the tables live (:func:`churnml.labels.build_panel`
on Spark DataFrames); only the labelled rows travel to the driver. A panel of more than
``training.spark_max_panel_rows`` rows is sampled first, by customer and stratified by
(cutoff, churned): in every stratum the same share of rows is kept, the customers with the
smallest ``xxhash64(customer_id, seed)``, so a customer kept at one cutoff tends to be kept
at the others and the churn rate of every cutoff is preserved (to one row per stratum).

How large is too large: LightGBM and the backtest hold the panel as float64 several times
over (the frame, its training and test parts, LightGBM's binned copy); at ~50 features one
million rows take ~0.4 GB per copy, so the default of 2,000,000 rows keeps training within
a few GB of driver memory.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from churnml.config import ChurnConfig
from churnml.features.definitions import CUTOFF

STRATA = (CUTOFF, "churned")
SAMPLED_FROM = "sampled_from"  # DataFrame.attrs key: panel rows before sampling


def stratified_sample(panel: Any, fraction: float, seed: int) -> Any:
    """Rows of a Spark panel: per (cutoff, churned), the ``ceil(fraction x n)`` rows of the
    customers with the smallest ``xxhash64(customer_id, seed)``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    stratum = Window.partitionBy(*STRATA)
    order = stratum.orderBy(F.xxhash64("customer_id", F.lit(seed)), "customer_id")
    return (panel.withColumn("__n", F.count(F.lit(1)).over(stratum))
            .withColumn("__i", F.row_number().over(order))
            .filter(F.col("__i") <= F.ceil(F.col("__n") * F.lit(fraction)))
            .drop("__n", "__i"))


def to_pandas(sdf: Any) -> pd.DataFrame:
    """A Spark panel as pandas with the dtypes of the DuckDB route: ``cutoff``
    datetime64[us], doubles float64, strings ``str``, ``churned`` int64."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        frame = sdf.toPandas()
    kinds = dict(sdf.dtypes)
    wanted = {c: "float64" for c, k in kinds.items()
              if k in ("double", "float") or k.startswith("decimal")}
    wanted |= {c: "str" for c, k in kinds.items() if k == "string" and c != "customer_id"}
    wanted[CUTOFF] = "datetime64[us]"
    if "churned" in frame:
        wanted["churned"] = "int64"
    out = frame.astype(wanted)
    for c, k in kinds.items():  # str() of a missing category would be the text 'None'
        if k == "string" and c != "customer_id":
            out[c] = out[c].where(frame[c].notna())
    return out


def spark_training_panel(tables: Any, cutoffs: pd.DatetimeIndex, spec: Any,
                         churn: ChurnConfig, max_rows: int | None, seed: int) -> pd.DataFrame:
    """The labelled panel of ``tables`` (Spark DataFrames) at ``cutoffs``, sampled to about
    ``max_rows`` when larger (module docstring), as pandas sorted by cutoff and customer.
    ``attrs['sampled_from']`` holds the row count before sampling when it was sampled."""
    from pyspark import StorageLevel

    from churnml.labels import build_panel

    panel = build_panel(tables, cutoffs, spec, churn, engine="spark")
    total = None
    if max_rows is not None:
        panel = panel.persist(StorageLevel.MEMORY_AND_DISK)
        total = panel.count()
        if total > max_rows:
            panel = stratified_sample(panel, max_rows / total, seed)
    try:
        frame = to_pandas(panel)
    finally:
        if max_rows is not None:
            panel.unpersist()
    frame = frame.sort_values([CUTOFF, "customer_id"], kind="stable").reset_index(drop=True)
    if total is not None and total > max_rows:
        frame.attrs[SAMPLED_FROM] = total
    return frame


def expected_sample_rows(strata: list[int], max_rows: int) -> int:
    """Rows :func:`stratified_sample` keeps from strata of these sizes (for messages)."""
    total = sum(strata)
    return sum(math.ceil(n * max_rows / total) for n in strata) if total > max_rows else total
