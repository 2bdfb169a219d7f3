"""The HTML report: built from real job outputs, rendered in headless Chromium.

The fixture writes every file of the output contract from a small simulated dataset: KPI,
N-day and cohort tables from churnml.metrics, and backtest predictions, metrics, feature
importance, scores and segments from models fitted on a feature panel (train on earlier
cutoffs, predict the last one).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ceilings import HANG_CEILING_S

from churnml.config import default_config
from churnml.data.simulate import SimulatorConfig, simulate
from churnml.data.simulate_campaigns import CampaignSpec
from churnml.errors import DataValidationError
from churnml.labels import build_panel, labelled_cutoffs
from churnml.metrics import cohort_table, kpi_table, n_day_retention
from churnml.models import (
    ChurnClassifier,
    LastValueBaseline,
    LogisticChurnBaseline,
    LTVModel,
    RecencyBaseline,
)
from churnml.monitoring.monitor import write_monitor_outputs
from churnml.monitoring.replay import replay
from churnml.report import SECTION_IDS, build_report, log_report
from churnml.report.sections import backtest_summary, ltv_decile_table
from churnml.training.evaluation import classification_metrics, regression_metrics
from churnml.uplift.workflow import evaluate

N_CUSTOMERS = 600
SEED = 7
N_CUTOFFS = 4  # the last is the test cutoff
N_TREES = 40
N_JOBS = 1  # one thread: the test machine is shared; OpenMP spinning on 2 busy cores is slow
TOP_REASONS = 3
N_FOLDS = 2  # the test rows are split in two folds for backtest_metrics.csv
CHURN_SCORES = {"churn": "churn_probability", "recency": "baseline_probability",
                "logistic": "logistic_probability"}
LTV_SCORES = {"ltv": "ltv_predicted", "last_value": "baseline_ltv"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_TIMEOUT_S = HANG_CEILING_S  # a hang, not a slow machine
VIRTUAL_TIME_MS = 5000
PROBE_ID = "__report_probe"
MODEL_SECTIONS = ("backtest-metrics", "churn-roc-pr", "churn-calibration", "cumulative-gains",
                  "ltv-deciles", "feature-importance")
SCORE_SECTIONS = ("segments", "top-at-risk")


def _segment(p: np.ndarray, value: np.ndarray) -> np.ndarray:
    high_value = value >= np.quantile(value, 0.8)
    return np.select([(p >= 0.5) & high_value, p >= 0.5, high_value],
                     ["vip_at_risk", "at_risk", "loyal_high_value"], "stable")


ACTIONS = {"vip_at_risk": "personal call", "at_risk": "retention offer",
           "loyal_high_value": "referral invitation", "stable": "no action"}


def write_job_outputs(out: Path) -> dict[str, pd.DataFrame]:
    """Every file of the output contract, from simulated data and fitted models."""
    cfg = default_config()
    data = simulate(N_CUSTOMERS, seed=SEED)
    kpis = kpi_table(data, period="month", churn=cfg.churn, voice=cfg.voice)
    kpis.to_csv(out / "kpis_month.csv", index=False)
    curves = pd.concat(
        [n_day_retention(data, days=cfg.metrics.retention_days, window=w, mode=m,
                         churn=cfg.churn).assign(window=w, mode=m)
         for w in ("calendar", "24h") for m in ("on", "on_or_after")],
        ignore_index=True,
    )
    curves.to_csv(out / "n_day_retention.csv", index=False)
    cohort_table(data, period="month", churn=cfg.churn).reset_index().to_csv(
        out / "cohorts.csv", index=False)

    cutoffs = labelled_cutoffs(data, cfg.churn)[-N_CUTOFFS:]
    panel = build_panel(data, cutoffs, churn=cfg.churn)
    features = [c for c in panel.columns if c not in ("customer_id", "cutoff", "churned", "ltv")]
    train, test = panel[panel["cutoff"] < cutoffs[-1]], panel[panel["cutoff"] == cutoffs[-1]]
    churn = ChurnClassifier(n_estimators=N_TREES, min_child_samples=10, n_jobs=N_JOBS).fit(
        train[features], train["churned"], groups=train["customer_id"])
    recency = RecencyBaseline().fit(train[features], train["churned"])
    logistic = LogisticChurnBaseline().fit(train[features], train["churned"])
    ltv = LTVModel(kind="tweedie", n_estimators=N_TREES, min_child_samples=10,
                  n_jobs=N_JOBS).fit(
        train[features], train["ltv"], groups=train["customer_id"])
    last = LastValueBaseline().fit(train[features])
    pred = pd.DataFrame({
        "customer_id": test["customer_id"].to_numpy(), "cutoff": test["cutoff"].to_numpy(),
        "fold": 0, "churned": test["churned"].to_numpy(),
        "churn_probability": churn.predict_proba(test[features])[:, 1],
        "baseline_probability": recency.predict_proba(test[features])[:, 1],
        "ltv_actual": test["ltv"].to_numpy(), "ltv_predicted": ltv.predict(test[features]),
        "value_if_retained": ltv.predict_if_retained(test[features]),
        "baseline_ltv": last.predict(test[features]),
        "logistic_probability": logistic.predict_proba(test[features])[:, 1],
    })
    pred.to_parquet(out / "backtest_predictions.parquet", index=False)
    pred["fold"] = pred["customer_id"] % N_FOLDS
    metrics = pd.DataFrame(
        [{"model": m, "task": "churn", "metric_set": "classification", "fold": k,
          "cutoff": cutoffs[-1], "train_last_cutoff": cutoffs[-2],
          **classification_metrics(part["churned"], part[col])}
         for k, part in pred.groupby("fold") for m, col in CHURN_SCORES.items()]
        + [{"model": m, "task": "ltv", "metric_set": "regression", "fold": k,
            "cutoff": cutoffs[-1], "train_last_cutoff": cutoffs[-2],
            **regression_metrics(part["ltv_actual"], part[col])}
           for k, part in pred.groupby("fold") for m, col in LTV_SCORES.items()]
    )
    metrics.to_csv(out / "backtest_metrics.csv", index=False)
    importance = pd.concat([
        churn.feature_importances_.rename("importance").rename_axis("feature").reset_index()
        .assign(model="churn"),
        pd.DataFrame({"feature": features, "model": "ltv",
                      "importance": ltv.value_model_.booster_.feature_importance("gain")}),
    ], ignore_index=True)
    importance.to_csv(out / "feature_importance.csv", index=False)
    monitored = replay(data, churn, list(cutoffs[-2:]), cutoffs[-2],
                       {"roc_auc": 0.8, "brier": 0.15}, out / "score_history")
    write_monitor_outputs(monitored, out / "monitoring")

    contrib = churn.contributions(test[features])[features].to_numpy()
    top = np.argsort(-contrib, axis=1)[:, :TOP_REASONS]
    value_at_risk = pred["churn_probability"] * pred["value_if_retained"]
    segment = _segment(pred["churn_probability"].to_numpy(),
                       pred["value_if_retained"].to_numpy())
    scores = pd.DataFrame({
        "customer_id": pred["customer_id"], "churn_probability": pred["churn_probability"],
        "expected_value": pred["ltv_predicted"],
        "value_if_retained": pred["value_if_retained"], "value_at_risk": value_at_risk,
        "rank": value_at_risk.rank(ascending=False, method="first").astype("int64"),
        "risk_segment": segment,
        "reasons": ["; ".join(f"{features[j]} <raised risk>" for j in row) for row in top],
        "suggested_action": pd.Series(segment).map(ACTIONS),
        "model_version": "3", "cutoff": pred["cutoff"], "scored_at": pd.Timestamp("2025-01-01"),
    })
    scores.to_parquet(out / "scores.parquet", index=False)
    summary = (scores.groupby("risk_segment", as_index=False)
               .agg(customers=("customer_id", "size"), value_at_risk=("value_at_risk", "sum"),
                    mean_churn_probability=("churn_probability", "mean"),
                    suggested_action=("suggested_action", "first")))
    summary.to_csv(out / "segment_summary.csv", index=False)
    evaluation = write_campaign_outputs(out)
    return {"kpis": kpis, "predictions": pred, "scores": scores, "summary": summary,
            "campaign": evaluation}


def write_campaign_outputs(out: Path) -> pd.DataFrame:
    """A simulated randomised campaign evaluated by churnml (segments and a targeting score
    recorded in its log, as `churnml campaign plan` writes them)."""
    spec = CampaignSpec(campaign_id="c1", date="2023-09-04", contact_share=1.0)
    data = simulate(400, seed=SEED, end="2024-03-31", config=SimulatorConfig(campaigns=[spec]))
    log = data.campaigns.assign(
        segment=np.where(data.campaign_truth["satisfaction"] < 0, "unhappy", "other"),
        score=data.campaign_truth["tau"].to_numpy())
    cfg = default_config().model_copy(update={"output_dir": str(out)})
    return evaluate(cfg, replace(data, campaigns=log), "c1", log_mlflow=False).table


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    out = tmp_path_factory.mktemp("job")
    return out, write_job_outputs(out)


@pytest.fixture(scope="module")
def report(job) -> str:
    out, _ = job
    return build_report(out, default_config()).read_text(encoding="utf-8")


def _section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', page, re.S)
    assert match, f"section {section_id} missing"
    return match.group(1)


# --------------------------------------------------------------------------- the HTML


def test_every_section_rendered_with_content(report):
    shown = [s for s in SECTION_IDS if s != "time-to-churn"]  # survival stage not run
    assert re.findall(r'<section id="([^"]+)"', report) == shown
    for sid in shown:
        body = _section(report, sid)
        assert "not available" not in body, sid
        assert "<img" in body or "<table" in body, sid


def test_optional_sections_are_left_out_without_their_files(job, tmp_path):
    out, _ = job
    for name in os.listdir(out):
        if name != "monitoring" and not name.startswith("campaign"):
            src = out / name
            (tmp_path / name).symlink_to(src, target_is_directory=src.is_dir())
    page = build_report(tmp_path, default_config(), tmp_path / "r.html").read_text()
    ids = re.findall(r'<section id="([^"]+)"', page)
    assert ids == [s for s in SECTION_IDS
                   if s not in ("monitoring", "campaigns", "time-to-churn")]
    assert 'class="notice"' not in page


def test_monitoring_section_shows_realized_and_estimated(job, report):
    out, _ = job
    perf = pd.read_csv(out / "monitoring" / "performance.csv")
    body = _section(report, "monitoring")
    assert body.count("<img") == 2  # performance per cutoff, drift
    assert perf["matured"].all()
    assert f"{perf['real_roc_auc'].iloc[-1]:.3f}" in body
    assert f"{perf['est_roc_auc'].iloc[-1]:.3f}" in body
    # the verdict, the estimate's interval against the realized value, the data checks
    signal = json.loads((out / "monitoring" / "signal.json").read_text())
    assert f"Verdict: {signal['headline']}" in body and "What to do:" in body
    assert f"{perf['est_roc_auc_low'].iloc[-1]:.3f}" in body
    assert f"{perf['est_roc_auc_high'].iloc[-1]:.3f}" in body
    assert "roc auc in interval" in body
    checks = pd.read_csv(out / "monitoring" / "quality.csv")
    assert not checks.empty and "Data checks before drift" in body


def test_campaign_section_shows_the_evaluation(job, report):
    _, tables = job
    body = _section(report, "campaigns")
    overall = tables["campaign"].iloc[0]
    assert overall["segment"] == "(all)"
    assert f'<td class="num">{overall["n_treated"]:,}</td>' in body
    assert f'{overall["retention_lift"] * 100:+.1f}' in body
    assert "<td>unhappy</td>" in body  # per-segment rows
    assert body.count("<img") == 1  # the Qini curve of the recorded score


def test_self_contained(report):
    refs = re.findall(r'(?:src|href)="([^"]*)"', report)
    assert refs, "report has no images or links"
    assert all(r.startswith(("data:image/png;base64,", "#")) for r in refs), refs
    assert "<script" not in report
    assert "http://" not in report and "https://" not in report
    assert "Content-Security-Policy" in report


def test_top_at_risk_table_matches_scores(job, report):
    _, tables = job
    body = _section(report, "top-at-risk")
    rows = re.findall(r"<tr><td[^>]*>(\d+)</td><td[^>]*>(\d+)</td>", body)
    expected = tables["scores"].sort_values("rank").head(25)
    assert [(int(r), int(c)) for r, c in rows] == list(
        zip(expected["rank"], expected["customer_id"], strict=True))
    # reasons are escaped text, not markup
    assert "&lt;raised risk&gt;" in body and "<raised risk>" not in body


def test_segment_table_lists_every_segment(job, report):
    _, tables = job
    body = _section(report, "segments")
    for seg, n in zip(tables["summary"]["risk_segment"], tables["summary"]["customers"],
                      strict=True):
        assert f"<td>{seg}</td><td class=\"num\">{n:,}</td>" in body


def test_ltv_decile_table_against_pandas():
    rng = np.random.default_rng(0)
    pred = rng.gamma(2.0, 10.0, 95)
    actual = pred * rng.uniform(0.5, 1.5, 95)
    table = ltv_decile_table(actual, {"model": pred}, rank_by="model")
    order = np.argsort(-pred, kind="stable")
    # independent reference: decile k holds ranks r with ceil(r * 10 / n) == k
    ranks = np.empty(95, int)
    ranks[order] = np.arange(1, 96)
    ref = pd.DataFrame({"d": np.ceil(ranks * 10 / 95), "a": actual}).groupby("d")["a"].mean()
    np.testing.assert_allclose(table["actual"], ref.to_numpy())
    assert table["model"].is_monotonic_decreasing
    assert list(table["decile"]) == list(range(1, 11))


def test_backtest_summary_means_over_folds(job):
    out, _ = job
    metrics = pd.read_csv(out / "backtest_metrics.csv")
    tables = backtest_summary(metrics)
    assert list(tables) == ["classification", "regression"]
    churn = tables["classification"].set_index(["task", "model"])
    assert "normalized_gini" not in churn and "train_last_cutoff" not in churn
    for model in CHURN_SCORES:
        rows = metrics[(metrics["model"] == model) & (metrics["metric_set"] == "classification")]
        assert len(rows) == N_FOLDS
        assert churn.loc[("churn", model), "roc_auc"] == pytest.approx(
            (rows["roc_auc"].iloc[0] + rows["roc_auc"].iloc[1]) / 2)
    assert set(tables["regression"]["model"]) == set(LTV_SCORES)
    assert "roc_auc" not in tables["regression"]


def test_missing_inputs_give_notices(job, tmp_path):
    out, _ = job
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("kpis_month.csv", "cohorts.csv", "n_day_retention.csv"):
        shutil.copy(out / name, partial / name)
    page = build_report(partial, default_config()).read_text()
    optional = ("campaigns", "monitoring", "time-to-churn")  # optional stages: left out
    assert re.findall(r'<section id="([^"]+)"', page) == [
        s for s in SECTION_IDS if s not in optional]
    for sid in MODEL_SECTIONS:
        assert "not available" in _section(page, sid) and "churnml train" in _section(page, sid)
    for sid in SCORE_SECTIONS:
        assert "churnml score" in _section(page, sid)
    for sid in ("kpi-trends", "cohort-retention", "n-day-retention"):
        assert "<img" in _section(page, sid)


def test_empty_folder_renders_only_notices(tmp_path):
    page = build_report(tmp_path, default_config(), out=tmp_path / "r.html").read_text()
    assert page.count('class="notice"') >= len(SECTION_IDS) - 3  # optional sections left out
    assert "<img" not in page


def test_file_without_contract_column_is_named(job, tmp_path):
    out, tables = job
    tables["summary"].drop(columns="value_at_risk").to_csv(
        tmp_path / "segment_summary.csv", index=False)
    with pytest.raises(DataValidationError, match=r"segment_summary\.csv.*value_at_risk"):
        build_report(tmp_path, default_config())
    assert not (tmp_path / "report.html").exists()


def test_cli_report(job, tmp_path):
    from typer.testing import CliRunner

    from churnml.cli import app

    out, _ = job
    source = tmp_path / "job"
    source.mkdir()
    shutil.copy(out / "n_day_retention.csv", source)
    target = tmp_path / "nested" / "r.html"
    config = tmp_path / "small.yaml"  # KPI and cohort tables are computed from its data
    config.write_text("data: {dataset: simulated, simulated_customers: 300}\n")
    result = CliRunner().invoke(app, ["report", "--config", str(config), "--out-dir",
                                      str(source), "--out", str(target)])
    assert result.exit_code == 0, result.output
    page = target.read_text()
    assert re.findall(r'<section id="([^"]+)"', page) == [  # optional stages that did not run
        s for s in SECTION_IDS if s not in ("campaigns", "monitoring", "time-to-churn")]
    for sid in ("n-day-retention", "kpi-trends", "cohort-retention"):
        assert "<img" in _section(page, sid)
    assert page.count("<img") == 3 and "churnml demo" not in page
    assert not (source / "report.html").exists()


def test_log_report_to_mlflow(report, job, tmp_path, monkeypatch):
    import mlflow

    out, _ = job
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # no SQLite migration in this test
    mlflow.set_tracking_uri(f"file:{tmp_path / 'mlruns'}")
    try:
        with pytest.raises(ValueError, match="no active MLflow run"):
            log_report(out / "report.html")
        with mlflow.start_run() as run:
            assert log_report(out / "report.html") == "report/report.html"
        logged = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="report/report.html", dst_path=str(tmp_path))
        assert Path(logged).read_text() == (out / "report.html").read_text()
    finally:
        mlflow.set_tracking_uri(None)


# --------------------------------------------------------------------------- Chromium

PROBE = """<script>
(function () {
  var errors = [], SETTLE_MS = 200;  // let queued error/CSP events fire after load
  window.addEventListener('error', function (e) {
    var t = e.target && e.target.tagName ? e.target.tagName + ' failed to load' : '';
    errors.push('error: ' + (e.message || t));
  }, true);
  window.addEventListener('unhandledrejection', function (e) {
    errors.push('unhandled rejection: ' + e.reason);
  });
  document.addEventListener('securitypolicyviolation', function (e) {
    errors.push('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);
  });
  var consoleError = console.error;
  console.error = function () {
    errors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    consoleError.apply(console, arguments);
  };
  window.addEventListener('load', function () { setTimeout(report, SETTLE_MS); });
  function report() {
    var sections = Array.prototype.map.call(document.querySelectorAll('main > section'),
      function (s) { var r = s.getBoundingClientRect();
                     return {id: s.id, height: r.height, width: r.width}; });
    var images = Array.prototype.map.call(document.images, function (i) {
      return {alt: i.alt, width: i.naturalWidth, height: i.naturalHeight}; });
    var pre = document.createElement('pre');
    pre.id = '__PROBE_ID__';
    pre.textContent = JSON.stringify({errors: errors, sections: sections, images: images});
    document.body.appendChild(pre);
  }
})();
</script>""".replace("__PROBE_ID__", PROBE_ID)


def render_in_chromium(page: str, workdir: Path) -> tuple[dict, list[str]]:
    """Open ``page`` in headless Chromium; returns what the injected probe saw after the load
    event (JS errors, CSP violations, console.error calls, section boxes, image sizes) and
    the page's console messages from the browser's log on stderr."""
    probe_page = workdir / "probe.html"
    probe_page.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", f"--user-data-dir={workdir / 'profile'}",
           "--enable-logging=stderr", "--v=0", f"--virtual-time-budget={VIRTUAL_TIME_MS}",
           "--window-size=1280,2000", "--dump-dom", probe_page.as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
    match = re.search(rf'<pre id="{PROBE_ID}">(.*?)</pre>', run.stdout, re.S)
    assert match, f"probe output missing; chromium exit {run.returncode}: {run.stderr[-2000:]}"
    # the report runs no script, so any console message (uncaught error, CSP violation,
    # failed load) is a problem; Chromium logs them all at INFO level as ":CONSOLE"
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html.unescape(match.group(1))), console


def _problems(seen: dict, console: list[str], expected: Sequence[str] = SECTION_IDS,
              ) -> list[str]:
    problems = list(seen["errors"]) + console
    ids = [s["id"] for s in seen["sections"]]
    problems += [f"section {sid} missing" for sid in expected if sid not in ids]
    problems += [f"section {s['id']} has no size" for s in seen["sections"]
                 if s["height"] <= 0 or s["width"] <= 0]
    problems += [f"image {i['alt']!r} did not decode" for i in seen["images"]
                 if i["width"] <= 0 or i["height"] <= 0]
    return problems


@pytest.fixture
def chromium() -> str:
    """The Chromium binary; without one the browser tests skip, or fail in CI
    (``CHURNML_REQUIRE_CHROMIUM=1``, set by .ci/run, which installs it)."""
    if CHROMIUM is None:
        message = "chromium not installed (apt-get install chromium)"
        if os.environ.get("CHURNML_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def test_report_renders_in_chromium_without_errors(chromium, report, tmp_path):
    seen, console = render_in_chromium(report, tmp_path)
    expected = [s for s in SECTION_IDS if s != "time-to-churn"]  # survival stage not run
    assert _problems(seen, console, expected) == []
    assert [s["id"] for s in seen["sections"]] == expected
    assert len(seen["images"]) == report.count("<img")
    assert len(seen["images"]) >= len(SECTION_IDS) - 2  # all but the two table-only sections


def test_chromium_check_catches_broken_reports(chromium, report, tmp_path):
    broken = re.sub(r'<section id="segments">.*?</section>', "", report, count=1, flags=re.S)
    broken = broken.replace(
        "</main>",
        '<img alt="corrupt" src="data:image/png;base64,AAAA">'
        '<img alt="external" src="https://example.invalid/x.png">'
        "<script>undefinedFunction()</script></main>",
    )
    seen, console = render_in_chromium(broken, tmp_path)
    problems = _problems(seen, console)
    assert "section segments missing" in problems
    assert "image 'corrupt' did not decode" in problems
    assert any("CSP violation" in p and "img-src" in p for p in problems), problems
    assert any("CSP violation" in p and "script-src" in p for p in problems), problems
    assert any("Content Security Policy" in line for line in console), console
