"""Seeded customer simulator: the five contract tables driven by one latent satisfaction state.

Generative model (time in days; every number is a :class:`SimulatorConfig` field):

* **Acquisition.** Customers sign up over the whole window; the monthly signup intensity is
  ``days_in_month * (1 + growth)^month * season(month)`` with
  ``season = 1 + amplitude * cos(2 pi (month_of_year - peak_month) / 12)``. The signup is the
  first purchase (time 0 of the Pareto/NBD model). Customer ids are 1..n in signup order.
* **Latent satisfaction** ``s`` (unit-free, population mean 0) follows a mean-reverting random
  walk with monthly steps, ``s[m+1] = mu_i + rho (s[m] - mu_i) + sigma eps`` with a customer mean
  ``mu_i ~ N(0, sd)`` (``rho = 1`` is a pure random walk). Referred customers start and stay
  ``referred_satisfaction_bonus`` higher (referred customers are more loyal: Schmitt, Skiera &
  Van den Bulte 2011, J. Marketing 75(1)).
* **Churn (death).** Piecewise-constant hazard per day
  ``h = mu_h_i * exp(-beta_h * s[m - lag])`` with ``mu_h_i ~ Gamma`` (the Pareto/NBD dropout
  heterogeneity, Schmittlein, Morrison & Colombo 1987). The lag makes falling satisfaction
  *precede* the churn it causes. Death is absorbing; dead customers do nothing.
* **Purchases.** Poisson with rate per day ``lambda = lambda_i * season(m) * exp(beta_l * s)``,
  ``lambda_i ~ Gamma`` (Pareto/NBD); amounts Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and
  CLV", J. Marketing Research 42): ``z ~ Gamma(p, nu_i)``, ``nu_i ~ Gamma(q, gamma)``, so a
  customer's mean spend is ``p / nu_i``. A share of purchases is returned later (negative amount
  and quantity, a new order id). Returns and CSAT/CES answers that would fall after the end
  of the customer's life (spell) are dropped: nothing at all happens after ``death_ts``.
* **Engagement events** per type: Poisson with rate ``base * propensity_i * exp(beta * s)``
  (sessions, email opens and push clicks rise with ``s``; support tickets fall with it), session
  ``value`` = minutes ~ Gamma with a mean that rises with ``s``; other types have null value.
* **Surveys.** NPS answers arrive as a Poisson process; CSAT and CES answers follow support
  tickets. Score = ``round(center + slope * s + noise)`` clipped to the
  :class:`~churnml.config.VoiceConfig` range (low ``s`` -> detractor / low CSAT / high effort).
* **Referrals.** A referral-channel signup names a customer alive at the start of its signup
  month, chosen with weight ``exp(beta_r * s)`` (mostly satisfied customers refer).
* **Contractual variant.** A subscription spell runs from signup to death, paying ``mrr`` on
  every monthly anniversary of its start; a churner re-subscribes with probability
  ``resubscribe_probability`` after a Gamma-distributed gap (satisfaction reset to its mean),
  starting a new spell. ``death_ts`` is then the end of the last spell with no return.

Ground truth (``CustomerData.truth``, never read by features) is ONE long frame with a row per
customer and calendar month in which the customer was alive (subscribed) for some time:
``customer_id, month, satisfaction, purchase_rate_per_day, churn_hazard_per_day, active_days``
(the monthly latent state) plus the per-customer parameters repeated on each row
(:data:`CUSTOMER_TRUTH_COLUMNS`; :func:`customer_truth` returns them one row per customer).
:func:`oracle_churn_probability` needs nothing else; :func:`oracle_survival` gives each
customer's true survival curve at a cutoff (the same hazard process, its future satisfaction
integrated out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from churnml.config import ScoreRange, VoiceConfig
from churnml.data.customer_data import CustomerData
from churnml.data.simulate_campaigns import CampaignEffects, CampaignSpec, run_campaigns

SECONDS_PER_DAY = 86_400
MONTHS_PER_YEAR = 12
CENTS = 2  # decimals of money amounts
VALUE_DECIMALS = 1  # decimals of event values (e.g. session minutes)
MONTHLY_STEP_DAYS_MIN = 28  # shortest calendar month, bounds the number of renewals
SIMULATED_NAME = "simulated"

# Latent status of a customer during the month loop.
_NOT_YET, _ALIVE, _LAPSED, _DEAD = 0, 1, 2, 3

STATE_COLUMNS = [
    "satisfaction", "purchase_rate_per_day", "churn_hazard_per_day", "active_days",
]
CUSTOMER_TRUTH_COLUMNS = [
    "signup_ts", "death_ts", "satisfaction_mean", "purchase_rate_base_per_day",
    "churn_hazard_base_per_day", "mean_spend", "engagement_propensity", "n_spells",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Plan(_Strict):
    share: float = Field(gt=0, description="relative share of signups on this plan")
    mrr: float = Field(ge=0, description="monthly recurring revenue, currency units per month")


class EventSpec(_Strict):
    """One engagement event type: Poisson rate and optional value (e.g. session minutes)."""

    rate_per_day: float = Field(gt=0, description="events per day at satisfaction 0")
    satisfaction_effect: float = Field(
        description="change of log(rate) per unit of satisfaction (negative: falls with it)"
    )
    scales_with_engagement: bool = Field(
        True, description="multiply the rate by the customer's engagement propensity"
    )
    value_mean: float | None = Field(
        None, gt=0, description="mean event value at satisfaction 0 (sessions: minutes); "
        "None = null value"
    )
    value_shape: float = Field(2.0, gt=0, description="Gamma shape of the value")
    value_satisfaction_effect: float = Field(
        0.0, description="change of log(mean value) per unit of satisfaction"
    )


class ScoreModel(_Strict):
    """Survey answer = round(center + slope * satisfaction + noise), clipped to the scale."""

    center: float = Field(description="expected score at satisfaction 0, score points")
    satisfaction_slope: float = Field(description="score points per unit of satisfaction")
    noise_sd: float = Field(ge=0, description="answer noise standard deviation, score points")


class SimulatorConfig(_Strict):
    """Every rate and parameter of :func:`simulate`, each with its unit."""

    # acquisition
    signup_growth_per_month: float = Field(
        0.02, gt=-1, description="relative growth of the signup intensity per month"
    )
    seasonality_amplitude: float = Field(
        0.15, ge=0, lt=1, description="relative amplitude of signup and purchase seasonality"
    )
    seasonality_peak_month: int = Field(12, ge=1, le=12, description="calendar month of peak")
    acquisition_channels: dict[str, float] = Field(
        default_factory=lambda: {"organic": 0.4, "paid_search": 0.25, "social": 0.15,
                                 "referral": 0.2},
        description="share of signups per acquisition channel",
    )
    referral_channel: str = Field("referral", description="the channel whose signups refer")
    countries: dict[str, float] = Field(
        default_factory=lambda: {"US": 0.45, "GB": 0.15, "DE": 0.15, "FR": 0.1, "CA": 0.15},
        description="share of customers per country",
    )
    plans: dict[str, Plan] = Field(
        default_factory=lambda: {"basic": Plan(share=0.5, mrr=9.99),
                                 "standard": Plan(share=0.35, mrr=19.99),
                                 "premium": Plan(share=0.15, mrr=39.99)},
    )
    # latent satisfaction
    satisfaction_mean_sd: float = Field(
        0.7, ge=0, description="sd across customers of the long-run satisfaction mean"
    )
    satisfaction_initial_sd: float = Field(
        0.5, ge=0, description="sd of the signup satisfaction around the customer's mean"
    )
    satisfaction_persistence_per_month: float = Field(
        0.85, ge=0, le=1, description="AR(1) coefficient of the monthly walk (1 = random walk)"
    )
    satisfaction_step_sd_per_month: float = Field(
        0.4, ge=0, description="sd of the monthly satisfaction innovation"
    )
    referred_satisfaction_bonus: float = Field(
        0.3, description="satisfaction added to referred customers (start and mean)"
    )
    referral_satisfaction_effect: float = Field(
        1.5, description="log-weight per unit of satisfaction when choosing a referrer"
    )
    # churn hazard (Pareto/NBD dropout heterogeneity + satisfaction)
    churn_hazard_mean_per_day: float = Field(
        0.0009, gt=0, description="population mean of the base churn hazard, per day"
    )
    churn_hazard_shape: float = Field(3.0, gt=0, description="Gamma shape of the base hazard")
    churn_hazard_satisfaction_effect: float = Field(
        1.5, description="decrease of log(hazard) per unit of satisfaction"
    )
    churn_hazard_lag_months: int = Field(
        1, ge=0, description="hazard reads satisfaction this many months earlier (lead of "
        "signals over churn)"
    )
    # purchases (Pareto/NBD rate heterogeneity + satisfaction)
    purchase_rate_mean_per_day: float = Field(
        0.035, gt=0, description="population mean of the base purchase rate, per day"
    )
    purchase_rate_shape: float = Field(2.5, gt=0, description="Gamma shape (r) of the rate")
    purchase_rate_satisfaction_effect: float = Field(
        0.3, description="change of log(purchase rate) per unit of satisfaction"
    )
    # spend (Gamma-Gamma)
    spend_p: float = Field(6.0, gt=0, description="Gamma-Gamma p: shape of one order's amount")
    spend_q: float = Field(4.0, gt=1, description="Gamma-Gamma q: shape of the scale nu_i")
    spend_gamma: float = Field(
        25.0, gt=0, description="Gamma-Gamma gamma: rate of nu_i; mean amount = p*gamma/(q-1), "
        "currency units"
    )
    extra_items_per_order_mean: float = Field(
        0.6, ge=0, description="quantity = 1 + Poisson(this), items per order"
    )
    categories: dict[str, float] = Field(
        default_factory=lambda: {"electronics": 0.2, "home": 0.2, "fashion": 0.25,
                                 "beauty": 0.15, "sports": 0.2},
        description="share of orders per product category",
    )
    favourite_category_share: float = Field(
        0.6, ge=0, le=1, description="probability an order is in the customer's favourite"
    )
    channels: dict[str, float] = Field(
        default_factory=lambda: {"web": 0.5, "app": 0.35, "store": 0.15},
        description="share of orders per sales channel",
    )
    preferred_channel_share: float = Field(
        0.7, ge=0, le=1, description="probability an order uses the customer's usual channel"
    )
    return_probability: float = Field(
        0.05, ge=0, le=1, description="share of orders returned (negative amount)"
    )
    return_delay_mean_days: float = Field(8.0, gt=0, description="mean days order -> return")
    return_delay_shape: float = Field(2.0, gt=0, description="Gamma shape of the return delay")
    # engagement
    events: dict[str, EventSpec] = Field(
        default_factory=lambda: {
            "session": EventSpec(rate_per_day=0.12, satisfaction_effect=0.5, value_mean=8.0,
                                 value_shape=2.0, value_satisfaction_effect=0.2),
            "email_open": EventSpec(rate_per_day=0.06, satisfaction_effect=0.5),
            "push_click": EventSpec(rate_per_day=0.02, satisfaction_effect=0.5),
            "support_ticket": EventSpec(rate_per_day=0.006, satisfaction_effect=-0.9,
                                        scales_with_engagement=False),
        },
        description="engagement event types (events.event_type) and their rates",
    )
    engagement_propensity_shape: float = Field(
        2.0, gt=0, description="Gamma shape of the per-customer engagement multiplier (mean 1)"
    )
    # surveys
    nps_rate_per_day: float = Field(1 / 120, ge=0, description="NPS answers per day")
    survey_trigger_event: str = Field(
        "support_ticket", description="event type after which CSAT and CES are asked"
    )
    csat_after_trigger_probability: float = Field(
        0.4, ge=0, le=1, description="probability a trigger event gets a CSAT answer"
    )
    ces_after_trigger_probability: float = Field(
        0.3, ge=0, le=1, description="probability a trigger event gets a CES answer"
    )
    survey_delay_mean_days: float = Field(1.0, gt=0, description="mean days trigger -> answer")
    survey_delay_shape: float = Field(1.0, gt=0, description="Gamma shape of survey delay")
    nps: ScoreModel = ScoreModel(center=7.9, satisfaction_slope=1.6, noise_sd=1.3)
    csat: ScoreModel = ScoreModel(center=3.9, satisfaction_slope=0.8, noise_sd=0.7)
    ces: ScoreModel = ScoreModel(center=3.0, satisfaction_slope=-1.0, noise_sd=1.0)
    voice: VoiceConfig = VoiceConfig()
    # contractual variant
    renewal_category: str = Field("subscription", description="category of renewal payments")
    renewal_channel: str = Field("recurring", description="channel of renewal payments")
    resubscribe_probability: float = Field(
        0.3, ge=0, le=1, description="probability a churned subscriber comes back"
    )
    resubscribe_gap_mean_days: float = Field(45.0, gt=0, description="mean days until return")
    resubscribe_gap_shape: float = Field(1.5, gt=0, description="Gamma shape of the gap")
    # retention campaigns (churnml.data.simulate_campaigns)
    campaigns: list[CampaignSpec] = Field(
        default_factory=list, description="randomised retention campaigns (none by default)"
    )
    campaign_effects: CampaignEffects = CampaignEffects()

    @field_validator("acquisition_channels", "countries", "categories", "channels")
    @classmethod
    def _shares(cls, shares: dict[str, float]) -> dict[str, float]:
        if not shares or any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
            raise ValueError(f"shares must be non-negative with a positive sum, got {shares}")
        return shares

    @model_validator(mode="after")
    def _consistent(self) -> SimulatorConfig:
        if self.survey_trigger_event not in self.events:
            raise ValueError(
                f"survey_trigger_event {self.survey_trigger_event!r} is not one of the events "
                f"{sorted(self.events)}"
            )
        if not self.plans:
            raise ValueError("plans must not be empty")
        if self.renewal_category in self.categories or self.renewal_channel in self.channels:
            raise ValueError(
                f"renewal_category {self.renewal_category!r} / renewal_channel "
                f"{self.renewal_channel!r} must differ from the purchase categories/channels"
            )
        return self


@dataclass(frozen=True)
class _Customers:
    """Per-customer draws; index i is customer id i + 1 (ids in signup order)."""

    signup_t: np.ndarray  # days since start
    sat_mean: np.ndarray
    sat0: np.ndarray
    purchase_rate: np.ndarray  # per day
    hazard: np.ndarray  # per day
    spend_nu: np.ndarray  # Gamma-Gamma scale nu_i
    propensity: np.ndarray
    referral: np.ndarray  # bool: acquired through the referral channel
    plan: np.ndarray  # codes into cfg.plans
    country: np.ndarray
    channel: np.ndarray  # acquisition channel codes
    fav_category: np.ndarray
    usual_channel: np.ndarray

    @property
    def n(self) -> int:
        return self.signup_t.size


@dataclass(frozen=True)
class _Latent:
    """Output of the month loop: alive segments (within one month and one spell) and spells."""

    cust: np.ndarray
    spell: np.ndarray
    t0: np.ndarray
    t1: np.ndarray
    month: np.ndarray
    sat: np.ndarray
    purchase_rate: np.ndarray
    hazard: np.ndarray
    spell_cust: np.ndarray
    spell_start: np.ndarray
    spell_end: np.ndarray  # NaN = still running at the window end
    death_t: np.ndarray  # per customer; NaN = alive (or lapsed with a pending return)
    referred_by: np.ndarray  # per customer index of the referrer, -1 = none
    sat_mean: np.ndarray  # per customer, including the referral bonus


@dataclass(frozen=True)
class _Calendar:
    start: np.datetime64  # [s]
    edges: np.ndarray  # month boundaries, days since start (len T + 1)
    month_label: np.ndarray  # calendar month start of each month, datetime64[s]
    season: np.ndarray  # seasonal multiplier per month

    @property
    def length_days(self) -> float:
        return float(self.edges[-1])


def simulate(
    n_customers: int = 20_000,
    *,
    start: str | pd.Timestamp = "2023-01-01",
    end: str | pd.Timestamp = "2024-12-31",
    seed: int = 42,
    contractual: bool = False,
    config: SimulatorConfig | None = None,
) -> CustomerData:
    """Simulate customers over ``[start, end]`` (``end`` is the last day, inclusive).

    Returns all five tables (``subscriptions`` only when ``contractual``) and the ground truth
    described in the module docstring as ``data.truth``. Same arguments -> identical tables.
    With ``config.campaigns`` the data also hold a randomised campaign log (``data.campaigns``)
    and its true effects (``data.campaign_truth``), see :mod:`churnml.data.simulate_campaigns`;
    customers never contacted keep exactly the rows of the simulation without campaigns.
    """
    cfg = config or SimulatorConfig()
    if n_customers < 1:
        raise ValueError(f"n_customers must be positive, got {n_customers}")
    cal = _calendar(pd.Timestamp(start), pd.Timestamp(end), cfg)
    rng = np.random.default_rng(seed)
    cust = _draw_customers(rng, n_customers, cal, cfg)
    lat = _latent_loop(rng, cust, cal, cfg, contractual)
    transactions = _transactions(rng, cust, lat, cal, cfg, contractual)
    events, tickets = _events(rng, cust, lat, cal, cfg)
    surveys = _surveys(rng, lat, tickets, cal, cfg)
    customers = _customers_table(cust, lat, cal, cfg)
    subscriptions = _subscriptions_table(cust, lat, cal, cfg) if contractual else None
    truth = _truth_table(cust, lat, cal, cfg)
    campaigns = campaign_truth = None
    if cfg.campaigns:
        if contractual:
            raise ValueError("simulated campaigns need the non-contractual simulator")
        sim = {
            "cust": lat.cust, "t0": lat.t0, "t1": lat.t1, "sat": lat.sat,
            "purchase_rate": lat.purchase_rate, "hazard": lat.hazard, "death_t": lat.death_t,
            "propensity": cust.propensity, "spend_nu": cust.spend_nu,
            "fav_category": cust.fav_category, "usual_channel": cust.usual_channel,
        }
        observed = {"transactions": transactions, "events": events, "surveys": surveys}
        observed, campaigns, campaign_truth = run_campaigns(
            seed, cfg, cal.start, cal.length_days, sim, observed)
        transactions, events, surveys = (observed[k] for k in observed)
        new_death = campaign_truth.set_index("customer_id")["death_ts"]
        hit = truth["customer_id"].isin(new_death.index)
        truth.loc[hit, "death_ts"] = truth.loc[hit, "customer_id"].map(new_death).to_numpy()
    return CustomerData.from_frames(
        transactions, events, surveys, customers, subscriptions,
        name=SIMULATED_NAME, truth=truth, voice=cfg.voice, campaigns=campaigns,
        campaign_truth=campaign_truth,
    )


# --------------------------------------------------------------------------- set-up draws


def _calendar(start: pd.Timestamp, end: pd.Timestamp, cfg: SimulatorConfig) -> _Calendar:
    window_end = end.normalize() + pd.Timedelta(days=1)
    if window_end <= start:
        raise ValueError(f"end ({end}) must not be before start ({start})")
    months = pd.date_range(start.to_period("M").to_timestamp(), window_end, freq="MS")
    bounds = [start, *[m for m in months if start < m < window_end], window_end]
    edges = np.array([(b - start) / pd.Timedelta(days=1) for b in bounds])
    labels = pd.DatetimeIndex([b.to_period("M").to_timestamp() for b in bounds[:-1]])
    moy = labels.month.to_numpy()
    season = 1 + cfg.seasonality_amplitude * np.cos(
        2 * np.pi * (moy - cfg.seasonality_peak_month) / MONTHS_PER_YEAR
    )
    return _Calendar(
        start=np.datetime64(start.to_datetime64(), "s"), edges=edges,
        month_label=labels.to_numpy().astype("datetime64[s]"), season=season,
    )


def _codes(rng: np.random.Generator, shares: dict[str, float], size: int) -> np.ndarray:
    """Draw ``size`` codes 0..k-1 with probabilities proportional to ``shares``."""
    p = np.fromiter(shares.values(), float)
    return rng.choice(p.size, size=size, p=p / p.sum())


def _gamma_mean(rng: np.random.Generator, mean: float, shape: float, size: int) -> np.ndarray:
    """Gamma draws parameterised by mean and shape (scale = mean / shape)."""
    return rng.gamma(shape, mean / shape, size=size)


def _draw_customers(
    rng: np.random.Generator, n: int, cal: _Calendar, cfg: SimulatorConfig
) -> _Customers:
    widths = np.diff(cal.edges)
    w = widths * (1 + cfg.signup_growth_per_month) ** np.arange(widths.size) * cal.season
    month = rng.choice(widths.size, size=n, p=w / w.sum())
    signup_t = np.sort(cal.edges[month] + rng.random(n) * widths[month])
    channel, referral = _acquisition(rng, signup_t < cal.edges[1], cfg)
    sat_mean = rng.normal(0.0, cfg.satisfaction_mean_sd, n)
    return _Customers(
        signup_t=signup_t,
        sat_mean=sat_mean,
        sat0=sat_mean + rng.normal(0.0, cfg.satisfaction_initial_sd, n),
        purchase_rate=_gamma_mean(rng, cfg.purchase_rate_mean_per_day,
                                  cfg.purchase_rate_shape, n),
        hazard=_gamma_mean(rng, cfg.churn_hazard_mean_per_day, cfg.churn_hazard_shape, n),
        spend_nu=rng.gamma(cfg.spend_q, 1 / cfg.spend_gamma, n),
        propensity=_gamma_mean(rng, 1.0, cfg.engagement_propensity_shape, n),
        referral=referral,
        plan=_codes(rng, {k: p.share for k, p in cfg.plans.items()}, n),
        country=_codes(rng, cfg.countries, n),
        channel=channel,
        fav_category=_codes(rng, cfg.categories, n),
        usual_channel=_codes(rng, cfg.channels, n),
    )


def _acquisition(
    rng: np.random.Generator, first_month: np.ndarray, cfg: SimulatorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Acquisition channel codes and the referral flag.

    Nobody can refer a first-month signup (no earlier customers are alive at the window
    start), so those draw their channel among the other channels.
    """
    names = list(cfg.acquisition_channels)
    channel = _codes(rng, cfg.acquisition_channels, first_month.size)
    if cfg.referral_channel not in names:
        return channel, np.zeros(first_month.size, bool)
    ref = names.index(cfg.referral_channel)
    others = {k: v for k, v in cfg.acquisition_channels.items() if k != cfg.referral_channel}
    redo = np.flatnonzero(first_month & (channel == ref))
    if others and sum(others.values()) > 0:
        other_codes = np.array([names.index(k) for k in others])
        channel[redo] = other_codes[_codes(rng, others, redo.size)]
    return channel, channel == ref


