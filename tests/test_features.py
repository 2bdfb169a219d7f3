"""Point-in-time features: parity with an independent pandas implementation, the spec, errors.

The reference below is written from the feature definitions (docstrings of
``churnml.features.groups``) in plain pandas, one cutoff at a time, without calling the code
under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml import CustomerData
from churnml.config import ConfigError, VoiceConfig
from churnml.data.simulate import simulate
from churnml.engine import open_engine
from churnml.errors import DataValidationError
from churnml.features import (
    DerivedFeature,
    Feature,
    FeatureSpec,
    as_cutoffs,
    build_features,
    describe,
    feature_sql,
    resolve_features,
)

DAY = pd.Timedelta(days=1)
VOICE = VoiceConfig()
KINDS = ("nps", "csat", "ces")
EVENT_TYPES = ("email_open", "push_click", "session")
SUPPORT = "support_ticket"


@pytest.fixture(scope="module")
def data() -> CustomerData:
    return simulate(250, seed=11, contractual=True)


# --------------------------------------------------------------------------- reference


def _days(cutoff: pd.Timestamp, ts: pd.Series) -> pd.Series:
    return (cutoff - ts) / DAY


def _window(frame: pd.DataFrame, cutoff: pd.Timestamp, days: int, offset: int = 0
            ) -> pd.DataFrame:
    hi = cutoff - offset * DAY
    return frame[(frame["ts"] >= hi - days * DAY) & (frame["ts"] < hi)]


def _latest(frame: pd.DataFrame, value: str, time: str) -> pd.Series:
    ordered = frame.dropna(subset=[value]).sort_values(["customer_id", time, value])
    return ordered.groupby("customer_id")[value].last()


def _ratio(a: pd.Series, b: pd.Series) -> pd.Series:
    return a / b.where(b != 0)


def _flag(condition: pd.Series, value: pd.Series) -> pd.Series:
    return condition.astype(float).where(value.notna())


def _satisfaction(surveys: pd.DataFrame) -> pd.Series:
    """Each answer on a 0-1 scale, 1 = best (CES: lower effort is better)."""
    index = pd.Series(np.nan, index=surveys.index)
    for kind in KINDS:
        low, high = getattr(VOICE, kind).low, getattr(VOICE, kind).high
        score = surveys["score"][surveys["kind"] == kind]
        best = high - score if kind == "ces" else score - low
        index[score.index] = best / (high - low)
    return index


def reference(data: CustomerData, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Every default feature at one cutoff, in plain pandas."""
    tx = data.transactions[data.transactions["ts"] < cutoff]
    ev = data.events[data.events["ts"] < cutoff]
    sv = data.surveys[data.surveys["ts"] < cutoff]
    cu = data.customers[data.customers["signup_ts"] < cutoff]
    sub = data.subscriptions[data.subscriptions["start_ts"] < cutoff].copy()
    sub["end_ts"] = sub["end_ts"].where(sub["end_ts"] < cutoff)
    ids = pd.Index(
        pd.concat([tx["customer_id"], ev["customer_id"], sub["customer_id"]]).unique()
    ).sort_values()
    out = pd.DataFrame(index=ids)
    buy = tx[tx["amount"] > 0]
    ret = tx[tx["amount"] < 0]

    def put(name: str, series: pd.Series, fill: float | None = None) -> None:
        col = series.reindex(ids).astype(float)
        out[name] = col.fillna(fill) if fill is not None else col

    by = lambda f: f.groupby("customer_id")  # noqa: E731
    # recency
    put("days_since_last_purchase", _days(cutoff, by(buy)["ts"].max()))
    put("days_since_first_transaction", _days(cutoff, by(tx)["ts"].min()))
    put("days_since_last_event", _days(cutoff, by(ev)["ts"].max()))
    put("days_since_first_event", _days(cutoff, by(ev)["ts"].min()))
    put("days_since_last_survey", _days(cutoff, by(sv)["ts"].max()))
    put("days_since_signup", _days(cutoff, cu.set_index("customer_id")["signup_ts"]))
    out["tenure_days"] = out[
        ["days_since_first_transaction", "days_since_first_event", "days_since_signup"]
    ].max(axis=1)
    out["days_since_last_activity"] = out[
        ["days_since_last_purchase", "days_since_last_event"]].min(axis=1)
    exposure = out["tenure_days"].clip(lower=1.0)
    # frequency
    for w in (30, 90, 180, 365):
        put(f"purchases_{w}d", by(_window(buy, cutoff, w)).size(), 0)
    put("purchases_total", by(buy).size(), 0)
    days = buy.assign(day=buy["ts"].dt.normalize())
    put("purchase_days_365d", by(_window(days, cutoff, 365))["day"].nunique(), 0)
    put("purchase_days_total", by(days)["day"].nunique(), 0)
    gaps = buy.sort_values(["customer_id", "ts"])
    gaps = gaps.assign(gap=by(gaps)["ts"].diff() / DAY)
    put("purchase_gap_mean_days", by(gaps)["gap"].mean())
    put("purchase_gap_std_days", by(gaps)["gap"].std(ddof=1))
    out["purchase_rate_per_day"] = out["purchases_total"] / exposure
    # monetary
    for w in (30, 90, 180, 365):
        put(f"spend_{w}d", by(_window(buy, cutoff, w))["amount"].sum(), 0)
    put("spend_total", by(buy)["amount"].sum(), 0)
    put("avg_order_value_365d", by(_window(buy, cutoff, 365))["amount"].mean())
    put("avg_order_value_total", by(buy)["amount"].mean())
    put("max_order_value_365d", by(_window(buy, cutoff, 365))["amount"].max())
    put("returns_365d", by(_window(ret, cutoff, 365)).size(), 0)
    put("returned_amount_365d", -by(_window(ret, cutoff, 365))["amount"].sum(), 0)
    put("net_revenue_total", by(tx)["amount"].sum(), 0)
    # engagement
    for t in EVENT_TYPES:
        for w in (30, 90):
            put(f"{t}_{w}d", by(_window(ev[ev["event_type"] == t], cutoff, w)).size(), 0)
    put("events_30d", by(_window(ev, cutoff, 30)).size(), 0)
    put("events_prior_30d", by(_window(ev, cutoff, 30, offset=30)).size(), 0)
    recent = _window(ev, cutoff, 30)
    put("event_days_30d", by(recent)["ts"].apply(lambda s: s.dt.normalize().nunique()), 0)
    out["engagement_trend_30d"] = _ratio(out["events_30d"], out["events_prior_30d"])
    put("events_total", by(ev).size(), 0)
    out["activity_rate_per_day"] = (out["purchases_total"] + out["events_total"]) / exposure
    out["activity_silence_probability"] = np.exp(
        -out["activity_rate_per_day"] * out["days_since_last_activity"])
    # voice
    tickets = ev[ev["event_type"] == SUPPORT]
    for w in (30, 90):
        put(f"support_tickets_{w}d", by(_window(tickets, cutoff, w)).size(), 0)
    for kind in KINDS:
        answers = sv[sv["kind"] == kind]
        put(f"{kind}_latest", _latest(answers, "score", "ts"))
        put(f"{kind}_mean", by(answers)["score"].mean())
        out[f"{kind}_trend"] = out[f"{kind}_latest"] - out[f"{kind}_mean"]
    scaled = sv.assign(index=_satisfaction(sv))
    for w in (60, 180):
        put(f"satisfaction_index_{w}d", by(_window(scaled, cutoff, w))["index"].mean())
    put("satisfaction_index_latest", _latest(scaled, "index", "ts"))
    out["nps_detractor"] = _flag(out["nps_latest"] <= VOICE.nps_detractor_max, out["nps_latest"])
    out["csat_dissatisfied"] = _flag(
        out["csat_latest"] < VOICE.csat_satisfied_min, out["csat_latest"]
    )
    # referral
    put("customers_referred", cu.groupby("referred_by").size(), 0)
    # subscription
    put("active_subscriptions", by(sub[sub["end_ts"].isna()]).size(), 0)
    put("days_since_subscription_start", _days(cutoff, by(sub)["start_ts"].max()))
    put("days_since_subscription_end", _days(cutoff, by(sub)["end_ts"].max()))
    put("subscriptions_started", by(sub).size(), 0)
    put("mrr", by(sub[sub["end_ts"].isna()])["mrr"].sum(), 0)
    out["subscription_plan"] = _latest(sub, "plan", "start_ts").reindex(ids).astype("str")
    # trend
    for base, col in (("purchases", None), ("spend", "amount")):
        prior = by(_window(buy, cutoff, 90, offset=90))
        put(f"{base}_prior_90d", prior.size() if col is None else prior[col].sum(), 0)
        out[f"{base}_trend_90d"] = _ratio(out[f"{base}_90d"], out[f"{base}_prior_90d"])
    out["recency_vs_usual_gap"] = _ratio(
        out["days_since_last_purchase"], out["purchase_gap_mean_days"]
    )
    out.index.name = "customer_id"
    return out.reset_index().assign(cutoff=cutoff)


