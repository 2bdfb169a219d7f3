"""Survival metrics: equal to scikit-survival where the definitions match, hand-computed
examples for the administrative Brier score and calibration."""

from __future__ import annotations

import numpy as np
import pytest
import sksurv.metrics as skm
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv

from churnml.errors import DataValidationError
from churnml.survival.kaplan_meier import kaplan_meier
from churnml.survival.metrics import (
    administrative_brier_score,
    brier_score,
    calibration_at,
    cumulative_dynamic_auc,
    harrell_c,
    integrated_administrative_brier_score,
    integrated_brier_score,
    survival_scores,
    uno_c,
)

TOL = 1e-9


def sample(n: int, seed: int, discrete: bool, follow_up: float = 12.0):
    """Exponential times with rate exp(x), independent uniform censoring; risk = x (+ noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.exponential(np.exp(-x) * 4.0)
    c = np.minimum(rng.uniform(0.5, 2 * follow_up, n), follow_up)
    if discrete:
        t, c = np.ceil(t), np.ceil(c)
    duration = np.minimum(t, c)
    event = t <= c
    risk = x + rng.normal(scale=0.7, size=n)
    if discrete:
        risk = np.round(risk, 1)  # tied scores
    return event, duration, risk, x


def surv_matrix(x: np.ndarray, times: np.ndarray) -> np.ndarray:
    return np.exp(-np.exp(x)[:, None] * times[None, :] / 4.0)


@pytest.fixture(params=[False, True], ids=["continuous", "discrete_ties"])
def data(request):
    discrete = request.param
    train = sample(400, 1, discrete)
    test = sample(300, 2, discrete)
    test_du = test[1]
    train_max = train[1].max()
    keep = test_du < train_max  # IPCW is undefined after the last training time (G = 0 there)
    test = tuple(a[keep] for a in test)
    return train, test


def test_kaplan_meier_equals_sksurv(data):
    (ev, du, _, _), _ = data
    for reverse in (False, True):
        t, s = kaplan_meier(ev, du, reverse=reverse)
        t_ref, s_ref = kaplan_meier_estimator(ev, du, reverse=reverse)
        np.testing.assert_array_equal(t, t_ref)
        np.testing.assert_allclose(s, s_ref, rtol=0, atol=TOL)


def test_harrell_c_equals_sksurv(data):
    _, (ev, du, risk, _) = data
    ours = harrell_c(ev, du, risk)
    ref = skm.concordance_index_censored(ev, du, risk)
    assert ours.cindex == pytest.approx(ref[0], abs=TOL)
    assert (ours.concordant, ours.discordant, ours.tied_risk, ours.tied_time) == tuple(ref[1:])
    assert 0.6 < ours.cindex < 0.9


@pytest.mark.parametrize("tau", [None, 6.0])
def test_uno_c_equals_sksurv(data, tau):
    (ev_tr, du_tr, _, _), (ev, du, risk, _) = data
    ours = uno_c(ev_tr, du_tr, ev, du, risk, tau=tau)
    ref = skm.concordance_index_ipcw(Surv.from_arrays(ev_tr, du_tr), Surv.from_arrays(ev, du),
                                 risk, tau=tau)
    assert ours.cindex == pytest.approx(ref[0], abs=TOL)
    assert (ours.concordant, ours.discordant, ours.tied_risk, ours.tied_time) == tuple(ref[1:])
    assert ours.tau == (np.inf if tau is None else tau)


def test_cumulative_dynamic_auc_equals_sksurv(data):
    (ev_tr, du_tr, _, _), (ev, du, risk, x) = data
    times = np.array([2.0, 4.0, 7.0, 10.0])
    y_tr, y_te = Surv.from_arrays(ev_tr, du_tr), Surv.from_arrays(ev, du)
    auc, mean_auc = cumulative_dynamic_auc(ev_tr, du_tr, ev, du, risk, times)
    ref_auc, ref_mean = skm.cumulative_dynamic_auc(y_tr, y_te, risk, times)
    np.testing.assert_allclose(auc, ref_auc, rtol=0, atol=TOL)
    assert mean_auc == pytest.approx(ref_mean, abs=TOL)
    # a risk matrix per time (1 - S(t | x)) is accepted as well
    risk2 = 1.0 - surv_matrix(x, times)
    auc2, mean2 = cumulative_dynamic_auc(ev_tr, du_tr, ev, du, risk2, times)
    ref2, ref_mean2 = skm.cumulative_dynamic_auc(y_tr, y_te, risk2, times)
    np.testing.assert_allclose(auc2, ref2, rtol=0, atol=TOL)
    assert mean2 == pytest.approx(ref_mean2, abs=TOL)


def test_brier_and_integrated_brier_equal_sksurv(data):
    (ev_tr, du_tr, _, _), (ev, du, _, x) = data
    times = np.array([1.0, 2.0, 3.5, 6.0, 9.0])
    surv = surv_matrix(x, times)
    y_tr, y_te = Surv.from_arrays(ev_tr, du_tr), Surv.from_arrays(ev, du)
    np.testing.assert_allclose(brier_score(ev_tr, du_tr, ev, du, surv, times),
                               skm.brier_score(y_tr, y_te, surv, times)[1], rtol=0, atol=TOL)
    assert integrated_brier_score(ev_tr, du_tr, ev, du, surv, times) == pytest.approx(
        skm.integrated_brier_score(y_tr, y_te, surv, times), abs=TOL)
    # an informative model scores better than the same curve for everyone
    flat = surv_matrix(np.zeros_like(x), times)
    assert integrated_brier_score(ev_tr, du_tr, ev, du, surv, times) < integrated_brier_score(
        ev_tr, du_tr, ev, du, flat, times)


def test_harrell_c_hand_computed_with_ties():
    # times 1(e) 2(e) 2(c) 3(c) 4(e); risks 5, 3, 3, 1, 2
    event = np.array([True, True, False, False, True])
    duration = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    risk = np.array([5.0, 3.0, 3.0, 1.0, 2.0])
    # pairs of i=0 (t=1): j=1..4, all concordant (4). i=1 (t=2): j=2 (censored at same time,
    # tied risk: 1/2), j=3 (concordant), j=4 (concordant). i=4: none.
    c = harrell_c(event, duration, risk)
    assert (c.concordant, c.discordant, c.tied_risk, c.tied_time) == (6, 0, 1, 1)
    assert c.cindex == pytest.approx(6.5 / 7)


def test_administrative_brier_hand_computed():
    # four rows; censor_duration = periods to the end of the data
    event = np.array([True, False, True, False])
    duration = np.array([1.0, 2.0, 3.0, 5.0])
    censor = np.array([4.0, 2.0, 6.0, 5.0])
    times = np.array([2.0, 4.0])
    surv = np.array([[0.3, 0.1], [0.8, 0.6], [0.7, 0.5], [0.9, 0.8]])
    # t = 2: all four have C >= 2. row 0 event by 2: 0.3^2; row 1 censored at 2 (survivor):
    #   (1-0.8)^2; row 2 alive: (1-0.7)^2; row 3 alive: (1-0.9)^2 -> (.09+.04+.09+.01)/4
    # t = 4: row 1 (C=2) is not followed; row 0 event: 0.1^2; row 2 event by 4: 0.5^2;
    #   row 3 alive: 0.2^2 -> (.01+.25+.04)/3
    bs = administrative_brier_score(event, duration, censor, surv, times)
    np.testing.assert_allclose(bs, [0.23 / 4, 0.30 / 3], rtol=1e-12)
    ibs = integrated_administrative_brier_score(event, duration, censor, surv, times)
    assert ibs == pytest.approx((0.23 / 4 + 0.30 / 3) / 2, rel=1e-12)


def test_administrative_brier_needs_administrative_censoring():
    with pytest.raises(DataValidationError, match=r"censor_duration.*row 1"):
        administrative_brier_score(np.array([True, False]), np.array([1.0, 2.0]),
                                   np.array([3.0, 3.0]), np.array([[0.5], [0.5]]), [1.0])


def test_calibration_hand_computed():
    # two bins of predicted risk by t0 = 2: four rows at 0.2, four at 0.6
    s = np.array([0.8] * 4 + [0.4] * 4)
    event = np.array([True, False, False, False, True, True, False, True])
    duration = np.array([1.0, 1.5, 3.0, 3.0, 1.0, 2.0, 1.0, 5.0])
    cal = calibration_at(event, duration, s, t0=2.0, n_bins=2)
    table = cal.table
    assert table["n"].tolist() == [4, 4]
    # bin 1: KM: t=1 1 event of 4 -> 0.75; t=1.5 censored; t=3 beyond t0 -> observed 0.25
    # bin 2: t=1 1 event, 1 censored of 4 -> 0.75; t=2 1 event of 2 -> 0.375 -> observed 0.625
    np.testing.assert_allclose(table["observed_rate"], [0.25, 0.625])
    np.testing.assert_allclose(table["mean_predicted"], [0.2, 0.6])
    assert cal.ici == pytest.approx((0.05 + 0.025) / 2)
    assert cal.e50 == pytest.approx((0.05 + 0.025) / 2)  # median of 4 x 0.025 and 4 x 0.05
    assert cal.t0 == 2.0


def test_bad_input_gets_clear_errors(data):
    (ev_tr, du_tr, _, _), (ev, du, risk, x) = data
    with pytest.raises(DataValidationError, match=r"test\.duration.*row 2"):
        harrell_c(ev[:4], np.array([1.0, 2.0, -1.0, 3.0]), risk[:4])
    with pytest.raises(DataValidationError, match=r"test\.risk.*missing"):
        harrell_c(ev, du, np.where(np.arange(du.size) == 3, np.nan, risk))
    with pytest.raises(DataValidationError, match="after the last training time"):
        uno_c(np.ones_like(ev_tr), du_tr / 10, ev, du, risk)
    with pytest.raises(ValueError, match="follow-up"):
        brier_score(ev_tr, du_tr, ev, du, surv_matrix(x, np.array([50.0])), [50.0])
    with pytest.raises(DataValidationError, match="shape"):
        brier_score(ev_tr, du_tr, ev, du, surv_matrix(x, np.array([1.0])), [1.0, 2.0])
    with pytest.raises(DataValidationError, match="no comparable pairs"):
        harrell_c(np.zeros(3, bool), np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))


def test_concordance_with_heavy_ties_equals_sksurv():
    # few distinct times and scores: most pairs tie on time, on risk or both
    rng = np.random.default_rng(7)
    n = 1500
    duration = rng.integers(0, 6, n).astype(float)
    event = rng.random(n) < 0.6
    risk = rng.integers(0, 5, n) + rng.choice([0.0, 5e-9], n)  # ties within tied_tol
    ours = harrell_c(event, duration, risk)
    ref = skm.concordance_index_censored(event, duration, risk)
    assert ours.cindex == pytest.approx(ref[0], abs=TOL)
    assert (ours.concordant, ours.discordant, ours.tied_risk, ours.tied_time) == tuple(ref[1:])
    train_event = np.r_[event, False]
    train_duration = np.r_[duration, 6.0]  # censoring known past the test follow-up
    ours = uno_c(train_event, train_duration, event, duration, risk, tau=4.0)
    ref = skm.concordance_index_ipcw(Surv.from_arrays(train_event, train_duration),
                                     Surv.from_arrays(event, duration), risk, tau=4.0)
    assert ours.cindex == pytest.approx(ref[0], abs=TOL)


def test_survival_scores_collects_the_metrics_on_a_grid():
    rng = np.random.default_rng(11)

    def panel(n):
        x = rng.normal(size=n)
        t = np.ceil(rng.exponential(np.exp(-x) * 4.0))          # churn period
        end = rng.integers(3, 13, n).astype(float)               # periods to the end of data
        return t <= end, np.minimum(t, end), end, x

    ev_tr, du_tr, _, _ = panel(600)
    ev, du, end, x = panel(400)
    times = np.arange(1.0, 9.0)
    surv = surv_matrix(x, times)
    scores = survival_scores(ev_tr, du_tr, ev, du, end, surv, times, tau=6.0, t0=3.0)
    risk = 1.0 - surv[:, -1]
    assert scores["uno_c"] == uno_c(ev_tr, du_tr, ev, du, risk, tau=6.0).cindex
    assert scores["uno_c_tau"] == 6.0
    assert scores["harrell_c"] == harrell_c(ev, du, risk).cindex
    auc, mean_auc = cumulative_dynamic_auc(ev_tr, du_tr, ev, du, 1.0 - surv, times)
    assert [scores[f"auc_{t:g}"] for t in times] == auc.tolist()
    assert scores["mean_auc"] == mean_auc
    assert scores["integrated_brier"] == integrated_brier_score(ev_tr, du_tr, ev, du, surv, times)
    assert scores["integrated_admin_brier"] == integrated_administrative_brier_score(
        ev, du, end, surv, times)
    assert scores["calibration_ici"] == calibration_at(ev, du, surv[:, 2], 3.0).ici
    assert 0.6 < scores["uno_c"] < 0.95 and 0 < scores["integrated_admin_brier"] < 0.25
    with pytest.raises(ValueError, match="not a time of the grid"):
        survival_scores(ev_tr, du_tr, ev, du, end, surv, times, t0=2.5)
