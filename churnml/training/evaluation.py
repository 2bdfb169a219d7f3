"""Evaluation metrics for churn probabilities and customer-value predictions.

Ranking metrics (lift, capture, Gini, decile sums) walk the customers from the highest
score down. Customers with tied scores are treated as one block whose value is spread
evenly over its positions: the expected result under a random order within ties, which is
also how ROC AUC counts ties. Cumulative curves are therefore piecewise linear between the
ends of tie blocks.

Shares, rates and MAPE are fractions (0.25 = 25 %); money is in the input currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    roc_auc_score,
    root_mean_squared_error,
)

N_BINS = 10  # deciles
TOP_DECILE = 0.1
CAPTURE_SHARES = (0.1, 0.2)  # top 10 % and top 20 % revenue capture
VAR_SHARES = (0.05, 0.1, 0.2)  # value-at-risk coverage reported at these shares of customers
# Revenue lost to churn on real data, in words (:func:`revenue_lost` is the formula)
LOST_REVENUE_TEXT = ("churned x the customer's net revenue in the {horizon} days before the "
                     "cutoff (stayers lose nothing; a negative net revenue counts as 0)")


def _arrays(**named: Any) -> list[np.ndarray]:
    """Equal-length finite float arrays, or a ValueError naming the bad argument."""
    out = [np.asarray(v, dtype=float).ravel() for v in named.values()]
    lengths = {name: a.shape[0] for name, a in zip(named, out, strict=True)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"arrays differ in length: {lengths}")
    if out[0].shape[0] == 0:
        raise ValueError(f"empty input: {lengths}")
    for name, a in zip(named, out, strict=True):
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(
                f"{name}: {int(bad.sum())} missing or infinite value(s), "
                f"e.g. at position {int(np.flatnonzero(bad)[0])}"
            )
    return out


def _binary(y: np.ndarray) -> np.ndarray:
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y: classification labels must be 0/1")
    return y


def _share_key(prefix: str, share: float, suffix: str = "") -> str:
    return f"{prefix}_{round(share * 100):d}{suffix}"


def _tie_blocks(score: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Customers counted and value summed at the end of each tie block, highest score first.

    Returns ``(count, cum_value)``, both starting at 0 and strictly increasing in count.
    """
    order = np.argsort(-score, kind="stable")
    s = score[order]
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    cum = np.cumsum(value[order])
    return np.append(0.0, ends + 1.0), np.append(0.0, cum[ends])


def cumulative_value(score: Any, value: Any, positions: Any) -> np.ndarray:
    """Value summed over the ``positions`` highest-scored customers (ties spread evenly);
    ``positions`` may be fractional."""
    score, value = _arrays(score=score, value=value)
    count, cum = _tie_blocks(score, value)
    return np.interp(np.asarray(positions, dtype=float), count, cum)


def capture(actual: Any, score: Any, share: float) -> float:
    """Share of total ``actual`` value held by the top ``share`` of customers by ``score``.

    ``capture = sum(actual over the top share*n by score) / sum(actual)``; interpolated
    linearly when ``share*n`` is not a whole number. Example: actual ``[10, 0, 5, 5]``,
    score ``[4, 3, 2, 1]``: capture at 25 % is 10/20 = 0.5.
    """
    actual, score = _arrays(actual=actual, score=score)
    total = actual.sum()
    if total == 0:
        return float("nan")
    return float(cumulative_value(score, actual, share * actual.shape[0]) / total)


def cumulative_gains(actual: Any, score: Any) -> pd.DataFrame:
    """Cumulative gains curve: ``population_share`` (top share by score) vs ``value_share``
    (share of total actual value held), one point per tie block, from (0, 0) to (1, 1)."""
    actual, score = _arrays(actual=actual, score=score)
    count, cum = _tie_blocks(score, actual)
    return pd.DataFrame(
        {"population_share": count / actual.shape[0], "value_share": cum / actual.sum()}
    )


def _gini(actual: np.ndarray, score: np.ndarray) -> float:
    """``2 x (area under the cumulative gains curve - 1/2)`` (trapezoids)."""
    count, cum = _tie_blocks(score, actual)
    x, y = count / actual.shape[0], cum / actual.sum()
    return float(2.0 * (np.trapezoid(y, x) - 0.5))


