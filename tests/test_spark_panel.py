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


def test_spark_panel_trains_the_models_of_the_duckdb_panel(spark) -> None:
    """The labelled panel of the simulated data is the same on both engines (money features
    and the ``ltv`` label bit for bit: exact sums, also across the cumulative buckets), so
    the final models are the same: scores equal to 1e-9 and the same value-at-risk order."""
    from churnml.config import Config
    from churnml.data.loaders import load_data
    from churnml.data.spark_loader import load_spark_data, stage_folder
    from churnml.training.backtest import fit_models
    from churnml.training.train import build_training_panel, final_panel

    cfg = Config.model_validate({"data": {"dataset": "simulated", "simulated_customers": 400,
                                          "seed": 3}})
    duck = build_training_panel(load_data(cfg), cfg)
    with stage_folder() as tmp:
        on_spark = build_training_panel(load_spark_data(cfg, spark, staging=tmp), cfg)
    assert duck["cutoff"].nunique() > 3 and len(duck) > 1000
    assert list(on_spark.columns) == list(duck.columns)
    assert (on_spark["customer_id"].to_numpy() == duck["customer_id"].to_numpy()).all()
    for col in ("ltv", "spend_total", "net_revenue_total", "avg_order_value_total"):
        assert np.array_equal(on_spark[col].to_numpy(), duck[col].to_numpy(),
                              equal_nan=True), col
    pd.testing.assert_frame_equal(on_spark, duck, check_exact=False, rtol=1e-15, atol=0)
    fitted = {name: fit_models(final_panel(panel, cfg), cfg.training, cfg.churn)
              for name, panel in (("spark", on_spark), ("duckdb", duck))}
    X = duck[fitted["duckdb"].features]
    scores = {name: pd.DataFrame({
        "p": m.churn.predict_proba(X)[:, 1], "value": m.ltv.predict(X),
        "retained": m.ltv.predict_if_retained(X)}) for name, m in fitted.items()}
    for col in ("p", "value", "retained"):
        np.testing.assert_allclose(scores["spark"][col], scores["duckdb"][col], rtol=0,
                                   atol=1e-9, err_msg=col)
    var = {n: s["p"] * s["retained"] for n, s in scores.items()}
    assert var["spark"].rank(method="first").equals(var["duckdb"].rank(method="first"))
