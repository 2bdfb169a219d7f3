"""Batch scoring: ranking, segments, reasons, schema checks, atomic and deterministic export.

Models are trained here on small simulated data and registered in a real SQLite MLflow store.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scoring_helpers import (
    SCORE_CUTOFF,
    SCORED_AT,
    fit_models,
    register,
    simulated,
)
from typer.testing import CliRunner

from churnml.config import ChurnConfig, ScoringConfig
from churnml.engine import open_engine
from churnml.errors import ConfigError, DataValidationError
from churnml.features import build_features
from churnml.features.build import resolve_features
from churnml.scoring import (
    PathAttribution,
    ReasonWriter,
    assign_segments,
    check_feature_table,
    contributions,
    load_exported_models,
    parse_segments,
    score,
    score_features,
    top_drivers,
    write_scores,
)
from churnml.scoring.reasons import CONTEXT_FEATURES, NO_DRIVER, format_value
from churnml.scoring.score import OUTPUT_COLUMNS, feature_descriptions
from churnml.training.export import export_models

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")


@pytest.fixture(scope="module")
def data():
    return simulated()


@pytest.fixture(scope="module")
def trained(data):
    return fit_models(data)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scoring-store")


@pytest.fixture(scope="module")
def models(trained, store):
    churn, ltv, X = trained
    return register(churn, ltv, X, store)


@pytest.fixture(scope="module")
def result(data, models):
    return score(data, models, cutoff=SCORE_CUTOFF, scored_at=SCORED_AT)


@pytest.fixture(scope="module")
def descriptions(data):
    return feature_descriptions(event_types=sorted(data.events["event_type"].unique()))


@pytest.fixture(scope="module")
def resolved(data):
    eng, _ = open_engine(data)
    with eng:
        return resolve_features(eng, None)


@pytest.fixture(scope="module")
def features(data, resolved):
    """Every default feature plus the reason-only context features, as :func:`score` builds."""
    return build_features(data, SCORE_CUTOFF, [*resolved, *CONTEXT_FEATURES])


# --------------------------------------------------------------------------- scores


def test_scores_columns_and_value_at_risk(result, models, features):
    s = result.scores
    assert list(s.columns) == OUTPUT_COLUMNS
    assert len(s) == len(features) and s["customer_id"].is_unique
    # value at risk = p x value if retained, exactly (never p x the expected value)
    np.testing.assert_array_equal(s["value_at_risk"],
                                  s["churn_probability"] * s["value_if_retained"])
    assert s["churn_probability"].between(0, 1).all() and (s["expected_value"] >= 0).all()
    assert (s["value_if_retained"] >= 0).all()
    ids = features["customer_id"]
    got = s.set_index("customer_id").loc[ids]
    np.testing.assert_allclose(got["value_if_retained"],
                               models.ltv.predict_if_retained(features), rtol=1e-12)
    np.testing.assert_allclose(got["expected_value"], models.ltv.predict(features), rtol=1e-12)
    assert (s["model_version"] == "churnml-churn v1, churnml-ltv v1").all()
    assert (s["cutoff"] == SCORE_CUTOFF).all() and (s["scored_at"] == SCORED_AT).all()
    # the probabilities are the registered model's on the features of the cutoff
    expected = models.churn.predict_proba(features)[:, 1]
    got = s.set_index("customer_id").loc[features["customer_id"], "churn_probability"]
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-12)


def test_ranking_is_monotone_in_value_at_risk(result):
    s = result.scores
    assert s["rank"].tolist() == list(range(1, len(s) + 1))
    var = s["value_at_risk"].to_numpy()
    assert (np.diff(var) <= 0).all()
    # ties: ascending customer id
    tied = s[s.duplicated("value_at_risk", keep=False)]
    for _, group in tied.groupby("value_at_risk"):
        assert group["customer_id"].is_monotonic_increasing


def test_summary_matches_scores(result):
    s, summary = result.scores, result.summary
    ref = s.groupby("risk_segment").agg(customers=("customer_id", "size"),
                                        value_at_risk=("value_at_risk", "sum"),
                                        mean_churn_probability=("churn_probability", "mean"))
    got = summary.set_index("risk_segment")
    assert got["customers"].sum() == len(s)
    for name, row in ref.iterrows():
        assert got.loc[name, "customers"] == row["customers"]
        assert got.loc[name, "value_at_risk"] == pytest.approx(row["value_at_risk"])
        assert got.loc[name, "mean_churn_probability"] == pytest.approx(
            row["mean_churn_probability"])
    names = [seg.name for seg in parse_segments(ScoringConfig())]
    assert summary["risk_segment"].tolist() == names  # every segment, priority order


def test_default_segments_follow_their_rules(result, features):
    t = result.thresholds
    s = result.scores.merge(
        features[["customer_id", "days_since_last_purchase", "net_revenue_total"]],
        on="customer_id")
    top = s["value_at_risk"] >= t["top_value_at_risk"]
    recent = s["days_since_last_purchase"] < t["horizon_days"]
    vip = (s["value_if_retained"] >= t["vip_value"]) & (
        s["churn_probability"] >= t["high_risk_probability"]) & recent
    at_risk = top & (s["churn_probability"] >= t["high_risk_probability"]) & recent
    assert (s.loc[vip, "risk_segment"] == "vip_at_risk").all()
    assert (s.loc[at_risk & ~vip, "risk_segment"] == "at_risk").all()
    lapsed_high = ~recent & ((s["value_if_retained"] >= t["vip_value"])
                             | (s["net_revenue_total"] >= t["high_past_value"]))
    assert (s.loc[lapsed_high & ~vip & ~at_risk, "risk_segment"] == "lapsed_high_value").all()
    # the explained segments all have reasons
    assert s.loc[vip | at_risk | lapsed_high, "reasons"].notna().all()
    assert (s.loc[s["risk_segment"] == "standard", "reasons"].isna()).all()
    actions = dict(zip(result.summary["risk_segment"], result.summary["suggested_action"],
                       strict=True))
    assert (s["suggested_action"] == s["risk_segment"].map(actions)).all()


def test_rescoring_is_deterministic(data, models, result, tmp_path, features, descriptions):
    again = score(data, models, cutoff=SCORE_CUTOFF, scored_at=SCORED_AT, workdir=tmp_path)
    pd.testing.assert_frame_equal(again.scores, result.scores)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_scores(result.scores, a)
    write_scores(again.scores, b)
    assert a.read_bytes() == b.read_bytes()
    # without a pinned scored_at only that column may differ
    unpinned = score_features(features, models, descriptions=descriptions).scores
    cols = [c for c in OUTPUT_COLUMNS if c != "scored_at"]
    pd.testing.assert_frame_equal(unpinned[cols], result.scores[cols])


def test_chunk_size_does_not_change_scores(features, models, result, descriptions):
    small = score_features(features, models, ScoringConfig(chunk_size=400),
                           descriptions=descriptions, scored_at=SCORED_AT)
    pd.testing.assert_frame_equal(small.scores, result.scores)


def test_exported_models_score_like_the_registry(
    models, store, tmp_path, features, result, descriptions
):
    export_models(out_dir=tmp_path, tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    exported = load_exported_models(tmp_path, "churnml-churn", "churnml-ltv")
    assert exported.version == models.version
    got = score_features(features, exported, descriptions=descriptions,
                         scored_at=SCORED_AT).scores
    pd.testing.assert_frame_equal(got, result.scores)


# --------------------------------------------------------------------------- refusals


def test_missing_feature_column_is_refused(features, models):
    bad = features.drop(columns=["days_since_last_purchase"]).rename(
        columns={"purchases_30d": "purchases_last_month"})
    with pytest.raises(DataValidationError) as err:
        score_features(bad, models)
    msg = str(err.value)
    assert "days_since_last_purchase" in msg and "purchases_30d" in msg
    assert "purchases_last_month" in msg and "churnml-churn v1" in msg


def test_wrong_feature_dtype_is_refused(features, models):
    bad = features.assign(purchases_90d=features["purchases_90d"].fillna(0).astype("int64"),
                          spend_90d=features["spend_90d"].astype("str"))
    with pytest.raises(DataValidationError, match=r"purchases_90d is int64 \(model: float64\)"):
        check_feature_table(bad, models.feature_dtypes(), models.version)
    with pytest.raises(DataValidationError, match=r"spend_90d is str \(model: float64\)"):
        score_features(bad, models)


def test_bad_segment_config_is_refused():
    with pytest.raises(ConfigError, match="unique"):
        parse_segments(ScoringConfig(segments=[
            {"name": "a", "when": "x > 1", "action": "call", "priority": 1},
            {"name": "b", "when": "x > 2", "action": "mail", "priority": 1}]))
    with pytest.raises(ConfigError, match="missing keys"):
        parse_segments(ScoringConfig(segments=[{"name": "a", "action": "call"}]))
    with pytest.raises(ValueError, match=r"segments\[a\]\.when: invalid SQL"):  # at config load
        ScoringConfig(segments=[{"name": "a", "when": "x >", "action": "c"}])
    with pytest.raises(ConfigError, match="invalid SQL"):
        parse_segments(ScoringConfig.model_construct(
            segments=[{"name": "a", "when": "x >", "action": "c"}],
            default_segment={"name": "standard", "action": "n"}))


# --------------------------------------------------------------------------- segments

COLUMNS = ("a", "b")
rule = st.tuples(st.sampled_from(COLUMNS), st.sampled_from([">=", "<"]),
                 st.floats(0, 1, allow_nan=False))
column = st.lists(st.one_of(st.none(), st.floats(0, 1, allow_nan=False)), min_size=1,
                  max_size=30)


@settings(max_examples=40, deadline=None)
@given(rules=st.lists(rule, max_size=5), priorities=st.permutations(range(5)),
       a=column, b=column)
def test_segments_exhaustive_and_exclusive(rules, priorities, a, b):
    n = min(len(a), len(b))
    frame = pd.DataFrame({"a": a[:n], "b": b[:n]}, dtype="float64")
    cfg = ScoringConfig(
        segments=[{"name": f"s{i}", "when": f"{col} {op} t{i}", "action": f"act{i}",
                   "priority": priorities[i]} for i, (col, op, _) in enumerate(rules)],
        thresholds={f"t{i}": t for i, (_, _, t) in enumerate(rules)}, quantiles={})
    segs = parse_segments(cfg)
    values = {f"t{i}": t for i, (_, _, t) in enumerate(rules)}
    got = assign_segments(frame, segs, values)
    # reference: each row takes the first rule by priority that holds (NaN never holds)
    order = sorted(range(len(rules)), key=lambda i: priorities[i])
    expected = []
    for _, row in frame.iterrows():
        name = "standard"
        for i in order:
            col, op, t = rules[i]
            x = row[col]
            if not np.isnan(x) and (x >= t if op == ">=" else x < t):
                name = f"s{i}"
                break
        expected.append(name)
    assert got.tolist() == expected
    assert got.notna().all() and set(got) <= {s.name for s in segs}


def test_rule_on_absent_column_is_skipped_with_a_warning():
    cfg = ScoringConfig(segments=[
        {"name": "detractor", "when": "nps_detractor = 1", "action": "call", "priority": 1},
        {"name": "big", "when": "a >= 2", "action": "mail", "priority": 2}], quantiles={})
    frame = pd.DataFrame({"a": [1.0, 3.0]})
    with pytest.warns(UserWarning, match="detractor.*nps_detractor"):
        got = assign_segments(frame, parse_segments(cfg), {})
    assert got.tolist() == ["standard", "big"]


# --------------------------------------------------------------------------- reasons


def _reference_path_contributions(classifier, X: pd.DataFrame) -> np.ndarray:
    """Decision-path credits from the dumped trees, walking root -> LightGBM's leaf."""
    Xe = classifier.encoder_.transform(X)
    leaves = classifier.model_.predict(Xe, pred_leaf=True, num_iteration=classifier.n_iter_)
    trees = classifier.booster_.dump_model()["tree_info"][: classifier.n_iter_]
    out = np.zeros((len(X), len(classifier.feature_names_in_)))

    def path(node, leaf, acc):
        if "leaf_index" in node:
            return acc if node["leaf_index"] == leaf else None
        for child in ("left_child", "right_child"):
            nxt = node[child]
            value = nxt.get("internal_value", nxt.get("leaf_value"))
            step = (node["split_feature"], value - node["internal_value"])
            found = path(nxt, leaf, [*acc, step])
            if found is not None:
                return found
        return None

    for r in range(len(X)):
        for t, tree in enumerate(trees):
            for feature, delta in path(tree["tree_structure"], leaves[r, t], []):
                out[r, feature] += delta
    return out