def assert_matches(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual["customer_id"]) == list(expected["customer_id"])
    assert set(actual.columns) == set(expected.columns), (
        set(actual.columns) ^ set(expected.columns)
    )
    for col in expected.columns:
        a, e = actual[col].to_numpy(), expected[col].to_numpy()
        if col == "subscription_plan":
            assert list(actual[col].fillna("-")) == list(expected[col].fillna("-")), col
        elif col != "customer_id":
            np.testing.assert_allclose(
                a.astype(float), e.astype(float), rtol=1e-9, atol=1e-9, err_msg=col
            )


# --------------------------------------------------------------------------- parity


def test_single_cutoff_matches_pandas_reference(data: CustomerData) -> None:
    cutoff = pd.Timestamp("2024-05-17 13:30")
    actual = build_features(data, cutoff)
    assert actual["cutoff"].dtype == "datetime64[us]"
    assert_matches(actual, reference(data, cutoff))


def test_many_cutoffs_match_pandas_reference(data: CustomerData) -> None:
    # quarterly cutoffs plus two mid-day ones, so a calendar day straddles a cutoff
    cutoffs = [*pd.date_range("2023-02-01", "2024-12-01", freq="3MS"),
               pd.Timestamp("2024-03-10 12:00"), pd.Timestamp("2024-03-10 18:00")]
    actual = build_features(data, cutoffs)
    assert actual["cutoff"].is_monotonic_increasing
    for cutoff, rows in actual.groupby("cutoff"):
        assert_matches(rows.reset_index(drop=True), reference(data, cutoff))


