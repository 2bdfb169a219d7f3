"""Helpers shared by the metrics tests (imported as a module; holds a few self-checks).

Plain-pandas reference computations written from the definitions, independently of
``churnml.metrics``, plus a small random dataset generator for property tests.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from churnml import CustomerData
from churnml.data.simulate import simulate

N_SIMULATED = 2000
SIM_SEED = 11
HORIZON_DAYS = 90
PERIOD_FREQ = {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q", "year": "Y"}
ONE_DAY = pd.Timedelta(days=1)
NPS_PROMOTER, NPS_DETRACTOR, CSAT_SATISFIED = 9, 6, 4


@functools.cache
def simulated(contractual: bool = False) -> CustomerData:
    """The realistic synthetic dataset (~2000 customers, two years), built once per run."""
    return simulate(N_SIMULATED, seed=SIM_SEED, contractual=contractual)


def ts(*values: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(v) for v in values]


def tx_frame(rows: list[tuple]) -> pd.DataFrame:
    """Transactions from (customer_id, ts, amount) tuples."""
    return pd.DataFrame(rows, columns=["customer_id", "ts", "amount"]).assign(
        ts=lambda d: pd.to_datetime(d["ts"])
    )


# ----------------------------------------------------------------------------- periods


def period_start(values: pd.Series, period: str) -> pd.Series:
    return values.dt.to_period(PERIOD_FREQ[period]).dt.start_time.astype("datetime64[us]")


def obs_end(data: CustomerData) -> pd.Timestamp:
    return data.end.normalize() + ONE_DAY


def period_grid(data: CustomerData, period: str) -> pd.DataFrame:
    """Every period from the first to the last with data: start, end (capped), complete."""
    freq = PERIOD_FREQ[period]
    p = pd.period_range(data.start.to_period(freq), data.end.to_period(freq), freq=freq)
    starts = p.start_time.astype("datetime64[us]")
    nexts = (p + 1).start_time.astype("datetime64[us]")
    end = obs_end(data)
    return pd.DataFrame({
        "period": starts,
        "period_end": [min(n, end) for n in nexts],
        "complete": nexts <= end,
    })


# ----------------------------------------------------------------------------- membership


def purchases(data: CustomerData) -> pd.DataFrame:
    tx = data.transactions
    return tx[tx["amount"] > 0]


def members(data: CustomerData, t: pd.Timestamp, horizon_days: int = HORIZON_DAYS,
            contractual: bool = False) -> set:
    """Customers in the base at instant t."""
    if contractual:
        s = data.subscriptions
        cover = (s["start_ts"] <= t) & (s["end_ts"].isna() | (t < s["end_ts"]))
        return set(s.loc[cover, "customer_id"])
    p = purchases(data)
    window = (p["ts"] >= t - pd.Timedelta(days=horizon_days)) & (p["ts"] < t)
    return set(p.loc[window, "customer_id"])


def acquisition(data: CustomerData, contractual: bool = False) -> pd.Series:
    if contractual:
        return data.subscriptions.groupby("customer_id")["start_ts"].min()
    return purchases(data).groupby("customer_id")["ts"].min()


def segment(data: CustomerData, by: str | None, period: str | None = None) -> pd.Series:
    """customer_id -> segment value (NaN when unknown); a constant when by is None."""
    ids = data.customer_ids()
    if by is None:
        return pd.Series("all", index=ids)
    if by == "cohort":
        first = acquisition(data)
        return period_start(first, period).reindex(ids)
    return data.customers.set_index("customer_id")[by].reindex(ids)


def count_by(ids, seg: pd.Series, name: str) -> pd.Series:
    """Count customer ids per segment (NaN segment kept)."""
    ids = list(ids)
    if not ids:
        return pd.Series(dtype="int64", name=name)
    return seg.reindex(ids).value_counts(dropna=False).rename(name)


def ref_retention(data: CustomerData, period: str, by: str | None = None,
                  horizon_days: int = HORIZON_DAYS, contractual: bool = False) -> pd.DataFrame:
    """S, E, new, reactivated, retained, lost, active per (period, segment), from sets."""
    grid = period_grid(data, period)
    seg = segment(data, by, period)
    first = acquisition(data, contractual)
    p = purchases(data)
    rows = []
    for g in grid.itertuples():
        s = members(data, g.period, horizon_days, contractual)
        e = members(data, g.period_end, horizon_days, contractual)
        joined = e - s
        new = {c for c in joined if first[c] >= g.period}
        active = set(p.loc[(p["ts"] >= g.period) & (p["ts"] < g.period_end), "customer_id"])
        counts = pd.concat([
            count_by(s, seg, "customers_start"), count_by(e, seg, "customers_end"),
            count_by(new, seg, "new_customers"),
            count_by(joined - new, seg, "reactivated_customers"),
            count_by(s & e, seg, "retained"), count_by(s - e, seg, "lost"),
            count_by(active, seg, "active_customers"),
        ], axis=1, sort=False)
        counts.index.name = "seg"
        rows.append(counts.reset_index().assign(period=g.period))
    out = pd.concat(rows, ignore_index=True)
    return out.fillna({c: 0 for c in out.columns if c not in ("seg", "period")})


def compare_counts(result: pd.DataFrame, reference: pd.DataFrame, by: str | None,
                   columns: list[str]) -> None:
    """Assert equal counts: cells absent from the reference must be 0 in the result."""
    key = by if by is not None else None
    res = result.assign(seg=result[key] if key else "all").set_index(["period", "seg"])
    ref = reference.groupby(["period", "seg"], dropna=False)[columns].sum()
    missing = ref.index.difference(res.index)
    assert len(missing) == 0, f"reference cells missing from the result: {list(missing)[:5]}"
    ref = ref.reindex(res.index, fill_value=0)
    pd.testing.assert_frame_equal(
        res[columns].astype("int64"), ref[columns].astype("int64"), check_names=False
    )


# ----------------------------------------------------------------------------- random data


def random_data(seed: int, n_customers: int = 40, days: int = 150,
                start: str = "2024-01-01") -> CustomerData:
    """A small random dataset with all optional tables (returns, surveys, referrals)."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    first = rng.uniform(0, days, n_customers)
    n_tx = rng.poisson(4, n_customers) + 1
    cust = np.repeat(np.arange(1, n_customers + 1), n_tx)
    offset = np.concatenate([np.r_[0, rng.exponential(25, k - 1)] for k in n_tx])
    t = np.repeat(first, n_tx) + offset
    keep = t < days
    cust, t = cust[keep], t[keep]
    amount = np.round(rng.gamma(2, 20, cust.size), 2)
    amount[rng.random(cust.size) < 0.1] *= -1
    transactions = pd.DataFrame({
        "customer_id": cust, "ts": t0 + pd.to_timedelta(t, unit="D").round("s"),
        "amount": amount, "order_id": np.arange(1, cust.size + 1),
    })
    n_ev = 5 * n_customers
    events = pd.DataFrame({
        "customer_id": rng.integers(1, n_customers + 1, n_ev),
        "ts": t0 + pd.to_timedelta(rng.uniform(0, days, n_ev), unit="D").round("s"),
        "event_type": rng.choice(["session", "email_open", "support_ticket"], n_ev),
    })
    n_sv = 2 * n_customers
    kind = rng.choice(["nps", "csat", "ces"], n_sv)
    high = np.select([kind == "nps", kind == "csat"], [11, 6], 8)
    low = np.where(kind == "nps", 0, 1)
    surveys = pd.DataFrame({
        "customer_id": rng.integers(1, n_customers + 1, n_sv),
        "ts": t0 + pd.to_timedelta(rng.uniform(0, days, n_sv), unit="D").round("s"),
        "kind": kind, "score": rng.integers(low, high).astype(float),
    })
    ids = np.arange(1, n_customers + 1)
    referred = np.where(rng.random(n_customers) < 0.3, rng.integers(1, n_customers + 1,
                                                                     n_customers), -1)
    customers = pd.DataFrame({
        "customer_id": ids,
        "plan": rng.choice(["basic", "premium"], n_customers),
        "referred_by": pd.array(np.where(referred > 0, referred, 0), dtype="Int64"),
    })
    customers.loc[referred <= 0, "referred_by"] = pd.NA
    return CustomerData.from_frames(transactions, events, surveys, customers)


def shuffled(data: CustomerData, seed: int) -> CustomerData:
    """The same data with every table's rows in another order."""
    tables = {
        name: df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        for name, df in data.tables().items()
    }
    return CustomerData.from_frames(**tables)


# ----------------------------------------------------------------------------- self-checks


def test_period_grid_is_gap_free_and_flags_the_incomplete_last_period() -> None:
    data = CustomerData.from_frames(tx_frame([(1, "2024-01-10", 5.0), (1, "2024-04-02", 5.0)]))
    grid = period_grid(data, "month")
    assert list(grid["period"]) == ts("2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01")
    assert list(grid["complete"]) == [True, True, True, False]
    assert grid["period_end"].iloc[-1] == pd.Timestamp("2024-04-03")


def test_random_data_has_every_table_and_returns() -> None:
    data = random_data(1)
    assert set(data.tables()) == {"transactions", "events", "surveys", "customers"}
    assert (data.transactions["amount"] < 0).any()
    assert data.customers["referred_by"].notna().any()
