"""Campaign logs: validation, outcomes after the contact, control groups, evaluation, targeting,
the simulator's campaigns and the plan -> evaluate -> train -> target loop."""

from __future__ import annotations

import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, norm

from churnml import CustomerData, DataValidationError
from churnml.config import ChurnConfig, default_config, load_config
from churnml.data.loaders import load_folder
from churnml.data.simulate import SimulatorConfig, simulate
from churnml.data.simulate_campaigns import CampaignSpec
from churnml.errors import ChurnmlError
from churnml.labels import UnlabelledCutoffError
from churnml.models._state import ModelStateError
from churnml.uplift.campaigns import contact_features, contact_outcomes
from churnml.uplift.control import assign_arms, plan_campaign, write_plan
from churnml.uplift.evaluation import OVERALL, evaluate_campaign
from churnml.uplift.targeting import (
    NEGATIVE,
    TARGETING_VALUE,
    fallback_targeting,
    select_targets,
    targeting_values,
)
from churnml.uplift.workflow import campaign_dir

H = ChurnConfig(horizon_days=30)
CONTACT = pd.Timestamp("2024-03-01 10:00")
END = "2024-06-01"


def tx(extra: list[tuple[int, str, float]] = ()) -> pd.DataFrame:
    rows = [(1, "2024-01-05", 10.0), (2, "2024-01-10", 20.0), (3, "2024-02-01", 5.0),
            (1, "2024-05-20", 1.0), *extra]
    return pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])


def log(**over) -> pd.DataFrame:
    base = {"customer_id": [1, 2, 3], "campaign_id": ["c1"] * 3, "ts": [CONTACT] * 3,
            "arm": ["coupon", "control", "coupon"], "cost": [2.0, 0.0, 2.0]}
    base.update(over)
    return pd.DataFrame(base)


def data(extra=(), **over) -> CustomerData:
    return CustomerData.from_frames(tx(extra), campaigns=log(**over))


# ----------------------------------------------------------------------------- validation


def _error(**tables) -> str:
    with pytest.raises(DataValidationError) as info:
        CustomerData.from_frames(**tables)
    return str(info.value)


def test_validation_names_unknown_customers_rows() -> None:
    msg = _error(transactions=tx(), campaigns=log(customer_id=[1, 99, 3]))
    assert "campaigns.customer_id: unknown customer" in msg and "row 1 (99)" in msg


def test_validation_names_invalid_arms_duplicates_costs_and_future_contacts() -> None:
    future = pd.Timestamp.now().normalize() + pd.Timedelta(days=30)
    msg = _error(transactions=tx(), campaigns=log(
        customer_id=[1, 1, 3], arm=["coupon", " ", "coupon"], cost=[2.0, 0.0, -1.0],
        ts=[CONTACT, CONTACT, future]))
    assert "campaigns.arm: empty arm" in msg and "row 1" in msg
    assert "campaigns.customer_id: duplicate contact" in msg and "'1 in campaign c1'" in msg
    assert "campaigns.cost: negative contact cost [1 row(s); e.g. row 2 (-1.0)]" in msg
    assert "campaigns.ts: timestamp out of range" in msg and "row 2" in msg
    missing = _error(transactions=tx(), campaigns=log().drop(columns="arm"))
    assert "campaigns.arm: missing required column" in missing


def test_arm_control_is_case_insensitive_and_contacts_do_not_extend_the_data() -> None:
    d = data(arm=["coupon", "Control", "coupon"],
             ts=[CONTACT, CONTACT, pd.Timestamp("2024-05-30")])
    assert d.campaigns["arm"].tolist() == ["coupon", "control", "coupon"]
    assert d.end == pd.Timestamp("2024-05-20")