def test_path_contributions_match_reference_and_sum_to_log_odds(trained, features):
    churn = trained[0]
    X = features.iloc[:40]
    explainer = PathAttribution(churn)
    got = contributions(churn, X, "path", explainer)
    np.testing.assert_allclose(got, _reference_path_contributions(churn, X), atol=1e-10)
    np.testing.assert_allclose(got.sum(axis=1) + explainer.bias, churn.decision_function(X),
                               atol=1e-10)
    shap = contributions(churn, X, "tree_shap")
    np.testing.assert_allclose(shap.sum(axis=1), got.sum(axis=1) + explainer.bias
                               - churn.contributions(X)["bias"].to_numpy(), atol=1e-8)


def test_top_drivers_worked_example():
    contrib = np.array([[0.1, -0.5, 0.7, 0.3], [-0.1, -0.2, 0.0, 0.05], [0.2, 0.2, 0.1, 0.0]])
    assert top_drivers(contrib, 3).tolist() == [[2, 3, 0], [3, -1, -1], [0, 1, 2]]
    assert top_drivers(contrib, 2, min_contribution=0.15).tolist() == [[2, 3], [-1, -1], [0, 1]]


def test_reasons_are_the_largest_contributions_in_words(result, trained, features, resolved):
    churn = trained[0]
    s = result.scores.dropna(subset=["reasons"]).head(25)
    X = features.set_index("customer_id").loc[s["customer_id"]].reset_index()
    ref = _reference_path_contributions(churn, X)
    names = [str(f) for f in churn.feature_names_in_]
    by_name = {f.name: f for f in resolved}
    writer = ReasonWriter(ScoringConfig().reason_templates, by_name, SCORE_CUTOFF)
    for i, reasons in enumerate(s["reasons"]):
        # reference, one row at a time: positive drivers, largest first, worded, one per
        # family, no repeated words, three at most
        expected, families = [], set()
        for j in np.argsort(-ref[i], kind="stable"):
            if ref[i, j] <= 0 or len(expected) == 3:
                break
            words = writer.render_feature(X.iloc[[i]].assign(value=X[names[j]].iloc[i])
                                          .reset_index(drop=True), names[j])[0]
            family = by_name[names[j]].reason_family
            if words is not None and family not in families and words not in expected:
                expected.append(words)
                families.add(family)
        assert reasons.split("; ") == expected


