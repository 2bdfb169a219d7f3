"""The simulator's true survival curve (oracle) at a cutoff: exact where the satisfaction walk
is deterministic, and equal to the Kaplan-Meier of the simulated churn times on average."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.data.simulate import (
    SimulatorConfig,
    customer_truth,
    latent_state_at,
    oracle_survival,
    simulate,
)

CUTOFF = pd.Timestamp("2023-09-01")
TIMES = [0, 30, 90, 180, 365]
DAY = pd.Timedelta(days=1)


def kaplan_meier(duration: np.ndarray, event: np.ndarray, times: list[float]) -> np.ndarray:
    """Product-limit estimate S(t) = prod_{t_i <= t} (1 - d_i / n_i), written out here as an
    independent reference."""
    out = []
    for t in times:
        s = 1.0
        for u in np.unique(duration[event & (duration <= t)]):
            s *= 1 - np.sum(event & (duration == u)) / np.sum(duration >= u)
        out.append(s)
    return np.array(out)


def _check_against_km(oracle: pd.DataFrame, duration: np.ndarray, event: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Mean oracle curve within 3.5 binomial standard errors of the Kaplan-Meier (no
    censoring before 365 days; the Monte Carlo error of the mean is far smaller)."""
    km = kaplan_meier(duration, event, TIMES)
    mean = oracle.mean().to_numpy()
    se = np.sqrt(km * (1 - km) / len(duration))
    assert np.all(np.abs(mean - km) <= 3.5 * se + 0.002), (mean, km, se)
    assert mean[0] == 1.0 and np.all(np.diff(mean) < 0)
    assert km[-1] < 0.9  # the test has churn to match
    return km, se


@pytest.fixture(scope="module")
def shop():
    return simulate(15_000, start="2023-01-01", end="2024-12-31", seed=3)


def test_oracle_matches_kaplan_meier_of_deaths(shop) -> None:
    oracle = oracle_survival(shop, CUTOFF, TIMES, n_draws=64)
    alive = latent_state_at(shop, CUTOFF)
    assert oracle.index.equals(alive.index[alive["alive"]])
    death = customer_truth(shop).loc[oracle.index, "death_ts"]
    end = pd.Timestamp("2025-01-01")
    duration = ((death.fillna(end) - CUTOFF) / DAY).to_numpy()
    km, se = _check_against_km(oracle, duration, death.notna().to_numpy())
    # the test has the power to see the future satisfaction walk: holding the cutoff month's
    # hazard constant (what the churn oracle does over a short horizon) misses at 365 days
    hazard = latent_state_at(shop, CUTOFF).loc[oracle.index, "churn_hazard_per_day"]
    constant = np.exp(-np.outer(hazard, TIMES)).mean(axis=0)
    assert abs(constant[-1] - km[-1]) > 3.5 * se[-1] + 0.002


def test_oracle_matches_kaplan_meier_of_subscription_ends() -> None:
    data = simulate(10_000, start="2023-01-01", end="2024-12-31", seed=4, contractual=True)
    oracle = oracle_survival(data, CUTOFF, TIMES, n_draws=64)
    sub = data.subscriptions
    running = sub[(sub["start_ts"] <= CUTOFF)
                  & (sub["end_ts"].isna() | (sub["end_ts"] > CUTOFF))].set_index("customer_id")
    assert set(running.index) == set(oracle.index) and running.index.is_unique
    end = running["end_ts"].reindex(oracle.index)
    duration = ((end.fillna(pd.Timestamp("2025-01-01")) - CUTOFF) / DAY).to_numpy()
    _check_against_km(oracle, duration, end.notna().to_numpy())


def test_constant_hazard_gives_the_exponential_exactly() -> None:
    cfg = SimulatorConfig(satisfaction_mean_sd=0, satisfaction_initial_sd=0,
                          satisfaction_step_sd_per_month=0, referred_satisfaction_bonus=0)
    data = simulate(300, start="2023-01-01", end="2023-12-31", seed=1, config=cfg)
    oracle = oracle_survival(data, CUTOFF, TIMES, config=cfg, n_draws=3)
    base = customer_truth(data).loc[oracle.index, "churn_hazard_base_per_day"].to_numpy()
    expected = np.exp(-np.outer(base, TIMES))
    np.testing.assert_allclose(oracle.to_numpy(), expected, rtol=1e-12, atol=0)