def normalized_gini(actual: Any, pred: Any) -> float:
    """Normalized Gini: ``Gini(pred ordering) / Gini(perfect ordering)``, in [-1, 1].

    ``Gini(s) = 2 x (A(s) - 1/2)`` where ``A(s)`` is the area under the cumulative gains
    curve (share of total actual value against share of customers, ordered by ``s``
    descending). The perfect ordering sorts by ``actual`` itself, so a perfect model
    scores 1, a reversed one -1 and a random one about 0. Without ties this equals the
    Kaggle "normalized Gini" (Allstate Claim Prediction Challenge, 2011); see also Frees,
    Meyers & Cummings (2011), "Summarizing insurance scores using a Gini index", JASA
    106(495). For 0/1 ``actual`` it equals ``2 x ROC AUC - 1``, ties included.
    """
    actual, pred = _arrays(actual=actual, pred=pred)
    if actual.sum() == 0:
        return float("nan")
    best = _gini(actual, actual)
    return float(_gini(actual, pred) / best) if best != 0 else float("nan")


def _bin_edges(n: int, n_bins: int) -> np.ndarray:
    """Integer rank boundaries of ``n_bins`` (almost) equal bins of ``n`` customers."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return np.round(np.linspace(0, n, n_bins + 1))


def _binned_sums(score: np.ndarray, value: np.ndarray, n_bins: int) -> np.ndarray:
    """Sum of ``value`` in each rank bin by ``score`` (bin 1 = highest scores)."""
    return np.diff(cumulative_value(score, value, _bin_edges(score.shape[0], n_bins)))


def lift_table(actual: Any, score: Any, n_bins: int = N_BINS) -> pd.DataFrame:
    """Lift and cumulative gains by rank bin (bin 1 = highest scores).

    Columns: ``bin``, ``n``, ``value`` (sum of ``actual``: positives for 0/1 labels),
    ``rate`` (= value / n), ``lift`` (= rate / overall rate), ``cumulative_share``
    (share of customers in bins 1..k), ``cumulative_gain`` (share of total value in bins
    1..k) and ``cumulative_lift`` (= cumulative_gain / cumulative_share).
    """
    actual, score = _arrays(actual=actual, score=score)
    n = actual.shape[0]
    counts = np.diff(_bin_edges(n, n_bins))
    values = _binned_sums(score, actual, n_bins)
    overall = actual.sum() / n
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = values / counts
        cum_share = np.cumsum(counts) / n
        cum_gain = np.cumsum(values) / actual.sum()
        table = pd.DataFrame(
            {
                "bin": np.arange(1, n_bins + 1),
                "n": counts.astype(int),
                "value": values,
                "rate": rate,
                "lift": rate / overall,
                "cumulative_share": cum_share,
                "cumulative_gain": cum_gain,
                "cumulative_lift": cum_gain / cum_share,
            }
        )
    return table[table["n"] > 0].reset_index(drop=True)


def calibration_table(
    y: Any, p: Any, n_bins: int = N_BINS, strategy: Literal["quantile", "uniform"] = "quantile"
) -> pd.DataFrame:
    """Reliability table: observed churn rate against mean predicted probability per bin.

    Bins as :func:`sklearn.calibration.calibration_curve` (quantile edges of ``p`` or
    uniform on [0, 1]; empty bins dropped). Columns: ``bin``, ``p_low``, ``p_high``
    (smallest and largest prediction in the bin), ``n``, ``mean_predicted``,
    ``observed_rate`` and ``gap`` (= observed_rate - mean_predicted).
    """
    y, p = _arrays(y=y, p=p)
    _binary(y)
    if p.min() < 0 or p.max() > 1:
        raise ValueError("p: probabilities must lie in [0, 1]")
    if strategy == "quantile":
        edges = np.percentile(p, np.linspace(0.0, 100.0, n_bins + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    bins = np.searchsorted(edges[1:-1], p)
    table = (
        pd.DataFrame({"bin": bins + 1, "p": p, "y": y})
        .groupby("bin")
        .agg(
            p_low=("p", "min"),
            p_high=("p", "max"),
            n=("p", "size"),
            mean_predicted=("p", "mean"),
            observed_rate=("y", "mean"),
        )
        .reset_index()
    )
    table["gap"] = table["observed_rate"] - table["mean_predicted"]
    return table


def expected_calibration_error(y: Any, p: Any, n_bins: int = N_BINS) -> float:
    """ECE = sum over quantile bins of ``n_b / n x |observed_rate_b - mean_predicted_b|``
    (Naeini, Cooper & Hauskrecht 2015)."""
    table = calibration_table(y, p, n_bins)
    return float((table["n"] * table["gap"].abs()).sum() / table["n"].sum())


def classification_metrics(y: Any, p: Any) -> dict[str, float]:
    """Churn-probability metrics.

    ``roc_auc``; ``pr_auc`` (average precision); ``brier`` = mean (p - y)^2; ``log_loss``
    = -mean(y log p + (1 - y) log(1 - p)); ``top_decile_lift`` = churn rate among the 10 %
    highest p / base rate; ``ece`` (10 quantile bins); ``base_rate`` = mean y; ``n``.
    Ranking metrics are NaN when only one class is present.
    """
    y, p = _arrays(y=y, p=p)
    _binary(y)
    if p.min() < 0 or p.max() > 1:
        raise ValueError("p: probabilities must lie in [0, 1]")
    both = 0 < y.sum() < y.shape[0]
    nan = float("nan")
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else nan,
        "pr_auc": float(average_precision_score(y, p)) if both else nan,
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "top_decile_lift": capture(y, p, TOP_DECILE) / TOP_DECILE if both else nan,
        "ece": expected_calibration_error(y, p),
        "base_rate": float(y.mean()),
        "n": float(y.shape[0]),
    }


def decile_mape(actual: Any, pred: Any, n_bins: int = N_BINS) -> float:
    """Mean absolute percentage error of the decile sums, as a fraction.

    Customers are ranked by ``pred`` into ``n_bins`` equal bins; per bin
    ``|sum(pred) - sum(actual)| / |sum(actual)|``, averaged over bins whose actual sum is
    not 0. Measures whether the model gets each segment's total right.
    """
    actual, pred = _arrays(actual=actual, pred=pred)
    act = _binned_sums(pred, actual, n_bins)
    prd = _binned_sums(pred, pred, n_bins)
    ok = act != 0
    if not ok.any():
        return float("nan")
    return float(np.mean(np.abs(prd[ok] - act[ok]) / np.abs(act[ok])))


def regression_metrics(
    actual: Any, pred: Any, capture_shares: Sequence[float] = CAPTURE_SHARES
) -> dict[str, float]:
    """Customer-value (LTV) metrics.

    ``spearman`` rank correlation; ``normalized_gini`` (:func:`normalized_gini`);
    ``top_{k}_capture`` (:func:`capture` at each share, e.g. ``top_10_capture``);
    ``decile_mape`` (:func:`decile_mape`); ``total_actual``, ``total_predicted`` and
    ``total_ratio`` (= predicted / actual); ``mae``; ``rmse``; ``n``.
    """
    actual, pred = _arrays(actual=actual, pred=pred)
    total = actual.sum()
    constant = np.ptp(actual) == 0 or np.ptp(pred) == 0
    metrics = {
        "spearman": float("nan") if constant else float(spearmanr(actual, pred).statistic),
        "normalized_gini": normalized_gini(actual, pred),
    }
    metrics.update(
        {_share_key("top", s, "_capture"): capture(actual, pred, s) for s in capture_shares}
    )
    metrics.update(
        decile_mape=decile_mape(actual, pred),
        total_actual=float(total),
        total_predicted=float(pred.sum()),
        total_ratio=float(pred.sum() / total) if total != 0 else float("nan"),
        mae=float(mean_absolute_error(actual, pred)),
        rmse=float(root_mean_squared_error(actual, pred)),
        n=float(actual.shape[0]),
    )
    return metrics


def revenue_lost(churned: Any, prior_value: Any) -> np.ndarray:
    """Revenue lost per customer = ``churned x max(prior_value, 0)``.

    The one definition of "lost revenue" on real data (backtests, the report, the CDNOW
    benchmark): ``prior_value`` is the customer's net revenue in the horizon-long window
    *before* the cutoff, the run rate a churner takes away in the next horizon. Stayers lose
    nothing; net-negative prior revenue counts as 0.
    """
    churned, prior_value = _arrays(churned=churned, prior_value=prior_value)
    return _binary(churned) * np.clip(prior_value, 0.0, None)


def value_at_risk_coverage(
    churned: Any, prior_value: Any, score: Any, shares: Sequence[float] = VAR_SHARES
) -> dict[str, float]:
    """Share of next-period revenue lost to churn that the top of a ranking covers.

    Revenue lost is :func:`revenue_lost` (churners' prior-window net revenue, the
    spending that will not recur). For each share ``k``, ``var_coverage_top_{k}`` =
    revenue lost by the top ``k`` of customers by ``score`` (typically value at risk =
    churn probability x predicted value) / total revenue lost. ``revenue_lost_total``
    (currency) is reported beside it, and ``var_normalized_gini`` (:func:`normalized_gini`
    of the ranking against revenue lost); NaN when nothing was lost.
    """
    lost = revenue_lost(churned, prior_value)
    (score,) = _arrays(score=score)
    if score.shape[0] != lost.shape[0]:
        raise ValueError(f"score has {score.shape[0]} values for {lost.shape[0]} customers")
    out = {_share_key("var_coverage_top", s): capture(lost, score, s) for s in shares}
    out["var_normalized_gini"] = normalized_gini(lost, score)
    out["revenue_lost_total"] = float(lost.sum())
    return out
