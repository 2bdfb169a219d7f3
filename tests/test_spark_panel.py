"""The training panel's sample on Spark: by customer, stratified by cutoff and churn label."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from churnml.training.spark_panel import expected_sample_rows

pyspark = pytest.importorskip("pyspark")

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def test_stratified_sample_keeps_each_strata_share_and_the_same_customers(spark) -> None:
    from churnml.training.spark_panel import stratified_sample, to_pandas

    ids = np.arange(1, 1001)
    frames = []
    for cutoff, churn_every in (("2024-01-01", 4), ("2024-02-01", 4), ("2024-03-01", 5)):
        frames.append(pd.DataFrame({
            "customer_id": ids, "cutoff": pd.Timestamp(cutoff),
            "x": ids / 7.0, "plan": np.where(ids % 3 == 0, None, "basic"),
            "churned": (ids % churn_every == 0).astype("int64")}))
    panel = pd.concat(frames, ignore_index=True)
    sdf = spark.createDataFrame(panel.astype({"plan": object}))
    fraction = 0.1
    out = to_pandas(stratified_sample(sdf, fraction, seed=7))
    sizes = panel.groupby(["cutoff", "churned"]).size()
    kept = out.groupby(["cutoff", "churned"]).size()
    for key, n in sizes.items():
        assert kept[key] == math.ceil(n * fraction), key
    assert len(out) == expected_sample_rows(list(sizes), int(len(panel) * fraction))
    # customers are picked by a hash of their id: the same ones at cutoffs whose strata agree
    by_cut = {c: set(g["customer_id"]) for c, g in out.groupby("cutoff")}
    assert by_cut[pd.Timestamp("2024-01-01")] == by_cut[pd.Timestamp("2024-02-01")]
    assert by_cut[pd.Timestamp("2024-01-01")] != by_cut[pd.Timestamp("2024-03-01")]
    # dtypes of the DuckDB route; a missing category stays missing
    assert out["cutoff"].dtype == "datetime64[us]" and out["x"].dtype == "float64"
    assert out["churned"].dtype == "int64" and out["plan"].isna().any()
    assert set(out["plan"].dropna()) == {"basic"}
    # another seed, another sample of the same size
    other = to_pandas(stratified_sample(sdf, fraction, seed=8))
    assert len(other) == len(out) and set(other["customer_id"]) != set(out["customer_id"])