# --------------------------------------------------------------------------- latent process


def _latent_loop(
    rng: np.random.Generator, c: _Customers, cal: _Calendar, cfg: SimulatorConfig,
    contractual: bool,
) -> _Latent:
    """Walk month by month (vectorised over customers): satisfaction, deaths, returns."""
    n, lag = c.n, cfg.churn_hazard_lag_months
    rho, step_sd = cfg.satisfaction_persistence_per_month, cfg.satisfaction_step_sd_per_month
    status = np.full(n, _NOT_YET, np.int8)
    sat_mean = c.sat_mean.copy()
    hist = np.tile(c.sat0, (lag + 1, 1))  # hist[k] = satisfaction k months ago
    death_t = np.full(n, np.nan)
    return_t = np.full(n, np.inf)
    referred_by = np.full(n, -1)
    cur_spell = np.arange(n)  # spell id; the first spell of customer i is i
    spell_cust, spell_start = [np.arange(n)], [c.signup_t]
    end_ids: list[np.ndarray] = []
    end_ts: list[np.ndarray] = []
    segs: list[tuple[np.ndarray, ...]] = []
    n_spells = n

    def state(idx: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Satisfaction, purchase rate and churn hazard (per day) in month m."""
        s = hist[0, idx]
        lam = c.purchase_rate[idx] * cal.season[m] * np.exp(
            cfg.purchase_rate_satisfaction_effect * s)
        h = c.hazard[idx] * np.exp(-cfg.churn_hazard_satisfaction_effect * hist[lag, idx])
        return s, lam, h

    for m in range(cal.season.size):
        ms, me = cal.edges[m], cal.edges[m + 1]
        stay = np.flatnonzero(status == _ALIVE)
        new = np.flatnonzero((status == _NOT_YET) & (c.signup_t < me))
        # satisfaction: one AR(1) step for customers alive at the month start
        hist[1:] = hist[:-1]
        mu = sat_mean[stay]
        hist[0, stay] = mu + rho * (hist[0, stay] - mu) + step_sd * rng.standard_normal(
            stay.size)
        # referrals: new referral signups name a customer alive at the month start
        ref_new = new[c.referral[new]]
        if ref_new.size and stay.size:
            w = np.exp(cfg.referral_satisfaction_effect * hist[0, stay])
            referred_by[ref_new] = rng.choice(stay, size=ref_new.size, p=w / w.sum())
            sat_mean[ref_new] += cfg.referred_satisfaction_bonus
            hist[:, ref_new] += cfg.referred_satisfaction_bonus
        status[new] = _ALIVE
        idx = np.concatenate([stay, new])
        t0 = np.concatenate([np.full(stay.size, ms), c.signup_t[new]])
        s, lam, h = state(idx, m)
        tau = t0 + rng.exponential(size=idx.size) / h
        died = tau < me
        segs.append((idx, cur_spell[idx], t0, np.minimum(tau, me), m, s, lam, h))
        dead = idx[died]
        end_ids.append(cur_spell[dead])
        end_ts.append(tau[died])
        status[dead] = _DEAD
        death_t[dead] = tau[died]
        if not contractual:
            continue
        back = dead[rng.random(dead.size) < cfg.resubscribe_probability]
        return_t[back] = death_t[back] + _gamma_mean(
            rng, cfg.resubscribe_gap_mean_days, cfg.resubscribe_gap_shape, back.size)
        status[back] = _LAPSED
        ret = np.flatnonzero((status == _LAPSED) & (return_t < me))
        if ret.size:  # new spell from the return to the month end (no death this month)
            cur_spell[ret] = n_spells + np.arange(ret.size)
            n_spells += ret.size
            spell_cust.append(ret)
            spell_start.append(return_t[ret])
            hist[:, ret] = sat_mean[ret]
            status[ret] = _ALIVE
            t0r = return_t[ret]
            return_t[ret] = np.inf
            s, lam, h = state(ret, m)
            segs.append((ret, cur_spell[ret], t0r, np.full(ret.size, me), m, s, lam, h))

    spell_end = np.full(n_spells, np.nan)
    spell_end[np.concatenate(end_ids)] = np.concatenate(end_ts)
    cols = list(zip(*segs, strict=True))
    sizes = [a.size for a in cols[0]]
    return _Latent(
        cust=np.concatenate(cols[0]), spell=np.concatenate(cols[1]),
        t0=np.concatenate(cols[2]), t1=np.concatenate(cols[3]),
        month=np.repeat(np.array(cols[4]), sizes), sat=np.concatenate(cols[5]),
        purchase_rate=np.concatenate(cols[6]), hazard=np.concatenate(cols[7]),
        spell_cust=np.concatenate(spell_cust), spell_start=np.concatenate(spell_start),
        spell_end=spell_end, death_t=np.where(status == _DEAD, death_t, np.nan),
        referred_by=referred_by, sat_mean=sat_mean,
    )


# --------------------------------------------------------------------------- observed tables


def _points(
    rng: np.random.Generator, rate: np.ndarray, t0: np.ndarray, t1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson process with rate ``rate[j]`` per day on each interval ``[t0[j], t1[j])``.

    Returns the interval index of every point and its time (days), all intervals at once.
    """
    width = t1 - t0
    seg = np.repeat(np.arange(rate.size), rng.poisson(rate * width))
    return seg, t0[seg] + rng.random(seg.size) * width[seg]


def _follow_ups(
    rng: np.random.Generator, t: np.ndarray, limit: np.ndarray, probability: float,
    delay_mean_days: float, delay_shape: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Thin the points ``t`` with ``probability`` and delay the kept ones by a Gamma delay;
    keep those still before their ``limit`` (the end of the customer's spell).

    Returns the indices of the source points and the follow-up times (days).
    """
    src = np.flatnonzero(rng.random(t.size) < probability)
    t_new = t[src] + _gamma_mean(rng, delay_mean_days, delay_shape, src.size)
    ok = t_new < limit[src]
    return src[ok], t_new[ok]


def _prefer(
    rng: np.random.Generator, preferred: np.ndarray, share: float, shares: dict[str, float]
) -> np.ndarray:
    """Per row: the preferred code with probability ``share``, else a draw from ``shares``."""
    other = _codes(rng, shares, preferred.size)
    return np.where(rng.random(preferred.size) < share, preferred, other)


def _ts(cal: _Calendar, t_days: np.ndarray) -> np.ndarray:
    """Days since start -> naive ``datetime64[us]``, floored to whole seconds (NaN -> NaT)."""
    out = np.full(t_days.shape, np.datetime64("NaT"), "datetime64[us]")
    ok = np.isfinite(t_days)
    sec = np.floor(t_days[ok] * SECONDS_PER_DAY).astype("int64").astype("timedelta64[s]")
    out[ok] = cal.start + sec
    return out


def _labels(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=names)


def _spell_limits(lat: _Latent, cal: _Calendar) -> np.ndarray:
    """End of each spell in days; spells running at the window end end there."""
    return np.where(np.isnan(lat.spell_end), cal.length_days, lat.spell_end)


def _monthly_anniversaries(
    start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Renewal times ``start + k`` calendar months (k = 0, 1, ...) before ``end``.

    The day of month is kept (clipped to the month's length, e.g. Jan 31 -> Feb 29) with the
    time of day of ``start``. Both inputs ``datetime64[s]``; returns (row index, times).
    """
    day = start.astype("datetime64[D]")
    month0 = start.astype("datetime64[M]")
    dom = (day - month0.astype("datetime64[D]")).astype("int64")
    tod = start - day.astype("datetime64[s]")
    span_days = (end - start).astype("timedelta64[D]").astype("int64")
    count = np.maximum(span_days // MONTHLY_STEP_DAYS_MIN + 2, 0)
    row = np.repeat(np.arange(start.size), count)
    k = np.arange(row.size) - np.repeat(np.cumsum(count) - count, count)
    month = month0[row] + k.astype("timedelta64[M]")
    month_days = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(
        "int64")
    ts = (month.astype("datetime64[D]") + np.minimum(dom[row], month_days - 1)).astype(
        "datetime64[s]") + tod[row]
    keep = ts < end[row]
    return row[keep], ts[keep]


def _transactions(
    rng: np.random.Generator, c: _Customers, lat: _Latent, cal: _Calendar,
    cfg: SimulatorConfig, contractual: bool,
) -> pd.DataFrame:
    """First purchase at signup, Poisson repeat purchases, returns, and renewals."""
    seg, t_rep = _points(rng, lat.purchase_rate, lat.t0, lat.t1)
    cust = np.concatenate([np.arange(c.n), lat.cust[seg]])
    t = np.concatenate([c.signup_t, t_rep])
    spell = np.concatenate([np.arange(c.n), lat.spell[seg]])
    amount = np.maximum(np.round(rng.gamma(cfg.spend_p, 1 / c.spend_nu[cust]), CENTS),
                        10.0 ** -CENTS)
    quantity = 1.0 + rng.poisson(cfg.extra_items_per_order_mean, cust.size)
    category = _prefer(rng, c.fav_category[cust], cfg.favourite_category_share, cfg.categories)
    channel = _prefer(rng, c.usual_channel[cust], cfg.preferred_channel_share, cfg.channels)

    src, t_ret = _follow_ups(rng, t, _spell_limits(lat, cal)[spell], cfg.return_probability,
                             cfg.return_delay_mean_days, cfg.return_delay_shape)
    parts = [
        (cust, _ts(cal, t), amount, quantity, category, channel),
        (cust[src], _ts(cal, t_ret), -amount[src], -quantity[src], category[src],
         channel[src]),
    ]
    if contractual:
        start, end = _spell_bounds(lat, cal)
        row, ts = _monthly_anniversaries(start, end)
        owner = lat.spell_cust[row]
        mrr = np.array([p.mrr for p in cfg.plans.values()])[c.plan[owner]]
        parts.append((owner, ts.astype("datetime64[us]"), mrr, np.ones(row.size),
                      np.full(row.size, len(cfg.categories)),
                      np.full(row.size, len(cfg.channels))))
    cols = [np.concatenate(p) for p in zip(*parts, strict=True)]
    order = np.lexsort((cols[0], cols[1]))
    return pd.DataFrame({
        "order_id": np.arange(1, order.size + 1, dtype="int64"),
        "customer_id": cols[0][order] + 1,
        "ts": cols[1][order],
        "amount": cols[2][order],
        "quantity": cols[3][order],
        "category": _labels(cols[4][order], [*cfg.categories, cfg.renewal_category]),
        "channel": _labels(cols[5][order], [*cfg.channels, cfg.renewal_channel]),
    })


def _spell_bounds(lat: _Latent, cal: _Calendar) -> tuple[np.ndarray, np.ndarray]:
    """Spell start and end (the window end when running) as ``datetime64[s]``."""
    return (_ts(cal, lat.spell_start).astype("datetime64[s]"),
            _ts(cal, _spell_limits(lat, cal)).astype("datetime64[s]"))


def _events(
    rng: np.random.Generator, c: _Customers, lat: _Latent, cal: _Calendar,
    cfg: SimulatorConfig,
) -> tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray]]:
    """Engagement events of every type; also returns the survey triggers (segment, time)."""
    segs, times, codes, values = [], [], [], []
    trigger = (np.empty(0, "int64"), np.empty(0))
    for code, (name, spec) in enumerate(cfg.events.items()):
        rate = spec.rate_per_day * np.exp(spec.satisfaction_effect * lat.sat)
        if spec.scales_with_engagement:
            rate = rate * c.propensity[lat.cust]
        seg, t = _points(rng, rate, lat.t0, lat.t1)
        if spec.value_mean is None:
            value = np.full(seg.size, np.nan)
        else:
            mean = spec.value_mean * np.exp(spec.value_satisfaction_effect * lat.sat[seg])
            value = np.round(rng.gamma(spec.value_shape, mean / spec.value_shape),
                             VALUE_DECIMALS)
        if name == cfg.survey_trigger_event:
            trigger = (seg, t)
        segs.append(seg)
        times.append(t)
        codes.append(np.full(seg.size, code))
        values.append(value)
    seg, t = np.concatenate(segs), np.concatenate(times)
    cust = lat.cust[seg]
    order = np.lexsort((cust, t))
    events = pd.DataFrame({
        "customer_id": cust[order] + 1,
        "ts": _ts(cal, t[order]),
        "event_type": _labels(np.concatenate(codes)[order], list(cfg.events)),
        "value": np.concatenate(values)[order],
    })
    return events, trigger


def _score(
    rng: np.random.Generator, sat: np.ndarray, model: ScoreModel, scale: ScoreRange
) -> np.ndarray:
    """round(center + slope * s + noise), clipped to the survey scale."""
    raw = model.center + model.satisfaction_slope * sat + rng.normal(0, model.noise_sd,
                                                                     sat.size)
    return np.clip(np.rint(raw), scale.low, scale.high)


def _surveys(
    rng: np.random.Generator, lat: _Latent, trigger: tuple[np.ndarray, np.ndarray],
    cal: _Calendar, cfg: SimulatorConfig,
) -> pd.DataFrame:
    """NPS as a Poisson process; CSAT and CES after the trigger events (support tickets)."""
    seg_n, t_n = _points(rng, np.full(lat.sat.size, cfg.nps_rate_per_day), lat.t0, lat.t1)
    parts = [(seg_n, t_n, "nps")]
    seg_t, t_t = trigger
    limit = _spell_limits(lat, cal)[lat.spell[seg_t]]
    for kind, prob in (("csat", cfg.csat_after_trigger_probability),
                       ("ces", cfg.ces_after_trigger_probability)):
        src, t = _follow_ups(rng, t_t, limit, prob, cfg.survey_delay_mean_days,
                             cfg.survey_delay_shape)
        parts.append((seg_t[src], t, kind))
    kinds = [k for _, _, k in parts]
    seg = np.concatenate([p[0] for p in parts])
    t = np.concatenate([p[1] for p in parts])
    code = np.repeat(np.arange(len(parts)), [p[0].size for p in parts])
    score = np.concatenate([
        _score(rng, lat.sat[p[0]], getattr(cfg, k), getattr(cfg.voice, k)) for *p, k in parts
    ])
    cust = lat.cust[seg]
    order = np.lexsort((cust, t))
    return pd.DataFrame({
        "customer_id": cust[order] + 1,
        "ts": _ts(cal, t[order]),
        "kind": _labels(code[order], kinds),
        "score": score[order],
    })


def _customers_table(
    c: _Customers, lat: _Latent, cal: _Calendar, cfg: SimulatorConfig
) -> pd.DataFrame:
    referred = pd.Series(lat.referred_by + 1, dtype="Int64").where(lat.referred_by >= 0)
    return pd.DataFrame({
        "customer_id": np.arange(1, c.n + 1, dtype="int64"),
        "signup_ts": _ts(cal, c.signup_t),
        "plan": _labels(c.plan, list(cfg.plans)),
        "country": _labels(c.country, list(cfg.countries)),
        "acquisition_channel": _labels(c.channel, list(cfg.acquisition_channels)),
        "referred_by": referred,
    })


def _subscriptions_table(
    c: _Customers, lat: _Latent, cal: _Calendar, cfg: SimulatorConfig
) -> pd.DataFrame:
    """One row per subscription spell; ``end_ts`` null while running at the window end."""
    plan = c.plan[lat.spell_cust]
    end = _ts(cal, lat.spell_end)  # NaN -> NaT
    subs = pd.DataFrame({
        "customer_id": lat.spell_cust + 1,
        "start_ts": _ts(cal, lat.spell_start),
        "end_ts": end,
        "plan": _labels(plan, list(cfg.plans)),
        "mrr": np.array([p.mrr for p in cfg.plans.values()])[plan],
    })
    return subs.sort_values(["customer_id", "start_ts"], ignore_index=True)


def _truth_table(
    c: _Customers, lat: _Latent, cal: _Calendar, cfg: SimulatorConfig
) -> pd.DataFrame:
    """Monthly latent state (long format) with the per-customer parameters on each row."""
    seg = pd.DataFrame({
        "customer_id": lat.cust + 1,
        "month": cal.month_label[lat.month].astype("datetime64[us]"),
        "satisfaction": lat.sat,
        "purchase_rate_per_day": lat.purchase_rate,
        "churn_hazard_per_day": lat.hazard,
        "active_days": lat.t1 - lat.t0,
    })
    truth = seg.groupby(["customer_id", "month"], sort=True, as_index=False).agg(
        satisfaction=("satisfaction", "last"),
        purchase_rate_per_day=("purchase_rate_per_day", "last"),
        churn_hazard_per_day=("churn_hazard_per_day", "last"),
        active_days=("active_days", "sum"),
    )
    i = truth["customer_id"].to_numpy() - 1
    per_customer = {
        "signup_ts": _ts(cal, c.signup_t),
        "death_ts": _ts(cal, lat.death_t),
        "satisfaction_mean": lat.sat_mean,
        "purchase_rate_base_per_day": c.purchase_rate,
        "churn_hazard_base_per_day": c.hazard,
        "mean_spend": cfg.spend_p / c.spend_nu,
        "engagement_propensity": c.propensity,
        "n_spells": np.bincount(lat.spell_cust, minlength=c.n),
    }
    for col in CUSTOMER_TRUTH_COLUMNS:
        truth[col] = per_customer[col][i]
    return truth


# --------------------------------------------------------------------------- truth readers


def _truth(data: CustomerData) -> pd.DataFrame:
    truth = data.truth
    if truth is None:
        raise ValueError(
            f"dataset {data.name!r} has no simulator truth (data.truth is None); "
            "only churnml.data.simulate.simulate() produces it"
        )
    missing = [c for c in ["customer_id", "month", *STATE_COLUMNS, *CUSTOMER_TRUTH_COLUMNS]
               if c not in truth.columns]
    if missing:
        raise ValueError(f"data.truth lacks the simulator column(s) {missing}")
    return truth


def customer_truth(data: CustomerData) -> pd.DataFrame:
    """True per-customer parameters (index ``customer_id``): :data:`CUSTOMER_TRUTH_COLUMNS`.

    ``death_ts`` is the true churn time (NaT: alive at the window end, or, contractual,
    between spells with a return still to come); rates are per day, ``mean_spend`` in
    currency units per order (Gamma-Gamma ``p / nu``).
    """
    per = _truth(data)[["customer_id", *CUSTOMER_TRUTH_COLUMNS]]
    return per.drop_duplicates("customer_id").set_index("customer_id")


def latent_state_at(data: CustomerData, cutoff: pd.Timestamp | str) -> pd.DataFrame:
    """Latent state at ``cutoff`` of every customer who signed up before it.

    Index ``customer_id``; columns ``alive`` (not yet churned, for the contractual variant:
    subscribed, at ``cutoff``) and ``satisfaction``, ``purchase_rate_per_day``,
    ``churn_hazard_per_day`` of the calendar month holding ``cutoff`` (NaN if not alive).
    """
    truth = _truth(data)
    cutoff = pd.Timestamp(cutoff)
    month = cutoff.to_period("M").to_timestamp()
    in_month = truth["month"] == month
    if not in_month.any():
        raise ValueError(
            f"cutoff {cutoff} is outside the simulated window "
            f"({truth['month'].min():%Y-%m} .. {truth['month'].max():%Y-%m})"
        )
    per = customer_truth(data)
    per = per[per["signup_ts"] < cutoff]
    if data.subscriptions is not None:
        sub = data.subscriptions
        on = (sub["start_ts"] <= cutoff) & (sub["end_ts"].isna() | (sub["end_ts"] > cutoff))
        alive = per.index.isin(sub.loc[on, "customer_id"])
    else:
        alive = (per["death_ts"].isna() | (per["death_ts"] >= cutoff)).to_numpy()
    state_cols = STATE_COLUMNS[:-1]
    rows = truth.loc[in_month, ["customer_id", *state_cols]].set_index("customer_id")
    out = per[[]].join(rows)
    out.loc[~alive, state_cols] = np.nan
    out.insert(0, "alive", alive)
    return out


def oracle_churn_probability(
    data: CustomerData, cutoff: pd.Timestamp | str, horizon_days: int
) -> pd.Series:
    """True probability of NO purchase in ``[cutoff, cutoff + H)`` given the latent truth.

    For a customer alive at ``cutoff`` with purchase rate ``lambda`` and churn hazard ``h``
    (both per day, those of the cutoff's month, held constant over the horizon ``H`` days),
    the first of two competing exponential clocks decides:

        P = exp(-(lambda + h) H) + h / (lambda + h) * (1 - exp(-(lambda + h) H))

    (no event at all, or death before any purchase). Already churned customers get 1.
    Index ``customer_id`` of the customers who signed up before ``cutoff``. Defined for the
    non-contractual simulator (contractual customers also pay monthly renewals).
    """
    if data.subscriptions is not None:
        raise ValueError(
            "oracle_churn_probability is defined for the non-contractual simulator; "
            "this dataset has subscriptions (monthly renewals are not a Poisson process)"
        )
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    state = latent_state_at(data, cutoff)
    lam = state["purchase_rate_per_day"].to_numpy()
    h = state["churn_hazard_per_day"].to_numpy()
    total = lam + h
    quiet = np.exp(-total * horizon_days)
    death_first = np.divide(h, total, out=np.zeros_like(total), where=total > 0)
    p = np.where(state["alive"].to_numpy(), quiet + death_first * (1 - quiet), 1.0)
    return pd.Series(p, index=state.index, name="oracle_churn_probability")


def true_lost_value(
    data: CustomerData, cutoff: pd.Timestamp | str, horizon_days: int
) -> pd.DataFrame:
    """The value each customer truly loses to churn over ``[cutoff, cutoff + H)``.

    Index ``customer_id`` of the customers who signed up before ``cutoff``; columns (rates
    per day, money in currency units, before returns):

    - ``true_churn``: 1 if the customer is dead by ``cutoff + H`` (already before the
      cutoff, or within the horizon), else 0;
    - ``spend_if_alive`` = ``lambda x H x mean_spend``: the expected horizon spend had the
      customer stayed alive, with ``lambda`` the purchase rate of the cutoff's month (for a
      customer already dead: of the last month alive) and ``mean_spend`` the Gamma-Gamma
      mean order value;
    - ``lost_value`` = ``true_churn x spend_if_alive``;
    - ``oracle_lost_value`` = ``P(dead by cutoff + H | truth at cutoff) x spend_if_alive``
      with ``P = 1`` for the dead and ``1 - exp(-h H)`` for the living (hazard ``h`` of the
      cutoff's month): the best ranking of ``lost_value`` that the truth allows.

    Defined for the non-contractual simulator.
    """
    if data.subscriptions is not None:
        raise ValueError("true_lost_value is defined for the non-contractual simulator")
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    cutoff = pd.Timestamp(cutoff)
    truth = _truth(data)
    state = latent_state_at(data, cutoff)
    per = customer_truth(data).loc[state.index]
    month = cutoff.to_period("M").to_timestamp()
    last = (truth[truth["month"] <= month].sort_values(["customer_id", "month"])
            .drop_duplicates("customer_id", keep="last").set_index("customer_id"))
    rate = last["purchase_rate_per_day"].reindex(state.index).fillna(0.0).to_numpy()
    end = cutoff + pd.Timedelta(days=horizon_days)
    death = per["death_ts"]
    churn = (death.notna() & (death < end)).to_numpy().astype("int64")
    spend = rate * horizon_days * per["mean_spend"].to_numpy()
    alive = state["alive"].to_numpy()
    hazard = state["churn_hazard_per_day"].fillna(0.0).to_numpy()
    p_dead = np.where(alive, 1.0 - np.exp(-hazard * horizon_days), 1.0)
    return pd.DataFrame({"true_churn": churn, "spend_if_alive": spend,
                         "lost_value": churn * spend, "oracle_lost_value": p_dead * spend},
                        index=state.index)


def oracle_survival(
    data: CustomerData,
    cutoff: pd.Timestamp | str,
    times_days: Sequence[float],
    *,
    config: SimulatorConfig | None = None,
    n_draws: int = 256,
    seed: int = 0,
    chunk_size: int = 2_000,
    base_hazard: str = "true",
) -> pd.DataFrame:
    """True survival curve of every customer alive at ``cutoff``: ``P(T > cutoff + t | truth
    at cutoff)`` for each ``t`` in ``times_days``.

    ``T`` is the churn time the simulator draws: the death (non-contractual) or the end of the
    subscription spell running at ``cutoff`` (contractual: a later return starts a new
    spell). The hazard per day is piecewise constant by calendar month,
    ``h[k] = base_i * exp(-beta_h * s[k - lag])`` (module docstring), so given the truth at
    ``cutoff`` (month ``m``)

        S(t) = E[ exp(-sum_k h[k] * |[cutoff, cutoff + t) & month k|) ],

    where satisfaction up to month ``m`` is known (before the spell's first month it equals
    that month's, as the simulator initialises a spell) and later satisfaction follows the
    AR(1) walk ``s[k+1] = mu_i + rho (s[k] - mu_i) + sigma eps``. The expectation over the
    future walk is a Monte Carlo mean over ``n_draws`` paths per customer (seeded; its error
    shrinks as ``1 / sqrt(n_draws)`` and vanishes when ``sigma = 0``). A contractual customer
    whose running spell ends and who returns later in the cutoff's month has the monthly truth
    of the return, so for them ``s[m]`` is drawn from the walk too (the curve conditions on
    ``s[m - 1]``). ``config`` must be the :class:`SimulatorConfig` of the simulation (default:
    the default config); the hazards it implies are checked against the truth. Index
    ``customer_id`` (customers alive at ``cutoff``), one column per time (days, as given).
    Defined for simulations without campaigns (a contact redraws the contacted customer's
    future).

    ``base_hazard="posterior"`` gives the curve of an observer who knows every customer's
    satisfaction path but not their base hazard ``base_i``: everything the data show about
    ``base_i`` is the churn process itself (engagement, purchases and surveys do not depend on
    it), so with the Gamma(``a``, rate ``a / mean``) prior of the config, ``n_i`` churns
    (ended spells) before ``cutoff`` and exposure ``E_i = sum over the months before the
    cutoff's month of active days * exp(-beta_h * s[k - lag])``, the posterior is
    Gamma(``a + n_i``, ``a / mean + E_i``) and ``S(t) = E[(r / (r + L(t)))^(a + n_i)]`` with
    ``L(t)`` the future cumulative ``exp(-beta_h * s)`` (its Laplace transform). Comparing it
    with the true curve measures what the unobservable ``base_i`` is worth.
    """
    if base_hazard not in ("true", "posterior"):
        raise ValueError(f"base_hazard must be 'true' or 'posterior', got {base_hazard!r}")
    cfg = config or SimulatorConfig()
    if data.campaigns is not None:
        raise ValueError("oracle_survival is defined for simulations without campaigns "
                         "(a contact redraws the future of the contacted customer)")
    times = np.asarray(list(times_days), dtype=float)
    if times.ndim != 1 or times.size == 0 or not np.isfinite(times).all() or (times < 0).any():
        raise ValueError(f"times_days must be finite days >= 0, got {list(times_days)}")
    if n_draws < 1:
        raise ValueError(f"n_draws must be positive, got {n_draws}")
    cutoff = pd.Timestamp(cutoff)
    state = latent_state_at(data, cutoff)
    state = state[state["alive"]]
    per = customer_truth(data).loc[state.index]
    lag = cfg.churn_hazard_lag_months
    month = cutoff.to_period("M").to_timestamp()
    # s[m - lag - 1], ..., s[m] (NaN: s[m] of a spell the monthly truth does not hold)
    known = _known_satisfaction(data, state.index, per, cutoff, lag + 1)
    base = per["churn_hazard_base_per_day"].to_numpy()
    beta = cfg.churn_hazard_satisfaction_effect
    rho, sd = cfg.satisfaction_persistence_per_month, cfg.satisfaction_step_sd_per_month
    mu = per["satisfaction_mean"].to_numpy()
    s_lag = known[:, 1]  # s[m - lag]
    check = ~np.isnan(s_lag) & ~np.isnan(known[:, -1])
    implied = base[check] * np.exp(-beta * s_lag[check])
    if not np.allclose(implied, state["churn_hazard_per_day"].to_numpy()[check], rtol=1e-9,
                       atol=0):
        raise ValueError("the config does not reproduce the simulated hazards; pass the "
                         "SimulatorConfig the data were simulated with")
    if base_hazard == "posterior":
        shape, rate = _base_hazard_posterior(data, state.index, per, cutoff, month, cfg)
    # calendar months from the cutoff's month to past the longest time
    last = cutoff + pd.Timedelta(days=float(times.max()))
    edges = pd.date_range(month, last.to_period("M").to_timestamp() + pd.offsets.MonthBegin(1),
                          freq="MS")
    offset = ((edges - cutoff) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    lo, hi = np.maximum(offset[:-1], 0.0), np.maximum(offset[1:], 0.0)
    overlap = np.clip(times[:, None], lo[None, :], hi[None, :]) - lo[None, :]  # (T, K) days
    n_months = lo.size
    rng = np.random.default_rng(seed)
    out = np.empty((state.shape[0], times.size))
    for a in range(0, state.shape[0], chunk_size):
        b = min(a + chunk_size, state.shape[0])
        n, m_i = b - a, mu[a:b, None]
        sat = np.empty((n, n_draws, lag + 1 + n_months))  # s[m - lag - 1], ..., s[m + K - 1]
        sat[:, :, : lag + 2] = known[a:b, None, :]
        for k in range(lag + 1, lag + 1 + n_months):
            step = m_i + rho * (sat[:, :, k - 1] - m_i) + sd * rng.standard_normal((n, n_draws))
            sat[:, :, k] = step if k > lag + 1 else np.where(np.isnan(sat[:, :, k]), step,
                                                             sat[:, :, k])
        relative = np.exp(-beta * sat[:, :, 1: 1 + n_months])  # hazard / base, months m..
        cum = relative @ overlap.T  # (n, draws, T) cumulative hazard / base
        if base_hazard == "true":
            out[a:b] = np.exp(-base[a:b, None, None] * cum).mean(axis=1)
        else:
            r = rate[a:b, None, None]
            out[a:b] = ((r / (r + cum)) ** shape[a:b, None, None]).mean(axis=1)
    return pd.DataFrame(out, index=state.index, columns=list(times_days))


def _base_hazard_posterior(
    data: CustomerData, ids: pd.Index, per: pd.DataFrame, cutoff: pd.Timestamp,
    month: pd.Timestamp, cfg: SimulatorConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Gamma posterior (shape, rate per day) of each customer's base churn hazard given
    the churns and the satisfaction-weighted exposure before ``month`` (:func:`oracle_survival`)."""
    truth = _truth(data)
    before = truth[truth["customer_id"].isin(ids) & (truth["month"] < month)]
    base = before["churn_hazard_base_per_day"].to_numpy()
    exposure = (before["active_days"] * before["churn_hazard_per_day"] / base).groupby(
        before["customer_id"]).sum().reindex(ids, fill_value=0.0).to_numpy()
    if data.subscriptions is not None:
        sub = data.subscriptions
        ended = sub[sub["customer_id"].isin(ids) & (sub["end_ts"] <= cutoff)]
        churns = ended.groupby("customer_id").size().reindex(ids, fill_value=0).to_numpy()
    else:
        churns = np.zeros(ids.size)  # alive at the cutoff: never churned
    a = cfg.churn_hazard_shape
    return a + churns, a / cfg.churn_hazard_mean_per_day + exposure


def _known_satisfaction(
    data: CustomerData, ids: pd.Index, per: pd.DataFrame, cutoff: pd.Timestamp, back: int
) -> np.ndarray:
    """Satisfaction of months ``m - back .. m`` (``m``: the cutoff's month) of the customers
    ``ids``, each alive at ``cutoff``, in the spell running then: months before the spell's
    first month take that month's value (the simulator starts a spell with its whole history
    at the initial satisfaction). Month ``m`` is NaN for a contractual customer with a later
    spell starting within month ``m`` (the monthly truth holds the later spell's state)."""
    truth = _truth(data)
    month = cutoff.to_period("M").to_timestamp()
    later = pd.Index([])
    if data.subscriptions is not None:
        sub = data.subscriptions[data.subscriptions["customer_id"].isin(ids)]
        on = sub[sub["start_ts"] <= cutoff]
        spell_start = on.groupby("customer_id")["start_ts"].max().reindex(ids)
        next_month = month + pd.offsets.MonthBegin(1)
        later = pd.Index(sub.loc[(sub["start_ts"] > cutoff) & (sub["start_ts"] < next_month),
                                 "customer_id"].unique())
    else:
        spell_start = per["signup_ts"].reindex(ids)
    first = spell_start.dt.to_period("M").dt.to_timestamp().to_numpy().astype("datetime64[us]")
    sat = truth.set_index(["customer_id", "month"])["satisfaction"]
    out = np.empty((ids.size, back + 1))
    for j in range(back + 1):
        target = np.datetime64((month - pd.DateOffset(months=back - j)).to_datetime64(), "us")
        want = np.maximum(target, first)
        key = pd.MultiIndex.from_arrays([ids, pd.DatetimeIndex(want)])
        out[:, j] = sat.reindex(key).to_numpy()
    out[ids.isin(later), -1] = np.nan
    if np.isnan(out[:, :-1]).any():
        raise ValueError("simulator truth lacks the satisfaction of a month a live customer "
                         "was subscribed in")
    return out