def test_default_spec_builds_about_45_features_on_simulated_data(data: CustomerData) -> None:
    with open_engine(data)[0] as engine:
        features = resolve_features(engine, None)
    names = [f.name for f in features]
    assert len(names) == len(set(names))
    assert len(names) >= 45
    for f in features:
        assert f.unit and f.description, f.name


def test_population_is_customers_active_before_the_cutoff() -> None:
    tx = pd.DataFrame({"customer_id": [1, 1, 2], "amount": [10.0, -4.0, 5.0],
                       "ts": pd.to_datetime(["2024-01-05", "2024-02-01", "2024-03-01"])})
    ev = pd.DataFrame({"customer_id": [3, 4], "event_type": ["session", "session"],
                       "ts": pd.to_datetime(["2024-01-20", "2024-04-01"])})
    sv = pd.DataFrame({"customer_id": [5], "kind": ["nps"], "score": [3.0],
                       "ts": pd.to_datetime(["2024-01-10"])})
    data = CustomerData.from_frames(tx, events=ev, surveys=sv)
    x = build_features(data, ["2024-02-01", "2024-03-02"])
    got = {c: list(g["customer_id"]) for c, g in x.groupby("cutoff")}
    # survey-only customer 5 never appears; 2 and 4 only after their first activity
    assert got == {pd.Timestamp("2024-02-01"): [1, 3], pd.Timestamp("2024-03-02"): [1, 2, 3]}
    first = x.iloc[0]
    assert first["purchases_total"] == 1 and first["returns_365d"] == 0  # return at cutoff
    assert first["days_since_last_purchase"] == 27.0
    second = x[(x["cutoff"] == "2024-03-02") & (x["customer_id"] == 1)].iloc[0]
    assert second["returned_amount_365d"] == 4.0 and second["net_revenue_total"] == 6.0


