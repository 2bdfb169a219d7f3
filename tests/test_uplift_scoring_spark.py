"""The Spark scoring route carries the uplift model's columns: the model travels to the
executors as its code-free state and gives the DuckDB route's numbers, row for row."""

from __future__ import annotations

import pickle
import pickletools

import numpy as np
import pandas as pd
import pytest
from scoring_helpers import fit_models, register, spark_tables

from churnml.config import default_config
from churnml.data.simulate import SimulatorConfig, simulate
from churnml.data.simulate_campaigns import CampaignSpec
from churnml.scoring.score import OUTPUT_COLUMNS, UPLIFT_COLUMNS, score
from churnml.uplift.fitted import UpliftColumns
from churnml.uplift.workflow import train_uplift

pytest.importorskip("pyspark")

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
SPEC = CampaignSpec(campaign_id="s1", date="2024-03-04", contact_share=1.0)
CUTOFF = pd.Timestamp("2024-10-01")
SCORED_AT = pd.Timestamp("2024-10-02 08:00", tz="UTC")


def _globals(blob: bytes) -> set[str]:
    """Module.name of every class or function a pickle refers to."""
    found, strings = set(), []
    for op, arg, _ in pickletools.genops(blob):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            found.add(".".join(strings[-2:]))
        elif op.name == "GLOBAL":
            found.add(arg.replace(" ", "."))
    return found


def test_spark_scores_carry_the_uplift_columns_of_duckdb(spark, tmp_path) -> None:
    from churnml.scoring.spark import score_spark_data

    data = simulate(1200, seed=5, end="2024-10-01", config=SimulatorConfig(campaigns=[SPEC]))
    churn, ltv, X = fit_models(data)
    models = register(churn, ltv, X, tmp_path)
    cfg = default_config()
    cfg.output_dir = str(tmp_path / "out")
    cfg.uplift.params = {"n_estimators": 30, "min_child_samples": 20}
    cfg.uplift.flag_boot = 5
    cfg.uplift.validation_boot = 20
    cfg.uplift.cost_per_contact = 1.5
    columns = UpliftColumns(train_uplift(cfg, data, log_mlflow=False),
                            cfg.uplift.cost_per_contact, cfg.uplift.flag_level)

    # shipped as code-free state: the pickle names no estimator or LightGBM class
    blob = pickle.dumps(columns)
    assert _globals(blob) == {"churnml.uplift.fitted.UpliftColumns"}
    again = pickle.loads(blob)
    probe = X.head(50).assign(value_if_retained=np.linspace(0.0, 100.0, 50))
    pd.testing.assert_frame_equal(again(probe), columns(probe), check_exact=True)

    local = score(data, models, cfg.scoring, cutoff=CUTOFF, churn=cfg.churn,
                  scored_at=SCORED_AT, uplift=columns).scores
    result = score_spark_data(spark_tables(spark, data), models, cfg.scoring, cutoff=CUTOFF,
                              churn=cfg.churn, scored_at=SCORED_AT, out_dir=tmp_path / "spark",
                              uplift=columns)
    remote = pd.read_parquet(result.files["scores"]).sort_values("rank").reset_index(drop=True)
    at = OUTPUT_COLUMNS.index("model_version")
    expected = [*OUTPUT_COLUMNS[:at], *UPLIFT_COLUMNS, *OUTPUT_COLUMNS[at:]]
    assert list(remote.columns) == list(local.columns) == expected
    assert remote["customer_id"].tolist() == local["customer_id"].tolist()
    assert remote["negative_uplift"].dtype == bool
    for col in ("uplift", "p_negative_uplift", "targeting_value"):
        np.testing.assert_allclose(remote[col], local[col], rtol=0, atol=1e-9)
    assert (remote["negative_uplift"] == local["negative_uplift"]).all()
    np.testing.assert_allclose(remote["targeting_value"], remote["uplift"] - 1.5, atol=1e-12)
