"""No code from data files or configs: crafted headers, segment rules, reason conditions,
feature expressions and ``purchase_where`` (issue 9, "Code that must never run")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from churnml.config import ChurnConfig, ScoringConfig, load_config
from churnml.errors import ConfigError
from churnml.features import build_features
from churnml.features.definitions import DerivedFeature, Feature
from churnml.features.spec import FeatureSpec
from churnml.scoring.reasons import ReasonWriter
from churnml.scoring.segments import assign_segments, check_rule_names, parse_segments

CUTOFF = "2024-03-01"


def _transactions() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "a", "b", "c"],
        "ts": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-01-15", "2024-02-20"]),
        "amount": [10.0, 20.0, 5.0, -3.0],
    })


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return build_features({"transactions": _transactions()}, cutoffs=[CUTOFF])


HOSTILE_HEADERS = [
    # spliced unquoted, this header doubled every row with amount x 999 (revenue x 1000)
    "0 AS z FROM transactions UNION ALL SELECT customer_id, ts, amount * 999, 0",
    "amount*1000 AS amount",
    "read_text('/etc/passwd')",
    "1 AS amount, (SELECT content FROM read_text('/etc/passwd')) AS z",
    'a"b',
    "x; DROP TABLE transactions; --",
    "x y",
]


@pytest.mark.parametrize("header", HOSTILE_HEADERS)
def test_crafted_header_changes_no_value(header: str, reference: pd.DataFrame) -> None:
    tx = _transactions()
    tx.insert(2, header, 1.0)
    got = build_features({"transactions": tx}, cutoffs=[CUTOFF])
    pd.testing.assert_frame_equal(got, reference)
    assert got["net_revenue_total"].tolist() == [30.0, 5.0, -3.0]


@settings(max_examples=12, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
               max_size=30).filter(lambda h: h not in ("customer_id", "ts", "amount")))
def test_any_extra_header_changes_no_value(header: str) -> None:
    tx = _transactions()
    tx[header] = "=1+1"
    got = build_features({"transactions": tx}, cutoffs=[CUTOFF])
    assert got["net_revenue_total"].tolist() == [30.0, 5.0, -3.0]
    assert got["purchases_total"].tolist() == [2.0, 1.0, 0.0]


def test_header_with_a_space_is_usable_in_a_custom_feature() -> None:
    tx = _transactions().assign(**{"sales channel": ["app", "web", "app", "app"]})
    spec = FeatureSpec(groups=["monetary"], extra=[Feature(
        name="app_spend", table="transactions", agg="sum", column="amount",
        where="\"sales channel\" = 'app' AND amount > 0")])
    got = build_features({"transactions": tx}, cutoffs=[CUTOFF], spec=spec)
    assert got.set_index("customer_id")["app_spend"].to_dict() == {"a": 10.0, "b": 5.0,
                                                                    "c": 0.0}


@pytest.mark.parametrize("sql", [
    "read_csv('/etc/passwd') IS NOT NULL",
    "churn_probability > (SELECT count(*) FROM read_text('/etc/passwd'))",
    "getenv('HOME') = 'x'",
    "churn_probability > 0.5; COPY t TO '/tmp/x'",
])
def test_segment_rule_outside_the_allow_list_is_refused_at_config_load(sql, tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"data: {{dataset: simulated}}\nscoring:\n  segments:\n"
                    f"    - {{name: vip, when: \"{sql}\", action: call}}\n")
    with pytest.raises(ConfigError, match=r"scoring\.segments\[vip\]\.when: "):
        load_config(path)
    # constructed without validation (model_construct), the scorer's parser still refuses
    cfg = ScoringConfig.model_construct(segments=[{"name": "vip", "when": sql, "action": "c"}],
                                        default_segment={"name": "standard", "action": "n"})
    with pytest.raises(ConfigError, match=r"scoring\.segments\[vip\]\.when"):
        parse_segments(cfg)


def test_misspelt_constant_in_a_rule_is_a_config_error() -> None:
    from churnml.scoring.score import survival_score_columns

    cfg = ScoringConfig(segments=[{"name": "vip", "action": "call", "priority": 1,
                                   "when": "churn_probability >= high_risk_probabilty"}])
    with pytest.raises(ConfigError, match=r"segments\[vip\].*'high_risk_probabilty'.*"
                                          r"did you mean 'high_risk_probability'"):
        check_rule_names(parse_segments(cfg), cfg, {"purchases_90d"})
    # every default rule names known things only
    default = ScoringConfig()
    known = {"days_since_last_purchase", "net_revenue_total", "nps_detractor", "tenure_days",
             "purchases_365d", *survival_score_columns()}  # as the scorer's check passes
    check_rule_names(parse_segments(default), default, known)


def test_scorer_refuses_a_misspelt_rule_before_any_work() -> None:
    from churnml.scoring.loading import ScoringModels
    from churnml.scoring.score import Scorer

    class _Model:  # only the feature list is read at construction
        feature_dtypes_ = {"purchases_90d": "float64"}
        feature_names_in_ = ["purchases_90d"]

    models = ScoringModels(_Model(), _Model(), "c v1", "l v1")
    bad = ScoringConfig(segments=[{"name": "big", "action": "mail", "priority": 1,
                                   "when": "purchases_90 >= 3"}])
    with pytest.raises(ConfigError, match=r"segments\[big\].*'purchases_90'"):
        Scorer(models, bad, ChurnConfig(), pd.Timestamp(CUTOFF))
    # a rule naming a built-in feature the data may lack is accepted (skipped later)
    ok = ScoringConfig(segments=[{"name": "det", "action": "call", "priority": 1,
                                  "when": "nps_detractor = 1"}])
    Scorer(models, ok, ChurnConfig(), pd.Timestamp(CUTOFF))


def test_rule_sql_is_regenerated_with_quoted_names() -> None:
    cfg = ScoringConfig(segments=[{"name": "odd", "action": "a", "priority": 1,
                                   "when": '"risk score" >= t'}],
                        thresholds={"t": 0.5}, quantiles={})
    frame = pd.DataFrame({"risk score": [0.2, 0.7, np.nan]})
    assert assign_segments(frame, parse_segments(cfg), {"t": 0.5}).tolist() == [
        "standard", "odd", "standard"]


def test_reason_condition_outside_the_allow_list_is_refused() -> None:
    templates = {"nps_latest": [{"when": "value = (SELECT 1)", "text": "x"}]}
    with pytest.raises(ValidationError, match=r"reason_templates\[nps_latest\]\[0\]\.when"):
        ScoringConfig(reason_templates=templates)
    with pytest.raises(ConfigError, match=r"reason_templates\[nps_latest\]\[0\]\.when"):
        ReasonWriter(templates, {}, pd.Timestamp(CUTOFF))


@pytest.mark.parametrize("make", [
    lambda: Feature(name="f", table="transactions", agg="sum", column="read_text('x')"),
    lambda: Feature(name="f", table="transactions", agg="count", where="getenv('x') = '1'"),
    lambda: DerivedFeature(name="f", op="expr", expr="(SELECT 1) + purchases_90d"),
    lambda: FeatureSpec(purchase_where="amount > 0 AND read_csv('x') IS NULL"),
])
def test_feature_expressions_outside_the_allow_list_are_refused(make) -> None:
    with pytest.raises((ConfigError, ValidationError), match="not allowed"):
        make()


def test_segment_names_with_the_same_file_name_are_refused(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "data: {dataset: simulated}\nscoring:\n  segments:\n"
        "    - {name: VIP at risk, when: churn_probability > 0.5, action: call, priority: 1}\n"
        "    - {name: vip-at-risk, when: churn_probability > 0.2, action: mail, priority: 2}\n")
    with pytest.raises(ConfigError, match=r"'VIP at risk' and 'vip-at-risk'.*vip_at_risk\.csv"):
        load_config(path)
