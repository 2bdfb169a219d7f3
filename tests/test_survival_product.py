"""The survival model in the product: `train` registers and evaluates it in a real SQLite
MLflow store, `score` adds its columns, the report shows it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console

from churnml.config import load_config
from churnml.data.loaders import load_data
from churnml.pipeline import load_scoring_models, score_customers, write_score_outputs
from churnml.report import build_report
from churnml.scoring.score import OUTPUT_COLUMNS, survival_score_columns
from churnml.survival.kaplan_meier import kaplan_meier, step_at
from churnml.training.survival_stage import (
    BASELINES,
    MODEL,
    TASK,
    survival_model_name,
)
from churnml.training.tracking import CHALLENGER, CHAMPION, load_model, tracking
from churnml.training.train import train

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")

N_CUSTOMERS = 800
FAST = {"n_estimators": 30}


@pytest.fixture(scope="module")
def trained(migrated_db, tmp_path_factory):
    root = tmp_path_factory.mktemp("survival")
    (root / "store").mkdir()
    shutil.copyfile(migrated_db, root / "store" / "mlflow.db")
    path = root / "survival.yaml"
    path.write_text(yaml.safe_dump({
        "name": "surv-test",
        "data": {"dataset": "simulated", "simulated_customers": N_CUSTOMERS, "seed": 4},
        "training": {"n_origins": 2, "churn_params": FAST, "ltv_params": FAST,
                     "ltv_candidates": []},
        "tracking": {"uri": f"sqlite:///{root / 'store' / 'mlflow.db'}"},
        "survival": {"enabled": True, "period_days": 30, "grid_periods": 13},
        "output_dir": str(root / "out"),
    }))
    cfg = load_config(path)
    data = load_data(cfg)
    result = train(cfg, data, console=Console(quiet=True))
    return cfg, data, result


def test_training_registers_the_survival_model_with_metrics(trained) -> None:
    cfg, _, result = trained
    name = survival_model_name(cfg)
    assert name == "surv-test-survival"
    reg = result.registrations[TASK]
    assert reg.name == name and reg.version == "1"
    assert (CHAMPION in reg.aliases) == reg.promoted
    assert (CHALLENGER in reg.aliases) != reg.promoted
    with tracking(cfg.tracking.uri) as client:
        mv = client.get_model_version(name, "1")
        assert mv.run_id == result.run_id
        run = client.get_run(result.run_id)
        metrics = run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(result.run_id, "tables")}
    for model in (MODEL, *BASELINES):
        c = metrics[f"backtest.{TASK}.{model}.uno_c"]
        assert 0.0 <= c <= 1.0
        assert metrics[f"backtest.{TASK}.{model}.integrated_admin_brier"] >= 0.0
    # Kaplan–Meier ranks nobody: its concordance is 0.5 exactly (all risks tied)
    assert metrics[f"backtest.{TASK}.kaplan_meier.harrell_c"] == pytest.approx(0.5)
    # the hazard model ranks customers far better than chance on the simulator
    assert metrics[f"backtest.{TASK}.{MODEL}.uno_c"] > 0.6
    assert {"tables/survival_curves.csv", "tables/survival_calibration.csv"} <= artifacts
    assert reg.message.startswith(f"{name} v1: {cfg.survival.champion_metric}")
    # the verdict names every baseline
    for b in BASELINES:
        assert b in reg.message


def test_logged_model_reproduces_the_fitted_curves(trained) -> None:
    cfg, _, result = trained
    est = load_model(f"models:/{survival_model_name(cfg)}/1", cfg.tracking.uri)
    X = result.survival.example.head(50)
    grid = np.arange(1, 14)
    np.testing.assert_allclose(est.predict_survival_function(X, grid),
                               result.survival.model.predict_survival_function(X, grid),
                               rtol=0, atol=1e-12)


def test_backtest_curves_follow_kaplan_meier(trained) -> None:
    """Mean predicted survival of the test customers against their Kaplan–Meier curve, per
    fold: the observed curve never rises, every model's curve lies in [0, 1] and never rises,
    and the hazard model is within 0.07 of the observed curve up to the 90-day churn horizon
    (periods 1-3). Later it drifts high (measured: 0.13 to 0.23 by periods 9-10), which the
    backtest metrics record."""
    _, _, result = trained
    curves = result.survival.curves
    assert set(curves["model"]) == {MODEL, *BASELINES, "observed_km"}
    for _, fold in curves.groupby("fold"):
        wide = fold.pivot(index="period", columns="model", values="survival")
        for model in wide.columns:
            values = wide[model].to_numpy()
            assert ((values >= 0) & (values <= 1)).all(), model
            assert np.all(np.diff(values) <= 1e-12), model
        gap = np.abs(wide[MODEL].to_numpy() - wide["observed_km"].to_numpy())
        assert gap[:3].max() < 0.07


def test_score_adds_survival_columns_with_sane_invariants(trained) -> None:
    cfg, data, result = trained
    alias = CHAMPION if result.registrations[TASK].promoted else CHALLENGER
    scoring_cfg = cfg.model_copy(deep=True)
    scoring_cfg.scoring.model_alias = alias
    models = load_scoring_models(scoring_cfg)
    assert models.survival is not None
    assert models.survival_label == f"{survival_model_name(cfg)} v1"
    scores = score_customers(data, scoring_cfg, models).scores
    extra = survival_score_columns(cfg.survival)
    assert list(scores.columns) == [*OUTPUT_COLUMNS, *extra]
    p30, p90, p365 = (scores[f"p_active_{d}d"].to_numpy() for d in (30, 90, 365))
    assert np.isfinite(p365).all()
    assert (p365 >= 0).all() and (p30 <= 1).all()
    assert (p30 >= p90 - 1e-12).all() and (p90 >= p365 - 1e-12).all()
    lo, mid, hi = (scores[c].to_numpy() for c in
                   ("lifetime_value_low", "lifetime_value", "lifetime_value_high"))
    assert (lo <= mid + 1e-9).all() and (lo <= hi).all() and (lo >= 0).all()
    # purchase logs pay until the silence starts: a customer likely to lapse now may have an
    # expected value above the 90 % quantile (a small chance of a long stay carries the mean)
    assert (mid <= hi + 1e-9).mean() > 0.5
    assert (scores["lifetime_horizon_days"] == 390).all()
    life = scores["expected_remaining_lifetime_days"]
    assert ((life >= 0) & (life <= 390)).all()
    # purchase logs: a lapse is seen only after a 90-day silence, so hardly anybody churns
    # by day 30 (the fitted hazard of the first periods is small, not exactly 0)
    assert p30.mean() > 0.9
    # beyond-horizon medians are NaN, the others inside the horizon
    med = scores["median_time_to_churn_days"]
    assert med.isna().to_numpy().tolist() == scores["median_beyond_horizon"].tolist()
    assert (med.dropna() <= 390).all()
    # 1 - S(horizon) and the churn probability estimate the same event (issue 16): their
    # base-wide means agree within a few points on the simulator
    assert abs((1 - p90).mean() - scores["churn_probability"].mean()) < 0.1
    # the timing segment: high value and half likely gone within 180 days, unless an
    # earlier segment took the customer
    act = scores[scores["risk_segment"] == "act_now"]
    assert (act["median_time_to_churn_days"] <= 180).all()


def test_report_shows_the_time_to_churn_section(trained, tmp_path) -> None:
    cfg, data, result = trained
    alias = CHAMPION if result.registrations[TASK].promoted else CHALLENGER
    scoring_cfg = cfg.model_copy(deep=True)
    scoring_cfg.scoring.model_alias = alias
    scored = score_customers(data, scoring_cfg, load_scoring_models(scoring_cfg))
    out = Path(cfg.output_dir)
    write_score_outputs(scored, out)
    page = build_report(out, cfg, tmp_path / "report.html").read_text()
    section = page.split('<section id="time-to-churn"')[1].split("</section>")[0]
    assert section.count("<img") == 4  # curves, calibration, per segment, distributions
    assert "predictive interval" in section
    for segment in set(scored.scores["risk_segment"]):
        assert segment in section


def test_scores_without_survival_model_keep_the_columns(trained) -> None:
    cfg, data, result = trained
    off = cfg.model_copy(deep=True)
    off.survival.enabled = False
    off.scoring.model_alias = CHAMPION if result.registrations["churn"].promoted else CHALLENGER
    models = load_scoring_models(off)
    assert models.survival is None
    scores = score_customers(data, off, models).scores
    assert list(scores.columns) == OUTPUT_COLUMNS
    assert "act_now" not in set(scores["risk_segment"])


def test_kaplan_meier_helper_agrees_with_hand_computation() -> None:
    # durations 1, 2+, 2, 3: S(1) = 3/4, S(2) = 3/4 * (1 - 1/3) = 1/2, S(3) = 0
    t, s = kaplan_meier(np.array([True, False, True, True]), np.array([1.0, 2, 2, 3]))
    assert step_at(t, s, [1, 2, 3]).tolist() == pytest.approx([0.75, 0.5, 0.0])


def test_score_honours_the_tail_rule_past_the_model_grid(trained) -> None:
    # scoring with a longer grid than the model's (13 periods): within the model's grid the
    # three rules give the same curve; past it constant hazard and sBG extend it differently
    # and restricted stops, naming the shorter horizon of its figures
    cfg, data, result = trained
    alias = CHAMPION if result.registrations[TASK].promoted else CHALLENGER
    out = {}
    for rule in ("constant_hazard", "sbg", "restricted"):
        scoring_cfg = cfg.model_copy(deep=True)
        scoring_cfg.scoring.model_alias = alias
        scoring_cfg.survival.grid_periods = 16
        scoring_cfg.survival.tail_rule = rule
        models = load_scoring_models(scoring_cfg)
        assert models.survival.n_periods_ == 13
        out[rule] = score_customers(data, scoring_cfg, models).scores.set_index("customer_id")
    const, sbg, restricted = (out[r] for r in ("constant_hazard", "sbg", "restricted"))
    restricted, sbg = restricted.loc[const.index], sbg.loc[const.index]
    for col in ("p_active_30d", "p_active_90d", "p_active_365d"):
        np.testing.assert_allclose(sbg[col], const[col])
        np.testing.assert_allclose(restricted[col], const[col])
    assert (const["lifetime_horizon_days"] == 480).all()
    assert (sbg["lifetime_horizon_days"] == 480).all()
    assert (restricted["lifetime_horizon_days"] == 390).all()
    life = {r: f["expected_remaining_lifetime_days"].to_numpy()
            for r, f in (("c", const), ("s", sbg), ("r", restricted))}
    assert (life["r"] <= life["c"] + 1e-9).all() and (life["r"] < life["c"]).any()
    assert not np.allclose(life["s"], life["c"])
    assert (life["r"] <= 390).all() and (life["c"] <= 480).all()


def _scores_with_store(cfg, result, db: Path) -> tuple[object, object]:
    alias = CHAMPION if result.registrations[TASK].promoted else CHALLENGER
    scoring_cfg = cfg.model_copy(deep=True)
    scoring_cfg.scoring.model_alias = alias
    scoring_cfg.tracking.uri = f"sqlite:///{db}"
    models = load_scoring_models(scoring_cfg)
    return models, scoring_cfg


def test_training_stores_the_spend_spread_and_scoring_reads_it(trained) -> None:
    """Train fits the spread of spend at its latest cutoff and logs it in the survival
    model's run; scoring loads exactly those values back from the store."""
    cfg, data, result = trained
    spend = result.survival.spend
    assert spend.fitted and spend.n_customers > 100
    assert 0.1 < spend.spend_cv < 5 and spend.q > 1 and spend.gamma > 0
    with tracking(cfg.tracking.uri) as client:
        params = client.get_run(result.run_id).data.params
    assert float(params["survival.spend_cv"]) == spend.spend_cv
    assert float(params["survival.spend_q"]) == spend.q
    assert int(params["survival.spend_customers"]) == spend.n_customers
    db = Path(cfg.tracking.uri.removeprefix("sqlite:///"))
    models, _ = _scores_with_store(cfg, result, db)
    assert models.survival_spend == spend


