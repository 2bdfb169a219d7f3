"""Drift of a column's distribution against a reference: the population stability index.

**Statistic.** PSI = Σ_b (c_b − r_b) · ln(c_b / r_b) over bins ``b``, with ``r_b`` / ``c_b``
the reference / current share of rows in the bin, both floored at :data:`EPS` so empty bins
stay finite (Siddiqi, *Credit Risk Scorecards*, 2006, ch. 8; the symmetric Kullback–Leibler
divergence of the binned distributions). Bins: for numbers the reference deciles (ties
merged) plus one bin for missing values; for categories each category plus missing.

**Why PSI.** It works on the compact profiles the score history keeps
(:mod:`churnml.features.profile`) rather than on raw values (a K-S or Wasserstein test needs
both samples), it treats numbers, categories, scores and segment mixes with one scale, it
does not turn significant on sheer size (K-S p-values flag negligible shifts at 1 M rows,
which is why Evidently switches tests by size), and its conventional thresholds are known to
practitioners: < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 major shift. Under no drift its
expectation is about (bins − 1) · (1/n_ref + 1/n_cur), ≈ 0.006 for 10 bins and 3,000 rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from churnml.features.profile import CATEGORICAL, Profile

EPS = 1e-4  # floor of a bin share
DECILES = np.linspace(0.1, 0.9, 9)
MISSING = "(missing)"


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI of two vectors of bin shares (each summing to 1)."""
    r = np.clip(np.asarray(reference, dtype=float), EPS, None)
    c = np.clip(np.asarray(current, dtype=float), EPS, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _cdf(quantiles: list[float], x: float) -> float:
    """P(X <= x) from a 101-point quantile grid: the largest grid probability whose
    quantile is <= x (1 % resolution; exact at ties, where discrete features pile up)."""
    q = np.asarray(quantiles, dtype=float)
    grid = np.linspace(0.0, 1.0, len(q))
    below = grid[q <= x]
    return float(below.max()) if below.size else 0.0


def numeric_shares(profile: Profile, edges: np.ndarray) -> np.ndarray:
    """Shares of rows in the bins ``(-inf, e1], (e1, e2], ..., (ek, inf)`` and missing."""
    present = 1.0 - profile["missing"]
    qs = profile.get("quantiles")
    if not qs or present <= 0:
        return np.r_[np.zeros(len(edges) + 1), 1.0]
    cdf = np.array([_cdf(qs, e) for e in edges])
    cuts = np.r_[0.0, cdf, 1.0]
    return np.r_[np.diff(cuts) * present, profile["missing"]]


def reference_edges(profile: Profile) -> np.ndarray:
    """Bin edges of a numeric reference: its distinct deciles."""
    qs = profile.get("quantiles")
    if not qs:
        return np.array([])
    q = np.asarray(qs, dtype=float)
    grid = np.linspace(0.0, 1.0, len(q))
    return np.unique(np.interp(DECILES, grid, q))


def categorical_shares(profile: Profile, categories: list[str]) -> np.ndarray:
    present = 1.0 - profile["missing"]
    shares = profile.get("shares", {})
    return np.r_[[shares.get(c, 0.0) * present for c in categories], profile["missing"]]


def profile_psi(reference: Profile, current: Profile) -> float:
    """PSI of one column from its reference and current profiles (same kind)."""
    if reference["kind"] != current["kind"]:
        raise ValueError(f"profiles of different kinds: {reference['kind']} vs {current['kind']}")
    if reference["kind"] == CATEGORICAL:
        cats = sorted(set(reference.get("shares", {})) | set(current.get("shares", {})))
        return psi(categorical_shares(reference, cats), categorical_shares(current, cats))
    edges = reference_edges(reference)
    return psi(numeric_shares(reference, edges), numeric_shares(current, edges))


def mix_psi(reference: Mapping[str, float], current: Mapping[str, float]) -> float:
    """PSI of two category mixes given as counts or shares (e.g. customers per segment)."""
    cats = sorted(set(reference) | set(current))
    r = np.array([float(reference.get(c, 0)) for c in cats])
    c = np.array([float(current.get(c, 0)) for c in cats])
    if r.sum() <= 0 or c.sum() <= 0:
        return float("nan")
    return psi(r / r.sum(), c / c.sum())


def level(value: float, warn: float, alarm: float) -> str:
    """``ok`` | ``warn`` | ``alarm`` for a drift statistic and its two thresholds."""
    if not np.isfinite(value):
        return "ok"
    return "alarm" if value > alarm else "warn" if value > warn else "ok"


def drift_table(reference: Mapping[str, Profile], current: Mapping[str, Profile]
                ) -> list[dict[str, Any]]:
    """PSI per column present in both profile sets: ``[{column, kind, psi}]``."""
    rows = []
    for name in sorted(set(reference) & set(current)):
        ref, cur = reference[name], current[name]
        if ref["kind"] != cur["kind"]:
            continue
        rows.append({"column": name, "kind": ref["kind"], "psi": profile_psi(ref, cur)})
    return rows