def test_worked_example_windows_gaps_and_trends() -> None:
    ts = pd.to_datetime(["2024-01-01", "2024-01-11", "2024-01-31", "2024-03-01",
                         "2024-03-01 10:00", "2024-03-25"], format="ISO8601")
    tx = pd.DataFrame({"customer_id": 7, "ts": ts,
                       "amount": [10.0, 20.0, 30.0, 40.0, 50.0, -15.0]})
    x = build_features(CustomerData.from_frames(tx), "2024-04-01").iloc[0]
    # 30 days: from 2024-03-02 (none); 90 days: from 2024-01-02 (all but the first)
    assert (x["purchases_30d"], x["purchases_90d"], x["purchases_total"]) == (0, 4, 5)
    assert x["spend_90d"] == 140.0 and x["net_revenue_total"] == 135.0
    assert x["purchase_days_total"] == 4  # two purchases on 2024-03-01
    gaps = np.array([10, 20, 30, 10 / 24])
    assert x["purchase_gap_mean_days"] == pytest.approx(gaps.mean())
    assert x["purchase_gap_std_days"] == pytest.approx(gaps.std(ddof=1))
    assert x["days_since_last_purchase"] == pytest.approx(31 - 10 / 24)
    assert x["recency_vs_usual_gap"] == pytest.approx((31 - 10 / 24) / gaps.mean())
    # prior 90 days = [2023-10-04, 2024-01-02): the first purchase
    assert x["purchases_prior_90d"] == 1 and x["purchases_trend_90d"] == 4.0
    assert x["spend_prior_90d"] == 10.0 and x["spend_trend_90d"] == 14.0
    assert x["returns_365d"] == 1 and x["returned_amount_365d"] == 15.0
    assert x["avg_order_value_total"] == 30.0 and x["max_order_value_365d"] == 50.0



def _run_start(gap_days: int) -> Feature:
    return Feature(name=f"run_start_{gap_days}", table="transactions",
                   agg="days_since_run_start", where="amount > 0", gap_days=gap_days,
                   unit="days")


def test_worked_example_run_start() -> None:
    """Days since the first purchase after the latest gap of at least ``gap_days``: by hand,
    at one cutoff (direct) and at several (cumulative), equal in both."""
    ts = pd.to_datetime(["2024-01-01", "2024-01-11", "2024-03-01", "2024-06-20",
                         "2024-07-01", "2024-07-05"])
    tx = pd.DataFrame({"customer_id": 7, "ts": ts,
                       "amount": [10.0, 20.0, 30.0, 40.0, 50.0, -15.0]})
    tx = pd.concat([tx, pd.DataFrame({"customer_id": [8], "ts": [pd.Timestamp("2024-06-01")],
                                      "amount": [5.0]})], ignore_index=True)
    data = CustomerData.from_frames(tx)
    features = [_run_start(90), _run_start(30)]
    cutoffs = ["2024-05-01", "2024-07-01", "2024-08-01"]
    many = build_features(data, cutoffs, features).set_index(["cutoff", "customer_id"])
    # gaps 10, 50, 111 (new run at 06-20 for 90 and 30 days), 11; the return is no purchase;
    # the purchase at 07-01 is not before the 07-01 cutoff
    expected = {  # (cutoff, customer) -> (gap 90, gap 30)
        ("2024-05-01", 7): (121.0, 61.0),  # since 01-01 / since 03-01 (a 50-day gap)
        ("2024-07-01", 7): (11.0, 11.0), ("2024-08-01", 7): (42.0, 42.0),
        ("2024-07-01", 8): (30.0, 30.0), ("2024-08-01", 8): (61.0, 61.0),
    }
    for (cut, cid), (g90, g30) in expected.items():
        row = many.loc[(pd.Timestamp(cut), cid)]
        assert (row["run_start_90"], row["run_start_30"]) == (g90, g30), (cut, cid)
    assert (pd.Timestamp("2024-05-01"), 8) not in many.index  # nothing before that cutoff
    for cut in cutoffs:
        one = build_features(data, cut, features).set_index(["cutoff", "customer_id"])
        pd.testing.assert_frame_equal(one, many.loc[[pd.Timestamp(cut)]], check_like=True)


def test_run_start_needs_its_gap_and_only_it_does() -> None:
    with pytest.raises(ValueError, match="gap_days is required"):
        Feature(name="r", table="transactions", agg="days_since_run_start")
    with pytest.raises(ValueError, match="gap_days is required"):
        Feature(name="c", table="transactions", agg="count", gap_days=30)
    with pytest.raises(ValueError, match="greater than 0"):
        _run_start(0)

