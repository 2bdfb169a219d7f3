"""`churnml demo`: the whole main job end to end on small simulated data, real MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churnml.cli import app
from churnml.report.sections import SECTION_IDS
from churnml.scoring.score import OUTPUT_COLUMNS, survival_score_columns
from churnml.training.tracking import tracking

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")

N_CUSTOMERS = 800
FAST = {"n_estimators": 30}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, str, object]:
    root = tmp_path_factory.mktemp("demo")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    config = root / "demo.yaml"
    config.write_text(yaml.safe_dump({
        "name": "demo-test",
        "data": {"dataset": "simulated", "simulated_customers": N_CUSTOMERS, "seed": 3},
        "training": {"n_origins": 2, "churn_params": FAST, "ltv_params": FAST,
                     "ltv_candidates": []},
        "tracking": {"uri": uri},
        "output_dir": str(root / "out"),
    }))
    res = CliRunner().invoke(app, ["demo", "--config", str(config), "--monitor"])
    assert res.exit_code == 0, res.output
    return root / "out", uri, res


def test_every_stage_wrote_its_files(demo_run) -> None:
    out, _, res = demo_run
    for name in ("kpis_month.csv", "n_day_retention.csv", "cohorts.csv", "backtest_metrics.csv",
                 "backtest_predictions.parquet", "feature_importance.csv", "scores.parquet",
                 "segment_summary.csv", "report.html"):
        assert (out / name).stat().st_size > 0, name
    assert "mlflow ui --backend-store-uri" in res.output


def test_scores_cover_the_base_and_segments_add_up(demo_run) -> None:
    out, _, _ = demo_run
    scores = pd.read_parquet(out / "scores.parquet")
    # the demo turns the survival model on: its columns follow the standard ones (and the
    # uplift columns, when the campaign stage added them)
    cols, extra = list(scores.columns), survival_score_columns()
    assert cols[-len(extra):] == extra
    assert [c for c in cols if c in OUTPUT_COLUMNS] == OUTPUT_COLUMNS
    assert (scores["p_active_90d"] >= scores["p_active_365d"]).all()
    assert (scores["lifetime_value_low"] <= scores["lifetime_value"]).all()
    assert (scores["lifetime_value_low"] <= scores["lifetime_value_high"]).all()
    # the expected value may exceed the 90 % quantile for a customer likely to lapse now (a
    # small chance of a long stay carries the mean): most customers' value lies inside
    assert (scores["lifetime_value"] <= scores["lifetime_value_high"]).mean() > 0.5
    assert scores["customer_id"].is_unique
    assert scores["rank"].tolist() == list(range(1, len(scores) + 1))
    summary = pd.read_csv(out / "segment_summary.csv")
    by_segment = scores.groupby("risk_segment")["value_at_risk"].agg(["size", "sum"])
    # the summary lists every configured segment, empty ones with 0 customers
    merged = summary.set_index("risk_segment").join(by_segment, how="outer").fillna(0)
    assert set(by_segment.index) <= set(summary["risk_segment"])
    assert (merged["customers"] == merged["size"]).all()
    assert merged["value_at_risk"].to_numpy() == pytest.approx(merged["sum"].to_numpy())
    for segment, n in by_segment["size"].items():
        assert len(pd.read_csv(out / "segments" / f"{segment}.csv")) == n
    # the segments marketing staffs exist (20,000 customers: 196 / 609 / 587, README)
    for segment in ("vip_at_risk", "at_risk", "lapsed_high_value"):
        assert 0.0025 * len(scores) <= by_segment["size"].get(segment, 0) <= 0.1 * len(scores)
    # value at risk = churn probability x value if retained, exactly
    assert (scores["value_at_risk"]
            == scores["churn_probability"] * scores["value_if_retained"]).all()


def test_models_registered_and_report_logged_to_the_run(demo_run) -> None:
    out, uri, _ = demo_run
    with tracking(uri) as client:
        for name in ("demo-test-churn", "demo-test-ltv"):
            version = client.get_model_version_by_alias(name, "champion")
            assert int(version.version) == 1
        run_id = client.get_model_version_by_alias("demo-test-churn", "champion").run_id
        logged = [a.path for a in client.list_artifacts(run_id, "report")]
    assert logged == ["report/report.html"]
    html = (out / "report.html").read_text()
    for section in SECTION_IDS:
        assert f'id="{section}"' in html
    assert "not available" not in html.split('id="segments"')[1].split("</section>")[0]


def test_demo_monitor_scores_past_months_and_monitors_them(demo_run):
    """--monitor trains as of six months before the data end, keeps a scoring run per month
    since (plus the final one) and monitors them; the report shows it."""
    import pandas as pd

    out, _, res = demo_run
    history = sorted(p.name for p in (out / "score_history").iterdir()
                     if p.name.startswith("cutoff="))
    assert len(history) == 7  # six month starts and the data end
    perf = pd.read_csv(out / "monitoring" / "performance.csv")
    assert len(perf) == 7 and perf["matured"].any() and not perf["matured"].all()
    assert perf.loc[perf["matured"], "real_roc_auc"].between(0.5, 1.0).all()
    html = (out / "report.html").read_text()
    assert 'id="monitoring"' in html and "realized vs estimated performance" in html
    # the run ends with the monitor's verdict, as signal.json gives it
    signal = json.loads((out / "monitoring" / "signal.json").read_text())
    text = " ".join(res.output.split())
    assert "monitoring verdict" in text and f"Verdict: {signal['headline']}" in text
    assert f"What to do: {signal['action']}." in text or signal["verdict"] == "healthy"