def test_reasons_on_simulated_scores_one_per_family_in_words(result, trained, features):
    """Every customer of a segment with reasons has some; no row names two features of one
    family, repeats itself, or shows a feature name, "unknown", "nan" or a zero amount."""
    s, churn = result.scores, trained[0]
    wanted = {seg.name for seg in parse_segments(ScoringConfig()) if seg.reasons}
    explained = s["risk_segment"].isin(wanted)
    assert explained.sum() > 100
    assert (s.loc[explained, "reasons"].str.len() > 0).all()
    assert s.loc[~explained, "reasons"].isna().all()
    rows = s[explained]
    X = features.set_index("customer_id").loc[rows["customer_id"]].reset_index()
    names = [str(f) for f in churn.feature_names_in_]
    definitions = {**feature_descriptions(event_types=["email_open", "push_click", "session",
                                                       "support_ticket"]),
                   **{f.name: f for f in CONTEXT_FEATURES}}
    writer = ReasonWriter(ScoringConfig().reason_templates, definitions, SCORE_CUTOFF)
    contrib = contributions(churn, X)
    words, chosen = writer.choose(X, top_drivers(contrib, len(names)), names, k=3)
    for i, reasons in enumerate(rows["reasons"]):
        cols = chosen[i][chosen[i] >= 0]
        if len(cols) == 0:  # no feature pushes this customer's risk up on its own
            assert reasons == NO_DRIVER
            continue
        assert reasons.split("; ") == list(words[i, :len(cols)])
        families = [definitions[names[j]].reason_family for j in cols]
        assert len(set(families)) == len(families), reasons
        assert (contrib[i, cols] > 0).all()
        assert len(set(reasons.split("; "))) == len(cols)
    # "0 days ago" is a real recency (a purchase within the last day), not an unworded zero
    text = " ".join(rows["reasons"]).replace(" 0 days ago", " N days ago")
    tokens = set(re.findall(r"[\w.,%]+", text))
    assert not tokens & {*names, "unknown", "nan", "0", "0.00", "0.0", "="}


