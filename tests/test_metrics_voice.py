"""NPS, CSAT and CES: pure functions, per-period KPIs and the per-customer signal."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_metrics_support import (
    CSAT_SATISFIED,
    NPS_DETRACTOR,
    NPS_PROMOTER,
    random_data,
    simulated,
)

from churnml.config import VoiceConfig
from churnml.metrics import ces, csat, csat_mean, customer_voice, nps, nps_class, voice_kpis


def test_worked_examples() -> None:
    assert nps([10, 9, 8, 7, 3]) == pytest.approx(20.0)  # 40 % promoters - 20 % detractors
    assert nps([0, 6]) == -100.0 and nps([9, 10]) == 100.0
    assert math.isnan(nps([]))
    assert csat([5, 4, 3, 1]) == 50.0 and csat_mean([5, 4, 3, 1]) == 3.25
    assert ces([1, 2, 6]) == 3.0 and math.isnan(ces([]))
    assert list(nps_class([10, 9, 8, 7, 6, 0])) == ["promoter", "promoter", "passive",
                                                    "passive", "detractor", "detractor"]


def test_thresholds_come_from_voice_config() -> None:
    strict = VoiceConfig(nps_promoter_min=10, nps_detractor_max=7, csat_satisfied_min=5)
    assert nps([10, 9, 8, 7, 3], strict) == pytest.approx(20.0 - 40.0)
    assert csat([5, 4, 3, 1], strict) == 25.0
    data = simulated()
    default = voice_kpis(data, "year")
    custom = voice_kpis(data, "year", voice=strict)
    assert (custom["promoters"] < default["promoters"]).all()
    assert (custom["detractors"] > default["detractors"]).all()


def test_voice_kpis_match_plain_pandas() -> None:
    data = simulated()
    sv = data.surveys.assign(period=lambda d: d["ts"].dt.to_period("M").dt.start_time)
    n = sv[sv["kind"] == "nps"]
    c = sv[sv["kind"] == "csat"]
    e = sv[sv["kind"] == "ces"]
    g = n.groupby("period")["score"]
    ref = pd.DataFrame({
        "nps_responses": g.size(),
        "promoters": g.apply(lambda s: (s >= NPS_PROMOTER).sum()),
        "detractors": g.apply(lambda s: (s <= NPS_DETRACTOR).sum()),
        "csat_responses": c.groupby("period").size(),
        "csat_mean": c.groupby("period")["score"].mean(),
        "ces_mean": e.groupby("period")["score"].mean(),
    })
    ref["nps"] = 100 * (ref["promoters"] - ref["detractors"]) / ref["nps_responses"]
    ref["csat"] = 100 * c.groupby("period")["score"].apply(
        lambda s: (s >= CSAT_SATISFIED).mean())
    ref.index = ref.index.as_unit("us")
    k = voice_kpis(data, "month").set_index("period")
    pd.testing.assert_frame_equal(k[ref.columns], ref, check_dtype=False, check_names=False)
    pct = k[["promoters_pct", "passives_pct", "detractors_pct"]].sum(axis=1)
    np.testing.assert_allclose(pct, 100.0)


@pytest.mark.parametrize("by", ["country", "cohort"])
def test_segment_counts_sum_to_totals(by: str) -> None:
    data = simulated()
    cols = ["nps_responses", "promoters", "passives", "detractors", "csat_responses",
            "csat_satisfied", "ces_responses"]
    seg = voice_kpis(data, "quarter", by=by).groupby("period")[cols].sum()
    total = voice_kpis(data, "quarter").set_index("period")[cols]
    pd.testing.assert_frame_equal(seg, total, check_dtype=False)


def test_customer_voice_matches_plain_pandas() -> None:
    data = simulated()
    as_of = pd.Timestamp("2024-05-01")
    cv = customer_voice(data, as_of).set_index("customer_id")
    sv = data.surveys[data.surveys["ts"] < as_of].sort_values(["ts", "score"])
    for kind in ("nps", "csat", "ces"):
        k = sv[sv["kind"] == kind]
        last = k.groupby("customer_id").last()
        np.testing.assert_allclose(cv.loc[last.index, f"{kind}_last"], last["score"])
        assert (cv.loc[last.index, f"{kind}_last_ts"] == last["ts"]).all()
        counts = k.groupby("customer_id").size().reindex(cv.index, fill_value=0)
        assert (cv[f"{kind}_responses"] == counts).all()
        assert cv.drop(last.index)[f"{kind}_last"].isna().all()
    klass = cv["nps_class"]
    assert (klass[cv["nps_last"] >= NPS_PROMOTER] == "promoter").all()
    assert (klass[cv["nps_last"] <= NPS_DETRACTOR] == "detractor").all()
    assert klass[cv["nps_last"].isna()].isna().all()


def test_without_surveys_everything_is_nan() -> None:
    data = dataclasses.replace(simulated(), surveys=None)
    k = voice_kpis(data, "quarter")
    assert len(k) == 8 and k.drop(columns=["period", "complete"]).isna().all().all()
    cv = customer_voice(data)
    assert (cv["nps_responses"] == 0).all() and cv["nps_last"].isna().all()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 10), max_size=30))
def test_nps_bounded(scores: list[int]) -> None:
    value = nps(scores)
    assert math.isnan(value) if not scores else -100.0 <= value <= 100.0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_kpis_bounded(seed: int) -> None:
    data = random_data(seed)
    k = voice_kpis(data, "month", by="plan")
    for col in ("promoters_pct", "detractors_pct", "csat"):
        v = k[col].to_numpy()
        assert (np.isnan(v) | ((v >= 0) & (v <= 100))).all()
    v = k["nps"].to_numpy()
    assert (np.isnan(v) | ((v >= -100) & (v <= 100))).all()
