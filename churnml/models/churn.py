"""Churn classifier: LightGBM with probability calibration on a held-out slice.

Calibration design: the rows are split once (``validation_fraction``, stratified on the label,
or by ``groups`` so that one customer's cutoffs stay on one side). The booster is fitted on
the larger part with early stopping on the hold-out; a one-dimensional calibrator then maps
the booster's raw log-odds to probabilities, fitted on the same hold-out. Early stopping
takes only one number (the tree count) from the hold-out, so the calibrator still sees
predictions on rows the trees never saw. ``"sigmoid"`` is Platt scaling on the log-odds
(Platt 1999), strictly monotone, so rankings, AUC and reason codes are those of the booster;
``"isotonic"`` (Zadrozny & Elkan 2002) is more flexible but creates ties and wants a few
thousand hold-out rows. Both are compared by Niculescu-Mizil & Caruana (2005), "Predicting
good probabilities with supervised learning", ICML.
"""

from __future__ import annotations

from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from churnml.models._lgbm import (
    COLSAMPLE_BYTREE,
    EARLY_STOPPING_ROUNDS,
    LEARNING_RATE,
    MAX_DEPTH,
    MIN_CHILD_SAMPLES,
    N_ESTIMATORS,
    N_JOBS,
    NUM_LEAVES,
    REG_LAMBDA,
    SEED,
    VALIDATION_FRACTION,
    BoosterModel,
    booster_params,
    fit_booster,
    holdout_split,
)
from churnml.models._preprocess import FrameEncoder, FrameModelMixin, check_target
from churnml.models._state import (
    ModelStateError,
    decode,
    encode,
    params_state,
    require,
    restore_params,
    stateful,
)

Calibration = Literal["sigmoid", "isotonic"]
CALIBRATIONS = ("sigmoid", "isotonic")
SIGMOID_C = 1e3  # inverse L2 strength of Platt scaling: near-unpenalised, finite if separable
THRESHOLD = 0.5  # predict() labels churn when the calibrated probability reaches this
BIAS = "bias"  # name of the expected-value column of contributions()


def binary_target(y: Any, n_rows: int, name: str = "churned") -> np.ndarray:
    """0/1 label array; both classes must be present."""
    arr = check_target(y, n_rows, name)
    values = np.unique(arr)
    if not np.isin(values, (0.0, 1.0)).all():
        raise ValueError(f"{name}: labels must be 0/1 (or bool), got values {values[:5]}")
    if values.size < 2:
        raise ValueError(f"{name}: only one class ({values[0]:g}) in the training labels")
    return arr.astype(int)


def logistic_1d_state(model: LogisticRegression) -> dict[str, float]:
    """Slope and intercept of a fitted one-feature binary logistic regression."""
    return {"coef": float(model.coef_[0, 0]), "intercept": float(model.intercept_[0])}


def logistic_1d_from_state(state: dict[str, Any], **params: Any) -> LogisticRegression:
    """A fitted one-feature binary :class:`LogisticRegression` from :func:`logistic_1d_state`."""
    model = LogisticRegression(**params)
    model.coef_ = np.array([[float(require(state, "coef", (int, float)))]])
    model.intercept_ = np.array([float(require(state, "intercept", (int, float)))])
    model.classes_ = np.array([0, 1])
    model.n_features_in_ = 1
    return model


