"""Voice of the customer: NPS, CSAT and CES, per period and per customer.

Scales and thresholds come from :class:`~churnml.config.VoiceConfig` (defaults: NPS 0-10,
promoter >= 9, detractor <= 6; CSAT 1-5, satisfied >= 4; CES 1-7, lower effort is better).
Sources: Reichheld (2003), "The One Number You Need to Grow", Harvard Business Review 81(12)
for NPS; Dixon, Freeman & Toman (2010), "Stop Trying to Delight Your Customers", HBR 88(7)
for CES.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnml.config import ChurnConfig, Period, VoiceConfig
from churnml.data.customer_data import CustomerData
from churnml.data.schema import SURVEY_KINDS
from churnml.engine.sql import literal
from churnml.metrics._engine import (
    MetricsEngine,
    as_of_data,
    engine,
    finish,
    percent,
)

PROMOTER, PASSIVE, DETRACTOR = "promoter", "passive", "detractor"
VOICE_COUNTS = [
    "nps_responses", "promoters", "passives", "detractors", "csat_responses", "csat_satisfied",
    "ces_responses",
]
VOICE_RATES = [
    "nps", "promoters_pct", "passives_pct", "detractors_pct", "csat", "csat_mean", "ces_mean",
]
VOICE_COLUMNS = VOICE_COUNTS + VOICE_RATES


def _scores(scores: Any) -> np.ndarray:
    s = np.asarray(scores, dtype=float).ravel()
    return s[~np.isnan(s)]


def _nps_from_counts(promoters: Any, detractors: Any, responses: Any) -> Any:
    return np.subtract(percent(promoters, responses), percent(detractors, responses))


def nps(scores: Any, voice: VoiceConfig | None = None) -> float:
    """Net Promoter Score: ``% promoters (>= 9) - % detractors (<= 6)``, in [-100, 100].

    NaN without answers. Example: ``[10, 9, 8, 7, 3] -> 40 - 20 = 20.0``.
    """
    voice = voice or VoiceConfig()
    s = _scores(scores)
    promoters = np.sum(s >= voice.nps_promoter_min)
    detractors = np.sum(s <= voice.nps_detractor_max)
    return float(_nps_from_counts(promoters, detractors, s.size))


def nps_class(scores: Any, voice: VoiceConfig | None = None) -> np.ndarray:
    """``'promoter'`` / ``'passive'`` / ``'detractor'`` per NPS answer (None when missing)."""
    voice = voice or VoiceConfig()
    s = np.asarray(scores, dtype=float)
    return np.select(
        [s >= voice.nps_promoter_min, s <= voice.nps_detractor_max, ~np.isnan(s)],
        [PROMOTER, DETRACTOR, PASSIVE], default=None,
    )


def csat(scores: Any, voice: VoiceConfig | None = None) -> float:
    """Customer satisfaction, percent: share of answers >= 4 (satisfied) on the 1-5 scale."""
    voice = voice or VoiceConfig()
    s = _scores(scores)
    return float(percent(np.sum(s >= voice.csat_satisfied_min), s.size))


def csat_mean(scores: Any) -> float:
    """Mean CSAT answer, scale points (1-5); NaN without answers."""
    s = _scores(scores)
    return float(s.mean()) if s.size else float("nan")


def ces(scores: Any) -> float:
    """Customer effort score: mean answer, scale points (1-7, lower effort is better)."""
    return csat_mean(scores)


def _voice(eng: MetricsEngine, period: str, by: str | None) -> pd.DataFrame:
    if not eng.has("surveys"):
        return eng.nan_grid(period, by, VOICE_COLUMNS)
    v = eng.voice
    is_kind = {k: f"kind = {literal(k)}" for k in SURVEY_KINDS}
    nps_k, csat_k, ces_k = is_kind["nps"], is_kind["csat"], is_kind["ces"]
    aggs = {
        "nps_responses": f"count(*) FILTER (WHERE {nps_k})",
        "promoters": f"count(*) FILTER (WHERE {nps_k} AND score >= {v.nps_promoter_min!r})",
        "detractors": f"count(*) FILTER (WHERE {nps_k} AND score <= {v.nps_detractor_max!r})",
        "csat_responses": f"count(*) FILTER (WHERE {csat_k})",
        "csat_satisfied": f"count(*) FILTER (WHERE {csat_k} "
                          f"AND score >= {v.csat_satisfied_min!r})",
        "csat_mean": f"avg(score) FILTER (WHERE {csat_k})",
        "ces_responses": f"count(*) FILTER (WHERE {ces_k})",
        "ces_mean": f"avg(score) FILTER (WHERE {ces_k})",
    }
    counts = [c for c in aggs if c in VOICE_COUNTS]
    out = eng.summarise("SELECT * FROM surveys", aggs, period, by, counts=counts)
    out["passives"] = out["nps_responses"] - out["promoters"] - out["detractors"]
    for klass in ("promoters", "passives", "detractors"):
        out[f"{klass}_pct"] = percent(out[klass], out["nps_responses"])
    out["nps"] = _nps_from_counts(out["promoters"], out["detractors"], out["nps_responses"])
    out["csat"] = percent(out["csat_satisfied"], out["csat_responses"])
    keys = [c for c in out.columns if c not in VOICE_COLUMNS]
    return out[keys + VOICE_COLUMNS]


def voice_kpis(
    data: CustomerData,
    period: Period = "month",
    by: str | None = None,
    voice: VoiceConfig | None = None,
    churn: ChurnConfig | None = None,
) -> pd.DataFrame:
    """Survey KPIs per period; every response counts (a customer may answer twice).

    Counts: ``nps_responses``, ``promoters`` / ``passives`` / ``detractors``,
    ``csat_responses``, ``csat_satisfied``, ``ces_responses``. Rates (NaN without answers):
    ``promoters_pct`` etc. (percent of NPS answers), ``nps`` = promoters_pct -
    detractors_pct (points, -100..100), ``csat`` = csat_satisfied / csat_responses * 100
    (percent), ``csat_mean`` and ``ces_mean`` (mean answer, scale points). All NaN when the
    surveys table is absent. ``churn`` only matters for ``by="cohort"`` (acquisition).
    """
    return finish(_voice(engine(data, churn, voice), period, by), by)


def customer_voice(
    data: CustomerData,
    as_of: pd.Timestamp | str | None = None,
    voice: VoiceConfig | None = None,
) -> pd.DataFrame:
    """Per-customer voice signal from answers before ``as_of`` (default: end of data).

    One row per customer seen in any table: for each kind k in (nps, csat, ces)
    ``k_last`` (latest answer; ties broken by the higher score), ``k_last_ts``,
    ``k_responses``; plus ``nps_class`` (promoter / passive / detractor of the latest NPS
    answer, missing without one).
    """
    known, _ = as_of_data(data, as_of)
    eng = MetricsEngine(known, voice=voice)
    surveys = "surveys" if eng.has("surveys") else (
        "(SELECT customer_id, NULL::TIMESTAMP AS ts, NULL::VARCHAR AS kind, "
        "NULL::DOUBLE AS score FROM universe WHERE FALSE)"
    )
    inner, outer = [], []
    for k in SURVEY_KINDS:
        cond = f"FILTER (WHERE s.kind = {literal(k)})"
        inner += [f"max({{'ts': s.ts, 'score': s.score}}) {cond} AS {k}_latest",
                  f"count(s.kind) {cond} AS {k}_responses"]
        outer += [f"{k}_latest.score AS {k}_last", f"{k}_latest.ts AS {k}_last_ts",
                  f"{k}_responses"]
    out = eng.con.execute(f"""
        SELECT customer_id, {', '.join(outer)} FROM (
            SELECT u.customer_id, {', '.join(inner)}
            FROM universe u LEFT JOIN {surveys} s USING (customer_id) GROUP BY ALL
        ) ORDER BY customer_id""").df()
    out["nps_class"] = pd.Series(nps_class(out["nps_last"], eng.voice), dtype="str")
    return out