def test_worked_example_activity_rates_and_satisfaction_index() -> None:
    tx = pd.DataFrame({"customer_id": [1, 1, 2], "amount": [10.0, 20.0, 5.0],
                       "ts": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-02-29 12:00"],
                                            format="ISO8601")})
    ev = pd.DataFrame({"customer_id": [1, 1], "event_type": ["session", "session"],
                       "ts": pd.to_datetime(["2024-01-11", "2024-02-20"])})
    sv = pd.DataFrame({"customer_id": [1, 1, 1], "kind": ["nps", "csat", "ces"],
                       "score": [8.0, 2.0, 3.0],
                       "ts": pd.to_datetime(["2023-12-15", "2024-02-25", "2024-02-26"])})
    data = CustomerData.from_frames(tx, events=ev, surveys=sv)
    x = build_features(data, "2024-03-01").set_index("customer_id")
    one, two = x.loc[1], x.loc[2]
    # customer 1: first activity 60 days ago; last purchase 29, last event 10 days ago
    assert one["days_since_last_activity"] == 10.0
    assert one["events_total"] == 2
    assert one["purchase_rate_per_day"] == pytest.approx(2 / 60)
    assert one["activity_rate_per_day"] == pytest.approx(4 / 60)
    assert one["activity_silence_probability"] == pytest.approx(np.exp(-4 / 60 * 10))
    # NPS 8 -> 0.8 (older than 60 days), CSAT 2 -> 1/4, CES 3 -> (7 - 3) / 6
    assert one["satisfaction_index_60d"] == pytest.approx((1 / 4 + 4 / 6) / 2)
    assert one["satisfaction_index_180d"] == pytest.approx((0.8 + 1 / 4 + 4 / 6) / 3)
    assert one["satisfaction_index_latest"] == pytest.approx(4 / 6)
    # customer 2: one purchase half a day ago, no event: rates over at least one day
    assert two["days_since_last_activity"] == 0.5 and two["events_total"] == 0
    assert two["purchase_rate_per_day"] == 1.0 and two["activity_rate_per_day"] == 1.0
    assert two["activity_silence_probability"] == pytest.approx(np.exp(-0.5))
    assert np.isnan(two["satisfaction_index_latest"])


# --------------------------------------------------------------------------- spec


def test_spec_from_yaml_with_custom_features(tmp_path, data: CustomerData) -> None:
    path = tmp_path / "features.yaml"
    path.write_text(
        "groups: [frequency]\n"
        "windows_days: [90]\n"
        "extra:\n"
        "  - name: app_purchases_90d\n"
        "    table: transactions\n"
        "    agg: count\n"
        "    where: \"amount > 0 AND channel = 'app'\"\n"
        "    window_days: 90\n"
        "    unit: purchases\n"
        "    description: \"{value:.0f} app purchases in the last 90 days\"\n"
        "  - name: app_share_90d\n"
        "    kind: derived\n"
        "    op: expr\n"
        "    expr: \"app_purchases_90d / NULLIF(purchases_90d, 0)\"\n"
        "exclude: [purchase_days_total]\n"
    )
    spec = FeatureSpec.from_yaml(path)
    cutoff = pd.Timestamp("2024-06-01")
    x = build_features(data, cutoff, spec)
    assert "purchase_days_total" not in x and "spend_90d" not in x
    tx = data.transactions
    app = tx[(tx["amount"] > 0) & (tx["channel"] == "app") & (tx["ts"] < cutoff)
             & (tx["ts"] >= cutoff - 90 * DAY)].groupby("customer_id").size()
    expected = app.reindex(x["customer_id"]).fillna(0).to_numpy()
    np.testing.assert_array_equal(x["app_purchases_90d"].to_numpy(), expected)
    share = expected / x["purchases_90d"].where(x["purchases_90d"] > 0).to_numpy()
    np.testing.assert_allclose(x["app_share_90d"].to_numpy(), share, equal_nan=True)


def test_custom_features_in_code_and_descriptions(data: CustomerData) -> None:
    big = Feature(name="big_orders_180d", table="transactions", agg="count",
                  where="amount >= 100", window_days=180, unit="orders",
                  description="{value:.0f} orders of 100 or more in the last 180 days")
    share = DerivedFeature(name="big_order_share", op="ratio",
                           inputs=["big_orders_180d", "orders_180d"], unit="ratio")
    orders = Feature(name="orders_180d", table="transactions", agg="count",
                     where="amount > 0", window_days=180, unit="orders")
    x = build_features(data, "2024-06-01", [big, share, orders])
    assert list(x.columns) == ["customer_id", "cutoff", "big_orders_180d", "big_order_share",
                               "orders_180d"]
    assert (x["big_orders_180d"] <= x["orders_180d"]).all()
    row = {"big_orders_180d": 3.0, "days_since_last_purchase": 74.2,
           "purchase_gap_mean_days": 21.0}
    spec_features = FeatureSpec().resolve(
        {"transactions": ["customer_id", "ts", "amount"]}
    )
    words = describe([big, *spec_features], {**row, "recency_vs_usual_gap": 3.5})
    assert words["big_orders_180d"] == "3 orders of 100 or more in the last 180 days"
    assert words["recency_vs_usual_gap"] == "last purchase 74 days ago, usually every 21 days"
    assert big.describe(float("nan")) == "big_orders_180d: unknown"