def test_campaigns_load_from_a_folder_with_a_column_mapping(tmp_path) -> None:
    from churnml.config import TableSource

    tx().to_csv(tmp_path / "transactions.csv", index=False)
    log().rename(columns={"arm": "Group"}).to_csv(tmp_path / "campaigns.csv", index=False)
    d = load_folder(tmp_path, {"campaigns": TableSource(columns={"arm": "Group"})})
    assert d.campaigns["arm"].tolist() == ["coupon", "control", "coupon"]
    assert d.campaigns["ts"].dtype == "datetime64[us]"


# ----------------------------------------------------------------------------- outcomes


def outcomes(d: CustomerData) -> pd.DataFrame:
    return contact_outcomes(d, H, data_end=END).set_index("customer_id")


def test_outcomes_read_only_the_horizon_after_the_contact() -> None:
    base = outcomes(data())
    assert base["retained"].tolist() == [0.0, 0.0, 0.0]
    assert base["revenue"].tolist() == [0.0, 0.0, 0.0]
    # rows before the contact (same day too) change nothing
    before = outcomes(data([(1, "2024-03-01 09:59", 50.0), (2, "2024-02-28", 9.0)]))
    pd.testing.assert_frame_equal(before, base)
    # inside [t, t + 30 days): retained and revenue; a return counts in revenue only
    inside = outcomes(data([(1, "2024-03-01 10:00", 7.0), (2, "2024-03-31 09:59", 4.0),
                            (3, "2024-03-10", -3.0)]))
    assert inside["retained"].tolist() == [1.0, 1.0, 0.0]
    assert inside["revenue"].tolist() == [7.0, 4.0, -3.0]
    # exactly at t + H is after the window
    after = outcomes(data([(2, "2024-03-31 10:00", 4.0)]))
    pd.testing.assert_frame_equal(after, base)


def test_contact_features_ignore_rows_at_and_after_the_contact() -> None:
    d0, d1 = data(), data([(1, "2024-03-01 10:30", 99.0), (2, "2024-04-01", 5.0)])
    f0, f1 = contact_features(d0, d0.campaigns), contact_features(d1, d1.campaigns)
    pd.testing.assert_frame_equal(f0, f1)
    assert f0.loc[0, "days_since_last_purchase"] == 56.0  # 2024-01-05 -> 2024-03-01
    # a purchase earlier that day (before midnight) is seen
    d2 = data([(1, "2024-02-29 23:00", 3.0)])
    assert contact_features(d2, d2.campaigns).loc[0, "days_since_last_purchase"] == 1 / 24


def test_unmatured_contacts_have_no_outcome() -> None:
    late = data(ts=[CONTACT, CONTACT, pd.Timestamp("2024-05-10")])
    out = outcomes(late)
    assert out["matured"].tolist() == [True, True, False]
    assert np.isnan(out.loc[3, "retained"])
    with pytest.raises(UnlabelledCutoffError, match="no contact of campaign 'c1'"):
        contact_outcomes(data(ts=[pd.Timestamp("2024-05-10")] * 3), H, "c1", data_end=END,
                         matured_only=True)


# ----------------------------------------------------------------------------- control groups


def test_assignment_is_seeded_and_independent_of_row_order() -> None:
    ids = pd.Series(np.arange(500))
    seg = pd.Series(np.where(ids % 3 == 0, "a", "b"))
    a1 = assign_arms(ids, seg, control_share=0.2, seed=7)
    a2 = assign_arms(ids, seg, control_share=0.2, seed=7)
    pd.testing.assert_series_equal(a1, a2)
    perm = np.random.default_rng(0).permutation(500)
    a3 = assign_arms(ids[perm], seg[perm], control_share=0.2, seed=7)
    pd.testing.assert_series_equal(a3.sort_index(), a1)
    assert not a1.equals(assign_arms(ids, seg, control_share=0.2, seed=8))


