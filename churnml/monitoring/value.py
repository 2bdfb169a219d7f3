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

**Within-customer order value** (every cutoff ``c``, from the transactions): for each
customer with an order (amount > 0; returns and zero amounts left out) both in the recent
window ``[c − R, c)`` and in the earlier window ``[c − R − E, c − R)`` (``R`` in
``monitoring.spend_change_windows_days``, ``E`` = ``monitoring.spend_change_earlier_days``),

    d_i = mean log amount (recent) − mean log amount (earlier)      (log of a ratio of
                                                                     geometric mean order values)

and ``D(c)`` = the mean of ``d_i`` over those customers (natural-log units of a ratio of
amounts: dimensionless), with its standard error by the CLT (``sd(d) / √n``) — a paired,
within-subject comparison as in a paired t-test. Every customer is compared with himself,
so the spread of spend levels between customers — what makes the cross-sectional spend per
purchase noisy — cancels; the mean of logs (not the log of the mean) has no bias that
depends on the number of orders, which follows the season. The reference is the same
statistic pooled over :data:`REFERENCE_WINDOWS` reference cutoffs (the reference cutoff and
each ``R`` days before it), its standard error clustered by customer (a customer may appear
in several windows; the cluster-robust variance of a mean, Cameron & Miller 2015, "A
Practitioner's Guide to Cluster-Robust Inference", J. Human Resources 50). The change
``Δ = D(c) − D_ref`` (log units; reported as ``exp(Δ) − 1``) is an alarm, cause ``value``,
when ``|Δ| > max(z · √(se_c² + se_ref²), log(1 + value_shift_alarm))`` with
``z`` = ``monitoring.spend_change_z`` (3 by default: no alarm on unchanged simulated data,
60 cutoffs of ten seeds, largest ``|Δ|`` 0.76 of its limit; see benchmarks/README.md). A
uniform spend change by a factor ``f`` moves ``D`` by ``log f``; a change by ``f`` in a share
``s`` of the customers by about ``s · log f`` (−30 % in a quarter: −0.089, exp −8.5 %),
against a standard error of 0.014–0.017 for the 750–800 customers paired over 30 days and
0.010–0.012 for the ~1,000 over 90 days, at 3,000 simulated customers.

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
REFERENCE_WINDOWS = 3  # reference cutoffs of the within-customer order value change
MIN_PAIRED = 30  # fewer customers with orders in both windows: no within-customer statistic


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


def order_value_changes(transactions: pd.DataFrame, cutoff: Any, recent_days: int,
                        earlier_days: int) -> pd.Series:
    """``d_i`` (module docstring) per customer with an order (``amount`` > 0) in both
    ``[c − recent_days, c)`` and ``[c − recent_days − earlier_days, c − recent_days)``:
    mean log amount of the recent orders − mean log amount of the earlier ones (log units);
    indexed by ``customer_id``."""
    cutoff = pd.Timestamp(cutoff)
    split = cutoff - pd.Timedelta(days=recent_days)
    start = split - pd.Timedelta(days=earlier_days)
    ts = pd.to_datetime(transactions["ts"])
    amount = pd.to_numeric(transactions["amount"], errors="coerce")
    keep = ((ts >= start) & (ts < cutoff) & (amount > 0)).to_numpy()
    orders = pd.DataFrame({"customer_id": transactions["customer_id"].to_numpy()[keep],
                           "recent": (ts[keep] >= split).to_numpy(),
                           "log_amount": np.log(amount[keep].to_numpy(float))})
    means = orders.groupby(["customer_id", "recent"])["log_amount"].mean().unstack()
    if not {True, False} <= set(means.columns):
        return pd.Series(dtype=float, name="d")
    return (means[True] - means[False]).dropna().rename("d")


def paired_spend_shift(transactions: pd.DataFrame, cutoffs: list[Any], recent_days: int,
                       earlier_days: int, min_pairs: int = MIN_PAIRED
                       ) -> tuple[float, float, int]:
    """``(D, se, n)``: the mean of :func:`order_value_changes` pooled over ``cutoffs`` (one
    per cutoff and customer with orders in both windows), its standard error clustered by
    customer, ``√(G / (G − 1) · Σ_i (Σ_w (d_iw − D))²) / N`` over the ``G`` customers and
    ``N`` pairs (one cutoff: ``sd(d) / √N``), and ``n`` = ``N``. Fewer than ``min_pairs``
    pairs or a single customer: ``(nan, nan, N)``."""
    d = pd.concat([order_value_changes(transactions, c, recent_days, earlier_days)
                   for c in cutoffs])
    n, groups = len(d), d.index.nunique()
    if n < min_pairs or groups < 2:
        return float("nan"), float("nan"), n
    mean = float(d.mean())
    resid = (d - mean).groupby(level=0).sum().to_numpy(float)
    se = float(np.sqrt(groups / (groups - 1) * np.sum(resid ** 2)) / n)
    return mean, se, n


def paired_reference(transactions: pd.DataFrame, reference_cutoff: Any, windows: list[int],
                     earlier_days: int) -> dict[int, tuple[float, float, int]]:
    """Per recent window ``R`` of ``windows``: :func:`paired_spend_shift` over the
    :data:`REFERENCE_WINDOWS` cutoffs ``reference_cutoff − k · R`` (k = 0, 1, ...)."""
    ref = pd.Timestamp(reference_cutoff)
    return {w: paired_spend_shift(
        transactions, [ref - pd.Timedelta(days=k * w) for k in range(REFERENCE_WINDOWS)],
        w, earlier_days) for w in windows}


def paired_spend_alarms(cutoff: pd.Timestamp, current: Mapping[int, tuple[float, float, int]],
                        reference: Mapping[int, tuple[float, float, int]], z: float,
                        floor: float, earlier_days: int, alarms: list[Alarm]
                        ) -> dict[str, float]:
    """Compare each window's :func:`paired_spend_shift` at ``cutoff`` with the reference's
    (module docstring); an alarm (cause ``value``, check ``paired_spend``) per window whose
    ``|Δ|`` exceeds ``max(z · se, log(1 + floor))``. Returns the row's columns
    ``paired_spend_{R}d_change`` (``exp(Δ) − 1``), ``_limit`` (``|exp(±limit) − 1|`` on the
    side of the change: an alarm exactly when ``|change| > limit``) and ``_customers``."""
    row: dict[str, float] = {}
    for w, (cur, se_cur, n) in current.items():
        ref, se_ref, _ = reference.get(w, (np.nan, np.nan, 0))
        name = f"paired_spend_{w}d"
        row[f"{name}_customers"] = float(n)
        if not all(np.isfinite(x) for x in (cur, se_cur, ref, se_ref)):
            continue
        delta = cur - ref
        limit = max(z * float(np.hypot(se_cur, se_ref)), float(np.log1p(floor)))
        # the limit as a relative change on the side of the change (−4.8 % / +5.0 % for 5 %)
        change, bound = float(np.expm1(delta)), abs(float(np.expm1(np.copysign(limit, delta))))
        row[f"{name}_change"], row[f"{name}_limit"] = change, bound
        if abs(delta) > limit:
            alarms.append(Alarm(
                "value", cutoff, "paired_spend",
                f"order value of the same {n:,} customers, last {w} days against their own "
                f"{earlier_days} days before: {float(np.expm1(cur)):+.1%}, {change:+.1%} from "
                f"the reference's {float(np.expm1(ref)):+.1%} "
                f"(limit {np.sign(delta) * bound:+.1%}: {z:g} standard errors or the "
                f"{floor:.0%} floor)", name, change, bound))
    return row
