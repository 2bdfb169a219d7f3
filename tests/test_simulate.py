"""The seeded simulator: contract tables, invariants, latent signal and the oracle."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from churnml import CustomerData
from churnml.config import ChurnConfig, VoiceConfig
from churnml.data.simulate import (
    CUSTOMER_TRUTH_COLUMNS,
    STATE_COLUMNS,
    SimulatorConfig,
    _monthly_anniversaries,
    customer_truth,
    latent_state_at,
    oracle_churn_probability,
    simulate,
)

N = 2000
START, END = pd.Timestamp("2023-01-01"), pd.Timestamp("2024-12-31")
WINDOW_END = END + pd.Timedelta(days=1)
CUTOFFS = pd.to_datetime(["2023-10-01", "2024-01-01", "2024-04-01", "2024-07-01"])
HORIZON = pd.Timedelta(days=ChurnConfig().horizon_days)
LOOKBACK = pd.Timedelta(days=ChurnConfig().lookback_days)
SIGNAL_WINDOW = pd.Timedelta(days=60)
EVENT_TYPES = {"session", "email_open", "push_click", "support_ticket"}


@pytest.fixture(scope="module")
def data() -> CustomerData:
    return simulate(N, seed=7)


@pytest.fixture(scope="module")
def contract() -> CustomerData:
    return simulate(N, seed=7, contractual=True)


def purchases(d: CustomerData) -> pd.DataFrame:
    tx = d.transactions
    return tx[tx["amount"] > 0]


def realised_churn(d: CustomerData, cutoff: pd.Timestamp) -> pd.Series:
    """Plain-pandas label: active in the look-back, no purchase in [cutoff, cutoff + H)."""
    p = purchases(d)
    active = pd.Index(p.loc[(p["ts"] < cutoff) & (p["ts"] >= cutoff - LOOKBACK),
                            "customer_id"].unique())
    buyers = p.loc[(p["ts"] >= cutoff) & (p["ts"] < cutoff + HORIZON), "customer_id"]
    return pd.Series(~active.isin(buyers), index=active)


# --------------------------------------------------------------------------- tables


def test_same_seed_gives_identical_tables_and_another_seed_does_not() -> None:
    a, b, c = simulate(300, seed=3), simulate(300, seed=3), simulate(300, seed=4)
    for name, df in a.tables().items():
        pd.testing.assert_frame_equal(df, b.tables()[name])
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not a.transactions["amount"].equals(c.transactions["amount"])


def test_tables_have_contract_columns_and_dtypes(data: CustomerData) -> None:
    expected = {
        "transactions": ["order_id", "customer_id", "ts", "amount", "quantity", "category",
                         "channel"],
        "events": ["customer_id", "ts", "event_type", "value"],
        "surveys": ["customer_id", "ts", "kind", "score"],
        "customers": ["customer_id", "signup_ts", "plan", "country", "acquisition_channel",
                      "referred_by"],
    }
    assert {k: list(v.columns) for k, v in data.tables().items()} == expected
    assert data.subscriptions is None and data.name == "simulated"
    assert data.transactions["customer_id"].dtype == "int64"
    assert str(data.transactions["ts"].dtype) == "datetime64[us]"
    assert data.transactions["order_id"].is_unique
    assert data.customers["customer_id"].tolist() == list(range(1, N + 1))
    # time of day is present, not only dates
    assert (data.transactions["ts"].dt.hour > 0).mean() > 0.5
    assert list(data.truth.columns) == ["customer_id", "month", *STATE_COLUMNS,
                                        *CUSTOMER_TRUTH_COLUMNS]


def test_every_row_belongs_to_a_known_customer_inside_the_window(data: CustomerData) -> None:
    ids = set(data.customers["customer_id"])
    for name in ("transactions", "events", "surveys"):
        df = data.tables()[name]
        assert set(df["customer_id"]) <= ids, name
        assert df["ts"].min() >= START and df["ts"].max() < WINDOW_END, name
    assert set(data.truth["customer_id"]) == ids


def test_signups_are_staggered_over_every_month_with_mild_seasonality(
    data: CustomerData,
) -> None:
    per_month = data.customers["signup_ts"].dt.to_period("M").value_counts().sort_index()
    assert len(per_month) == 24
    assert per_month.min() > 0.3 * per_month.mean()
    assert per_month.max() < 2.5 * per_month.mean()
    # the first purchase is made at signup
    first = purchases(data).groupby("customer_id")["ts"].min()
    signup = data.customers.set_index("customer_id")["signup_ts"]
    assert first.reindex(signup.index).equals(signup.rename("ts"))


def test_dead_customers_do_nothing(data: CustomerData) -> None:
    truth = customer_truth(data)
    assert 0.15 < truth["death_ts"].notna().mean() < 0.6
    for name in ("transactions", "events", "surveys"):
        df = data.tables()[name].merge(truth[["signup_ts", "death_ts"]], on="customer_id")
        assert (df["ts"] >= df["signup_ts"]).all(), name
        after = df["death_ts"].notna() & (df["ts"] > df["death_ts"])
        assert not after.any(), f"{name}: {after.sum()} rows after death"


def test_returns_are_full_refunds_of_an_earlier_purchase(data: CustomerData) -> None:
    tx = data.transactions
    ret = tx[tx["amount"] < 0]
    assert 0.01 < len(ret) / len(tx) < 0.1
    pairs = ret.merge(purchases(data), on=["customer_id", "category", "channel"],
                      suffixes=("", "_buy"))
    pairs = pairs[(pairs["amount_buy"] == -pairs["amount"])
                  & (pairs["quantity_buy"] == -pairs["quantity"]) & (pairs["ts_buy"] < pairs["ts"])]
    assert set(pairs["order_id"]) == set(ret["order_id"])


def test_events_and_surveys_follow_the_contract_scales(data: CustomerData) -> None:
    ev = data.events
    assert set(ev["event_type"]) == EVENT_TYPES
    session = ev["event_type"] == "session"
    assert ev.loc[session, "value"].notna().all() and (ev.loc[session, "value"] >= 0).all()
    assert ev.loc[~session, "value"].isna().all()
    sv, voice = data.surveys, VoiceConfig()
    assert set(sv["kind"]) == {"nps", "csat", "ces"}
    assert (sv["score"] == sv["score"].round()).all()
    for kind in ("nps", "csat", "ces"):
        score = sv.loc[sv["kind"] == kind, "score"]
        scale = getattr(voice, kind)
        assert score.min() >= scale.low and score.max() <= scale.high
        assert score.nunique() >= 4, kind


def test_referrals_name_an_earlier_mostly_satisfied_customer(data: CustomerData) -> None:
    cust = data.customers.set_index("customer_id")
    ref = cust[cust["referred_by"].notna()]
    assert 0.1 < len(ref) / len(cust) < 0.3
    assert (cust["acquisition_channel"][cust["referred_by"].notna()] == "referral").all()
    referrer_signup = cust["signup_ts"].reindex(ref["referred_by"].astype("int64")).to_numpy()
    assert (referrer_signup < ref["signup_ts"].to_numpy()).all()
    # referrers' true satisfaction in the referral month beats that month's average
    truth = data.truth.set_index(["customer_id", "month"])["satisfaction"]
    month = ref["signup_ts"].dt.to_period("M").dt.to_timestamp()
    keys = pd.MultiIndex.from_arrays([ref["referred_by"].astype("int64"), month])
    referrer_sat = truth.reindex(keys).to_numpy()
    assert not np.isnan(referrer_sat).any()  # the referrer was alive that month
    month_mean = truth.groupby(level="month").mean().reindex(month).to_numpy()
    assert (referrer_sat - month_mean).mean() > 0.4


def test_realistic_magnitudes(data: CustomerData) -> None:
    p, truth = purchases(data), customer_truth(data)
    for cutoff in CUTOFFS[1:]:
        assert 0.2 <= realised_churn(data, cutoff).mean() <= 0.45
        alive = truth[(truth["signup_ts"] < cutoff - HORIZON)
                      & (truth["death_ts"].isna() | (truth["death_ts"] >= cutoff))].index
        last_q = p[(p["ts"] >= cutoff - HORIZON) & (p["ts"] < cutoff)]
        per_customer = last_q.groupby("customer_id").size().reindex(alive, fill_value=0)
        assert 2 <= per_customer.mean() <= 6
    nps = data.surveys.loc[data.surveys["kind"] == "nps", "score"]
    assert 15 <= 100 * ((nps >= 9).mean() - (nps <= 6).mean()) <= 45


# --------------------------------------------------------------------------- latent signal


def test_support_tickets_and_nps_warn_before_true_churn(data: CustomerData) -> None:
    truth = customer_truth(data)
    ev, sv = data.events, data.surveys
    tickets, nps = [], []
    for cutoff in CUTOFFS:
        pool = truth[(truth["signup_ts"] < cutoff - SIGNAL_WINDOW)
                     & (truth["death_ts"].isna() | (truth["death_ts"] >= cutoff))]
        churner = pool["death_ts"] < cutoff + HORIZON
        before = (ev["ts"] >= cutoff - SIGNAL_WINDOW) & (ev["ts"] < cutoff)
        t = ev[before & (ev["event_type"] == "support_ticket")].groupby("customer_id").size()
        tickets.append(pd.DataFrame({"churner": churner,
                                     "n": t.reindex(pool.index, fill_value=0)}))
        answers = sv[(sv["kind"] == "nps") & (sv["ts"] >= cutoff - SIGNAL_WINDOW)
                     & (sv["ts"] < cutoff) & sv["customer_id"].isin(pool.index)]
        nps.append(answers.assign(churner=answers["customer_id"].map(churner).to_numpy()))
    t, s = pd.concat(tickets), pd.concat(nps)
    assert t["churner"].sum() > 100 and s["churner"].sum() > 50
    assert t.loc[t["churner"], "n"].mean() > 1.6 * t.loc[~t["churner"], "n"].mean()
    assert s.loc[s["churner"], "score"].mean() < s.loc[~s["churner"], "score"].mean() - 0.6


# --------------------------------------------------------------------------- oracle


def hand_truth(month: str) -> pd.DataFrame:
    """Alive (lambda 0.02, h 0.01), alive (lambda 0.05, h 0), dies 03-03, signs up 03-20."""
    n = 4
    return pd.DataFrame({
        "customer_id": [1, 2, 3, 4], "month": [pd.Timestamp(month)] * n,
        "satisfaction": [0.0, 1.0, -1.0, 0.0],
        "purchase_rate_per_day": [0.02, 0.05, 0.01, 0.02],
        "churn_hazard_per_day": [0.01, 0.0, 0.05, 0.01],
        "active_days": [31.0, 31.0, 2.0, 12.0],
        "signup_ts": pd.to_datetime(["2024-01-05", "2024-02-01", "2024-01-10", "2024-03-20"]),
        "death_ts": pd.to_datetime([None, None, "2024-03-03", None]),
        "satisfaction_mean": [0.0] * n, "purchase_rate_base_per_day": [0.02] * n,
        "churn_hazard_base_per_day": [0.001] * n, "mean_spend": [50.0] * n,
        "engagement_propensity": [1.0] * n, "n_spells": [1] * n,
    })


def test_oracle_worked_example() -> None:
    tx = pd.DataFrame({"customer_id": [1, 2, 3, 4], "amount": [10.0, 20.0, 5.0, 8.0],
                       "ts": pd.to_datetime(["2024-01-05", "2024-02-01", "2024-01-10",
                                             "2024-03-20"])})
    d = CustomerData.from_frames(tx, truth=hand_truth("2024-03-01"))
    p = oracle_churn_probability(d, "2024-03-10", horizon_days=90)
    assert list(p.index) == [1, 2, 3]  # customer 4 signs up after the cutoff
    quiet = math.exp(-0.03 * 90)
    assert p[1] == pytest.approx(quiet + (0.01 / 0.03) * (1 - quiet), rel=1e-12)
    assert p[1] == pytest.approx(0.378137, abs=1e-6)
    assert p[2] == pytest.approx(math.exp(-0.05 * 90), rel=1e-12)  # no hazard: e^{-4.5}
    assert p[3] == 1.0  # died on 2024-03-03, before the cutoff
    # the day before its death customer 3 is alive: lambda 0.01, h 0.05 over 30 days
    p3 = oracle_churn_probability(d, "2024-03-02", horizon_days=30)[3]
    assert p3 == pytest.approx(math.exp(-1.8) + (5 / 6) * (1 - math.exp(-1.8)), rel=1e-12)


def test_oracle_is_a_probability_that_ranks_realised_churn(data: CustomerData) -> None:
    aucs = []
    for cutoff in CUTOFFS:
        p = oracle_churn_probability(data, cutoff, ChurnConfig().horizon_days)
        assert p.between(0, 1).all() and p.notna().all()
        state = latent_state_at(data, cutoff)
        assert (p[~state["alive"]] == 1).all() and (p[state["alive"]] < 1).all()
        y = realised_churn(data, cutoff)
        score = p.reindex(y.index)
        assert score[y].mean() > score[~y].mean() + 0.3
        aucs.append(roc_auc_score(y, score))
    assert min(aucs) > 0.85, aucs


def test_oracle_refuses_contractual_data_and_data_without_truth(
    contract: CustomerData,
) -> None:
    with pytest.raises(ValueError, match="non-contractual"):
        oracle_churn_probability(contract, "2024-01-01", 90)
    plain = CustomerData.from_frames(contract.transactions)
    with pytest.raises(ValueError, match="no simulator truth"):
        oracle_churn_probability(plain, "2024-01-01", 90)
    with pytest.raises(ValueError, match="outside the simulated window"):
        latent_state_at(contract, "2026-01-01")


# --------------------------------------------------------------------------- contractual


def test_contractual_spells_and_renewals(contract: CustomerData) -> None:
    subs, truth = contract.subscriptions, customer_truth(contract)
    assert subs is not None and list(subs.columns) == ["customer_id", "start_ts", "end_ts",
                                                       "plan", "mrr"]
    per_customer = subs.groupby("customer_id").size()
    assert per_customer.reindex(truth.index).eq(truth["n_spells"]).all()
    assert (per_customer > 1).sum() > 20  # some churners re-subscribe
    assert 0.3 < subs["end_ts"].isna().mean() < 0.95
    # an open spell is the customer's last; the true death is the end of the last spell
    last = subs.groupby("customer_id").tail(1).set_index("customer_id")
    assert subs.groupby("customer_id")["end_ts"].apply(lambda s: s.iloc[:-1].notna().all()).all()
    dead = truth["death_ts"].notna()
    assert (last.loc[dead[dead].index, "end_ts"] == truth.loc[dead, "death_ts"]).all()
    assert last.loc[dead[~dead].index, "end_ts"].isna().mean() > 0.9
    # spells of one customer do not overlap
    nxt = subs.groupby("customer_id")["start_ts"].shift(-1)
    assert (nxt.isna() | (nxt > subs["end_ts"])).all()


def test_renewals_are_paid_monthly_inside_spells_only(contract: CustomerData) -> None:
    tx, subs = contract.transactions, contract.subscriptions
    cfg = SimulatorConfig()
    ren = tx[tx["category"] == cfg.renewal_category]
    assert (ren["channel"] == cfg.renewal_channel).all() and len(ren) > 5 * len(subs)
    # plain-pandas reference: start + k months (DateOffset clips the day) before the end
    expected = []
    for row in subs.itertuples():
        end = row.end_ts if pd.notna(row.end_ts) else WINDOW_END
        k = 0
        while (ts := row.start_ts + pd.DateOffset(months=k)) < end:
            expected.append((row.customer_id, ts, row.mrr))
            k += 1
    got = ren[["customer_id", "ts", "amount"]].sort_values(["customer_id", "ts"])
    want = pd.DataFrame(expected, columns=["customer_id", "ts", "amount"]).sort_values(
        ["customer_id", "ts"])
    np.testing.assert_array_equal(got["customer_id"], want["customer_id"])
    np.testing.assert_array_equal(got["ts"].to_numpy(), want["ts"].to_numpy("datetime64[us]"))
    np.testing.assert_allclose(got["amount"], want["amount"])
    # discretionary purchases continue beside the renewals
    assert (tx["category"] != cfg.renewal_category).sum() > 0.2 * len(ren)


@settings(max_examples=40, deadline=None)
@given(
    start=st.datetimes(min_value=pd.Timestamp("2020-01-01").to_pydatetime(),
                       max_value=pd.Timestamp("2025-12-31").to_pydatetime()),
    span_days=st.integers(0, 800),
)
def test_monthly_anniversaries_match_dateoffset(start, span_days: int) -> None:
    s = pd.Timestamp(start).floor("s")
    e = s + pd.Timedelta(days=span_days, hours=3)
    row, ts = _monthly_anniversaries(np.array([s.to_datetime64()], "datetime64[s]"),
                                     np.array([e.to_datetime64()], "datetime64[s]"))
    want, k = [], 0
    while (t := s + pd.DateOffset(months=k)) < e:
        want.append(t)
        k += 1
    assert (row == 0).all()
    assert list(pd.to_datetime(ts)) == want


# --------------------------------------------------------------------------- configuration


def test_custom_window_and_config() -> None:
    cfg = SimulatorConfig(acquisition_channels={"organic": 1.0}, return_probability=0.0)
    d = simulate(200, start="2023-03-15", end="2023-09-30", seed=1, config=cfg)
    assert d.customers["referred_by"].isna().all()
    assert (d.transactions["amount"] > 0).all()
    assert d.transactions["ts"].min() >= pd.Timestamp("2023-03-15")
    assert d.transactions["ts"].max() < pd.Timestamp("2023-10-01")
    months = d.truth["month"].drop_duplicates().sort_values()
    assert list(months) == list(pd.date_range("2023-03-01", "2023-09-01", freq="MS"))


@pytest.mark.parametrize("bad", [
    {"countries": {}},
    {"channels": {"web": -1.0, "app": 2.0}},
    {"survey_trigger_event": "phone_call"},
    {"churn_hazard_mean_per_day": 0.0},
    {"unknown_rate": 1.0},
    {"renewal_category": "home"},
])
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValidationError):
        SimulatorConfig(**bad)
