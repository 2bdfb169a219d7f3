"""Performance of scored churn probabilities: realized (labels known) and estimated (not yet).

**Estimated performance (CBPE-style).** Before a cutoff's horizon has passed its labels are
unknown, but if the probabilities ``p_i`` are calibrated, each label is a Bernoulli(``p_i``)
draw. Then (confidence-based performance estimation, NannyML's CBPE):

* expected Brier score  E[(p − y)²] = mean_i p_i (1 − p_i);
* expected ROC AUC ≈ E[concordant pairs] / E[positive × negative pairs]
  = Σ_{i,j} p_i (1 − p_j) · [s_i > s_j] (ties ½) / (Σ_i p_i · Σ_j (1 − p_j) − Σ_i p_i (1 − p_i)),
  the ratio of expectations over all ordered pairs of distinct customers (``s`` = score,
  here ``p`` itself).

**Recalibration on a reference window** (as NannyML's CBPE does). Out of time a model's
probabilities drift off calibration (the base rate moves, the population ages), and CBPE on
raw probabilities then misses the realized metric by a bias that no label-noise interval
covers. So when the monitor has a *calibration reference* — the model's probabilities on a
window it did not train on, with matured labels (:class:`CalibrationReference`: the
backtest / reference cutoff) — an isotonic regression ``g`` of the outcome on ``p`` fitted
there maps each monitored ``p`` to ``q = g(p)``, and the labels are taken as Bernoulli(``q``)
draws while the metrics stay those of the model's own score ``p``:

* expected Brier of ``p``  E[(p − y)²] = mean_i (q_i − 2 p_i q_i + p_i²);
* expected ROC AUC of ``p``: the pair formula above with ``q`` for the label probabilities
  and ``s = p`` for the ranking.

**Interval.** The central 95 % of the metric over :data:`N_DRAWS` draws, each one (1) a
bootstrap resample of the calibration reference and its own isotonic fit ``g_b`` — the
calibrator's estimation error —, (2) a label vector ``y ~ Bernoulli(g_b(p))`` — the label
noise — and (3) a normal term of standard deviation ``σ_period`` — how far calibration
moves from one period to the next (seasons, a base rate that drifts): with a reference of
several windows, ``σ_period`` is the root mean square, over the windows, of the estimate
recalibrated on the *other* windows minus the window's realized metric
(:meth:`CalibrationReference.period_error`; 0 with one window), grown with the distance
from the reference windows as a random walk's (calibration drifts: the further from the
reference, the less it holds), and drawn from the predictive
distribution of a new window's error given ``k`` measured ones (Student's t, ``k − 1``
degrees of freedom, scaled by √(1 + 1/k): four windows say little). The third term does not
shrink with the population: at 20,000 customers it is most of the interval. Without a
reference ``g`` is the identity and the interval reflects label noise only.
``*_alarm_*`` bounds are the same draws' wider :data:`ALARM_LEVEL` interval: a
realized value beyond it on the worse side is an alarm. **Assumptions:** (1) the
calibration measured on the reference still holds on the scored population (checked on
every matured cutoff: realized vs estimated), (2) no concept drift — P(churn | features) is
what the model learned; a shift of the features alone (covariate shift) is allowed. A
realized value outside the interval after the horizon is evidence against one of them.

**Realized performance** joins a matured cutoff's scores with its labels
(:func:`churnml.labels.build_labels`) and reports the churn metrics of
:func:`churnml.training.evaluation.classification_metrics` and the lost-revenue capture of the
value-at-risk ranking (:func:`churnml.training.evaluation.value_at_risk_coverage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.isotonic import IsotonicRegression

N_DRAWS = 200
LEVEL = 0.95
ALARM_LEVEL = 0.99
DECIMALS = 3  # the calibration reference keeps p rounded to 0.001


@dataclass(frozen=True)
class CalibrationReference:
    """The monitored model's out-of-sample probabilities with their matured outcomes on one
    or more reference windows (cutoffs it did not train on), kept compactly as histograms:
    per window and distinct ``p`` rounded to :data:`DECIMALS` decimals, ``n`` customers of
    whom ``churned`` churned (a bootstrap of the customers is a multinomial resample of the
    bins). ``window`` indexes ``cutoffs``, the windows' names."""

    p: np.ndarray
    n: np.ndarray
    churned: np.ndarray
    window: np.ndarray
    cutoffs: tuple[str, ...]

    @classmethod
    def from_labels(cls, p: Any, y: Any, cutoff: Any = "") -> CalibrationReference:
        """One window from probabilities ``p`` and 0/1 outcomes ``y`` (same length,
        non-empty)."""
        p = np.round(np.clip(np.asarray(p, dtype=float), 0.0, 1.0), DECIMALS)
        y = np.asarray(y, dtype=float)
        if p.shape != y.shape or p.size == 0 or np.isnan(p).any() or np.isnan(y).any():
            raise ValueError("a calibration reference needs equal-length, non-empty p and y "
                             "without missing values")
        values, index = np.unique(p, return_inverse=True)
        n = np.bincount(index, minlength=values.size)
        churned = np.bincount(index, weights=y, minlength=values.size)
        return cls(values, n.astype(np.int64), np.round(churned).astype(np.int64),
                   np.zeros(values.size, dtype=np.int64), (str(cutoff),))

    @classmethod
    def combine(cls, parts: list[CalibrationReference]) -> CalibrationReference:
        """The windows of ``parts`` in one reference."""
        offsets = np.cumsum([0] + [len(r.cutoffs) for r in parts])
        return cls(np.concatenate([r.p for r in parts]), np.concatenate([r.n for r in parts]),
                   np.concatenate([r.churned for r in parts]),
                   np.concatenate([r.window + o for r, o in zip(parts, offsets, strict=False)]),
                   tuple(c for r in parts for c in r.cutoffs))

    @property
    def size(self) -> int:
        return int(self.n.sum())

    def to_dict(self) -> dict[str, Any]:
        return {"cutoffs": list(self.cutoffs), "p": self.p.tolist(), "n": self.n.tolist(),
                "churned": self.churned.tolist(), "window": self.window.tolist()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CalibrationReference:
        p, n = np.asarray(raw["p"], dtype=float), np.asarray(raw["n"], dtype=np.int64)
        churned = np.asarray(raw["churned"], dtype=np.int64)
        window = np.asarray(raw.get("window", np.zeros(p.size)), dtype=np.int64)
        cutoffs = tuple(str(c) for c in raw.get("cutoffs", [""]))
        if not (p.shape == n.shape == churned.shape == window.shape) or p.size == 0 \
                or (churned > n).any() or (churned < 0).any() \
                or window.min() < 0 or window.max() >= len(cutoffs):
            raise ValueError("calibration reference: p, n, churned and window must be "
                             "equal-length and non-empty, with 0 <= churned <= n and a window "
                             "per cutoff")
        return cls(p, n, churned, window, cutoffs)

    def _pooled(self, keep: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        keep = np.ones(self.p.size, bool) if keep is None else keep
        values, index = np.unique(self.p[keep], return_inverse=True)
        return (values, np.bincount(index, weights=self.n[keep], minlength=values.size),
                np.bincount(index, weights=self.churned[keep], minlength=values.size))

    @staticmethod
    def _isotonic(p: np.ndarray, counts: np.ndarray, churned: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        keep = counts > 0
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(p[keep], churned[keep] / counts[keep], sample_weight=counts[keep])
        return iso.X_thresholds_, iso.y_thresholds_

    def calibrator(self, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Knots ``(x, g(x))`` of the isotonic regression of the outcome on ``p`` over the
        pooled windows (the bins where ``keep``; default all). ``np.interp(p, x, g)``
        evaluates it (flat beyond the knots, as isotonic regression predicts)."""
        return self._isotonic(*self._pooled(keep))

    def recalibrate(self, p: Any) -> np.ndarray:
        """``g(p)``: the reference's churn rate at probability ``p``."""
        x, g = self.calibrator()
        return np.interp(np.asarray(p, dtype=float), x, g)

    def bootstrap_calibrator(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Knots of the isotonic fit on one customer bootstrap of the pooled reference:
        customers per bin ~ Multinomial(size, n / size), churned among them ~ Binomial(count,
        rate of the bin) — drawing customers with replacement."""
        p, n, churned = self._pooled()
        counts = rng.multinomial(self.size, n / n.sum())
        return self._isotonic(p, counts.astype(float),
                              rng.binomial(counts, churned / np.maximum(n, 1)).astype(float))

    def window_errors(self) -> list[dict[str, float]]:
        """Leave one window out: per window, the estimate recalibrated on the *other*
        windows minus the window's realized ROC AUC and Brier (``roc_auc``, ``brier``) —
        how far calibration moves between periods. Empty with fewer than two windows."""
        out: list[dict[str, float]] = []
        if len(self.cutoffs) < 2:
            return out
        for k in range(len(self.cutoffs)):
            mine = self.window == k
            x, g = self.calibrator(~mine)
            p = np.repeat(self.p[mine], self.n[mine])
            y = np.concatenate([np.r_[np.ones(c), np.zeros(m - c)] for c, m in
                                zip(self.churned[mine], self.n[mine], strict=True)])
            q = np.interp(p, x, g)
            real_auc = float(_auc_from_ranks(rankdata(p), y[None, :])[0])
            out.append({"roc_auc": expected_auc(q, p) - real_auc,
                        "brier": expected_brier(p, q) - float(np.mean((p - y) ** 2))})
        return out

    def period_error(self, at: Any = None) -> dict[str, float]:
        """The between-period calibration error of each metric (``roc_auc``, ``brier``): the
        root mean square of :meth:`window_errors` (0 with one window; an upper bound, each
        held-out window's own label noise is in it too), and ``windows``, how many windows
        it was measured on. With a date ``at`` (and windows named by date) the error is
        scaled for the distance, as a random walk's: × √(d / d₀), at least 1, with ``d`` the
        days from the windows' mean date to ``at`` and ``d₀`` the mean distance between a
        held-out window and the others (what the leave-one-out error measured)."""
        errors = self.window_errors()
        out = {"windows": float(len(self.cutoffs))}
        for m in ("roc_auc", "brier"):
            out[m] = float(np.sqrt(np.nanmean([e[m] ** 2 for e in errors]))) if errors else 0.0
        scale = self._distance_scale(at) if errors and at is not None else 1.0
        out.update({m: out[m] * scale for m in ("roc_auc", "brier")}, distance_scale=scale)
        return out

    def _distance_scale(self, at: Any) -> float:
        try:
            days = np.array([pd.Timestamp(c).value for c in self.cutoffs], float) / 86.4e12
            when = pd.Timestamp(at).value / 86.4e12
        except (ValueError, TypeError):
            return 1.0
        gaps = np.abs(days[:, None] - days[None, :])
        d0 = gaps.sum() / (len(days) * (len(days) - 1))
        return float(np.sqrt(max(1.0, abs(when - days.mean()) / d0))) if d0 > 0 else 1.0


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


def expected_brier(p: Any, q: Any = None) -> float:
    """Expected Brier score of probabilities ``p`` when labels ~ Bernoulli(``q``) (default
    ``p``): mean (q − 2 p q + p²), = mean p (1 − p) for ``q = p``."""
    p = np.asarray(p, dtype=float)
    q = p if q is None else np.asarray(q, dtype=float)
    return float(np.mean(q - 2.0 * p * q + p * p))


def _auc_from_ranks(ranks: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ROC AUC of fixed scores (their mid-ranks) for each row of a label matrix ``y``."""
    n_pos = y.sum(axis=1)
    n_neg = y.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return (y @ ranks - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _period_draws(rng: np.random.Generator, size: int, period_error: Mapping[str, float]
                  ) -> np.ndarray:
    """Draws of the next period's calibration error in units of ``σ_period``: the
    predictive distribution of a new window's error when ``σ_period`` was measured on ``k``
    windows, Student's t with ``k − 1`` degrees of freedom (at least 2) scaled by
    √(1 + 1/k); a standard normal when ``k`` is not given."""
    k = period_error.get("windows")
    if not k:
        return rng.standard_normal(size)
    return np.sqrt(1.0 + 1.0 / k) * rng.standard_t(max(k - 1.0, 2.0), size)


def estimate(p: Any, n_draws: int = N_DRAWS, level: float = LEVEL, seed: int = 0,
             chunk_rows: int = 2_000_000, reference: CalibrationReference | None = None,
             alarm_level: float = ALARM_LEVEL,
             period_error: Mapping[str, float] | None = None) -> dict[str, float]:
    """Estimated ROC AUC and Brier of ``p`` with their ``level`` intervals (keys
    ``est_roc_auc``, ``est_roc_auc_low``, ``est_roc_auc_high``, ``est_brier``, ..., ``n``),
    recalibrated on ``reference`` when given (module docstring), the ``alarm_level`` bounds
    (``est_roc_auc_alarm_low``, ``est_brier_alarm_high``: the worse side) and the raw CBPE
    values (``est_roc_auc_raw``, ``est_brier_raw``: ``p`` taken as calibrated).
    ``period_error`` (default: the reference's :meth:`~CalibrationReference.period_error`;
    pass it to compute it once for many calls) is the standard deviation of a normal
    between-period term added to every draw (:func:`_period_draws`)."""
    p = np.asarray(p, dtype=float)
    n = p.shape[0]
    rng = np.random.default_rng(seed)
    ranks = rankdata(p)
    q = p if reference is None else reference.recalibrate(p)
    if period_error is None:
        period_error = {} if reference is None else reference.period_error()
    per_chunk = max(1, chunk_rows // max(n, 1))
    aucs, briers = [], []
    for start in range(0, n_draws, per_chunk):
        k = min(per_chunk, n_draws - start)
        if reference is None:
            probs = np.broadcast_to(p, (k, n))
        else:
            probs = np.empty((k, n))
            for j in range(k):
                x, g = reference.bootstrap_calibrator(rng)
                probs[j] = np.interp(p, x, g)
        y = (rng.random((k, n)) < probs).astype(float)
        aucs.append(_auc_from_ranks(ranks, y))
        briers.append(np.mean((p - y) ** 2, axis=1))
    auc, brier = np.concatenate(aucs), np.concatenate(briers)
    auc = auc + period_error.get("roc_auc", 0.0) * _period_draws(rng, auc.size, period_error)
    brier = brier + period_error.get("brier", 0.0) * _period_draws(rng, brier.size,
                                                                    period_error)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    a_lo, a_hi = (1 - alarm_level) / 2 * 100, (1 + alarm_level) / 2 * 100
    return {
        "est_roc_auc": expected_auc(q, score=p),
        "est_roc_auc_low": float(np.nanpercentile(auc, lo)),
        "est_roc_auc_high": float(np.nanpercentile(auc, hi)),
        "est_brier": expected_brier(p, q),
        "est_brier_low": float(np.percentile(brier, lo)),
        "est_brier_high": float(np.percentile(brier, hi)),
        "est_roc_auc_alarm_low": float(np.nanpercentile(auc, a_lo)),
        "est_brier_alarm_high": float(np.percentile(brier, a_hi)),
        "est_roc_auc_raw": expected_auc(p),
        "est_brier_raw": expected_brier(p),
        "est_roc_auc_period_error": float(period_error.get("roc_auc", 0.0)),
        "est_brier_period_error": float(period_error.get("brier", 0.0)),
        "est_churn_rate": float(q.mean()) if n else float("nan"),
        "est_recalibrated": float(reference is not None),
        "n": float(n),
    }
