"""Data-quality checks and verdicts by cause, on hand-built data: a missing month of events or
a survey moved to a 1–5 scale is a data break (fix the data); a changed relation between the
scores and churn on sound data is performance decay (retrain)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.config import ChurnConfig, MonitoringConfig
from churnml.data.customer_data import CustomerData
from churnml.data.scenarios import missing_event_month, survey_scale_change
from churnml.features.profile import profile_frame
from churnml.monitoring import Reference, ScoreHistory, monitor
from churnml.monitoring.alarms import Alarm
from churnml.monitoring.monitor import signal, summarise
from churnml.monitoring.quality import (
    check_quality,
    data_profile,
    feature_tables,
    reference_data_profile,
)
from churnml.monitoring.verdict import decide

N = 400
START, END = pd.Timestamp("2023-01-01"), pd.Timestamp("2024-06-30")
REFERENCE = pd.Timestamp("2023-10-01")
CUTOFFS = pd.date_range("2023-12-01", "2024-03-01", freq="MS")
CHURN = ChurnConfig(horizon_days=30)


def _leave(i: int) -> pd.Timestamp | None:
    """Every fourth customer leaves, on a staggered day between 2023-03 and 2024-06."""
    return START + pd.Timedelta(days=60 + 4 * (i // 4)) if i % 4 == 0 else None


def _base() -> CustomerData:
    """400 customers: a purchase every 7 days (amount 10 + i % 7), a session every 3 days,
    an NPS answer every 30 days (score i % 11, a 0–10 scale), until they leave."""
    tx, ev, sv = [], [], []
    for i in range(N):
        stop = _leave(i) or END
        cid = f"c{i:03d}"
        for day in pd.date_range(START + pd.Timedelta(days=i % 7), stop, freq="7D"):
            tx.append((cid, day, 10.0 + i % 7))
        for day in pd.date_range(START + pd.Timedelta(days=i % 3), stop, freq="3D"):
            ev.append((cid, day, "session"))
        for day in pd.date_range(START + pd.Timedelta(days=i % 30), stop, freq="30D"):
            sv.append((cid, day, "nps", float(i % 11)))
    return CustomerData.from_frames(
        pd.DataFrame(tx, columns=["customer_id", "ts", "amount"]),
        pd.DataFrame(ev, columns=["customer_id", "ts", "event_type"]),
        pd.DataFrame(sv, columns=["customer_id", "ts", "kind", "score"]))


@pytest.fixture(scope="module")
def base() -> CustomerData:
    return _base()


def _scores(cutoff: pd.Timestamp, related: bool) -> pd.DataFrame:
    """A model's scores: 0.8 for the customers who leave within the horizon, 0.1 for the
    others; with ``related=False`` the relation is broken (0.8 for every fifth stayer)."""
    rows = []
    for i in range(N):
        leave = _leave(i)
        if leave is not None and leave < cutoff:
            continue
        churns = leave is not None and leave < cutoff + pd.Timedelta(days=30)
        p = (0.8 if churns else 0.1) if related else (0.1 if churns else 0.8 if i % 5 == 1
                                                      else 0.1)
        rows.append((f"c{i:03d}", p))
    return pd.DataFrame(rows, columns=["customer_id", "churn_probability"])


def _monitor(data: CustomerData, tmp_path, *, related_until: pd.Timestamp = END,
             config: MonitoringConfig | None = None, profile: bool = True):
    config = config or MonitoringConfig()
    ref_scores = _scores(REFERENCE, True)
    reference = Reference(REFERENCE, "v1", {}, profile_frame(ref_scores, ["churn_probability"]),
                          {}, {"roc_auc": 0.95, "brier": 0.05},
                          reference_data_profile(data, REFERENCE, config) if profile else None)
    history = ScoreHistory(tmp_path / "history")
    for cutoff in CUTOFFS:
        history.write(_scores(cutoff, cutoff < related_until), {"cutoff": cutoff})
    return monitor(data, history, reference, CHURN, config)


def test_data_profile_counts_rows_per_period_and_ignores_rows_after_the_cutoff(base):
    cutoff = pd.Timestamp("2024-01-01")
    prof = data_profile(base, cutoff, window_days=90, period_days=30)
    ev = base.events
    for k, period in enumerate(prof["tables"]["events"]["periods"]):
        lo = cutoff - pd.Timedelta(days=30 * (3 - k))
        rows = ev[(ev["ts"] >= lo) & (ev["ts"] < lo + pd.Timedelta(days=30))]
        assert period == {"rows": len(rows), "customers": rows["customer_id"].nunique()}
    later = base.events[base.events["ts"] >= cutoff].index  # point in time: no later rows
    cut = CustomerData.from_frames(base.transactions, base.events.drop(later), base.surveys)
    assert data_profile(cut, cutoff) == data_profile(base, cutoff)
    nps = prof["tables"]["surveys"]["columns"]["surveys.score.nps"]
    assert set(nps["values"]) == {f"{v}" for v in range(11)}  # the 0–10 scale


def test_unchanged_data_passes_every_check(base, tmp_path):
    result = _monitor(base, tmp_path)
    assert result.alarms == [] and result.verdict.cause == "healthy"
    assert {"rows_per_period", "scale", "distribution", "category_mix"} <= set(
        result.quality["check"])
    assert (result.quality["level"] == "ok").all()
    assert not result.retrain and signal(result)["verdict"] == "healthy"


def test_a_missing_month_of_events_is_a_data_break(base, tmp_path):
    broken = missing_event_month(base, "2024-01-01")
    result = _monitor(broken, tmp_path)
    verdict = result.verdict
    assert verdict.cause == "data" and not verdict.retrain and verdict.blocks_retraining
    volume = [a for a in result.alarms if a.check == "rows_per_period"]
    # windows holding January 2024: the cutoffs 2024-02-01 and 2024-03-01 only
    assert {a.cutoff for a in volume} == {pd.Timestamp("2024-02-01"), pd.Timestamp("2024-03-01")}
    assert all(a.column == "events" and a.value == 0 for a in volume)
    out = signal(result)
    assert out["verdict"] == "data" and out["retrain"] is False
    assert "events: 0 rows in 2024-01-01..2024-01-31" in " ".join(out["evidence"])
    assert out["alarms"]["data"]["count"] == len(result.alarms)


def test_a_survey_answered_on_1_to_5_is_a_data_break(base, tmp_path):
    broken = survey_scale_change(base, "2024-01-01")  # 0..10 -> round(1 + s * 0.4)
    assert set(broken.surveys.loc[broken.surveys["ts"] >= "2024-01-01", "score"]) == {
        1.0, 2.0, 3.0, 4.0, 5.0}
    result = _monitor(broken, tmp_path)
    assert result.verdict.cause == "data"
    scale = [a for a in result.alarms if a.check == "scale"]
    assert {a.cutoff for a in scale} == {pd.Timestamp("2024-02-01"), pd.Timestamp("2024-03-01")}
    assert all(a.column == "surveys.score.nps" for a in scale)
    assert "values 0, 6, 7, 8, 9, 10" in scale[0].text and "range 1..5 vs 0..10" in scale[0].text


def test_acknowledged_change_raises_no_data_alarm(base, tmp_path):
    broken = survey_scale_change(base, "2024-01-01")
    config = MonitoringConfig(acknowledged=["surveys.score.nps"])
    result = _monitor(broken, tmp_path, config=config)
    assert [a for a in result.alarms if a.cause == "data"] == []
    assert set(result.quality.loc[result.quality["column"] == "surveys.score.nps", "level"]
               ) >= {"acknowledged"}


def test_a_changed_relation_on_sound_data_is_performance_decay(base, tmp_path):
    result = _monitor(base, tmp_path, related_until=pd.Timestamp("2024-01-01"))
    verdict = result.verdict
    assert verdict.cause == "performance" and verdict.retrain and result.retrain
    perf = [a for a in result.alarms if a.cause == "performance"]
    assert {a.cutoff for a in perf} == {pd.Timestamp(c) for c in
                                        ("2024-01-01", "2024-02-01", "2024-03-01")}
    assert (result.quality["level"] == "ok").all()


def test_a_data_break_outranks_performance_and_explains_it(base, tmp_path):
    broken = missing_event_month(base, "2024-01-01")
    result = _monitor(broken, tmp_path, related_until=pd.Timestamp("2024-01-01"))
    assert result.verdict.cause == "data"
    by_cutoff = {(a.cutoff, a.cause) for a in result.alarms if a.check.startswith("realized")}
    # at 2024-01-01 the data are sound: performance; later cutoffs hold the broken month
    assert (pd.Timestamp("2024-01-01"), "performance") in by_cutoff
    assert (pd.Timestamp("2024-02-01"), "data") in by_cutoff
    assert "performance" in " ".join(result.verdict.grouped())


def test_old_reference_without_a_profile_skips_the_checks_with_a_note(base, tmp_path):
    ref = Reference(REFERENCE, "v1", {}, {}, {}, {})
    assert Reference.from_json(ref.to_json().replace('"data": null', '"x": 1')).data is None
    result = _monitor(missing_event_month(base, "2024-01-01"), tmp_path, profile=False)
    assert result.quality.empty and result.verdict.cause == "healthy"
    assert any("data checks skipped" in n for n in result.notes)


def test_check_quality_flags_new_and_vanished_categories():
    def prof(shares: dict[str, float], n: int = 1000) -> dict:
        return {"window_days": 30, "period_days": 30, "tables": {"events": {
            "periods": [{"rows": n, "customers": 100}],
            "columns": {"events.event_type": {"kind": "categorical", "n": n, "missing": 0.0,
                                              "shares": shares}}}}}

    ref = prof({"session": 0.9, "email_open": 0.1})
    table, alarms = check_quality(ref, prof({"session": 0.88, "app_open": 0.12}), "2024-01-01")
    checks = {a.check: a.text for a in alarms}
    assert "'app_open'" in checks["new_category"] and "'email_open'" in checks[
        "vanished_category"]
    assert all(a.cause == "data" and a.column == "events.event_type" for a in alarms)
    _, alarms = check_quality(ref, prof({"session": 0.91, "email_open": 0.09}), "2024-01-01")
    assert alarms == []


def test_feature_tables_follow_derived_inputs():
    from churnml.features.definitions import DerivedFeature, Feature

    feats = [Feature(name="events_30d", table="events", agg="count", window_days=30),
             Feature(name="spend_30d", table="transactions", agg="sum", column="amount",
                     window_days=30),
             Feature(name="referrals", table="referrals", agg="count"),
             DerivedFeature(name="ratio", op="ratio", inputs=["events_30d", "spend_30d"]),
             DerivedFeature(name="twice", op="expr", expr="2 * ratio")]
    assert feature_tables(feats) == {
        "events_30d": {"events"}, "spend_30d": {"transactions"}, "referrals": {"customers"},
        "ratio": {"events", "transactions"}, "twice": {"events", "transactions"}}


def _alarm(cause: str, day: str, check: str = "psi", column: str = "x") -> Alarm:
    return Alarm(cause, pd.Timestamp(day), check, f"{check} on {column}", column)


def test_verdict_precedence_and_retrain_signal():
    pop = [_alarm("population", "2024-01-01")]
    assert decide([]).cause == "healthy" and not decide([]).retrain
    assert decide(pop).cause == "population" and not decide(pop).retrain
    assert decide(pop + [_alarm("value", "2024-01-01")]).cause == "value"
    perf = decide(pop + [_alarm("performance", "2024-01-01", "realized_auc")])
    assert perf.cause == "performance" and perf.retrain
    data = decide([*pop, _alarm("performance", "2024-01-01"), _alarm("data", "2024-02-01")])
    assert data.cause == "data" and not data.retrain and data.blocks_retraining


def test_verdict_paragraph_names_the_top_evidence_and_the_action():
    alarms = [_alarm("data", d, "rows_per_period", "events")
              for d in ("2024-01-01", "2024-02-01")]
    alarms += [_alarm("data", "2024-02-01", "scale", f"col{i}") for i in range(4)]
    alarms += [_alarm("population", "2024-02-01", "psi", f"f{i}") for i in range(30)]
    verdict = decide(alarms)
    text = verdict.paragraph()
    assert text.startswith("Verdict: data break (6 data, 30 population alarm(s)).")
    # evidence: the check raised at most cutoffs first, reported at its latest cutoff
    assert verdict.evidence()[0] == ("2024-02-01: rows_per_period on events "
                                     "(and 1 earlier cutoff(s))")
    assert len(verdict.evidence()) == 3 and "do not retrain" in text
    lines = verdict.grouped()
    assert lines[0] == "data (data break): 6 alarm(s)"
    assert "  - ... and 2 more check(s) (signal.json)" in lines
    assert "population (population shift): 30 alarm(s)" in lines
    assert len(lines) == 1 + 3 + 1 + 1 + 3 + 1  # grouped, not a flat list of 36


def test_summary_keeps_exempt_age_features_out_of_max_psi():
    from churnml.monitoring import MonitorResult

    cutoff = pd.Timestamp("2024-01-01")
    perf = pd.DataFrame({"cutoff": [cutoff], "matured": [True], "est_roc_auc": [0.9]})
    drift = pd.DataFrame({"cutoff": [cutoff] * 2, "kind": ["feature"] * 2,
                          "column": ["tenure_days", "spend_30d"], "psi": [0.5, 0.04],
                          "level": ["alarm (age)", "ok"], "exempt": [True, False]})
    out = summarise(MonitorResult(perf, drift, pd.DataFrame(), []))
    assert out.loc[0, "max_psi"] == 0.04 and out.loc[0, "most_drifted"] == "spend_30d"
    assert out.loc[0, "max_psi_age_exempt"] == 0.5
    assert np.isfinite(out.loc[0, "max_psi"])