def test_assignment_is_stratified_with_the_configured_share() -> None:
    ids = pd.Series(np.arange(1000))
    seg = pd.Series(np.repeat(["a", "b", "c", "d"], [500, 300, 197, 3]))
    share = 0.1
    for seed in range(5):
        arms = assign_arms(ids, seg, control_share=share, seed=seed)
        for name, n in zip("abcd", [500, 300, 197, 3], strict=True):
            k = int((arms[seg == name] == "control").sum())
            assert np.floor(share * n) <= k <= np.ceil(share * n)  # stratified: exact share
    # the draw itself is random with the configured share: in a segment of 3 (expected 0.3
    # controls) and for one fixed customer, control happens with probability 0.1 over seeds
    n_seeds = 300
    small_ids, small_seg = pd.Series(np.arange(10)), pd.Series(["d"] * 3 + ["e"] * 7)
    draws = [assign_arms(small_ids, small_seg, control_share=share, seed=s)
             for s in range(n_seeds)]
    tiny = sum(int((a[:3] == "control").sum()) for a in draws)
    assert binomtest(tiny, 3 * n_seeds, share).pvalue > 0.001
    first = sum(int(a.iloc[5] == "control") for a in draws)
    assert binomtest(first, n_seeds, share).pvalue > 0.001


def scores_frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "customer_id": np.arange(1, n + 1),
        "risk_segment": np.where(np.arange(n) % 2 == 0, "at_risk", "loyal"),
        "value_at_risk": rng.uniform(0, 100, n),
        "value_if_retained": rng.uniform(0, 200, n),
        "churn_probability": rng.uniform(0, 1, n),
        "cutoff": pd.Timestamp("2024-03-01"),
    })


def test_plan_writes_lists_and_a_log_that_loads_back(tmp_path) -> None:
    scores = scores_frame()
    plan = plan_campaign(scores, "spring", segments=["at_risk"], control_share=0.25, seed=3,
                         treatment="coupon", cost_per_contact=1.5, channel="email")
    assert set(plan.contacts["risk_segment"]) == {"at_risk"} and len(plan.log) == 20
    assert (plan.log["arm"] == "control").sum() == 5
    assert plan.basis == "value_at_risk" and "no targeting_value" in plan.notes[0]
    assert plan.log.loc[plan.log["arm"] == "control", "cost"].eq(0).all()
    files = write_plan(plan, tmp_path / "plan", tmp_path / "data" / "campaigns.csv")
    sent = pd.read_csv(files["to_contact:at_risk"])
    assert len(sent) == 15 and (sent["arm"] == "coupon").all()
    tx_rows = pd.DataFrame({"customer_id": scores["customer_id"], "ts": "2024-01-01",
                            "amount": 1.0})
    tx_rows.to_csv(tmp_path / "data" / "transactions.csv", index=False)
    loaded = load_folder(tmp_path / "data").campaigns
    assert loaded["arm"].value_counts().to_dict() == {"coupon": 15, "control": 5}
    assert loaded["ts"].eq(pd.Timestamp("2024-03-01")).all()
    assert set(loaded["segment"]) == {"at_risk"}  # extra columns kept
    logged = (tmp_path / "data" / "campaigns.csv").read_bytes()
    write_plan(plan, tmp_path / "plan", tmp_path / "data" / "campaigns.csv")  # same plan
    assert (tmp_path / "data" / "campaigns.csv").read_bytes() == logged  # nothing appended
    other = plan_campaign(scores, "spring", segments=["loyal"], control_share=0.25, seed=3)
    with pytest.raises(ChurnmlError, match="already planned there"):
        write_plan(other, tmp_path / "plan", tmp_path / "data" / "campaigns.csv")
    with pytest.raises(ChurnmlError, match="already in the log"):
        write_plan(other, tmp_path / "plan2", tmp_path / "data" / "campaigns.csv")


