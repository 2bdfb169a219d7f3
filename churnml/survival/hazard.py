"""Discrete-time hazard model: calibrated LightGBM on person-period rows.

Each landmark row (features at a cutoff, ``duration``, ``event``, ``tenure``) is expanded to
one row per period it was at risk (:mod:`churnml.survival.person_period`) with ``period`` and
``tenure_at_period`` as features. A LightGBM binary model (the deterministic settings of
:mod:`churnml.models._lgbm`) estimates the per-period hazard ``h_k(x) = P(D = k | D >= k,
x)``; a one-dimensional calibrator (Platt or isotonic, :class:`LogOddsCalibrator`) maps its
log-odds to probabilities, fitted on the person-period rows of a hold-out of *landmark rows
grouped by customer* (the same hold-out stops the boosting early). The survival curve is the
product of the calibrated terms, ``S(t | x) = prod_{k <= t} (1 - h_k(x))``.

**Conditioning on the time survived.** ``tenure_at_period = tenure + k - 1`` makes the hazard
depend on how long the customer has already been active, so a curve predicted at a
landmark is ``S(t | x, survived so far)``; for a model of tenure alone this is
``S(tenure + t) / S(tenure)`` of a new customer's curve.

**Tenure past the training range** (``tenure_cap``). Trees hold the hazard flat beyond the
longest ``tenure_at_period`` seen in training, while a test customer of long tenure reaches
further within the grid (the frail leave first, so the true hazard keeps falling there). The
time feature therefore uses the landmark tenure capped at ``tenure_cap``: ``tenure_at_period
= min(tenure, cap) + k - 1``, so every curve's time features stay inside the training range;
the uncapped ``tenure`` stays a customer feature (a level shift of the log-odds). ``"auto"``
takes the largest cap that keeps the whole grid inside it, ``cap = max(0, longest training
tenure_at_period - n_periods + 1)``; None does not cap. Measured on the simulator
(``benchmarks/README.md``, "Time to churn").

**Interactions with time.** With ``time_interactions=False`` (the default) LightGBM's
interaction constraints keep the time features (``period``, ``tenure_at_period``) and the
customer features in separate trees, so the log-odds are additive,
``logit h_k(x) = f(x) + g(k, tenure + k - 1)``: a proportional-odds model with a flexible
baseline and a flexible risk score (Cox 1972's discrete logistic model with boosted
parts). Scoring then needs one booster evaluation per customer plus ``g`` on the few
distinct (period, tenure) pairs, instead of one evaluation per period. With ``True`` the
trees may let the shape of the curve depend on the features, at ``n_periods`` evaluations
per customer.

**Tail rule.** The model covers periods ``1 .. n_periods_`` (at most the longest observed
duration). Later periods keep the customer's last hazard ``h_{n_periods_}``
(:func:`churnml.survival.curves.extend_constant_hazard`).

References: Allison (1982), Sociological Methodology 13; Tutz & Schmid (2016), "Modeling
Discrete Time-to-Event Data", Springer; van Houwelingen (2007), "Dynamic prediction by
landmarking in event history analysis", Scand. J. Statistics 34.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from churnml.errors import DataValidationError
from churnml.models._lgbm import (
    COLSAMPLE_BYTREE,
    EARLY_STOPPING_ROUNDS,
    MAX_DEPTH,
    N_ESTIMATORS,
    N_JOBS,
    REG_LAMBDA,
    SEED,
    VALIDATION_FRACTION,
    BoosterModel,
    booster_params,
    fit_booster,
    holdout_split,
)
from churnml.models._preprocess import FEATURE_TABLE, FrameEncoder, FrameModelMixin
from churnml.models._state import (
    ModelStateError,
    params_state,
    require,
    restore_params,
    stateful,
)
from churnml.models.churn import Calibration, LogOddsCalibrator
from churnml.survival.curves import extend_constant_hazard, survival_at
from churnml.survival.durations import TENURE
from churnml.survival.kaplan_meier import survival_target
from churnml.survival.person_period import (
    DURATIONS_TABLE,
    PERIOD,
    TENURE_AT_PERIOD,
    check_durations,
    expand_index,
    with_time_features,
)

# LightGBM settings of the hazard model: slower and smaller trees than the churn model's
# (chosen on OULAD's validation split and measured on the simulator, benchmarks/README.md)
HAZARD_LEARNING_RATE = 0.02
HAZARD_NUM_LEAVES = 7
HAZARD_MIN_CHILD_SAMPLES = 200
CHUNK_ROWS = 100_000  # landmark rows scored at once (bounds memory at chunk x features)


@stateful
class DiscreteTimeHazard(FrameModelMixin, BaseEstimator):
    """Survival curves from a calibrated per-period hazard (module docstring).

    Parameters
    ----------
    n_periods : int or None
        Periods modelled (the grid); None = the longest observed duration. A grid longer
        than the longest observed duration is refused (the data cannot support it).
    tenure_column : str
        Feature column with the whole periods active at the cutoff (0 when absent).
    tenure_cap : int, "auto" or None
        Cap of the landmark tenure in the time feature (module docstring).
    period_feature : bool
        Use the period index ``k`` as a feature besides ``tenure_at_period``. False makes
        the hazard a function of the features and the time survived only.
    time_interactions : bool
        Let trees combine time and customer features (module docstring).
    calibration : "sigmoid", "isotonic" or None
    validation_fraction : float or None
        Share of landmark rows (groups) held out for early stopping and calibration.
    n_estimators, learning_rate, num_leaves, max_depth, min_child_samples,
    colsample_bytree, reg_lambda, early_stopping_rounds, seed, n_jobs
        As in :class:`~churnml.models.ChurnClassifier`; by default slower and smaller trees
        (:data:`HAZARD_LEARNING_RATE`, :data:`HAZARD_NUM_LEAVES`,
        :data:`HAZARD_MIN_CHILD_SAMPLES`).

    Attributes
    ----------
    n_periods_ : int
    tenure_cap_ : float
        Cap applied to the tenure of the time feature (inf: none).
    uses_tenure_ : bool
        Whether ``tenure_column`` was present at fit (else tenure is 0 throughout).
    model_ : BoosterModel
    calibrator_ : LogOddsCalibrator or None
    n_iter_ : int
    feature_names_in_ : features including ``period`` and ``tenure_at_period``
    """

    def __init__(
        self,
        n_periods: int | None = None,
        tenure_column: str = TENURE,
        tenure_cap: int | str | None = "auto",
        period_feature: bool = True,
        time_interactions: bool = False,
        calibration: Calibration | None = "sigmoid",
        validation_fraction: float | None = VALIDATION_FRACTION,
        n_estimators: int = N_ESTIMATORS,
        learning_rate: float = HAZARD_LEARNING_RATE,
        num_leaves: int = HAZARD_NUM_LEAVES,
        max_depth: int = MAX_DEPTH,
        min_child_samples: int = HAZARD_MIN_CHILD_SAMPLES,
        colsample_bytree: float = COLSAMPLE_BYTREE,
        reg_lambda: float = REG_LAMBDA,
        early_stopping_rounds: int | None = EARLY_STOPPING_ROUNDS,
        seed: int = SEED,
        n_jobs: int = N_JOBS,
    ) -> None:
        self.n_periods = n_periods
        self.tenure_column = tenure_column
        self.tenure_cap = tenure_cap
        self.period_feature = period_feature
        self.time_interactions = time_interactions
        self.calibration = calibration
        self.validation_fraction = validation_fraction
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.seed = seed
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ features
    def _tenure(self, X: pd.DataFrame) -> np.ndarray:
        """Periods active at the cutoff: the tenure column if the model was fitted with one
        (it is then a feature too, so the encoder requires it), else 0."""
        used = getattr(self, "uses_tenure_", self.tenure_column in X.columns)
        if used:
            t = pd.to_numeric(X[self.tenure_column], errors="coerce").to_numpy(dtype=float)
            bad = ~np.isfinite(t) | (t < 0)
            if bad.any():
                rows = np.flatnonzero(bad)
                raise DataValidationError(
                    FEATURE_TABLE, self.tenure_column, "must be a number of periods >= 0",
                    rows=X.index[rows[:5]].tolist(),
                    values=X[self.tenure_column].iloc[rows[:5]].tolist(), n_rows=rows.size)
            return np.minimum(t, getattr(self, "tenure_cap_", np.inf))
        return np.zeros(len(X))

    def _fit_tenure_cap(self, tenure: np.ndarray, row: np.ndarray, period: np.ndarray,
                        grid: int) -> float:
        """``tenure_cap_`` from ``tenure_cap`` and the person-period rows (module
        docstring)."""
        cap = self.tenure_cap
        if cap is None or not self.uses_tenure_:
            return np.inf
        if cap == "auto":
            longest = float((tenure[row] + period - 1).max(initial=0.0))
            return max(0.0, longest - grid + 1)
        if isinstance(cap, str) or not (np.isfinite(cap) and cap >= 0):
            raise ValueError(f"tenure_cap must be a number of periods >= 0, 'auto' or None; "
                             f"got {cap!r}")
        return float(cap)

    def _with_time(self, X: pd.DataFrame, tenure: np.ndarray, period: Any) -> pd.DataFrame:
        out = with_time_features(X, tenure, period)
        return out if self.period_feature else out.drop(columns=PERIOD)

    def _set_period(self, Xe: pd.DataFrame, tenure: np.ndarray, k: Any) -> None:
        """Overwrite the time features of an encoded frame in place."""
        k = np.asarray(k, dtype=float)
        if self.period_feature:
            Xe[PERIOD] = np.broadcast_to(k, (len(Xe),))
        Xe[TENURE_AT_PERIOD] = tenure + k - 1

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y: pd.DataFrame, groups: Any = None) -> DiscreteTimeHazard:
        """Fit on landmark rows: features ``X`` and ``y`` with ``duration`` (whole periods)
        and ``event``; ``groups`` (e.g. customer ids) keep a customer's rows on one side of
        the hold-out (default: each row its own group)."""
        if self.calibration is not None and not self.validation_fraction:
            raise ValueError("calibration needs a hold-out: set validation_fraction > 0")
        event, duration, _ = survival_target(y, len(X))
        d, e = check_durations(duration, event)
        longest = int(d.max(initial=0))
        if longest < 1:
            raise ValueError("no landmark row was observed for a whole period")
        grid = longest if self.n_periods is None else int(self.n_periods)
        if grid < 1 or grid > longest:
            raise DataValidationError(
                DURATIONS_TABLE, "duration",
                f"n_periods={self.n_periods} is longer than the data can support: the longest "
                f"observed duration is {longest} period(s); lower n_periods or use more data "
                "(later periods follow the tail rule)")
        self.uses_tenure_ = self.tenure_column in X.columns
        self.tenure_cap_ = np.inf
        row, period, target = expand_index(d, e, grid)
        self.tenure_cap_ = self._fit_tenure_cap(self._tenure(X), row, period, grid)
        tenure = self._tenure(X)
        Xe = self._fit_encoder(self._with_time(X, tenure, 1))
        if target.sum() == 0 or target.sum() == target.size:
            raise ValueError("the person-period rows need both churn and survival periods")
        rows = Xe.iloc[row].reset_index(drop=True)
        self._set_period(rows, tenure[row], period)
        fit_idx = hold_idx = None
        if self.validation_fraction:
            g = np.arange(len(X)) if groups is None else np.asarray(groups)
            fit_rows, hold_rows = holdout_split(len(X), self.validation_fraction, self.seed,
                                                groups=g)
            held = np.zeros(len(X), dtype=bool)
            held[hold_rows] = True
            fit_idx, hold_idx = np.flatnonzero(~held[row]), np.flatnonzero(held[row])
            if np.unique(target[hold_idx]).size < 2:
                raise ValueError("the hold-out has no churn period (or only churn periods); "
                                 "use more rows or a larger validation_fraction")
        params = booster_params(self, objective="binary")
        if not self.time_interactions:
            time = [i for i, c in enumerate(rows.columns) if c in (PERIOD, TENURE_AT_PERIOD)]
            other = [i for i in range(rows.shape[1]) if i not in time]
            params["interaction_constraints"] = [time, other] if other else [time]
        self.model_ = fit_booster(lgb.LGBMClassifier(**params), rows, target.astype(int),
                                  fit_idx, hold_idx, self.early_stopping_rounds)
        self.n_iter_ = self.model_.n_iter_
        self.n_periods_ = grid
        self.calibrator_ = None
        if self.calibration is not None:
            raw = self.model_.predict(rows.iloc[hold_idx], raw_score=True)
            self.calibrator_ = LogOddsCalibrator(self.calibration).fit(raw, target[hold_idx])
        return self

    # ------------------------------------------------------------------ predict
    def _calibrated(self, raw: np.ndarray) -> np.ndarray:
        p = expit(raw) if self.calibrator_ is None else self.calibrator_.predict(raw.ravel())
        return np.clip(np.reshape(p, np.shape(raw)), 0.0, 1.0)

    def _raw_by_period(self, X: pd.DataFrame) -> np.ndarray:
        """Booster log-odds on periods ``1 .. n_periods_``, one evaluation per period."""
        tenure = self._tenure(X)
        out = np.empty((len(X), self.n_periods_), dtype=np.float64)
        for start in range(0, len(X), CHUNK_ROWS):
            part = slice(start, start + CHUNK_ROWS)
            Xe = self._encode(self._with_time(X.iloc[part], tenure[part], 1))
            for k in range(1, self.n_periods_ + 1):
                self._set_period(Xe, tenure[part], k)
                out[part, k - 1] = self.model_.predict(Xe, raw_score=True)
        return out

    def _raw_additive(self, X: pd.DataFrame) -> np.ndarray:
        """The same log-odds for an additive model: ``f(x) + g(1, tenure)`` once per row,
        plus ``g(k, .) - g(1, .)`` read off one reference row per distinct tenure."""
        tenure = self._tenure(X)
        levels, which = np.unique(tenure, return_inverse=True)
        K = self.n_periods_
        ref = self._encode(self._with_time(X.iloc[[0] * (levels.size * K)],
                                           np.repeat(levels, K), 1))
        self._set_period(ref, np.repeat(levels, K), np.tile(np.arange(1, K + 1), levels.size))
        g = self.model_.predict(ref, raw_score=True).reshape(levels.size, K)
        offset = g - g[:, :1]
        base = np.empty(len(X), dtype=np.float64)
        for start in range(0, len(X), CHUNK_ROWS):
            part = slice(start, start + CHUNK_ROWS)
            Xe = self._encode(self._with_time(X.iloc[part], tenure[part], 1))
            base[part] = self.model_.predict(Xe, raw_score=True)
        return base[:, None] + offset[which]

    def _hazard_grid(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated hazards on periods ``1 .. n_periods_``: ``(n, n_periods_)``."""
        check_is_fitted(self, "model_")
        if len(X) == 0:
            return np.empty((0, self.n_periods_))
        raw = self._raw_by_period(X) if self.time_interactions else self._raw_additive(X)
        return self._calibrated(raw)

    def predict_hazard(self, X: pd.DataFrame, n_periods: int | None = None) -> np.ndarray:
        """Per-period hazards ``h_1 .. h_n`` (``n`` default ``n_periods_``; later periods
        by the tail rule): ``(n_rows, n)``."""
        h = self._hazard_grid(X)
        n = self.n_periods_ if n_periods is None else int(n_periods)
        if n > h.shape[1]:
            h = np.concatenate([h, np.repeat(h[:, -1:], n - h.shape[1], axis=1)], axis=1)
        return h[:, :n]

    def predict_survival_grid(self, X: pd.DataFrame, n_periods: int | None = None
                              ) -> np.ndarray:
        """``S(1) .. S(n)`` (default ``n_periods_``; tail rule past it): ``(n_rows, n)``."""
        surv = np.cumprod(1 - self._hazard_grid(X), axis=1)
        n = self.n_periods_ if n_periods is None else int(n_periods)
        return extend_constant_hazard(surv, n)[:, :n]

    def predict_survival_function(self, X: pd.DataFrame, times: Any) -> np.ndarray:
        """``S(t | x, survived to the cutoff) = P(D > t)`` at ``times`` (periods):
        ``(n_rows, len(times))``; geometric between whole periods, tail rule past the grid."""
        return survival_at(self.predict_survival_grid(X), times)

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        """Minus the expected whole periods active within the grid, ``-sum_k S(k)``:
        higher = churns sooner."""
        return -self.predict_survival_grid(X).sum(axis=1)

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """Parameters, grid, encoder, booster text and calibrator (no pickle)."""
        check_is_fitted(self, "model_")
        return {
            "params": params_state(self),
            "n_periods": int(self.n_periods_),
            "tenure_cap": None if np.isinf(self.tenure_cap_) else float(self.tenure_cap_),
            "encoder": self.encoder_.to_state(),
            "booster": self.model_.to_state(),
            "calibrator": None if self.calibrator_ is None else self.calibrator_.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DiscreteTimeHazard:
        est = restore_params(cls, state)
        est._set_encoder(FrameEncoder.from_state(require(state, "encoder", dict)))
        est.model_ = BoosterModel.from_state(require(state, "booster", dict))
        est.n_iter_ = est.model_.n_iter_
        est.n_periods_ = require(state, "n_periods", int)
        est.uses_tenure_ = est.tenure_column in est.feature_names_in_
        cap = state.get("tenure_cap")  # absent: logged before the cap existed (no cap)
        if cap is not None and not (isinstance(cap, int | float) and cap >= 0):
            raise ModelStateError(f"tenure_cap must be a number >= 0 or null, got {cap!r}")
        est.tenure_cap_ = np.inf if cap is None else float(cap)
        if est.n_periods_ < 1:
            raise ModelStateError(f"n_periods must be >= 1, got {est.n_periods_}")
        cal = require(state, "calibrator", (dict, type(None)))
        est.calibrator_ = None if cal is None else LogOddsCalibrator.from_state(cal)
        return est
