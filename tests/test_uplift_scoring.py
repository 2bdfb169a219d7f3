"""One list for marketing: `churnml score` carries the uplift model's columns, computed by the
same row-wise function as `campaign target`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scoring_helpers import fit_models, register

from churnml.config import default_config
from churnml.data.simulate import SimulatorConfig, simulate
from churnml.data.simulate_campaigns import CampaignSpec
from churnml.scoring.score import UPLIFT_COLUMNS, score
from churnml.uplift.fitted import UpliftColumns
from churnml.uplift.targeting import NEGATIVE, P_NEGATIVE, TARGETING_VALUE
from churnml.uplift.workflow import target, train_uplift

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")
SPEC = CampaignSpec(campaign_id="s1", date="2024-03-04", contact_share=1.0)
CUTOFF = pd.Timestamp("2024-10-01")
SCORED_AT = pd.Timestamp("2024-10-02 08:00", tz="UTC")


def test_scores_carry_uplift_targeting_value_and_flag(tmp_path) -> None:
    data = simulate(1200, seed=5, end="2024-10-01", config=SimulatorConfig(campaigns=[SPEC]))
    churn, ltv, X = fit_models(data)
    models = register(churn, ltv, X, tmp_path)
    cfg = default_config()
    cfg.output_dir = str(tmp_path / "out")
    cfg.uplift.params = {"n_estimators": 30, "min_child_samples": 20}
    cfg.uplift.flag_boot = 5
    cfg.uplift.validation_boot = 20
    cfg.uplift.cost_per_contact = 1.5
    fit = train_uplift(cfg, data, log_mlflow=False)
    assert fit.outcome == "revenue"  # the default
    columns = UpliftColumns(fit, cfg.uplift.cost_per_contact, cfg.uplift.flag_level)
    results = [score(data, models, cfg.scoring.model_copy(update={"chunk_size": size}),
                     cutoff=CUTOFF, churn=cfg.churn, scored_at=SCORED_AT, uplift=columns)
               for size in (97, 5000)]
    scores = results[0].scores
    at = list(scores.columns).index("model_version")
    assert list(scores.columns[at - len(UPLIFT_COLUMNS):at]) == list(UPLIFT_COLUMNS)
    # row-wise: any chunking (DuckDB chunks, Spark partitions) gives the same columns
    pd.testing.assert_frame_equal(scores, results[1].scores)
    # the same numbers as `campaign target`; targeting value = uplift - cost (revenue model)
    plain = score(data, models, cfg.scoring, cutoff=CUTOFF, churn=cfg.churn).scores
    assert "uplift" not in plain
    tv = target(cfg, data, plain, fit).set_index("customer_id").loc[scores["customer_id"]]
    np.testing.assert_allclose(scores["uplift"], tv["uplift"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(scores[TARGETING_VALUE], scores["uplift"] - 1.5, atol=1e-12)
    assert (scores[NEGATIVE] == (scores[P_NEGATIVE] >= 0.9)).all()
    assert (scores[NEGATIVE].to_numpy() == tv[NEGATIVE].to_numpy()).all()