def test_score_intervals_follow_the_stored_spread(trained, tmp_path) -> None:
    """The interval scoring writes comes from the spread stored in the run: doubling the
    stored spend CV in a copy of the store changes the interval of every customer with
    spend, wider on average, and leaves the point value alone; a store without the spread
    (a model logged by an earlier release) scores with the fallback spread and says so."""
    import sqlite3

    cfg, data, result = trained
    db = tmp_path / "mlflow.db"
    shutil.copyfile(cfg.tracking.uri.removeprefix("sqlite:///"), db)
    models, scoring_cfg = _scores_with_store(cfg, result, db)
    before = score_customers(data, scoring_cfg, models).scores.set_index("customer_id")
    stored = result.survival.spend.spend_cv
    with sqlite3.connect(db) as con:
        con.execute("UPDATE params SET value = ? WHERE key = 'survival.spend_cv' AND "
                    "run_uuid = ?", (repr(2 * stored), result.run_id))
    models, scoring_cfg = _scores_with_store(cfg, result, db)
    assert models.survival_spend.spend_cv == 2 * stored
    after = score_customers(data, scoring_cfg, models).scores.set_index("customer_id")
    after = after.loc[before.index]
    np.testing.assert_allclose(after["lifetime_value"], before["lifetime_value"])
    width = {k: (f["lifetime_value_high"] - f["lifetime_value_low"]).to_numpy()
             for k, f in (("before", before), ("after", after))}
    spends = before["lifetime_value"].to_numpy() > 1.0
    assert spends.sum() > 100
    # a wider spread per period widens the interval on average (per customer it may
    # narrow: with an atom at 0 a more skewed spend can lower the upper quantile)
    assert (np.abs(width["after"] - width["before"])[spends] > 1e-3).mean() > 0.9
    assert width["after"][spends].mean() > 1.02 * width["before"][spends].mean()
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM params WHERE key LIKE 'survival.spend%' AND run_uuid = ?",
                    (result.run_id,))
    with pytest.warns(UserWarning, match="without a fitted spread of spend"):
        models, scoring_cfg = _scores_with_store(cfg, result, db)
    assert models.survival_spend is not None and not models.survival_spend.fitted
    old = score_customers(data, scoring_cfg, models).scores.set_index("customer_id")
    np.testing.assert_allclose(old.loc[before.index, "lifetime_value"],
                               before["lifetime_value"])
    assert not np.allclose(old.loc[before.index, "lifetime_value_high"],
                           before["lifetime_value_high"])