def test_spec_errors_name_what_is_wrong(data: CustomerData) -> None:
    with pytest.raises(DataValidationError, match=r"transactions\.coupon.*big"):
        build_features(data, "2024-06-01", [Feature(
            name="big", table="transactions", agg="sum", column="coupon", unit="x")])
    tx_only = CustomerData.from_frames(data.transactions)
    with pytest.raises(DataValidationError, match=r"surveys: table is required"):
        build_features(tx_only, "2024-06-01", [Feature(
            name="nps", table="surveys", agg="count", unit="answers")])
    with pytest.raises(ConfigError, match="invalid SQL"):
        Feature(name="bad", table="transactions", agg="count", where="amount >", unit="x")
    with pytest.raises(ValueError, match="needs a column"):
        Feature(name="bad", table="transactions", agg="sum", unit="x")
    with pytest.raises(ConfigError, match="cycle"):
        build_features(data, "2024-06-01", [
            DerivedFeature(name="a", op="expr", expr="b + 1"),
            DerivedFeature(name="b", op="expr", expr="a + 1"),
        ])
    with pytest.raises(ConfigError, match="exclude names unknown"):
        FeatureSpec(exclude=["nope"]).resolve({"transactions": ["customer_id", "ts", "amount"]})
    with pytest.raises(ValueError, match="cutoffs is empty"):
        as_cutoffs([])
    with pytest.raises(ValueError, match="naive"):
        as_cutoffs([pd.Timestamp("2024-01-01", tz="UTC")])


def test_spec_adapts_to_the_tables_present() -> None:
    tx = pd.DataFrame({"customer_id": [1, 2], "ts": pd.to_datetime(["2024-01-01"] * 2),
                       "amount": [5.0, 6.0]})
    x = build_features(CustomerData.from_frames(tx), "2024-02-01")
    assert "tenure_days" in x and "nps_latest" not in x and "mrr" not in x
    np.testing.assert_array_equal(x["tenure_days"], [31.0, 31.0])


def test_parquet_input_equals_pandas_input(tmp_path, data: CustomerData) -> None:
    paths = {}
    for name, frame in data.tables().items():
        paths[name] = tmp_path / f"{name}.parquet"
        frame.to_parquet(paths[name])
    cutoffs = ["2024-03-01", "2024-06-01"]
    from_files = build_features({k: str(v) for k, v in paths.items()}, cutoffs)
    pd.testing.assert_frame_equal(from_files, build_features(data, cutoffs))


def test_compiled_sql_scans_each_table_once_per_part(data: CustomerData) -> None:
    sql = feature_sql(data, ["2024-03-01", "2024-06-01"])
    # one windowed scan and one cumulative scan of the transactions, not one per feature
    assert sql.count("FROM transactions") == 2
    assert "FILTER (WHERE" in sql
    spark_sql = feature_sql(data, "2024-06-01", dialect="spark")
    assert "MAX_BY" in spark_sql and "DATEDIFF(MICROSECOND" in spark_sql


def test_multithreaded_build_is_bit_identical_to_single_threaded() -> None:
    # many rows per customer, so DuckDB's threads each add part of a customer's amounts: a
    # float sum then changes in its last bits from run to run; exact sums must not
    rng = np.random.default_rng(0)
    n = 600_000
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300 * 86_400, n), "s")
    sign = np.where(rng.random(n) < 0.05, -1.0, 1.0)
    tx = pd.DataFrame({"customer_id": rng.integers(1, 40, n), "ts": ts,
                       "amount": np.round(rng.gamma(2.0, 25.0, n), 2) * sign})
    data = CustomerData.from_frames(tx)
    cutoffs = ["2024-08-01", "2024-10-01"]
    single = build_features(data, cutoffs, threads=1)
    assert single["spend_total"].notna().all() and single["purchase_gap_std_days"].gt(0).all()
    for _ in range(3):
        pd.testing.assert_frame_equal(build_features(data, cutoffs, threads=2), single,
                                      check_exact=True)