def test_plan_ranks_by_targeting_value_and_never_contacts_negative_uplift() -> None:
    scores = scores_frame()
    tau = np.linspace(-0.2, 0.5, len(scores))
    tv = targeting_values(scores, tau, cost=1.0)
    plan = plan_campaign(tv, "c", budget_contacts=10, seed=0, min_control_per_segment=0)
    assert plan.basis == TARGETING_VALUE
    assert (plan.contacts["uplift"] > 0).all() and len(plan.contacts) == 10
    best = tv[(tv[TARGETING_VALUE] > 0) & ~tv[NEGATIVE]].nlargest(10, TARGETING_VALUE)
    assert set(plan.contacts["customer_id"]) == set(best["customer_id"])


# ----------------------------------------------------------------------------- targeting


def test_targeting_value_formula_flags_and_budget() -> None:
    scores = pd.DataFrame({"customer_id": [1, 2, 3, 4], "value_if_retained": [100.0, 50, 80, 10],
                           "value_at_risk": [9.0, 8, 7, 6]})
    tv = targeting_values(scores, [0.1, 0.3, -0.2, 0.05], cost=2.0)
    assert tv[TARGETING_VALUE].tolist() == pytest.approx([8.0, 13.0, -18.0, -1.5])
    assert tv[NEGATIVE].tolist() == [False, False, True, False]
    assert select_targets(tv)["customer_id"].tolist() == [2, 1]
    assert select_targets(tv, budget_contacts=1)["customer_id"].tolist() == [2]
    assert select_targets(tv, budget_cost=3.9, cost=2.0)["customer_id"].tolist() == [2]
    # a negative uplift is never targeted, even with a huge value and no cost
    neg = targeting_values(scores, [-0.01, 0.0, 0.0, 0.0], cost=-50.0)
    assert 1 not in select_targets(neg)["customer_id"].tolist()
    rev = targeting_values(scores, [5.0, 1.0, 3.0, -1.0], cost=2.0, outcome="revenue")
    assert rev[TARGETING_VALUE].tolist() == [3.0, -1.0, 1.0, -3.0]
    fb = fallback_targeting(scores)
    assert fb[TARGETING_VALUE].tolist() == [9.0, 8, 7, 6]
    assert fb["targeting_basis"].iloc[0].startswith("value_at_risk (no uplift model")
    with pytest.raises(DataValidationError, match="value_if_retained"):
        targeting_values(scores.drop(columns="value_if_retained"), [0.1] * 4)


# ----------------------------------------------------------------------------- evaluation


def test_evaluation_of_a_hand_built_campaign() -> None:
    ret_t = ([1] * 7 + [0] * 3) * 5  # 50 contacts per arm: large enough for Wald intervals
    ret_c = ([1] * 4 + [0] * 6) * 5
    rev_t = [10.0, 20, 30, 0, 0, 40, 0, 0, 0, 0] * 5
    rev_c = [5.0, 5, 0, 0, 10, 0, 0, 0, 0, 0] * 5
    out = pd.DataFrame({
        "arm": ["coupon"] * 50 + ["control"] * 50, "retained": ret_t + ret_c,
        "revenue": rev_t + rev_c, "cost": [1.0] * 50 + [0.0] * 50,
        "segment": (["a", "b"] * 25) * 2,
        "score": list(np.arange(50.0)) + list(np.arange(50.0)),
    })
    with pytest.warns(UserWarning, match="too small for a Wald interval"):
        table = evaluate_campaign(out, level=0.9).set_index("segment")
    row = table.loc[OVERALL]
    z = norm.ppf(0.95)
    se = np.sqrt(0.7 * 0.3 / 50 + 0.4 * 0.6 / 50)
    assert row["retention_interval"] == "wald"
    assert row["retention_lift"] == pytest.approx(0.3)
    assert row["retention_lift_low"] == pytest.approx(0.3 - z * se)
    assert row["retention_lift_high"] == pytest.approx(0.3 + z * se)
    se_rev = np.sqrt(np.var(rev_t, ddof=1) / 50 + np.var(rev_c, ddof=1) / 50)
    assert row["revenue_lift"] == pytest.approx(10.0 - 2.0)
    assert row["incremental_revenue"] == pytest.approx(400.0)
    assert row["incremental_revenue_low"] == pytest.approx(50 * (8.0 - z * se_rev))
    assert row["cost"] == 50.0 and row["net_revenue"] == pytest.approx(350.0)
    assert row["incremental_retained"] == pytest.approx(15.0)
    assert np.isfinite(row["qini"])
    # per segment: segment a holds the even rows of each arm (25 vs 25, only 9 retained
    # controls): too small for Wald, Newcombe's score interval instead
    a = table.loc["a"]
    assert (a["n_treated"], a["n_control"]) == (25, 25)
    assert a["retention_treated"] == pytest.approx(np.mean(ret_t[::2]))
    assert a["retention_lift"] == pytest.approx(np.mean(ret_t[::2]) - np.mean(ret_c[::2]))
    assert a["retention_interval"] == "newcombe"
    with pytest.raises(DataValidationError, match="needs 'control'"):
        evaluate_campaign(out[out["arm"] == "coupon"])