def test_reason_wording_worked_examples():
    cutoff = pd.Timestamp("2024-06-01")
    writer = ReasonWriter(ScoringConfig().reason_templates, {"purchases_90d":
                          "{value:count purchase} in the last 90 days"}, cutoff)
    frame = pd.DataFrame({
        "days_since_last_purchase": [74.2, 74.0], "purchase_gap_mean_days": [21.4, np.nan],
        "nps_detractor": [1.0, 1.0], "nps_latest": [3.0, 2.0],
        "days_since_last_nps": [30.0, np.nan], "engagement_trend_30d": [0.2, 1.25],
        "purchases_90d": [2.0, np.nan],
    })
    words = lambda f: writer.render_feature(frame.assign(value=frame[f]), f).tolist()  # noqa: E731
    assert words("days_since_last_purchase") == [
        "last purchase 74 days ago, usually every 21 days", None]
    assert words("nps_detractor") == ["NPS 3 (detractor) on 2 May", None]
    assert words("purchases_90d") == ["2 purchases in the last 90 days", None]
    assert format_value(1.0, "change", cutoff) == "unchanged"
    drivers = np.array([[0, 2], [2, -1]])
    joined = writer.render(frame, drivers, list(frame.columns)).tolist()
    assert joined == ["last purchase 74 days ago, usually every 21 days; NPS 3 (detractor) on "
                      "2 May", "no single driver stands out: the risk comes from the overall "
                      "pattern"]


