"""Typed feature frames for the models: numeric columns as float64, categoricals as ``category``.

LightGBM rejects pandas-3 ``str`` columns and MLflow schema enforcement rejects ``category``
columns, so every churnml model takes a plain DataFrame (numbers, strings, categories) and
converts it here, with the categories learned at fit time. A category unseen at fit time
becomes missing (NaN) at predict time; LightGBM and the one-hot encoder treat it as such.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from churnml.errors import DataValidationError

FEATURE_TABLE = "features"  # table name used in error messages
NUMERIC = "float64"
CATEGORICAL = "category"
MAX_SHOWN_ROWS = 5  # offending rows quoted in an error message


def as_frame(X: Any) -> pd.DataFrame:
    """``X`` as a DataFrame with string column names (the models need names)."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"churnml models need a pandas DataFrame with named feature columns, got {type(X)}"
        )
    if len(X.columns) == 0:
        raise DataValidationError(FEATURE_TABLE, None, "no feature columns")
    if X.columns.duplicated().any():
        dup = X.columns[X.columns.duplicated()].tolist()
        raise DataValidationError(FEATURE_TABLE, str(dup[0]), f"duplicate column(s) {dup}")
    return X


def is_categorical(s: pd.Series) -> bool:
    """Strings, pandas categories and object columns are categorical; numbers and bools not."""
    return (
        isinstance(s.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(s.dtype)
        or pd.api.types.is_object_dtype(s.dtype)
    )


def _to_float(s: pd.Series) -> pd.Series:
    """Numeric column as float64; non-numeric values raise, naming column and rows."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype) or pd.api.types.is_timedelta64_dtype(
        s.dtype
    ):
        raise DataValidationError(
            FEATURE_TABLE,
            str(s.name),
            f"{s.dtype} column cannot be a model feature; convert it to a number "
            "(e.g. days since) first",
        )
    if s.dtype == NUMERIC:
        return s
    out = pd.to_numeric(s, errors="coerce").astype(NUMERIC)
    bad = out.isna() & s.notna()
    if bad.any():
        rows = s.index[bad]
        raise DataValidationError(
            FEATURE_TABLE,
            str(s.name),
            "not numeric",
            rows=rows[:MAX_SHOWN_ROWS].tolist(),
            values=s[bad].iloc[:MAX_SHOWN_ROWS].tolist(),
            n_rows=int(bad.sum()),
        )
    return out


def _to_category(s: pd.Series, categories: list[str]) -> pd.Series:
    """Values as strings, then a categorical with the fit-time categories (unknown -> NaN)."""
    if isinstance(s.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(
        s.cat.categories.dtype
    ):
        return s.cat.set_categories(categories)
    values = s.astype("str")
    values = values.where(values.isin(categories))
    return pd.Series(pd.Categorical(values, categories=categories), index=s.index, name=s.name)


class FrameEncoder(TransformerMixin, BaseEstimator):
    """Learn feature names, kinds and categories; turn frames into the typed model input.

    Numeric and boolean columns become float64 (NaN stays missing); string, object and
    category columns become ``category`` with the categories seen at fit (sorted as strings).
    At transform time columns are selected by name (order and extra columns do not matter);
    a missing column or a non-numeric value in a numeric column raises
    :class:`~churnml.errors.DataValidationError`.

    Attributes
    ----------
    feature_names_in_ : ndarray of str
    feature_dtypes_ : dict[str, str]
        ``"float64"`` or ``"category"`` per feature.
    categories_ : dict[str, list[str]]
        Categories per categorical feature.
    """

    def fit(self, X: pd.DataFrame, y: Any = None) -> FrameEncoder:
        X = as_frame(X)
        names = [str(c) for c in X.columns]
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = len(names)
        self.feature_dtypes_: dict[str, str] = {}
        self.categories_: dict[str, list[str]] = {}
        for name, col in zip(names, X.columns, strict=True):
            s = X[col]
            if is_categorical(s):
                self.feature_dtypes_[name] = CATEGORICAL
                self.categories_[name] = sorted(s.dropna().astype("str").unique().tolist())
            else:
                _to_float(s.rename(name))  # validates: raises on datetimes
                self.feature_dtypes_[name] = NUMERIC
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "feature_dtypes_")
        X = as_frame(X)
        X = X.rename(columns=str)
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise DataValidationError(
                FEATURE_TABLE,
                missing[0],
                f"missing feature column(s) {missing}; the model was fitted on "
                f"{list(self.feature_names_in_)}",
            )
        cols = {
            name: _to_category(X[name], self.categories_[name])
            if kind == CATEGORICAL
            else _to_float(X[name])
            for name, kind in self.feature_dtypes_.items()
        }
        return pd.DataFrame(cols, index=X.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_dtypes_")
        return self.feature_names_in_.copy()

    @property
    def categorical_features_(self) -> list[str]:
        """Names of the categorical features, in fit order."""
        return [n for n, k in self.feature_dtypes_.items() if k == CATEGORICAL]

    def to_state(self) -> dict[str, Any]:
        """``{"feature_dtypes": {name: kind}, "categories": {name: [...]}}`` (fit order)."""
        check_is_fitted(self, "feature_dtypes_")
        return {"feature_dtypes": dict(self.feature_dtypes_),
                "categories": {k: list(v) for k, v in self.categories_.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FrameEncoder:
        from churnml.models._state import ModelStateError, require

        dtypes = require(state, "feature_dtypes", dict)
        categories = require(state, "categories", dict)
        bad = {n: k for n, k in dtypes.items() if k not in (NUMERIC, CATEGORICAL)}
        if bad or set(categories) != {n for n, k in dtypes.items() if k == CATEGORICAL}:
            raise ModelStateError(
                f"feature dtypes {bad or dtypes} do not match the categories of {list(categories)}"
            )
        enc = cls()
        enc.feature_names_in_ = np.asarray(list(dtypes), dtype=object)
        enc.n_features_in_ = len(dtypes)
        enc.feature_dtypes_ = {str(n): str(k) for n, k in dtypes.items()}
        enc.categories_ = {str(n): [str(c) for c in v] for n, v in categories.items()}
        return enc


class FrameModelMixin:
    """Shared fit-time bookkeeping of churnml models: encoder, feature names and dtypes."""

    def _fit_encoder(self, X: pd.DataFrame) -> pd.DataFrame:
        """Fit ``encoder_`` on ``X``, record the feature schema and return the encoded frame."""
        self.encoder_ = FrameEncoder().fit(X)
        self.feature_names_in_ = self.encoder_.feature_names_in_
        self.n_features_in_ = self.encoder_.n_features_in_
        self.feature_dtypes_ = dict(self.encoder_.feature_dtypes_)
        return self.encoder_.transform(X)

    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "encoder_")
        return self.encoder_.transform(X)

    def _set_encoder(self, encoder: FrameEncoder) -> None:
        """Restore ``encoder_`` and the feature schema (the inverse of :meth:`_fit_encoder`
        without data, for ``from_state``)."""
        self.encoder_ = encoder
        self.feature_names_in_ = encoder.feature_names_in_
        self.n_features_in_ = encoder.n_features_in_
        self.feature_dtypes_ = dict(encoder.feature_dtypes_)


def check_target(y: Any, n_rows: int, name: str) -> np.ndarray:
    """Target as a float array of length ``n_rows`` without missing values."""
    arr = np.asarray(y, dtype=float).ravel()
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name}: {arr.shape[0]} labels for {n_rows} feature rows")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataValidationError(
            "labels",
            name,
            "missing or infinite label",
            rows=rows[:MAX_SHOWN_ROWS].tolist(),
            n_rows=int(bad.sum()),
        )
    return arr
