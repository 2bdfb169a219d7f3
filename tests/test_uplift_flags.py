"""The do-not-contact flag by groups: measured effects by hand, the bottom-up rule, the code-free
state, cross-fitting that never predicts a row with a model fitted on it, and row-order freedom."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from test_uplift_learners import FAST, make_campaign

from churnml.models._state import ModelStateError
from churnml.uplift import SLearner
from churnml.uplift._base import key_folds, row_keys
from churnml.uplift.flags import GroupFlag, cross_fitted_effects


def test_group_effects_by_hand():
    # two groups of four by predicted effect; treated rows first in each group
    tau = np.array([0.1, 0.2, 0.3, 0.4, 1.0, 1.1, 1.2, 1.3])
    treated = np.array([1, 1, 0, 0, 1, 1, 0, 0], bool)
    y = np.array([1.0, 3.0, 4.0, 6.0, 5.0, 7.0, 1.0, 3.0])
    flag = GroupFlag.measure(tau, y, treated, n_groups=2)
    # cut at the median of tau, 0.7: group 0 = first four
    np.testing.assert_allclose(flag.edges, [0.7])
    # group 0: treated mean 2, control mean 5 -> -3; variances 2 and 2 -> se = sqrt(2/2 + 2/2)
    # group 1: treated mean 6, control mean 2 -> +4; se = sqrt(2)
    np.testing.assert_allclose(flag.effect, [-3.0, 4.0])
    np.testing.assert_allclose(flag.se, [np.sqrt(2), np.sqrt(2)])
    np.testing.assert_allclose(flag.p_negative, [norm.cdf(3 / np.sqrt(2)),
                                                 norm.cdf(-4 / np.sqrt(2))])
    assert flag.n_treated.tolist() == [2, 2] and flag.n_control.tolist() == [2, 2]
    # a customer is placed by its predicted effect; flagged at level 0.9 (Phi(2.12) = 0.983)
    np.testing.assert_allclose(flag.probability([0.0, 0.69, 0.7, 5.0]),
                               [0.983052, 0.983052, norm.cdf(-4 / np.sqrt(2)),
                                norm.cdf(-4 / np.sqrt(2))], atol=1e-6)
    table = flag.table(0.9)
    assert table["flagged"].tolist() == [True, False]
    assert table["n_treated"].sum() + table["n_control"].sum() == 8


def test_groups_flagged_from_the_bottom_up_only():
    flag = GroupFlag(edges=np.array([0.0, 1.0]), effect=np.array([-1.0, 0.5, -1.0]),
                     se=np.array([0.1, 0.1, 0.1]), n_treated=np.array([9, 9, 9]),
                     n_control=np.array([9, 9, 9]))
    # the top group's own probability is ~1, but the group below it is not negative
    assert flag.p_negative[2] == pytest.approx(1.0)
    assert flag.flagged_groups(0.9).tolist() == [True, False, False]
    np.testing.assert_allclose(flag.probability([-5.0, 0.5, 5.0]),
                               [1.0, norm.cdf(-5.0), norm.cdf(-5.0)], atol=1e-12)


def test_small_groups_merge_until_each_arm_has_two():
    tau = np.arange(12, dtype=float)
    treated = np.array([1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 0, 0], bool)
    y = np.arange(12, dtype=float) % 3
    flag = GroupFlag.measure(tau, y, treated, n_groups=6)
    assert (flag.n_treated >= 2).all() and (flag.n_control >= 2).all()
    assert flag.n_treated.sum() == 7 and flag.n_control.sum() == 5
    assert flag.edges.size + 1 == flag.effect.size < 6


def test_group_flag_state_round_trip_and_bad_state():
    X, arm, retained, _, _ = make_campaign(800, seed=4)
    flag = GroupFlag.measure(np.asarray(X["x1"]), retained, arm == "offer", n_groups=5)
    again = GroupFlag.from_state(json.loads(json.dumps(flag.to_state())))
    pd.testing.assert_frame_equal(again.table(0.9), flag.table(0.9))
    state = flag.to_state()
    with pytest.raises(ModelStateError, match="one less"):
        GroupFlag.from_state({**state, "edges": state["edges"][1:]})
    with pytest.raises(ModelStateError, match="numbers"):
        GroupFlag.from_state({**state, "se": ["__import__('os')"] * len(state["se"])})


def test_cross_fitted_effects_predict_each_row_without_it():
    X, arm, retained, _, _ = make_campaign(900, seed=5)
    ids = pd.Series(np.arange(900)).astype(str).to_numpy()
    keys = row_keys(ids, 900)
    oof = cross_fitted_effects(lambda: SLearner(**FAST), X, arm, retained, "offer", keys,
                               n_folds=3, ids=ids)
    train, held = key_folds(keys, 3)[1]
    alone = SLearner(**FAST).fit(X.iloc[train].reset_index(drop=True), arm[train],
                                 retained[train], ids=ids[train])
    np.testing.assert_allclose(oof[held], alone.predict(X.iloc[held])["offer"].to_numpy())
    # any row order: the same effect for the same row
    perm = np.random.default_rng(0).permutation(900)
    again = cross_fitted_effects(lambda: SLearner(**FAST), X.iloc[perm].reset_index(drop=True),
                                 arm[perm], retained[perm], "offer", keys[perm], n_folds=3,
                                 ids=ids[perm])
    np.testing.assert_allclose(again, oof[perm], rtol=0, atol=1e-12)


def test_group_flag_finds_the_sleeping_dogs_of_a_step_effect():
    # TAU: persuadables +0.25, no effect, sleeping dogs -0.2 (x1 terciles)
    X, arm, retained, _, group = make_campaign(6000, seed=6)
    ids = pd.Series(np.arange(6000)).astype(str).to_numpy()
    oof = cross_fitted_effects(lambda: SLearner(**FAST), X, arm, retained, "offer",
                               row_keys(ids, 6000), ids=ids)
    flag = GroupFlag.measure(oof, retained, arm == "offer", n_groups=12)
    flagged = flag.probability(oof) >= 0.9
    dogs = group == 2
    assert dogs[flagged].mean() >= 0.7  # precision (a third by chance)
    assert 0.5 <= flagged.mean() / dogs.mean() <= 1.5  # share against the true share
