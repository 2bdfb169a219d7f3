"""Performance of scored churn probabilities: realized (labels known) and estimated (not yet).

**Estimated performance (CBPE-style).** Before a cutoff's horizon has passed its labels are
unknown, but if the probabilities ``p_i`` are calibrated, each label is a Bernoulli(``p_i``)
draw. Then (confidence-based performance estimation, NannyML's CBPE):

* expected Brier score  E[(p − y)²] = mean_i p_i (1 − p_i);
* expected ROC AUC ≈ E[concordant pairs] / E[positive × negative pairs]
  = Σ_{i,j} p_i (1 − p_j) · [s_i > s_j] (ties ½) / (Σ_i p_i · Σ_j (1 − p_j) − Σ_i p_i (1 − p_i)),
  the ratio of expectations over all ordered pairs of distinct customers (``s`` = score,
  here ``p`` itself).

The interval is the central 95 % of the metric over :data:`N_DRAWS` label vectors drawn from
the probabilities: the spread the realized value will show by chance alone. **Assumptions:**
(1) the probabilities are calibrated on the scored population (checked on every matured
cutoff: realized vs estimated), (2) no concept drift — P(churn | features) is what the model
learned; a shift of the features alone (covariate shift) is allowed. A realized value outside
the interval after the horizon is evidence against one of them.

**Realized performance** joins a matured cutoff's scores with its labels
(:func:`churnml.labels.build_labels`) and reports the churn metrics of
:func:`churnml.training.evaluation.classification_metrics` and the lost-revenue capture of the
value-at-risk ranking (:func:`churnml.training.evaluation.value_at_risk_coverage`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

N_DRAWS = 200
LEVEL = 0.95


def expected_auc(p: Any, score: Any = None) -> float:
    """Expected ROC AUC of ``score`` (default ``p``) when labels ~ Bernoulli(``p``); formula
    in the module docstring. O(n log n)."""
    p = np.asarray(p, dtype=float)
    s = p if score is None else np.asarray(score, dtype=float)
    order = np.argsort(s, kind="mergesort")
    p, s = p[order], s[order]
    q = 1.0 - p
    # negatives' expected mass strictly below each score, and tied with it
    _, start, counts = np.unique(s, return_index=True, return_counts=True)
    q_cum = np.r_[0.0, np.cumsum(q)]
    below = np.repeat(q_cum[start], counts)
    tied = np.repeat(q_cum[start + counts] - q_cum[start], counts) - q  # excluding self
    concordant = np.sum(p * (below + 0.5 * tied))
    pairs = p.sum() * q.sum() - np.sum(p * q)
    return float(concordant / pairs) if pairs > 0 else float("nan")


def expected_brier(p: Any) -> float:
    """Expected Brier score mean p (1 − p) when labels ~ Bernoulli(``p``)."""
    p = np.asarray(p, dtype=float)
    return float(np.mean(p * (1.0 - p)))


def _auc_from_ranks(ranks: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ROC AUC of fixed scores (their mid-ranks) for each row of a label matrix ``y``."""
    n_pos = y.sum(axis=1)
    n_neg = y.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return (y @ ranks - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def estimate(p: Any, n_draws: int = N_DRAWS, level: float = LEVEL, seed: int = 0,
             chunk_rows: int = 2_000_000) -> dict[str, float]:
    """Estimated ROC AUC and Brier with their ``level`` intervals (keys ``est_roc_auc``,
    ``est_roc_auc_low``, ``est_roc_auc_high``, ``est_brier``, ... , ``n``)."""
    p = np.asarray(p, dtype=float)
    n = p.shape[0]
    rng = np.random.default_rng(seed)
    ranks = rankdata(p)
    per_chunk = max(1, chunk_rows // max(n, 1))
    aucs, briers = [], []
    for start in range(0, n_draws, per_chunk):
        k = min(per_chunk, n_draws - start)
        y = (rng.random((k, n)) < p).astype(float)
        aucs.append(_auc_from_ranks(ranks, y))
        briers.append(np.mean((p - y) ** 2, axis=1))
    auc, brier = np.concatenate(aucs), np.concatenate(briers)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {
        "est_roc_auc": expected_auc(p),
        "est_roc_auc_low": float(np.nanpercentile(auc, lo)),
        "est_roc_auc_high": float(np.nanpercentile(auc, hi)),
        "est_brier": expected_brier(p),
        "est_brier_low": float(np.percentile(brier, lo)),
        "est_brier_high": float(np.percentile(brier, hi)),
        "est_churn_rate": float(p.mean()) if n else float("nan"),
        "n": float(n),
    }
