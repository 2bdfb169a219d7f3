"""The value model monitored: realized vs predicted value once labels mature, and shifts of
the value side (``value_if_retained``, spend features) at every cutoff.

**Realized vs predicted** (a matured cutoff; the monitored population with its labels,
:func:`churnml.labels.build_labels`: ``ltv`` = net revenue in ``[c, c + H)``):

* ``value_ratio`` = Σ ltv / Σ ``expected_value``: ``expected_value`` = E[revenue over the
  horizon] already discounts the chance of leaving (:mod:`churnml.scoring.score`), so it is
  compared with every customer's realized revenue; 1 = right in total;
* ``retained_ratio`` = Σ ltv / Σ ``value_if_retained`` over the customers who did not churn
  (``value_if_retained`` = E[revenue | not churned], the factor of value at risk);
* ``value_gini``: normalized Gini of the realized revenue ordered by ``expected_value``
  (:func:`churnml.training.evaluation.normalized_gini`; 1 perfect, 0 random).

A ratio moved from the reference's (the same ratio on the reference window, out of sample)
by more than ``monitoring.value_ratio_margin`` (relative) is an alarm, cause ``value``.

**Shift of the value side** (every cutoff, before labels), against the reference, from the
101-quantile profiles the history keeps (means by the trapezoid rule over the quantile
function up to its 99th percentile, the same on both sides):

* the relative change of the mean ``value_if_retained``;
* the relative change of the **spend per purchase** over each window ``W`` with both
  features, mean ``spend_{W}d`` / mean ``purchases_{W}d`` (the base's money per order in the
  ``W`` days before the cutoff). Spend totals move with the season and the number of
  purchases (on the simulated shop they swing ±20 % between October and April with nothing
  changed); the money per order does not, unless what customers spend changed.

A change beyond ``monitoring.value_shift_alarm`` — or, if larger, :data:`NOISE_Z` standard
errors of the spend per purchase (amounts taken to vary with a coefficient of variation of
1 over the ``P`` purchases of each side: √(1/P_ref + 1/P_cur); ±11 % for the 30-day window
of 3,000 simulated customers, ±5 % at 20,000) — is an alarm, cause ``value``. Why not PSI
alone: a 30 % spend cut in a quarter of the base moves the mean spend by 7.5 % but leaves
most deciles of a wide, skewed spend distribution where they were — PSI stays far below
0.25.

The realized / predicted ratios are reported for every matured cutoff but raise an alarm only
with ``monitoring.value_ratio_margin`` set: the realized revenue of a horizon follows the
season, which a value model trained without it does not predict (simulated shop, unchanged
data: 1.4 on the October cutoff's horizon, 1.05 on January's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from churnml.features.profile import NUMERIC, Profile
from churnml.monitoring.alarms import Alarm
from churnml.training.evaluation import normalized_gini

VALUE = "expected_value"
RETAINED = "value_if_retained"
LTV = "ltv"
CHURNED = "churned"
RATIOS = ("value_ratio", "retained_ratio")
SPEND = re.compile(r"spend_(\d+)d")
NOISE_Z = 3.0  # a spend-per-purchase change within 3 standard errors raises no alarm


def value_metrics(frame: pd.DataFrame, prefix: str = "") -> dict[str, float]:
    """``value_ratio``, ``retained_ratio``, ``value_gini`` (module docstring) and the totals
    behind them, of a frame with ``ltv``, ``churned`` and the predicted value columns it has
    (none: empty)."""
    out: dict[str, float] = {}
    ltv = frame[LTV].to_numpy(float)
    if VALUE in frame:
        pred = frame[VALUE].to_numpy(float)
        out["value_ratio"] = _ratio(ltv.sum(), pred.sum())
        out["value_gini"] = normalized_gini(ltv, pred) if len(ltv) > 1 else float("nan")
        out["realized_value_total"] = float(ltv.sum())
        out["predicted_value_total"] = float(pred.sum())
    if RETAINED in frame and CHURNED in frame:
        stayed = frame[CHURNED].to_numpy(int) == 0
        out["retained_ratio"] = _ratio(ltv[stayed].sum(),
                                       frame[RETAINED].to_numpy(float)[stayed].sum())
    return {f"{prefix}{k}": v for k, v in out.items()}


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def profile_mean(profile: Profile) -> float:
    """Mean of a numeric profile's present values below their 99th percentile: the
    trapezoid rule over its quantile function (101 points; the top segment, which reaches
    to the single largest value, is left out); NaN for categories or an empty column."""
    qs = profile.get("quantiles")
    if profile.get("kind") != NUMERIC or not qs:
        return float("nan")
    q = np.asarray(qs, dtype=float)[:-1]
    return float(np.mean((q[1:] + q[:-1]) / 2.0))


def mean_changes(reference: Mapping[str, Profile], current: Mapping[str, Profile],
                 columns: list[str]) -> dict[str, float]:
    """Relative change of the profile mean, current / reference − 1, per column present in
    both with a positive reference mean."""
    out = {}
    for name in columns:
        if name in reference and name in current:
            ref, cur = profile_mean(reference[name]), profile_mean(current[name])
            if np.isfinite(ref) and ref > 0 and np.isfinite(cur):
                out[name] = cur / ref - 1.0
    return out


def spend_per_purchase(profiles: Mapping[str, Profile]) -> dict[str, tuple[float, float]]:
    """``spend_per_purchase_{W}d`` = mean ``spend_{W}d`` / mean ``purchases_{W}d`` for each
    window with both profiles, with the number of purchases behind it (mean × rows)."""
    out = {}
    for name in profiles:
        match = SPEND.fullmatch(name)
        if match and f"purchases_{match[1]}d" in profiles:
            counts = profiles[f"purchases_{match[1]}d"]
            spend, count = profile_mean(profiles[name]), profile_mean(counts)
            if np.isfinite(spend) and np.isfinite(count) and count > 0:
                rows = float(counts.get("n", 0)) * (1.0 - float(counts.get("missing", 0.0)))
                out[f"spend_per_purchase_{match[1]}d"] = (spend / count, count * rows)
    return out


def spend_per_purchase_changes(reference: Mapping[str, Profile],
                               current: Mapping[str, Profile]
                               ) -> dict[str, tuple[float, float]]:
    """Per :func:`spend_per_purchase` window: the relative change against the reference and
    its noise, the standard error of a ratio of two spends per purchase over ``P_ref`` and
    ``P_cur`` purchases whose amounts vary with a coefficient of variation of 1:
    √(1 / P_ref + 1 / P_cur)."""
    ref, cur = spend_per_purchase(reference), spend_per_purchase(current)
    out = {}
    for k in sorted(set(ref) & set(cur)):
        (r, n_ref), (c, n_cur) = ref[k], cur[k]
        if r > 0 and n_ref > 0 and n_cur > 0:
            out[k] = (c / r - 1.0, float(np.sqrt(1.0 / n_ref + 1.0 / n_cur)))
    return out


def shift_limit(limit: float, noise: float = 0.0) -> float:
    """The alarm limit of a relative change: ``limit``, or :data:`NOISE_Z` times its noise
    when that is larger (a small base's spend per purchase moves by chance)."""
    return max(limit, NOISE_Z * noise)


def shift_alarms(cutoff: pd.Timestamp, changes: Mapping[str, tuple[float, float]],
                 limit: float, alarms: list[Alarm]) -> None:
    """An alarm (cause ``value``) per statistic whose relative change (``changes``: name ->
    (change, noise)) exceeds its :func:`shift_limit`."""
    for name, (change, noise) in changes.items():
        bound = shift_limit(limit, noise)
        if abs(change) > bound:
            alarms.append(Alarm("value", cutoff, "mean_shift",
                                f"{name.replace('_', ' ')} moved {change:+.1%} from the "
                                f"reference (limit ±{bound:.1%})", name, change, bound))


def ratio_alarms(row: Mapping[str, Any], reference: Mapping[str, float], margin: float | None,
                 alarms: list[Alarm]) -> None:
    """An alarm (cause ``value``) per ratio of ``row`` (a matured cutoff's ``real_*``)
    that moved from the reference's by more than ``margin`` (relative; None: no alarm)."""
    if margin is None:
        return
    for name in RATIOS:
        real, ref = row.get(f"real_{name}", np.nan), reference.get(name, np.nan)
        if not (np.isfinite(real) and np.isfinite(ref) and ref > 0):
            continue
        change = real / ref - 1.0
        if abs(change) > margin:
            what = "realized / predicted value" if name == "value_ratio" else \
                "realized / predicted value of the retained"
            alarms.append(Alarm("value", row["cutoff"], name,
                                f"{what} {real:.2f} against {ref:.2f} on the reference "
                                f"({change:+.1%}, margin ±{margin:.0%})", name, real, ref))