# --------------------------------------------------------------------------- export


def test_interrupted_write_leaves_no_file(result, tmp_path):
    out = tmp_path / "scores.parquet"
    # pyarrow cannot convert the last value: it fails after the temporary file is created
    bad = result.scores.assign(reasons=[*result.scores["reasons"].iloc[:-1], object()])
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own error type
        write_scores(bad, out)
    assert not out.exists() and os.listdir(tmp_path) == []
    write_scores(result.scores, out)
    before = out.read_bytes()
    with pytest.raises(Exception):  # noqa: B017
        write_scores(bad, out)
    assert out.read_bytes() == before and os.listdir(tmp_path) == ["scores.parquet"]


def test_export_writes_summary_and_segment_files(result, tmp_path):
    files = write_scores(result.scores, tmp_path / "scores.csv", result.summary,
                         tmp_path / "segment_summary.csv", tmp_path / "segments")
    back = pd.read_csv(files["scores"])
    assert len(back) == len(result.scores) and list(back.columns) == OUTPUT_COLUMNS
    total = 0
    for name in result.summary["risk_segment"]:
        part = pd.read_csv(tmp_path / "segments" / f"{name}.csv")
        assert (part["risk_segment"] == name).all() and part["rank"].is_monotonic_increasing
        total += len(part)
    assert total == len(result.scores)
    summary = pd.read_csv(tmp_path / "segment_summary.csv")
    assert list(summary.columns) == ["risk_segment", "customers", "value_at_risk",
                                     "mean_churn_probability", "suggested_action"]


