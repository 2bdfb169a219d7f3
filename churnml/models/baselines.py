"""Naive baselines every model must beat: recency for churn, last-period value for LTV.

Both read one existing feature column (named by ``column``) and learn (almost) nothing, so a
backtest can show how much the boosted models add.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from churnml.errors import DataValidationError
from churnml.models._preprocess import FEATURE_TABLE, FrameEncoder, FrameModelMixin, check_target
from churnml.models._state import params_state, require, restore_params, stateful
from churnml.models.churn import (
    THRESHOLD,
    binary_target,
    logistic_1d_from_state,
    logistic_1d_state,
)

# default columns: names of the built-in features (churnml.features, recency and monetary
# groups); LAST_VALUE_COLUMN matches the default 90-day horizon (ChurnConfig.horizon_days)
RECENCY_COLUMN = "days_since_last_purchase"
LAST_VALUE_COLUMN = "spend_90d"


class _OneColumnMixin(FrameModelMixin):
    """Fit the frame encoder on the single ``column`` and read it back as floats."""

    column: str

    def _fit_column(self, X: pd.DataFrame) -> np.ndarray:
        if self.column not in X.columns:
            raise DataValidationError(
                FEATURE_TABLE, self.column, f"{type(self).__name__} needs this column"
            )
        return self._fit_encoder(X[[self.column]])[self.column].to_numpy()

    def _column(self, X: pd.DataFrame) -> np.ndarray:
        return self._encode(X)[self.column].to_numpy()

    def _column_state(self) -> dict[str, Any]:
        check_is_fitted(self, "encoder_")
        return {"params": params_state(self), "encoder": self.encoder_.to_state()}

    @classmethod
    def _from_column_state(cls, state: dict[str, Any]) -> Any:
        est = restore_params(cls, state)
        est._set_encoder(FrameEncoder.from_state(require(state, "encoder", dict)))
        return est


@stateful
class RecencyBaseline(_OneColumnMixin, ClassifierMixin, BaseEstimator):
    """Churn score = days since the last purchase (``column``).

    :meth:`decision_function` returns the recency itself (missing = never purchased ->
    the largest recency seen at fit); :meth:`predict_proba` maps it to a probability with a
    one-feature logistic regression on ``log1p(recency)``, so Brier score and log loss are
    comparable with the real models. The ranking is the recency ranking whenever the fitted
    slope is positive (longer silence, more churn), as it is on any sensible data.
    """

    def __init__(self, column: str = RECENCY_COLUMN) -> None:
        self.column = column

    def fit(self, X: pd.DataFrame, y: Any) -> RecencyBaseline:
        recency = self._fit_column(X)
        y01 = binary_target(y, len(recency))
        self.classes_ = np.array([0, 1])
        if np.isnan(recency).all():
            raise DataValidationError(FEATURE_TABLE, self.column, "all values are missing")
        self.fill_value_ = float(np.nanmax(recency))
        self.model_ = LogisticRegression().fit(self._transform(recency).reshape(-1, 1), y01)
        return self

    def _transform(self, recency: np.ndarray) -> np.ndarray:
        return np.log1p(np.clip(recency, 0.0, None))

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Days since the last purchase (missing -> ``fill_value_``)."""
        check_is_fitted(self, "fill_value_")
        recency = self._column(X)
        return np.where(np.isnan(recency), self.fill_value_, recency)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        z = self._transform(self.decision_function(X)).reshape(-1, 1)
        return self.model_.predict_proba(z)

    def to_state(self) -> dict[str, Any]:
        """Parameters, encoder, fill value and the logistic slope and intercept."""
        check_is_fitted(self, "fill_value_")
        return {**self._column_state(), "fill_value": self.fill_value_,
                "logistic": logistic_1d_state(self.model_)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RecencyBaseline:
        est = cls._from_column_state(state)
        est.classes_ = np.array([0, 1])
        est.fill_value_ = float(require(state, "fill_value", (int, float)))
        est.model_ = logistic_1d_from_state(require(state, "logistic", dict))
        return est

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= THRESHOLD).astype(int)


@stateful
class LastValueBaseline(_OneColumnMixin, RegressorMixin, BaseEstimator):
    """LTV = revenue in the last horizon-long window before the cutoff (``column``; the
    default is the 90-day purchase spend feature: pass ``spend_<horizon>d`` for another
    horizon, or a net-revenue column).

    Missing values (no purchase history) and negative values (net returns) predict 0,
    matching the non-negative predictions of :class:`~churnml.models.ltv.LTVModel`.
    """

    def __init__(self, column: str = LAST_VALUE_COLUMN) -> None:
        self.column = column

    def fit(self, X: pd.DataFrame, y: Any = None) -> LastValueBaseline:
        values = self._fit_column(X)
        if y is not None:
            check_target(y, len(values), "ltv")
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Last-window net revenue, clipped at 0, input currency."""
        return np.clip(np.nan_to_num(self._column(X), nan=0.0), 0.0, None)

    def to_state(self) -> dict[str, Any]:
        """Parameters and encoder (nothing else is learned)."""
        return self._column_state()

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LastValueBaseline:
        return cls._from_column_state(state)
