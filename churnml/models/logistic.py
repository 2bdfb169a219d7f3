"""Logistic-regression churn baseline, always fitted beside the boosted model.

Pipeline: typed frame (:class:`~churnml.models._preprocess.FrameEncoder`) -> numeric columns
median-imputed with missing-value indicators and standardised; categorical columns one-hot
encoded (missing is its own level; a level unseen at fit time maps to all zeros) ->
L2-regularised :class:`~sklearn.linear_model.LogisticRegression`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from churnml.models._preprocess import CATEGORICAL, FrameModelMixin
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
    pipeline_ : sklearn.pipeline.Pipeline
        ``columns`` (ColumnTransformer) then ``model`` (LogisticRegression), fitted on the
        encoded frame.
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
        self.pipeline_ = Pipeline([("columns", _columns()), ("model", model)]).fit(Xe, y01)
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of churn."""
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.decision_function(self._encode(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict_proba(self._encode(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= THRESHOLD).astype(int)