# --------------------------------------------------------------------------- CLI


def test_cli_score_writes_outputs(models, store, tmp_path, result):
    from churnml.cli import app

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "name: t\ndata: {dataset: simulated, simulated_customers: 1200, seed: 5}\n"
        f"tracking: {{uri: 'sqlite:///{store / 'mlflow.db'}', churn_model_name: churnml-churn, "
        "ltv_model_name: churnml-ltv}\n"
        "scoring: {allow_missing_lineage: true}\n"  # models logged by hand, no lineage tags
        f"output_dir: {tmp_path / 'out'}\n")
    run = CliRunner().invoke(app, ["score", "--config", str(cfg), "--cutoff", "2024-10-01",
                                   "--scored-at", "2024-10-02T08:00:00Z"])
    assert run.exit_code == 0, run.output
    out = tmp_path / "out"
    scores = pd.read_parquet(out / "scores.parquet")
    assert len(scores) == len(result.scores) and scores["rank"].iloc[0] == 1
    assert (out / "segment_summary.csv").exists()
    assert (out / "segments" / "at_risk.csv").exists()
    assert "at_risk" in run.output
    churn_config = ChurnConfig()
    assert f"over {churn_config.horizon_days} days" in run.output


def test_cli_score_defaults_to_the_data_end_and_warns_outside_the_data(models, store,
                                                                        tmp_path):
    """Without --cutoff, `score` scores at data.end (not now); a cutoff after the data is
    scored with a warning; a non-ISO cutoff is refused."""
    from churnml.cli import app

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "name: t\ndata: {dataset: simulated, simulated_customers: 1200, seed: 5, "
        "end: 2024-10-01}\n"
        f"tracking: {{uri: 'sqlite:///{store / 'mlflow.db'}', churn_model_name: churnml-churn, "
        "ltv_model_name: churnml-ltv}\n"
        "scoring: {allow_missing_lineage: true}\n"  # models logged by hand, no lineage tags
        f"output_dir: {tmp_path / 'out'}\n")
    run = CliRunner().invoke(app, ["score", "--config", str(cfg)])
    assert run.exit_code == 0, run.output
    assert "scoring as of 2024-10-01 00:00:00, the end of the data (data.end" in run.output
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    assert (scores["cutoff"] == pd.Timestamp("2024-10-01")).all()
    late = CliRunner().invoke(app, ["score", "--config", str(cfg), "--cutoff", "2100-01-01"])
    assert late.exit_code == 0, late.output
    assert "warning: cutoff 2100-01-01 00:00:00 lies after the end of the data" in \
        " ".join(late.output.split())
    bad = CliRunner().invoke(app, ["score", "--config", str(cfg), "--cutoff", "01/10/2024"])
    assert bad.exit_code != 0 and "not an ISO 8601 date" in bad.output
    bad = CliRunner().invoke(app, ["score", "--config", str(cfg), "--scored-at", "02/10/2024"])
    assert bad.exit_code != 0 and "--scored-at '02/10/2024': not an ISO 8601" in bad.output