def test_deterministic_walk_by_hand() -> None:
    """No innovation: s[m+k] = mu + rho^k (s[m] - mu); the hazard of month m+k reads
    s[m+k-1] (lag 1). Cutoff 2023-07-10, t = 60 days: 22 days of July at h[Jul] (the truth's),
    31 days of August at base exp(-beta s[Jul]), 7 days of September at base exp(-beta s[Aug])."""
    cfg = SimulatorConfig(satisfaction_step_sd_per_month=0)
    data = simulate(400, start="2023-01-01", end="2023-12-31", seed=2, config=cfg)
    cutoff = pd.Timestamp("2023-07-10")
    oracle = oracle_survival(data, cutoff, [60], config=cfg, n_draws=2)
    state = latent_state_at(data, cutoff).loc[oracle.index]
    per = customer_truth(data).loc[oracle.index]
    beta, rho = cfg.churn_hazard_satisfaction_effect, cfg.satisfaction_persistence_per_month
    mu, s_jul = per["satisfaction_mean"], state["satisfaction"]
    s_aug = mu + rho * (s_jul - mu)
    base = per["churn_hazard_base_per_day"]
    cum = (22 * state["churn_hazard_per_day"] + 31 * base * np.exp(-beta * s_jul)
           + 7 * base * np.exp(-beta * s_aug))
    np.testing.assert_allclose(oracle[60].to_numpy(), np.exp(-cum).to_numpy(), rtol=1e-12)


def test_wrong_config_and_bad_times_are_refused(shop) -> None:
    with pytest.raises(ValueError, match="does not reproduce the simulated hazards"):
        oracle_survival(shop, CUTOFF, TIMES,
                        config=SimulatorConfig(churn_hazard_satisfaction_effect=0.5))
    with pytest.raises(ValueError, match="times_days must be finite days >= 0"):
        oracle_survival(shop, CUTOFF, [30, -1])
    with pytest.raises(ValueError, match="outside the simulated window"):
        oracle_survival(shop, "2026-01-01", TIMES)


def test_posterior_base_hazard_by_hand() -> None:
    """Constant satisfaction: the relative hazard is 1, so the exposure before the cutoff is
    the days since signup and S(t) = (r / (r + t))^a with r = a / mean + days (no churn yet:
    everyone scored is alive), the Gamma prior's Laplace transform after updating."""
    cfg = SimulatorConfig(satisfaction_mean_sd=0, satisfaction_initial_sd=0,
                          satisfaction_step_sd_per_month=0, referred_satisfaction_bonus=0)
    data = simulate(300, start="2023-01-01", end="2023-12-31", seed=1, config=cfg)
    oracle = oracle_survival(data, CUTOFF, TIMES, config=cfg, n_draws=2, base_hazard="posterior")
    signup = customer_truth(data).loc[oracle.index, "signup_ts"]
    days = ((CUTOFF - signup) / DAY).to_numpy()
    a, rate = cfg.churn_hazard_shape, cfg.churn_hazard_shape / cfg.churn_hazard_mean_per_day
    expected = ((rate + days)[:, None] / (rate + days[:, None] + np.array(TIMES))) ** a
    # rtol: the signup timestamps the exposure is read from are rounded to the microsecond
    np.testing.assert_allclose(oracle.to_numpy(), expected, rtol=1e-7, atol=0)
    with pytest.raises(ValueError, match="base_hazard must be"):
        oracle_survival(data, CUTOFF, TIMES, config=cfg, base_hazard="prior")


def test_posterior_base_hazard_is_calibrated_and_less_sharp() -> None:
    """Not knowing the base hazard (but the satisfaction and the past churns) leaves the
    curve calibrated against the simulated subscription ends, and spreads it less."""
    data = simulate(10_000, start="2023-01-01", end="2024-12-31", seed=4, contractual=True)
    truth = oracle_survival(data, CUTOFF, TIMES, n_draws=64)
    posterior = oracle_survival(data, CUTOFF, TIMES, n_draws=64, base_hazard="posterior")
    assert posterior.index.equals(truth.index)
    sub = data.subscriptions
    running = sub[(sub["start_ts"] <= CUTOFF)
                  & (sub["end_ts"].isna() | (sub["end_ts"] > CUTOFF))].set_index("customer_id")
    end = running["end_ts"].reindex(posterior.index)
    duration = ((end.fillna(pd.Timestamp("2025-01-01")) - CUTOFF) / DAY).to_numpy()
    _check_against_km(posterior, duration, end.notna().to_numpy())
    assert posterior[365].std() < truth[365].std()