@stateful
class LogOddsCalibrator(BaseEstimator):
    """Map raw log-odds to probabilities: Platt scaling (``sigmoid``) or ``isotonic``."""

    def __init__(self, method: Calibration = "sigmoid") -> None:
        self.method = method

    def fit(self, raw: np.ndarray, y: np.ndarray) -> LogOddsCalibrator:
        if self.method not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {self.method!r}")
        if np.unique(y).size < 2:
            raise ValueError("calibration hold-out has only one class; use more rows")
        if self.method == "sigmoid":
            self.model_ = LogisticRegression(C=SIGMOID_C).fit(raw.reshape(-1, 1), y)
        else:
            self.model_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
            self.model_.fit(raw, y)
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probability of the positive class."""
        check_is_fitted(self, "model_")
        if self.method == "sigmoid":
            return self.model_.predict_proba(raw.reshape(-1, 1))[:, 1]
        return self.model_.predict(raw)

    def to_state(self) -> dict[str, Any]:
        """Sigmoid: slope and intercept; isotonic: the step thresholds (``X``, ``y``)."""
        check_is_fitted(self, "model_")
        if self.method == "sigmoid":
            fitted = logistic_1d_state(self.model_)
        else:
            fitted = {"x": encode(self.model_.X_thresholds_),
                      "y": encode(self.model_.y_thresholds_)}
        return {"params": params_state(self), **fitted}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LogOddsCalibrator:
        cal = restore_params(cls, state)
        if cal.method == "sigmoid":
            model = logistic_1d_from_state(state, C=SIGMOID_C)
        elif cal.method == "isotonic":
            x = np.asarray(decode(require(state, "x", dict)), dtype=float)
            y = np.asarray(decode(require(state, "y", dict)), dtype=float)
            if x.ndim != 1 or x.shape != y.shape or x.size < 1:
                raise ModelStateError("isotonic thresholds x and y must be equal-length lists")
            model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
            model.X_thresholds_, model.y_thresholds_ = x, y
            model.X_min_, model.X_max_ = float(x.min()), float(x.max())
            model.increasing_ = True
            model._build_f(x, y)  # the interpolation function, as after fit or unpickling
        else:
            raise ModelStateError(f"unknown calibration method {cal.method!r}")
        cal.model_ = model
        return cal


@stateful
class ChurnClassifier(FrameModelMixin, ClassifierMixin, BaseEstimator):
    """Calibrated LightGBM churn classifier on a feature frame.

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, max_depth, min_child_samples, colsample_bytree,
    reg_lambda
        LightGBM hyper-parameters (kept small: reason codes cost trees x leaves x depth^2).
    class_weight : None, "balanced" or dict
        Passed to LightGBM; calibration undoes the probability shift it causes.
    calibration : "sigmoid", "isotonic" or None
        Calibrator fitted on the hold-out (module docstring); None returns the booster's
        probabilities.
    validation_fraction : float or None
        Hold-out share for early stopping and calibration; None fits on all rows without
        either (then ``calibration`` must be None).
    early_stopping_rounds : int or None
    seed : int
    n_jobs : int
        Fixed LightGBM thread count (results may depend on it).

    Attributes
    ----------
    classes_ : ndarray ``[0, 1]``
    model_ : churnml.models._lgbm.BoosterModel
        The fitted booster (LightGBM text model in :meth:`to_state`).
    calibrator_ : LogOddsCalibrator or None
    n_iter_ : int
        Trees used (best iteration under early stopping).
    feature_names_in_, feature_dtypes_, n_features_in_
    """

    def __init__(
        self,
        n_estimators: int = N_ESTIMATORS,
        learning_rate: float = LEARNING_RATE,
        num_leaves: int = NUM_LEAVES,
        max_depth: int = MAX_DEPTH,
        min_child_samples: int = MIN_CHILD_SAMPLES,
        colsample_bytree: float = COLSAMPLE_BYTREE,
        reg_lambda: float = REG_LAMBDA,
        class_weight: Any = None,
        calibration: Calibration | None = "sigmoid",
        validation_fraction: float | None = VALIDATION_FRACTION,
        early_stopping_rounds: int | None = EARLY_STOPPING_ROUNDS,
        seed: int = SEED,
        n_jobs: int = N_JOBS,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.class_weight = class_weight
        self.calibration = calibration
        self.validation_fraction = validation_fraction
        self.early_stopping_rounds = early_stopping_rounds
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, X: pd.DataFrame, y: Any, groups: Any = None) -> ChurnClassifier:
        """Fit on features ``X`` and 0/1 labels ``y``; ``groups`` (e.g. customer ids) keep
        each group on one side of the internal hold-out."""
        if self.calibration is not None and not self.validation_fraction:
            raise ValueError("calibration needs a hold-out: set validation_fraction > 0")
        Xe = self._fit_encoder(X)
        y01 = binary_target(y, len(Xe))
        self.classes_ = np.array([0, 1])
        fit_idx = hold_idx = None
        if self.validation_fraction:
            fit_idx, hold_idx = holdout_split(
                len(Xe), self.validation_fraction, self.seed, stratify=y01, groups=groups
            )
        params = booster_params(self, objective="binary", class_weight=self.class_weight)
        self.model_ = fit_booster(
            lgb.LGBMClassifier(**params), Xe, y01, fit_idx, hold_idx, self.early_stopping_rounds
        )
        self.n_iter_ = self.model_.n_iter_
        self.calibrator_ = None
        if self.calibration is not None:
            raw = self._raw(Xe.iloc[hold_idx])
            self.calibrator_ = LogOddsCalibrator(self.calibration).fit(raw, y01[hold_idx])
        return self

    def _raw(self, Xe: pd.DataFrame) -> np.ndarray:
        return self.model_.predict(Xe, raw_score=True)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds of churn from the booster."""
        return self._raw(self._encode(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """``[[P(stay), P(churn)], ...]``, calibrated when ``calibration`` is set."""
        raw = self.decision_function(X)
        p = expit(raw) if self.calibrator_ is None else self.calibrator_.predict(raw)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 (churn) where the churn probability is at least 0.5, else 0."""
        return (self.predict_proba(X)[:, 1] >= THRESHOLD).astype(int)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Exact TreeSHAP contributions of each feature to the uncalibrated log-odds.

        One column per feature plus ``bias`` (the expected log-odds); each row sums to
        :meth:`decision_function`. Costs about trees x leaves x depth^2 per row.
        """
        contrib = self.model_.predict(self._encode(X), pred_contrib=True)
        columns = [*self.feature_names_in_, BIAS]
        return pd.DataFrame(contrib, columns=columns, index=X.index)

    def to_state(self) -> dict[str, Any]:
        """Parameters, encoder (features, dtypes, categories), booster text, calibrator."""
        check_is_fitted(self, "model_")
        return {
            "params": params_state(self),
            "encoder": self.encoder_.to_state(),
            "booster": self.model_.to_state(),
            "calibrator": None if self.calibrator_ is None else self.calibrator_.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ChurnClassifier:
        est = restore_params(cls, state)
        est._set_encoder(FrameEncoder.from_state(require(state, "encoder", dict)))
        est.classes_ = np.array([0, 1])
        est.model_ = BoosterModel.from_state(require(state, "booster", dict))
        est.model_.check_features(est.feature_names_in_, cls.__name__)
        if est.model_.objective != "binary":
            raise ModelStateError(f"{cls.__name__}: its booster has objective "
                                  f"{est.model_.objective!r}, not 'binary' (a classifier's)")
        est.n_iter_ = est.model_.n_iter_
        cal = require(state, "calibrator", (dict, type(None)))
        est.calibrator_ = None if cal is None else LogOddsCalibrator.from_state(cal)
        return est

    @property
    def booster_(self) -> lgb.Booster:
        """The fitted LightGBM booster (uncalibrated; trees beyond ``n_iter_`` are unused)."""
        check_is_fitted(self, "model_")
        return self.model_.booster_

    @property
    def feature_importances_(self) -> pd.Series:
        """Total split gain per feature, descending."""
        gain = self.booster_.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.feature_names_in_).sort_values(ascending=False)
