"""Uplift metrics: equal to scikit-uplift 0.5.1 (independent reference) and hand-computed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from churnml.uplift import metrics as um

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from sklift import metrics as sk


def _sk(fn, *args, **kwargs):
    with warnings.catch_warnings():  # sklift calls sklearn's deprecated stable_cumsum
        warnings.simplefilter("ignore", FutureWarning)
        return fn(*args, **kwargs)


def _case(seed: int, n: int = 300, decimals: int = 1):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, n)
    score = np.round(rng.normal(size=n), decimals)  # rounding creates tied scores
    p = np.clip(0.2 + 0.15 * t * np.sign(score), 0.01, 0.99)
    y = (rng.uniform(size=n) < p).astype(int)
    return y, score, t


@pytest.mark.parametrize("seed", range(8))
def test_binary_scores_equal_scikit_uplift(seed):
    y, score, t = _case(seed, n=150 + 40 * seed, decimals=seed % 3)
    assert um.qini_auc_score(y, score, t) == pytest.approx(
        _sk(sk.qini_auc_score, y, score, t), rel=1e-12, abs=1e-14
    )
    assert um.uplift_auc_score(y, score, t) == pytest.approx(
        _sk(sk.uplift_auc_score, y, score, t), rel=1e-12, abs=1e-14
    )
    for k in (0.1, 0.3, 0.5):
        assert um.uplift_at_k(y, score, t, k) == pytest.approx(
            _sk(sk.uplift_at_k, y, score, t, strategy="overall", k=k), rel=1e-12, abs=1e-14
        )


def test_binary_curves_equal_scikit_uplift():
    y, score, t = _case(11, n=400)
    for ours, ref in (
        (um.qini_curve(y, score, t), _sk(sk.qini_curve, y, score, t)),
        (um.uplift_curve(y, score, t), _sk(sk.uplift_curve, y, score, t)),
        (um.perfect_qini_curve(y, t), _sk(sk.perfect_qini_curve, y, t)),
        (um.perfect_uplift_curve(y, t), _sk(sk.perfect_uplift_curve, y, t)),
    ):
        np.testing.assert_allclose(ours[0], ref[0])
        np.testing.assert_allclose(ours[1], ref[1], rtol=1e-12, atol=1e-12)


def test_perfect_uplift_rule_both_branches_match_scikit_uplift():
    # more control responders than treated non-responders, and the reverse
    for y, t in (
        (np.array([1, 1, 1, 0, 1, 0, 1, 1]), np.array([1, 0, 0, 0, 1, 1, 0, 0])),
        (np.array([0, 0, 1, 0, 1, 0, 0, 1]), np.array([1, 1, 1, 1, 0, 0, 0, 1])),
    ):
        score = np.arange(y.size)[::-1].astype(float)
        assert um.uplift_auc_score(y, score, t) == pytest.approx(
            _sk(sk.uplift_auc_score, y, score, t)
        )


def test_revenue_curves_are_sums_of_scikit_uplift_indicator_curves():
    """Curves and uplift@k are linear in y: revenue = sum over j of 1[y >= j]."""
    rng = np.random.default_rng(3)
    n = 500
    t = rng.integers(0, 2, n)
    score = np.round(rng.normal(size=n), 1)
    y = rng.poisson(1.0 + t * (score > 0), n) * rng.integers(0, 2, n)  # integer "revenue"
    for ours, ref in ((um.qini_curve, sk.qini_curve), (um.uplift_curve, sk.uplift_curve)):
        x, v = ours(y, score, t)
        total = sum(_sk(ref, (y >= j).astype(int), score, t)[1] for j in range(1, y.max() + 1))
        np.testing.assert_allclose(v, total, rtol=1e-12, atol=1e-9)
        assert x[-1] == n
    at_k = sum(
        _sk(sk.uplift_at_k, (y >= j).astype(int), score, t, strategy="overall", k=0.3)
        for j in range(1, y.max() + 1)
    )
    assert um.uplift_at_k(y, score, t, 0.3) == pytest.approx(at_k, rel=1e-12)


def test_revenue_hand_computed():
    y = np.array([10.0, 0.0, 5.0, 0.0])
    t = np.array([1, 1, 0, 0])
    score = np.array([4.0, 3.0, 2.0, 1.0])
    x, q = um.qini_curve(y, score, t)
    np.testing.assert_allclose(x, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(q, [0, 10, 10, 0, 5])  # 10 - 5 * 2 / 1 at n = 3
    _, u = um.uplift_curve(y, score, t)
    np.testing.assert_allclose(u, [0, 10, 10, 0, 10])
    # Qini: (22.5 - 10) / (32.5 - 10); uplift: (25 - 20) / (42.5 - 20)
    assert um.qini_auc_score(y, score, t) == pytest.approx(5 / 9)
    assert um.uplift_auc_score(y, score, t) == pytest.approx(2 / 9)
    assert um.uplift_at_k(y, score, t, 0.75) == pytest.approx(0.0)  # 10/2 - 5/1
    assert np.isnan(um.uplift_at_k(y, score, t, 0.5))  # top 2 rows all treated


def test_normalised_scores_are_scale_free_and_perfect_is_one():
    rng = np.random.default_rng(5)
    n = 300
    t = rng.integers(0, 2, n)
    y = rng.gamma(2.0, 10.0, n) * rng.integers(0, 2, n)
    score = rng.normal(size=n)
    for fn in (um.qini_auc_score, um.uplift_auc_score):
        assert fn(y * 7.5, score, t) == pytest.approx(fn(y, score, t), rel=1e-10)
    assert um.uplift_at_k(3 * y, score, t) == pytest.approx(3 * um.uplift_at_k(y, score, t))
    perfect = y * (2 * t - 1)
    assert um.qini_auc_score(y, perfect, t) == pytest.approx(1.0)
    assert um.uplift_auc_score(y, perfect, t) == pytest.approx(1.0)


def test_bootstrap_intervals_seeded_and_shrink_with_n():
    small = _case(1, n=1000)
    big = tuple(np.tile(a, 4) for a in small)
    a = um.uplift_intervals(*small, n_boot=100, seed=7)
    b = um.uplift_intervals(*small, n_boot=100, seed=7)
    assert a.equals(b)
    assert list(a.index) == list(um.METRICS)
    assert (a["lower"] <= a["estimate"]).all() and (a["estimate"] <= a["upper"]).all()
    assert a.loc["qini", "estimate"] == pytest.approx(um.qini_auc_score(*small))
    big_ci = um.uplift_intervals(*big, n_boot=100, seed=7)
    ratio = (big_ci["upper"] - big_ci["lower"]) / (a["upper"] - a["lower"])
    assert ((ratio > 0.3) & (ratio < 0.75)).all(), ratio  # ~ 1 / sqrt(4)
    assert big_ci.loc["uplift_at_k", "sd"] < a.loc["uplift_at_k", "sd"]


def test_curve_band_on_share_grid():
    y, score, t = _case(2, n=600)
    band = um.curve_band(y, score, t, kind="qini", n_points=11, n_boot=50)
    x, q = um.qini_curve(y, score, t)
    assert band["share"].tolist() == pytest.approx(np.linspace(0, 1, 11).tolist())
    assert band["value"].iloc[0] == 0 and band["value"].iloc[-1] == pytest.approx(q[-1] / x[-1])
    assert band["random"].iloc[-1] == pytest.approx(band["value"].iloc[-1])
    assert (band["lower"] <= band["upper"]).all()
    with pytest.raises(ValueError, match="kind"):
        um.curve_band(y, score, t, kind="gain")


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="0/1"):
        um.qini_auc_score([1, 0, 1], [0.1, 0.2, 0.3], ["a", "control", "a"])
    with pytest.raises(ValueError, match="length"):
        um.qini_auc_score([1, 0], [0.1, 0.2, 0.3], [1, 0, 1])
    with pytest.raises(ValueError, match="both treated"):
        um.uplift_auc_score([1, 0, 1], [0.1, 0.2, 0.3], [1, 1, 1])
    with pytest.raises(ValueError, match="k must"):
        um.uplift_at_k([1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], [1, 0, 1, 0], k=30)
    rows, t = um.treatment_indicator(["coupon", "control", "mail", "coupon"], "coupon")
    assert rows.tolist() == [True, True, False, True] and t.tolist() == [1, 0, 1]


def test_plots_draw_one_band_per_ranking(tmp_path):
    from churnml.uplift.plots import plot_qini_curve, plot_uplift_curve

    y, score, t = _case(4, n=400)
    bands = {
        "model": um.curve_band(y, score, t, "qini", n_points=21, n_boot=20),
        "oracle": um.curve_band(y, y * (2 * t - 1), t, "qini", n_points=21, n_boot=20),
    }
    fig = plot_qini_curve(bands, outcome_unit="visits")
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:3] == ["model", "random targeting", "oracle"]
    assert len(ax.collections) == 2  # one shaded band per ranking
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), bands["model"]["value"])
    fig.savefig(tmp_path / "qini.png")
    assert (tmp_path / "qini.png").stat().st_size > 1000
    single = plot_uplift_curve(um.curve_band(y, score, t, "uplift", n_points=11, n_boot=10))
    assert "Uplift" in single.axes[0].get_title()
