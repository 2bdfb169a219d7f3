"""BTYD models (churnml.models.btyd): hand-computed cases, numerical-integration references,
invariants, parameter recovery, fit/transform separation and determinism."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from sklearn.base import clone

from churnml.errors import DataValidationError
from churnml.models import BTYDChurnModel, BTYDFeatures, BTYDValueModel, btyd

# CDNOW-like parameters in days (r, alpha, s, beta) / (r, alpha, a, b), rounded from a fit
PARETO = np.array([0.6, 81.0, 0.55, 68.0])
BGNBD = np.array([0.25, 33.0, 0.75, 2.2])
# numerical references: rates integrated over [0, RATE_MAX] (prior mass beyond it < 1e-15
# for the shape <= 1.5, rate >= 3 priors used), quadrature tolerances
RATE_MAX = 15.0
EPSABS, EPSREL = 1e-12, 1e-8


def frame(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, m: np.ndarray) -> pd.DataFrame:
    """churnml feature columns that encode the BTYD statistics (x repeats, mean value m)."""
    n = np.asarray(x, float) + 1
    return pd.DataFrame({
        "purchase_days_total": n,
        "days_since_first_transaction": np.asarray(T, float),
        "days_since_last_purchase": np.asarray(T, float) - np.asarray(t_x, float),
        "spend_total": n * np.asarray(m, float),
        "other": 1.0,
    })


def simulate_pareto(params: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """(x, t_x, T) drawn from the Pareto/NBD story: Poisson purchases until an exponential
    death; ages uniform on [30, 300] days."""
    r, alpha, s, beta = params
    rng = np.random.default_rng(seed)
    T = rng.uniform(30, 300, n)
    lam, mu = rng.gamma(r, 1 / alpha, n), rng.gamma(s, 1 / beta, n)
    active = np.minimum(rng.exponential(1 / mu), T)
    x = rng.poisson(lam * active).astype(float)
    t_x = np.where(x > 0, active * rng.random(n) ** (1 / np.maximum(x, 1)), 0.0)
    return x, t_x, T


def gamma_pdf(v: float, shape: float, rate: float) -> float:
    """Gamma(shape, rate) density at v > 0 (plain math: the integrals call it ~1e5 times)."""
    return math.exp(shape * math.log(rate) + (shape - 1) * math.log(v) - rate * v
                    - math.lgamma(shape))


def one(v: float) -> np.ndarray:
    return np.array([v], dtype=float)


# ---------------------------------------------------------------- hand-computed values


def test_bgnbd_hand_computed():
    # r = alpha = a = b = 1. x=0, T=1: L = B(1,1)/B(1,1) * 1/(1+1) = 1/2, P(alive) = 1.
    p = np.ones(4)
    assert np.exp(btyd.bgnbd_log_likelihood(p, one(0), one(0), one(1))) == pytest.approx(0.5)
    assert btyd.bgnbd_p_alive(p, one(0), one(0), one(1)) == pytest.approx(1.0)
    # x=1, t_x=1, T=2: B(1,2)/B(1,1)/3^2 + B(2,1)/B(1,1)/2^2 = 1/18 + 1/8 = 13/72;
    # P(alive) = 1/(1 + 1/1 * (3/2)^2) = 4/13; P(none in t=1) = 9/13 + 4/13 * (3/4)^2 = 45/52
    args = (one(1), one(1), one(2))
    assert np.exp(btyd.bgnbd_log_likelihood(p, *args)) == pytest.approx(13 / 72)
    alive = btyd.bgnbd_p_alive(p, *args)
    assert alive == pytest.approx(4 / 13)
    assert btyd.bgnbd_p_none(p, one(1), one(2), 1.0, alive) == pytest.approx(45 / 52)


def test_pareto_nbd_hand_computed_equal_scales():
    # r = s = 1, alpha = beta = 1 (2F1 argument 0): x=1, t_x=1, T=2:
    # L = 1/(3^2 * 3) + 1/3 * (1/2^3 - 1/3^3) = 1/27 + 19/648 = 43/648; P(alive) = 24/43
    p = np.ones(4)
    args = (one(1), one(1), one(2))
    assert np.exp(btyd.pareto_nbd_log_likelihood(p, *args)) == pytest.approx(43 / 648)
    assert btyd.pareto_nbd_p_alive(p, *args) == pytest.approx(24 / 43)


def test_gamma_gamma_hand_computed_and_density():
    # E = (gamma p + p n m) / (p n + q - 1) = (4*2 + 2*2*5) / (2*2 + 3 - 1) = 28/6
    params = np.array([2.0, 3.0, 4.0])
    assert btyd.gamma_gamma_expected(params, one(5), one(2)) == pytest.approx(28 / 6)
    # m = 0 (no paid purchase) -> population mean gamma p / (q - 1) = 4
    assert btyd.gamma_gamma_expected(params, one(0), one(2)) == pytest.approx(4.0)
    # the density of the mean of n = 3 values integrates to 1 and has that prior mean
    dens = lambda m: np.exp(btyd.gamma_gamma_log_likelihood(params, one(m), one(3)))[0]  # noqa: E731
    assert integrate.quad(dens, 0, np.inf)[0] == pytest.approx(1.0, rel=1e-6)
    assert integrate.quad(lambda m: m * dens(m), 0, np.inf)[0] == pytest.approx(4.0, rel=1e-6)


# ---------------------------------------------------------------- numerical references


@pytest.mark.parametrize("params", [[1.5, 3.0, 1.2, 5.0], [1.5, 5.0, 1.2, 3.0]])
def test_pareto_nbd_matches_numerical_integration(params):
    """Likelihood, P(alive), E[X(T, T+t)] and P(no purchase) against a double integral over
    the individual rates (both 2F1 branches: alpha < beta and alpha > beta)."""
    r, alpha, s, beta = params
    x, t_x, T, t = 2.0, 4.0, 6.0, 3.0
    prior = lambda lam, mu: gamma_pdf(lam, r, alpha) * gamma_pdf(mu, s, beta)  # noqa: E731

    def parts(lam: float, mu: float) -> tuple[float, float]:
        k = lam + mu
        alive = lam**x * math.exp(-k * T)
        dead = lam**x * mu / k * (math.exp(-k * t_x) - math.exp(-k * T))
        return alive, dead

    def integral(f):
        return integrate.dblquad(lambda mu, lam: f(lam, mu) * prior(lam, mu), 0, RATE_MAX,
                                 0, RATE_MAX, epsabs=EPSABS, epsrel=EPSREL)[0]

    lik = integral(lambda lam, mu: sum(parts(lam, mu)))
    alive = integral(lambda lam, mu: parts(lam, mu)[0])
    expected = integral(lambda lam, mu: parts(lam, mu)[0] * lam / mu * -math.expm1(-mu * t))
    k_t = lambda lam, mu: math.exp(-(lam + mu) * t)  # noqa: E731
    none = integral(lambda lam, mu: parts(lam, mu)[1] + parts(lam, mu)[0] * (
        k_t(lam, mu) + mu / (lam + mu) * (1 - k_t(lam, mu))))
    p = np.asarray(params)
    pa = btyd.pareto_nbd_p_alive(p, one(x), one(t_x), one(T))
    assert np.exp(btyd.pareto_nbd_log_likelihood(p, one(x), one(t_x), one(T))) == (
        pytest.approx(lik, rel=1e-6))
    assert pa == pytest.approx(alive / lik, rel=1e-6)
    assert btyd.pareto_nbd_expected(p, one(x), one(T), t, pa) == pytest.approx(
        expected / lik, rel=1e-6)
    assert btyd.pareto_nbd_p_none(p, one(x), one(T), t, pa) == pytest.approx(
        none / lik, rel=1e-6)


def test_bgnbd_matches_numerical_integration():
    """Likelihood, P(alive) and E[X(T, T+t)] against a double integral over (lambda, p)."""
    r, alpha, a, b = 1.5, 3.0, 2.5, 3.0
    x, t_x, T, t = 2.0, 4.0, 6.0, 3.0
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    prior = lambda lam, p: gamma_pdf(lam, r, alpha) * math.exp(  # noqa: E731
        (a - 1) * math.log(p) + (b - 1) * math.log1p(-p) - log_beta)
    alive = lambda lam, p: (1 - p) ** x * lam**x * math.exp(-lam * T)  # noqa: E731
    dead = lambda lam, p: p * (1 - p) ** (x - 1) * lam**x * math.exp(-lam * t_x)  # noqa: E731

    def integral(f):
        return integrate.dblquad(lambda p, lam: f(lam, p) * prior(lam, p), 0, RATE_MAX, 0, 1,
                                 epsabs=EPSABS, epsrel=EPSREL)[0]

    lik = integral(lambda lam, p: alive(lam, p) + dead(lam, p))
    # alive with rate lam and drop-out p: expected purchases in t = (1 - e^(-lam p t)) / p
    expected = integral(lambda lam, p: alive(lam, p) * -math.expm1(-lam * p * t) / p)
    params = np.array([r, alpha, a, b])
    pa = btyd.bgnbd_p_alive(params, one(x), one(t_x), one(T))
    assert np.exp(btyd.bgnbd_log_likelihood(params, one(x), one(t_x), one(T))) == (
        pytest.approx(lik, rel=1e-6))
    assert pa == pytest.approx(integral(alive) / lik, rel=1e-6)
    assert btyd.bgnbd_expected(params, one(x), one(T), t, pa) == pytest.approx(
        expected / lik, rel=1e-6)


# ---------------------------------------------------------------- published estimates

SAMPLE = Path(__file__).parent / "data" / "cdnow_sample_summary.csv.gz"  # see data/README.md
# Fader, Hardie & Lee (2005), Marketing Science 24(2), 1/10 CDNOW sample, weeks:
# parameters and maximised log-likelihood
PUBLISHED = {
    "bgnbd": ([0.243, 4.414, 0.793, 2.426], -9582.4),
    "pareto_nbd": ([0.553, 10.578, 0.606, 11.669], -9595.0),
}
# Fader & Hardie (2013), "The Gamma-Gamma model of monetary value": p, q, gamma (USD)
PUBLISHED_GAMMA_GAMMA = [6.25, 3.74, 15.44]


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return pd.read_csv(SAMPLE)


@pytest.mark.parametrize("kind", btyd.KINDS)
def test_fit_reproduces_published_cdnow_estimates(sample, kind):
    """Same data set (2,357 customers) and unit (weeks) as the paper: same estimates, to the
    published 3 decimals, and the same maximised log-likelihood."""
    x, t_x, T = (sample[c].to_numpy(float) for c in ("x", "t_x", "T"))
    assert (len(sample), int((x > 0).sum()), int(x.sum())) == (2357, 946, 2457)
    params = btyd.fit_transaction_model(kind, x, t_x, T)
    expected, log_lik = PUBLISHED[kind]
    np.testing.assert_allclose(params, expected, atol=2.5e-3)
    log_lik_fn = btyd.TRANSACTION_MODELS[kind][0]
    assert log_lik_fn(params, x, t_x, T).sum() == pytest.approx(log_lik, abs=0.05)


@pytest.mark.parametrize("kind", btyd.KINDS)
def test_fit_reaches_a_stationary_point_in_days(sample, kind):
    """The same sample in days: the score (gradient of the mean log-likelihood in the
    log-parameters, central differences) vanishes at the fit, and the day scales are the
    week scales x 7 (looser optimiser settings stopped up to 6e-6 short of zero here and
    far from the optimum on the full CDNOW log)."""
    x, t_x, T = (sample[c].to_numpy(float) for c in ("x", "t_x", "T"))
    days = btyd.fit_transaction_model(kind, x, 7 * t_x, 7 * T)
    mean_log_lik = lambda lp: btyd.TRANSACTION_MODELS[kind][0](  # noqa: E731
        np.exp(lp), x, 7 * t_x, 7 * T).mean()
    step = 1e-5
    score = [(mean_log_lik(np.log(days) + step * e) - mean_log_lik(np.log(days) - step * e))
             / (2 * step) for e in np.eye(4)]
    np.testing.assert_allclose(score, 0.0, atol=1e-6)
    scale = np.array([1, 7, 1, 7]) if kind == "pareto_nbd" else np.array([1, 7, 1, 1])
    weeks = btyd.fit_transaction_model(kind, x, t_x, T)
    np.testing.assert_allclose(days, weeks * scale, rtol=1e-4)


def test_gamma_gamma_reproduces_published_cdnow_estimates(sample):
    """Repeat customers' mean repeat-purchase value ``zbar`` over ``x`` purchases, as in the
    paper (``fit_gamma_gamma`` takes the purchase count explicitly)."""
    repeat = sample[sample["x"] > 0]
    m, n = repeat["zbar"].to_numpy(float), repeat["x"].to_numpy(float)
    params = btyd.fit_gamma_gamma(m, n)
    # published to 2 decimals; q and gamma lie on a flat ridge (15.4485 is printed 15.44),
    # so: within 0.01 of the published values and at least as likely as them
    np.testing.assert_allclose(params, PUBLISHED_GAMMA_GAMMA, atol=0.01)
    log_lik = btyd.gamma_gamma_log_likelihood
    assert log_lik(params, m, n).sum() >= log_lik(np.array(PUBLISHED_GAMMA_GAMMA), m, n).sum()


def test_transformer_on_the_published_sample(sample):
    """The transformer reads the statistics from churnml feature columns: on the sample in
    weeks it gives the published BG/NBD fit; P(alive) is 1 exactly for the 1,411 customers
    without a repeat purchase."""
    X = frame(sample["x"], sample["t_x"], sample["T"], sample["zbar"])
    fitted = BTYDFeatures(kind="bgnbd", horizon_days=39).fit(X)
    np.testing.assert_allclose(fitted.params_, PUBLISHED["bgnbd"][0], atol=2.5e-3)
    alive = fitted.predict_frame(X)["btyd_p_alive"]
    assert (alive[sample["x"] == 0] == 1.0).sum() == 1411


# ---------------------------------------------------------------- invariants


@settings(max_examples=40, deadline=None)
@given(x=st.integers(1, 30), T=st.floats(10, 400), lo=st.floats(0, 1), hi=st.floats(0, 1))
def test_p_alive_and_no_purchase_monotone_in_recency(x, T, lo, hi):
    """A more recent last purchase (larger t_x, same x and T) never lowers P(alive) nor raises
    P(no purchase in the horizon)."""
    t_x = np.array(sorted([lo, hi])) * T
    xs, Ts = np.full(2, float(x)), np.full(2, T)
    for p, alive_fn, none_fn in [
        (PARETO, btyd.pareto_nbd_p_alive, btyd.pareto_nbd_p_none),
        (BGNBD, btyd.bgnbd_p_alive, btyd.bgnbd_p_none),
    ]:
        alive = alive_fn(p, xs, t_x, Ts)
        none = none_fn(p, xs, Ts, 90.0, alive)
        assert np.all((alive >= 0) & (alive <= 1) & (none >= 0) & (none <= 1))
        assert alive[1] >= alive[0] - 1e-12
        assert none[1] <= none[0] + 1e-12


def test_bgnbd_p_alive_is_one_without_repeat_purchase():
    T = np.array([1.0, 50.0, 300.0])
    assert np.array_equal(btyd.bgnbd_p_alive(BGNBD, np.zeros(3), np.zeros(3), T), np.ones(3))


@pytest.mark.parametrize("kind", btyd.KINDS)
def test_fit_recovers_parameters_and_is_unit_free(kind):
    """Data simulated from Pareto/NBD with known parameters: the Pareto/NBD fit recovers them;
    both fits in weeks give the day scales / 7 and the same unit-free parameters."""
    true = np.array([0.8, 40.0, 0.6, 60.0])
    x, t_x, T = simulate_pareto(true, 4000, seed=1)
    days = btyd.fit_transaction_model(kind, x, t_x, T)
    weeks = btyd.fit_transaction_model(kind, x, t_x / 7, T / 7)
    scale = np.array([1, 7, 1, 7]) if kind == "pareto_nbd" else np.array([1, 7, 1, 1])
    np.testing.assert_allclose(weeks * scale, days, rtol=1e-4)
    if kind == "pareto_nbd":
        np.testing.assert_allclose(days, true, rtol=0.25)


def test_gamma_gamma_fit_recovers_parameters():
    p, q, gamma = 4.0, 3.0, 15.0
    rng = np.random.default_rng(2)
    n = rng.integers(1, 8, 5000).astype(float)
    nu = rng.gamma(q, 1 / gamma, n.size)
    m = rng.gamma(p * n, 1 / (nu * n))  # mean of n Gamma(p, nu) values ~ Gamma(p n, n nu)
    np.testing.assert_allclose(btyd.fit_gamma_gamma(m, n), [p, q, gamma], rtol=0.2)


# ---------------------------------------------------------------- transformer and models


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    x, t_x, T = simulate_pareto(np.array([0.8, 40.0, 0.6, 60.0]), 1500, seed=3)
    m = np.random.default_rng(4).gamma(5.0, 6.0, x.size)
    X = frame(x, t_x, T, m)
    return X.iloc[:1000], X.iloc[1000:]


def test_transform_uses_training_fit_only(data):
    train, test = data
    fitted = BTYDFeatures(horizon_days=60).fit(train)
    out = fitted.transform(test)
    assert list(out.columns) == [*test.columns, *btyd.OUTPUTS]
    assert out.index.equals(test.index)
    pd.testing.assert_frame_equal(out[list(test.columns)], test)
    # each row maps on its own: scoring a row alone or among others gives the same numbers
    alone = pd.concat([fitted.predict_frame(test.iloc[[i]]) for i in range(5)])
    pd.testing.assert_frame_equal(alone, fitted.predict_frame(test).iloc[:5])
    # the fit saw the training rows only: refitting with the test rows changes the parameters
    both = BTYDFeatures(horizon_days=60).fit(pd.concat([train, test]))
    assert not np.allclose(both.params_, fitted.params_)


def test_outputs_are_consistent(data):
    train, test = data
    out = BTYDFeatures(kind="bgnbd", horizon_days=60).fit(train).predict_frame(test)
    np.testing.assert_allclose(out["btyd_expected_value"],
                               out["btyd_expected_purchases"] * out["btyd_expected_order_value"])
    assert out["btyd_p_no_purchase"].between(0, 1).all()
    assert (out["btyd_p_no_purchase"] >= 1 - out["btyd_p_alive"] - 1e-12).all()
    assert (out["btyd_expected_purchases"] > 0).all()


def test_fit_is_deterministic(data):
    train, _ = data
    a, b = BTYDFeatures().fit(train), BTYDFeatures().fit(train)
    assert np.array_equal(a.params_, b.params_)
    assert np.array_equal(a.spend_params_, b.spend_params_)


def test_models_wrap_the_features(data):
    train, test = data
    churn = BTYDChurnModel(horizon_days=60).fit(train)
    value = clone(BTYDValueModel(horizon_days=60)).fit(train, np.zeros(len(train)))
    frame_out = churn.btyd_.predict_frame(test)
    proba = churn.predict_proba(test)
    np.testing.assert_allclose(proba[:, 1], frame_out["btyd_p_no_purchase"])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(churn.predict(test), (proba[:, 1] >= 0.5).astype(int))
    np.testing.assert_allclose(value.predict(test), frame_out["btyd_expected_value"])
    assert churn.get_params() == {"kind": "pareto_nbd", "horizon_days": 60}


def test_bad_input_is_named(data):
    train, _ = data
    with pytest.raises(DataValidationError, match="spend_total"):
        BTYDFeatures().fit(train.drop(columns="spend_total"))
    bad = train.copy()
    bad.iloc[3, bad.columns.get_loc("purchase_days_total")] = 0.0
    with pytest.raises(DataValidationError, match="purchase_days_total"):
        BTYDFeatures().fit(bad)
    with pytest.raises(ValueError, match="kind"):
        BTYDFeatures(kind="nbd").fit(train)
