"""Retention campaigns for the simulator: randomised contacts with heterogeneous true effects.

Driven by the latent state of :mod:`churnml.data.simulate` (time in days; every number is a
:class:`CampaignEffects` or :class:`CampaignSpec` field):

* **Who is contacted.** At a campaign's date every customer with a purchase in the
  ``eligible_lookback_days`` before it (what a marketer sees; already-dead customers included)
  and not contacted by an earlier campaign is contacted with probability ``contact_share``, at
  a uniform time of that day between 9:00 and 18:00. A contact is ``control`` with probability
  ``control_share``, else the treatment ``arm`` (a randomised design: propensity known), in
  each of two segments a marketer sees at the contact (the log's ``segment``): ``recent`` (a
  purchase in the ``RECENT_DAYS`` before the campaign date) and ``lapsing`` (none), so
  evaluation reports the lift per segment.
* **Effect.** For the ``effect_days`` after a treated contact the purchase rate is multiplied by
  ``a = exp(purchase_base + purchase_dissatisfied * d - purchase_sleeping_dog * g)`` and the
  churn hazard by ``b = exp(-hazard_dissatisfied * d + hazard_sleeping_dog * g)``, with
  ``d = max(-s, 0)`` (dissatisfaction: a discount wins back an unhappy customer) and
  ``g = 1`` for a *busy* customer (engagement propensity below ``busy_propensity_max``) with
  ``s >= 0``: reminded of a contract they had forgotten, contented-but-busy customers leave
  (Ascarza 2018, "Retention Futility", J. Marketing Research 55(1)). Persuadables, sure things
  (who buy anyway), lost causes (dead or nearly inactive) and sleeping dogs emerge from this.
* **Future of a contacted customer.** From the contact on, both arms' futures are redrawn with
  the state of the contact month held constant (purchase rate ``lambda``, hazard ``h``), times
  ``a`` and ``b`` during the effect window for the treated: death by the first passage of the
  cumulative hazard over an ``Exp(1)`` draw, purchases Poisson, amounts, returns, categories and
  channels as in the main simulator. Transactions of contacted customers at or after the
  contact are replaced; their events and surveys after the (new) death are dropped (events are
  not redrawn, so a contacted customer who outlives its no-campaign death is silent on events
  afterwards). Non-contacted customers and everything before a contact are exactly the
  no-campaign simulation (same seed -> same rows).

Truth (``CustomerData.campaign_truth``): one row per contact with the contact-month state, the
multipliers and, over ``H = effect_days``, the exact retention probabilities of the held-constant
process, ``P(retained) = 1 - [exp(-(lambda + h) H) + h / (lambda + h) (1 - exp(-(lambda + h) H))]``
for both arms, ``tau = P_T - P_C`` (probability points), the expected net revenue effect
``tau_revenue = m (1 - r) [E N_T - E N_C]`` with ``E N = lambda (1 - exp(-h H)) / h`` purchases,
``m`` the mean spend and ``r`` the return probability (currency), and the ``uplift_type``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from churnml.data.simulate import SimulatorConfig

CAMPAIGN_STREAM = 7_919  # second seed word of the campaign random stream
CONTACT_HOURS = (9 / 24, 18 / 24)  # contacts happen during office hours (fraction of a day)
TYPE_TOLERANCE = 0.02  # |tau| below this (probability points) counts as no effect
SURE_THING_MIN = 0.5  # P(retained | control) at or above this: a sure thing, else lost cause
SECONDS_PER_DAY = 86_400
RECENT_DAYS = 90  # last purchase at most this many days before the campaign: segment "recent"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CampaignSpec(_Strict):
    """One simulated campaign."""

    campaign_id: str
    date: str = Field(description="day of the contacts (ISO date)")
    arm: str = Field("coupon_10", description="name of the treatment arm")
    channel: str = Field("email", description="campaigns.channel of the contacts")
    cost: float = Field(2.0, ge=0, description="cost of one treated contact, currency units")
    contact_share: float = Field(0.5, gt=0, le=1, description="share of eligible contacted")
    control_share: float = Field(0.5, gt=0, lt=1, description="share of contacts held out")
    eligible_lookback_days: int = Field(
        365, gt=0, description="eligible: a purchase this many days before the date"
    )
    effect_days: int = Field(90, gt=0, description="days the offer acts after the contact")


class CampaignEffects(_Strict):
    """How the offer changes the purchase rate and churn hazard (log multipliers)."""

    purchase_base: float = Field(0.1, description="log purchase-rate lift for everyone")
    purchase_dissatisfied: float = Field(
        0.8, description="log purchase-rate lift per unit of dissatisfaction max(-s, 0)"
    )
    purchase_sleeping_dog: float = Field(
        0.7, description="log purchase-rate drop of busy, contented customers"
    )
    hazard_dissatisfied: float = Field(
        1.2, description="log churn-hazard drop per unit of dissatisfaction"
    )
    hazard_sleeping_dog: float = Field(
        2.0, description="log churn-hazard rise of busy, contented customers"
    )
    busy_propensity_max: float = Field(
        0.5, gt=0, description="engagement propensity below this makes a customer busy"
    )


DEMO_CAMPAIGNS = (
    CampaignSpec(campaign_id="spring_coupon", date="2024-03-04"),
    CampaignSpec(campaign_id="autumn_coupon", date="2024-08-05"),
)


def retention_probability(lam: np.ndarray, h: np.ndarray, days: float) -> np.ndarray:
    """P(a purchase in ``[0, days)``) with constant purchase rate ``lam`` and hazard ``h``
    (per day): one minus the no-purchase probability of two competing exponential clocks."""
    total = lam + h
    quiet = np.exp(-total * days)
    death_first = np.divide(h, total, out=np.zeros_like(total), where=total > 0)
    return 1.0 - (quiet + death_first * (1 - quiet))


def expected_purchases(lam: np.ndarray, h: np.ndarray, days: float) -> np.ndarray:
    """E[purchases in ``[0, days)``] = ``lam (1 - exp(-h days)) / h`` (``lam days`` at h=0)."""
    safe = np.where(h > 0, h, 1.0)
    return np.where(h > 0, lam * (1 - np.exp(-h * days)) / safe, lam * days)


def run_campaigns(
    seed: int, cfg: SimulatorConfig, start: np.datetime64, window_days: float,
    sim: dict[str, np.ndarray], tables: dict[str, pd.DataFrame],
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """Apply ``cfg.campaigns`` to the simulated tables.

    ``sim`` holds the latent segments (``cust, t0, t1, sat, purchase_rate, hazard``, customer
    indices from 0) and per-customer ``death_t, propensity, spend_nu, fav_category,
    usual_channel`` (days since ``start``). Returns the updated tables, the campaigns table and
    the campaign truth.
    """
    rng = np.random.default_rng([seed, CAMPAIGN_STREAM])
    tx = tables["transactions"]
    death = sim["death_t"].copy()
    contacted = np.zeros(death.size, bool)
    logs, truths = [], []
    for spec in cfg.campaigns:
        t_day = (np.datetime64(pd.Timestamp(spec.date).normalize().to_datetime64(), "s")
                 - start) / np.timedelta64(1, "D")
        if not 0 < t_day < window_days:
            raise ValueError(f"campaign {spec.campaign_id!r}: date {spec.date} is outside the "
                             f"simulated window")
        tx_t = _days(tx["ts"], start)
        recent = (tx["amount"].to_numpy() > 0) & (tx_t < t_day) & (
            tx_t >= t_day - spec.eligible_lookback_days)
        eligible = np.setdiff1d(np.unique(tx["customer_id"].to_numpy()[recent] - 1),
                                np.flatnonzero(contacted))
        who = eligible[rng.random(eligible.size) < spec.contact_share]
        contacted[who] = True
        t_c = t_day + rng.uniform(*CONTACT_HOURS, who.size)
        treat = rng.random(who.size) >= spec.control_share
        log, truth, new_tx, new_death = _contact(rng, spec, cfg, sim, who, t_c, treat, death,
                                                 window_days, start)
        last = pd.Series(tx_t[recent]).groupby(tx["customer_id"].to_numpy()[recent] - 1).max()
        since = t_day - last.reindex(who).to_numpy()
        log["segment"] = np.where(since <= RECENT_DAYS, "recent", "lapsing")
        death[who] = new_death
        t_cut = np.full(death.size, np.inf)
        t_cut[who] = t_c
        tx = _replace_after(tx, t_cut, new_tx, start)
        logs.append(log)
        truths.append(truth)
    out = dict(tables)
    out["transactions"] = tx.assign(order_id=np.arange(1, len(tx) + 1, dtype="int64"))
    life_end = np.where(np.isnan(death), np.inf, death)
    for name in ("events", "surveys"):
        df = tables[name]
        keep = _days(df["ts"], start) < life_end[df["customer_id"].to_numpy() - 1]
        out[name] = df[keep].reset_index(drop=True)
    campaigns = pd.concat(logs, ignore_index=True)
    truth = pd.concat(truths, ignore_index=True)
    return out, campaigns, truth.assign(death_ts=_ts(start, death[truth["customer_id"] - 1]))


def _days(ts: pd.Series, start: np.datetime64) -> np.ndarray:
    return (ts.to_numpy().astype("datetime64[us]") - start) / np.timedelta64(1, "D")


def _ts(start: np.datetime64, t: np.ndarray) -> np.ndarray:
    out = np.full(t.shape, np.datetime64("NaT"), "datetime64[us]")
    ok = np.isfinite(t)
    out[ok] = start + np.floor(t[ok] * SECONDS_PER_DAY).astype("int64").astype("timedelta64[s]")
    return out


def _state_at(sim: dict[str, np.ndarray], who: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the latent segment of each customer ``who[j]`` holding time ``t[j]`` (-1: not
    alive then)."""
    seg = pd.DataFrame({"cust": sim["cust"], "t0": sim["t0"], "t1": sim["t1"],
                        "seg": np.arange(sim["cust"].size)})
    q = pd.DataFrame({"cust": who, "t": t, "j": np.arange(who.size)})
    m = q.merge(seg, on="cust")
    m = m[(m["t0"] <= m["t"]) & (m["t"] < m["t1"])].drop_duplicates("j")
    out = np.full(who.size, -1)
    out[m["j"].to_numpy()] = m["seg"].to_numpy()
    return out


