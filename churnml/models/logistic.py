"""Logistic-regression churn baseline, always fitted beside the boosted model.

Pipeline: typed frame (:class:`~churnml.models._preprocess.FrameEncoder`) -> numeric columns
median-imputed with missing-value indicators and standardised; categorical columns one-hot
encoded (missing is its own level; a level unseen at fit time maps to all zeros) ->
L2-regularised :class:`~sklearn.linear_model.LogisticRegression`.

The scikit-learn pipeline is only used to fit. Its fitted numbers (medians, indicator
columns, means and scales, categories, coefficients) are then read out into plain arrays and
predictions use those: ``log-odds = ((x_imputed, missing) - mean) / scale · coef + one-hot ·
coef + intercept``, so a model restored from JSON state (:meth:`to_state`) predicts exactly as
the fitted one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from churnml.models._preprocess import CATEGORICAL, FrameEncoder, FrameModelMixin
from churnml.models._state import (
    ModelStateError,
    decode,
    encode,
    params_state,
    require,
    restore_params,
    stateful,
)
from churnml.models.churn import THRESHOLD, binary_target

C = 1.0  # inverse L2 regularisation strength
MAX_ITER = 1000


def _columns() -> ColumnTransformer:
    numeric = make_pipeline(
        # keep_empty_features: a feature without any value in the training rows (e.g. a trend
        # whose earlier window predates the data at the first cutoffs) is kept as 0, silently
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
    )
    categorical = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    return ColumnTransformer(
        [
            ("numeric", numeric, make_column_selector(dtype_exclude=CATEGORICAL)),
            ("categorical", categorical, make_column_selector(dtype_include=CATEGORICAL)),
        ]
    )


@stateful
class LogisticChurnBaseline(FrameModelMixin, ClassifierMixin, BaseEstimator):
    """Impute + scale + one-hot + logistic regression on a feature frame.

    Parameters
    ----------
    C : float
        Inverse L2 regularisation strength.
    class_weight : None, "balanced" or dict
    max_iter : int

    Attributes
    ----------
    medians_ : dict[str, float]
        Numeric features kept (a feature without any value at fit is dropped) -> median.
    indicators_ : list of str
        Numeric features with a missing-value indicator (missing somewhere at fit).
    mean_, scale_ : ndarray
        Standardisation of the numeric block (imputed features, then indicators).
    categories_ : dict[str, list]
        Categorical feature -> one-hot levels (``None``: the missing level).
    coef_ : ndarray
        Coefficients of the design columns (numeric block, then one-hot levels).
    intercept_ : float
    classes_, feature_names_in_, feature_dtypes_, n_features_in_
    """

    def __init__(self, C: float = C, class_weight: Any = None, max_iter: int = MAX_ITER) -> None:
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter

    def fit(self, X: pd.DataFrame, y: Any) -> LogisticChurnBaseline:
        Xe = self._fit_encoder(X)
        y01 = binary_target(y, len(Xe))
        self.classes_ = np.array([0, 1])
        model = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter)
        pipeline = Pipeline([("columns", _columns()), ("model", model)]).fit(Xe, y01)
        self._read_pipeline(pipeline)
        return self

    def _read_pipeline(self, pipeline: Pipeline) -> None:
        """Copy the fitted numbers of the scikit-learn pipeline into plain attributes."""
        columns = pipeline.named_steps["columns"]
        self.medians_, self.indicators_, self.categories_ = {}, [], {}
        self.mean_ = self.scale_ = np.zeros(0)
        for name, step, cols in columns.transformers_:
            if name == "numeric" and len(cols):
                imputer, scaler = step[0], step[1]
                stats = imputer.statistics_
                self.medians_ = {c: float(v) for c, v in zip(cols, stats, strict=True)
                                 if not np.isnan(v)}
                self.indicators_ = [cols[i] for i in imputer.indicator_.features_]
                self.mean_, self.scale_ = scaler.mean_.copy(), scaler.scale_.copy()
            elif name == "categorical" and len(cols):
                self.categories_ = {
                    c: [None if pd.isna(v) else str(v) for v in levels]
                    for c, levels in zip(cols, step.categories_, strict=True)
                }
        self.coef_ = pipeline.named_steps["model"].coef_[0].copy()
        self.intercept_ = float(pipeline.named_steps["model"].intercept_[0])

    def _design(self, Xe: pd.DataFrame) -> np.ndarray:
        """Design matrix: standardised (imputed values, missing indicators), then one-hot."""
        values = Xe[list(self.medians_)].to_numpy(dtype=float)
        values = np.where(np.isnan(values), np.array(list(self.medians_.values())), values)
        missing = Xe[self.indicators_].isna().to_numpy(dtype=float)
        numeric = (np.hstack([values, missing]) - self.mean_) / self.scale_
        onehot = [
            (Xe[c].isna() if level is None else Xe[c].astype(object) == level)
            .to_numpy(dtype=float)[:, None]
            for c, levels in self.categories_.items() for level in levels
        ]
        return np.hstack([numeric, *onehot])

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of churn."""
        check_is_fitted(self, "coef_")
        return self._design(self._encode(X)) @ self.coef_ + self.intercept_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= THRESHOLD).astype(int)

    def to_state(self) -> dict[str, Any]:
        """Parameters, encoder and the fitted numbers (class docstring)."""
        check_is_fitted(self, "coef_")
        return {
            "params": params_state(self),
            "encoder": self.encoder_.to_state(),
            "medians": self.medians_,
            "indicators": list(self.indicators_),
            "mean": encode(self.mean_),
            "scale": encode(self.scale_),
            "categories": self.categories_,
            "coef": encode(self.coef_),
            "intercept": self.intercept_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LogisticChurnBaseline:
        est = restore_params(cls, state)
        est._set_encoder(FrameEncoder.from_state(require(state, "encoder", dict)))
        est.classes_ = np.array([0, 1])
        est.medians_ = {str(k): float(v) for k, v in require(state, "medians", dict).items()}
        est.indicators_ = [str(c) for c in require(state, "indicators", list)]
        est.categories_ = {str(k): list(v) for k, v in require(state, "categories", dict).items()}
        est.mean_ = np.asarray(decode(require(state, "mean", dict)), dtype=float)
        est.scale_ = np.asarray(decode(require(state, "scale", dict)), dtype=float)
        est.coef_ = np.asarray(decode(require(state, "coef", dict)), dtype=float)
        est.intercept_ = float(require(state, "intercept", (int, float)))
        n_numeric = len(est.medians_) + len(est.indicators_)
        n_design = n_numeric + sum(len(v) for v in est.categories_.values())
        if est.mean_.shape != (n_numeric,) or est.scale_.shape != (n_numeric,) \
                or est.coef_.shape != (n_design,):
            raise ModelStateError(
                f"LogisticChurnBaseline: {n_design} design columns but {est.coef_.shape} "
                "coefficients or a scale of another length"
            )
        unknown = set(est.medians_) | set(est.indicators_) | set(est.categories_)
        unknown -= set(est.feature_dtypes_)
        if unknown:
            raise ModelStateError(f"LogisticChurnBaseline: columns {sorted(unknown)} are not "
                                  "features of the encoder")
        return est
