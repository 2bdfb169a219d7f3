"""Revenue outcome models with the Tweedie loss: a multiplicative offer effect is recovered as a
ratio, negative revenue is refused, and the config picks the loss for the revenue outcome only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.config import UpliftConfig
from churnml.errors import DataValidationError
from churnml.uplift import SLearner, TLearner


def multiplicative_campaign(n: int, seed: int, lift: float = 1.3):
    """Revenue with P(buy) 0.6 and a spend mean of 50 exp(x1) that the offer multiplies."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.uniform(-1, 1, n), "x2": rng.normal(size=n)})
    arm = rng.choice(["control", "offer"], n)
    mean = 50 * np.exp(X["x1"].to_numpy()) * np.where(arm == "offer", lift, 1.0)
    buy = rng.uniform(size=n) < 0.6
    y = np.where(buy, rng.gamma(4.0, mean / (4 * 0.6)), 0.0)
    return X, arm, y


def test_tweedie_s_learner_recovers_a_multiplicative_lift():
    X, arm, y = multiplicative_campaign(20_000, seed=1)
    model = SLearner(continuous_objective="tweedie", n_estimators=150).fit(X, arm, y)
    mu = model.predict_outcome(X.head(2000))
    ratio = (mu["offer"] / mu["control"]).to_numpy()
    # log link: the arm's splits scale every prediction alike; the truth is 1.3 everywhere
    assert np.median(ratio) == pytest.approx(1.3, abs=0.06)
    assert np.quantile(ratio, 0.9) - np.quantile(ratio, 0.1) < 0.3
    # the effect is in currency and grows with the spend level, as the truth (15 exp(x1)),
    # closer to it than the L2 S-learner's
    truth = 15 * np.exp(X["x1"].head(2000).to_numpy())
    tau = model.predict(X.head(2000))["offer"].to_numpy()
    l2 = SLearner(n_estimators=150).fit(X, arm, y).predict(X.head(2000))["offer"].to_numpy()
    assert np.corrcoef(tau, truth)[0, 1] > 0.7
    assert np.mean((tau - truth) ** 2) < np.mean((l2 - truth) ** 2)


def test_tweedie_refuses_negative_revenue_and_binary_ignores_it():
    X, arm, y = multiplicative_campaign(400, seed=2)
    y[[3, 7]] = -12.5  # returns larger than purchases
    with pytest.raises(DataValidationError, match="non-negative") as info:
        TLearner(continuous_objective="tweedie", n_estimators=5).fit(X, arm, y)
    assert "3" in str(info.value) and "-12.5" in str(info.value)
    SLearner(continuous_objective="regression", n_estimators=5).fit(X, arm, y)
    # a 0/1 outcome keeps the binary loss whatever the continuous objective
    SLearner(continuous_objective="tweedie", n_estimators=5).fit(X, arm, (y > 0).astype(int))
    with pytest.raises(ValueError, match="continuous_objective"):
        SLearner(continuous_objective="poisson", n_estimators=5).fit(X, arm, y)


def test_config_sets_the_loss_of_the_revenue_outcome_only():
    from churnml.uplift.workflow import make_learner

    assert make_learner(UpliftConfig()).continuous_objective == "tweedie"
    assert make_learner(UpliftConfig(outcome="retained")).continuous_objective == "regression"
    assert make_learner(UpliftConfig(revenue_objective="regression")).continuous_objective \
        == "regression"
    u = UpliftConfig(params={"continuous_objective": "regression"})
    assert make_learner(u).continuous_objective == "regression"