def test_small_segments_get_newcombe_interval_with_a_warning() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873-890, Table II, example (a): 56/70 vs
    48/80, method 10 (hybrid score): 0.0524 to 0.3339."""
    from churnml.uplift.evaluation import newcombe_interval

    lo, hi = newcombe_interval(np.array([1] * 56 + [0] * 14), np.array([1] * 48 + [0] * 32),
                               0.95)
    assert (lo, hi) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    # 16 vs 23 contacts (the segment): warned about, score interval inside [-1, 1]
    out = pd.DataFrame({"arm": ["coupon"] * 16 + ["control"] * 23,
                        "retained": [1] * 14 + [0] * 2 + [1] * 12 + [0] * 11,
                        "revenue": 0.0})
    with pytest.warns(UserWarning, match=r"\(all\) \(16 vs 23\)"):
        row = evaluate_campaign(out).iloc[0]
    assert row["retention_interval"] == "newcombe"
    assert -1 <= row["retention_lift_low"] < row["retention_lift"] < row["retention_lift_high"] <= 1


# ----------------------------------------------------------------------------- simulator


SPEC = CampaignSpec(campaign_id="s1", date="2023-09-04", contact_share=0.6, control_share=0.5)


@pytest.fixture(scope="module")
def sim_pair() -> tuple[CustomerData, CustomerData]:
    return (simulate(1500, seed=4, end="2024-03-31"),
            simulate(1500, seed=4, end="2024-03-31", config=SimulatorConfig(campaigns=[SPEC])))


def test_simulated_campaigns_leave_non_contacted_customers_unchanged(sim_pair) -> None:
    plain, camp = sim_pair
    assert plain.campaigns is None
    pd.testing.assert_frame_equal(plain.transactions, simulate(1500, seed=4, end="2024-03-31")
                                  .transactions)
    hit = camp.campaigns["customer_id"]
    cols = ["customer_id", "ts", "amount", "quantity", "category", "channel"]
    for frame_a, frame_b in [(plain.transactions[cols], camp.transactions[cols]),
                             (plain.events, camp.events), (plain.surveys, camp.surveys)]:
        pd.testing.assert_frame_equal(frame_a[~frame_a["customer_id"].isin(hit)]
                                      .reset_index(drop=True),
                                      frame_b[~frame_b["customer_id"].isin(hit)]
                                      .reset_index(drop=True))
    # contacted customers' rows before their contact are unchanged too
    first = camp.campaigns.set_index("customer_id")["ts"]
    def before(t: pd.DataFrame) -> pd.DataFrame:
        t = t[t["customer_id"].isin(hit)]
        return t[t["ts"] < t["customer_id"].map(first)][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(before(plain.transactions), before(camp.transactions))


def test_simulated_campaign_is_randomised_with_heterogeneous_true_effects(sim_pair) -> None:
    _, camp = sim_pair
    log, truth = camp.campaigns, camp.campaign_truth
    n = len(log)
    assert binomtest(int((log["arm"] == "control").sum()), n, 0.5).pvalue > 0.001
    assert set(truth["uplift_type"]) == {"persuadable", "sure_thing", "lost_cause",
                                         "sleeping_dog"}
    assert (truth.loc[truth["uplift_type"] == "sleeping_dog", "tau"] < 0).all()
    assert (truth.loc[~truth["alive_at_contact"], "tau"] == 0).all()
    # dissatisfied customers react to the offer more than satisfied ones
    alive = truth[truth["alive_at_contact"] & ~truth["busy"]]
    low = alive["satisfaction"] < alive["satisfaction"].median()
    assert alive.loc[low, "tau"].mean() > alive.loc[~low, "tau"].mean()
    assert (log.loc[log["arm"] == "control", "cost"] == 0).all()


def test_realised_lift_matches_the_true_effect(sim_pair) -> None:
    """The realised retention lift agrees with the mean true tau (within its interval)."""
    _, camp = sim_pair
    out = contact_outcomes(camp, ChurnConfig(horizon_days=SPEC.effect_days), "s1")
    row = evaluate_campaign(out, level=0.99).iloc[0]
    true = camp.campaign_truth["tau"].mean()
    assert row["retention_lift_low"] <= true <= row["retention_lift_high"]


# ----------------------------------------------------------------------------- the loop


def run_metric(client, run_id: str, key: str) -> float:
    return client.get_run(run_id).data.metrics[key]


def test_evaluate_train_target_loop(tmp_path, migrated_db, monkeypatch) -> None:
    from churnml.uplift.workflow import evaluate, load_uplift, target, train_uplift

    monkeypatch.chdir(tmp_path)
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    spec = SPEC.model_copy(update={"contact_share": 1.0})
    d = simulate(1200, seed=9, end="2024-03-31", config=SimulatorConfig(campaigns=[spec]))
    cfg = default_config()
    cfg.output_dir = str(tmp_path / "out")
    cfg.tracking.uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg.uplift.learner = "t"
    cfg.uplift.outcome = "retained"
    cfg.uplift.params = {"n_estimators": 30, "min_child_samples": 20}
    cfg.uplift.cost_per_contact = 1.0
    cfg.uplift.flag_method = "bootstrap"
    cfg.uplift.flag_boot = 5
    cfg.uplift.validation_boot = 20
    ev = evaluate(cfg, d, "s1")
    direct = evaluate_campaign(contact_outcomes(d, cfg.churn, "s1"), 0.95)
    pd.testing.assert_frame_equal(ev.table, direct)
    client = mlflow.MlflowClient(cfg.tracking.uri)
    run = client.get_run(ev.run_id)
    assert run.data.metrics["coupon_10.retention_lift"] == pytest.approx(
        direct.loc[0, "retention_lift"])
    assert [a.path for a in client.list_artifacts(ev.run_id, "tables")] == [
        "tables/campaign_evaluation.csv"]
    fit = train_uplift(cfg, d)
    assert set(fit.validation["outcome"]) == {"retained", "revenue"}
    qini = fit.validation.set_index(["outcome", "metric"]).loc[("retained", "qini")]
    assert qini["lower"] <= qini["value"] <= qini["upper"]
    assert run_metric(client, fit.run_id, "validation.retained.qini.lower") == qini["lower"]
    assert load_uplift(cfg).treatment == "coupon_10"
    assert len(load_uplift(cfg).boot_models) == 5
    cutoff = pd.Timestamp("2024-04-01")
    ids = d.transactions["customer_id"].drop_duplicates().head(50)
    scores = pd.DataFrame({"customer_id": ids.to_numpy(), "value_if_retained": 100.0,
                           "value_at_risk": 1.0, "cutoff": cutoff})
    tv = target(cfg, d, scores, load_uplift(cfg))
    assert tv[TARGETING_VALUE].to_numpy() == pytest.approx(tv["uplift"] * 100.0 - 1.0)
    # flagged only with confidence: P(effect < 0) over the bootstrap refits >= flag_level
    assert (tv[NEGATIVE] == (tv["p_negative_uplift"] >= cfg.uplift.flag_level)).all()
    assert ((tv["p_negative_uplift"] > 0.5) == (tv["uplift"] < 0)).all()
    assert target(cfg, d, scores, None)[TARGETING_VALUE].eq(1.0).all()
    # the model file is code-free: a replaced file is refused by its format, never run
    model_file = fit.files["model"]
    assert model_file.suffix == ".json"
    model_file.write_text('{"format": "pickle", "model": "cos\\nsystem"}')
    with pytest.raises(ModelStateError, match="not a churnml uplift model"):
        load_uplift(cfg)
    with pytest.raises(ChurnmlError, match="has not passed"):
        late = CampaignSpec(campaign_id="late", date="2024-03-11")
        evaluate(cfg, simulate(300, seed=1, end="2024-03-31",
                               config=SimulatorConfig(campaigns=[late])), "late",
                 log_mlflow=False)


# ----------------------------------------------------------------------------- command line


def test_cli_plan_evaluate_and_fallback_target(tmp_path, migrated_db) -> None:
    """plan -> (campaign runs) -> evaluate from the command line, on a data folder."""
    from typer.testing import CliRunner

    from churnml.cli import app

    runner = CliRunner()
    folder = tmp_path / "data"
    folder.mkdir()
    n = 200
    ids = np.arange(1, n + 1)
    before = pd.DataFrame({"customer_id": ids, "ts": "2024-01-10", "amount": 10.0})
    before.to_csv(folder / "transactions.csv", index=False)
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    (tmp_path / "cfg.yaml").write_text(
        "name: clitest\ndata:\n  dir: data\nchurn:\n  horizon_days: 30\n"
        f"tracking:\n  uri: sqlite:///{tmp_path / 'mlflow.db'}\n"
        "uplift:\n  control_share: 0.5\n  arm: coupon\n  cost_per_contact: 1.0\n"
        f"output_dir: {tmp_path / 'out'}\n")
    scores = scores_frame(n).assign(cutoff=pd.Timestamp("2024-03-01"))
    (tmp_path / "out").mkdir()
    scores.to_parquet(tmp_path / "out" / "scores.parquet", index=False)
    cfg = ["--config", str(tmp_path / "cfg.yaml")]

    res = runner.invoke(app, ["campaign", "plan", *cfg, "--campaign", "c9",
                              "--segments", "at_risk", "--log", str(folder / "campaigns.csv")])
    assert res.exit_code == 0, res.output
    log = pd.read_csv(folder / "campaigns.csv")
    assert len(log) == 100 and (log["arm"] == "control").sum() == 50

    res = runner.invoke(app, ["campaign", "evaluate", *cfg, "--campaign", "c9"])
    assert res.exit_code == 2 and "has not passed" in res.output

    # the campaign ran: treated customers bought in the window, half the controls did too
    treated_ids = log.loc[log["arm"] == "coupon", "customer_id"]
    control_ids = log.loc[log["arm"] == "control", "customer_id"].iloc[:25]
    after = pd.DataFrame({"customer_id": pd.concat([treated_ids, control_ids]),
                          "ts": "2024-03-10", "amount": 20.0})
    late = pd.DataFrame({"customer_id": [1], "ts": ["2024-05-01"], "amount": [1.0]})
    pd.concat([before, after, late]).to_csv(folder / "transactions.csv", index=False)
    res = runner.invoke(app, ["campaign", "evaluate", *cfg, "--campaign", "c9",
                              "--format", "csv"])
    assert res.exit_code == 0, res.output
    folder = campaign_dir(load_config(cfg[1]), "c9")  # the id as a safe stem plus a hash
    assert folder.parent == tmp_path / "out" / "campaigns" and folder.name.startswith("c9-")
    table = pd.read_csv(folder / "evaluation.csv")
    row = table[table["segment"] == OVERALL].iloc[0]
    assert (row["retention_treated"], row["retention_control"]) == (1.0, 0.5)
    assert row["incremental_revenue"] == pytest.approx(50 * (20.0 - 10.0))
    assert row["net_revenue"] == pytest.approx(500.0 - 50.0)

    res = runner.invoke(app, ["campaign", "target", *cfg])
    assert res.exit_code == 0, res.output
    assert "targeting_value = value_at_risk" in " ".join(res.output.split())
    tv = pd.read_parquet(tmp_path / "out" / "targeting.parquet")
    assert tv["targeting_value"].tolist() == scores["value_at_risk"].tolist()


def test_contractual_outcomes_follow_the_subscription_at_the_contact() -> None:
    tx_rows = pd.DataFrame({"customer_id": [1, 2, 3], "ts": "2024-01-01", "amount": 9.99})
    subs = pd.DataFrame({"customer_id": [1, 2, 3],
                         "start_ts": ["2024-01-01", "2024-01-01", "2024-01-01"],
                         "end_ts": [None, "2024-03-20", "2024-02-01"]})
    d = CustomerData.from_frames(tx_rows, subscriptions=subs, campaigns=log())
    churn = ChurnConfig(kind="contractual", horizon_days=30, resubscribe_grace_days=0)
    out = contact_outcomes(d, churn, data_end=END).set_index("customer_id")
    # 1 stays subscribed; 2 ends 19 days after the contact; 3 had left before it (no outcome)
    assert out.loc[1, "retained"] == 1.0 and out.loc[2, "retained"] == 0.0
    assert np.isnan(out.loc[3, "retained"])


def test_campaign_train_is_independent_of_row_order(tmp_path) -> None:
    """Shuffling the rows of the campaign log (and of the transactions) changes no estimate:
    contacts are ordered, split and folded by a hash of customer and campaign id."""
    from dataclasses import replace

    from churnml.uplift.campaigns import campaign_frame
    from churnml.uplift.workflow import train_uplift

    spec = SPEC.model_copy(update={"contact_share": 1.0})
    d = simulate(800, seed=4, end="2024-03-31", config=SimulatorConfig(campaigns=[spec]))
    cfg = default_config()
    cfg.uplift.learner = "dr"
    cfg.uplift.params = {"n_estimators": 20, "min_child_samples": 20, "n_folds": 3,
                         "propensity": "estimate"}
    cfg.uplift.flag_boot = 5
    cfg.uplift.validation_boot = 20
    fits = []
    for k, data in enumerate([d, replace(d, campaigns=d.campaigns.sample(frac=1, random_state=1),
                                         transactions=d.transactions.sample(frac=1,
                                                                            random_state=2))]):
        cfg.output_dir = str(tmp_path / f"out{k}")
        fits.append(train_uplift(cfg, data, log_mlflow=False))
    from churnml.training.train import feature_spec

    X, _ = campaign_frame(d, cfg.churn, feature_spec(cfg), "s1")
    a, b = (f.effects(X) for f in fits)
    np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(fits[0].validation, fits[1].validation)
    # the default flag: groups measured on cross-fitted effects, the same for either order
    tables = [pd.read_csv(f.files["flag_groups"]) for f in fits]
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=False, rtol=0, atol=1e-12)
    assert 2 <= len(tables[0]) <= cfg.uplift.flag_groups
    assert tables[0][["n_treated", "n_control"]].to_numpy().sum() == fits[0].n_contacts
    assert fits[0].boot_models == []