def _contact(
    rng: np.random.Generator, spec: CampaignSpec, cfg: SimulatorConfig,
    sim: dict[str, np.ndarray], who: np.ndarray, t_c: np.ndarray, treat: np.ndarray,
    death: np.ndarray, window_days: float, start: np.datetime64,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    eff, days = cfg.campaign_effects, float(spec.effect_days)
    seg = _state_at(sim, who, t_c)
    alive = (seg >= 0) & (np.isnan(death[who]) | (death[who] > t_c))
    s = np.where(alive, sim["sat"][seg], np.nan)
    lam = np.where(alive, sim["purchase_rate"][seg], 0.0)
    h = np.where(alive, sim["hazard"][seg], 0.0)
    d = np.maximum(-np.nan_to_num(s), 0.0)
    busy = (sim["propensity"][who] < eff.busy_propensity_max) & (np.nan_to_num(s) >= 0)
    a = np.exp(eff.purchase_base + eff.purchase_dissatisfied * d
               - eff.purchase_sleeping_dog * busy)
    b = np.exp(-eff.hazard_dissatisfied * d + eff.hazard_sleeping_dog * busy)
    p_c = np.where(alive, retention_probability(lam, h, days), 0.0)
    p_t = np.where(alive, retention_probability(lam * a, h * b, days), 0.0)
    mean_spend = cfg.spend_p / sim["spend_nu"][who]
    net = mean_spend * (1 - cfg.return_probability)
    rev_c = net * expected_purchases(lam, h, days)
    rev_t = net * expected_purchases(lam * a, h * b, days)
    a_eff, b_eff = np.where(treat, a, 1.0), np.where(treat, b, 1.0)

    # redrawn futures (both arms): death by first passage, then Poisson purchases
    e = rng.exponential(size=who.size)
    hb = h * b_eff
    first = np.divide(e, hb, out=np.full(who.size, np.inf), where=hb > 0)
    later = days + np.divide(e - hb * days, h, out=np.full(who.size, np.inf), where=h > 0)
    life = np.where(first < days, first, later)
    new_death = np.where(alive, t_c + life, death[who])
    new_death = np.where(new_death >= window_days, np.nan, new_death)
    end = np.where(np.isnan(new_death), window_days, new_death)
    w_end = np.minimum(t_c + days, end)
    k1, t1 = _poisson(rng, lam * a_eff, t_c, np.where(alive, w_end, t_c))
    k2, t2 = _poisson(rng, lam, w_end, np.where(alive, end, w_end))
    row = np.concatenate([k1, k2])
    t = np.concatenate([t1, t2])
    cust = who[row]
    amount = np.maximum(np.round(rng.gamma(cfg.spend_p, 1 / sim["spend_nu"][cust]), 2), 0.01)
    quantity = 1.0 + rng.poisson(cfg.extra_items_per_order_mean, cust.size)
    category = _prefer(rng, sim["fav_category"][cust], cfg.favourite_category_share,
                       len(cfg.categories), cfg.categories)
    channel = _prefer(rng, sim["usual_channel"][cust], cfg.preferred_channel_share,
                      len(cfg.channels), cfg.channels)
    ret = rng.random(cust.size) < cfg.return_probability
    t_ret = t + rng.gamma(cfg.return_delay_shape,
                          cfg.return_delay_mean_days / cfg.return_delay_shape, cust.size)
    ret &= t_ret < end[row]
    new_tx = pd.DataFrame({
        "customer_id": np.concatenate([cust, cust[ret]]) + 1,
        "t": np.concatenate([t, t_ret[ret]]),
        "amount": np.concatenate([amount, -amount[ret]]),
        "quantity": np.concatenate([quantity, -quantity[ret]]),
        "category": np.concatenate([category, category[ret]]),
        "channel": np.concatenate([channel, channel[ret]]),
    })

    ts = _ts(start, t_c)
    arm = np.where(treat, spec.arm, "control")
    log = pd.DataFrame({
        "customer_id": who + 1, "campaign_id": spec.campaign_id, "ts": ts, "arm": arm,
        "channel": spec.channel, "cost": np.where(treat, spec.cost, 0.0),
    })
    tau = p_t - p_c
    kind = np.where(tau > TYPE_TOLERANCE, "persuadable",
                    np.where(tau < -TYPE_TOLERANCE, "sleeping_dog",
                             np.where(p_c >= SURE_THING_MIN, "sure_thing", "lost_cause")))
    truth = pd.DataFrame({
        "customer_id": who + 1, "campaign_id": spec.campaign_id, "ts": ts, "arm": arm,
        "alive_at_contact": alive, "satisfaction": s, "purchase_rate_per_day": lam,
        "churn_hazard_per_day": h, "busy": busy, "purchase_effect": a, "hazard_effect": b,
        "p_retained_control": p_c, "p_retained_treated": p_t, "tau": tau,
        "revenue_control": rev_c, "revenue_treated": rev_t, "tau_revenue": rev_t - rev_c,
        "uplift_type": kind, "effect_days": spec.effect_days,
    })
    return log, truth, new_tx, new_death


def _poisson(
    rng: np.random.Generator, rate: np.ndarray, t0: np.ndarray, t1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    width = np.maximum(t1 - t0, 0.0)
    row = np.repeat(np.arange(rate.size), rng.poisson(rate * width))
    return row, t0[row] + rng.random(row.size) * width[row]


def _prefer(
    rng: np.random.Generator, preferred: np.ndarray, share: float, k: int,
    shares: dict[str, float],
) -> np.ndarray:
    p = np.fromiter(shares.values(), float)
    other = rng.choice(k, size=preferred.size, p=p / p.sum())
    return np.where(rng.random(preferred.size) < share, preferred, other)


def _replace_after(
    tx: pd.DataFrame, t_cut: np.ndarray, new: pd.DataFrame, start: np.datetime64
) -> pd.DataFrame:
    """Drop each customer's transactions at or after its cut time, add ``new`` (codes into the
    existing categories/channels), sorted by time then customer as the simulator does."""
    keep = _days(tx["ts"], start) < t_cut[tx["customer_id"].to_numpy() - 1]
    cats, chans = tx["category"].cat.categories, tx["channel"].cat.categories
    add = pd.DataFrame({
        "order_id": 0,
        "customer_id": new["customer_id"].to_numpy(),
        "ts": _ts(start, new["t"].to_numpy()),
        "amount": new["amount"].to_numpy(),
        "quantity": new["quantity"].to_numpy(),
        "category": pd.Categorical.from_codes(new["category"].to_numpy(), categories=cats),
        "channel": pd.Categorical.from_codes(new["channel"].to_numpy(), categories=chans),
    })
    out = pd.concat([tx[keep], add], ignore_index=True)
    return out.sort_values(["ts", "customer_id"], kind="stable", ignore_index=True)
