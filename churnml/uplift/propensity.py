"""Propensity ``e_k(x) = P(arm k | x, arm in {control, k})``: known or cross-fitted, and a check.

Each treatment arm is compared with control on the rows of those two groups, so ``e_k`` is the
pairwise propensity the learners need. Three sources:

* ``"shares"`` (randomised design, the default): the arm's share of those rows, a constant.
* a dict of assignment probabilities ``{arm: p}`` covering control and every arm (e.g. a 10 %
  holdout: ``{"control": 0.1, "coupon": 0.9}``): ``e_k = p_k / (p_k + p_control)``.
* ``"estimate"`` (contacts not random): a LightGBM classifier of arm k vs control, cross-fitted
  over ``n_folds`` stratified folds so that each training row's propensity comes from a model
  that never saw it (Chernozhukov et al. 2018, "Double/debiased machine learning", The
  Econometrics Journal 21:C1-C68); a model on all rows serves new rows. Values are clipped to
  ``[clip, 1 - clip]`` (inverse-propensity weights stay bounded).

The check: the out-of-fold ROC AUC of the estimated propensity (``auc_``,
:func:`propensity_auc`). Near 0.5 means the features cannot tell who was contacted, as in a
randomised design; well above 0.5 means targeted (confounded) contacts — use ``"estimate"``
and read effects with care where ``e_k`` is near 0 or 1 (no overlap).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from churnml.errors import ConfigError
from churnml.models._lgbm import booster_params
from churnml.models._preprocess import FrameModelMixin
from churnml.uplift._base import (
    COLSAMPLE_BYTREE,
    CONTROL,
    LEARNING_RATE,
    MAX_DEPTH,
    MIN_CHILD_SAMPLES,
    N_FOLDS,
    N_JOBS,
    NUM_LEAVES,
    REG_LAMBDA,
    SEED,
    check_arms,
)

CLIP = 0.01
N_ESTIMATORS = 100
SOURCES = ("shares", "estimate")


def check_propensity(propensity: Any, control: str, arms: list[str]) -> None:
    """Raise :class:`ConfigError` unless ``propensity`` is a source name or a valid dict."""
    if isinstance(propensity, str):
        if propensity not in SOURCES:
            raise ConfigError(f"propensity must be one of {SOURCES} or a dict, got {propensity!r}")
        return
    if not isinstance(propensity, dict):
        raise ConfigError(f"propensity must be one of {SOURCES} or a dict, got {propensity!r}")
    missing = [a for a in [control, *arms] if a not in propensity]
    if missing:
        raise ConfigError(f"propensity dict has no probability for arm(s) {missing}")
    bad = {a: p for a, p in propensity.items() if not 0.0 < float(p) < 1.0}
    if bad:
        raise ConfigError(f"assignment probabilities must be in (0, 1), got {bad}")


class PropensityModel(FrameModelMixin, BaseEstimator):
    """Pairwise propensity of each treatment arm vs control (module docstring).

    Parameters
    ----------
    propensity : "shares", "estimate" or dict
    control : str
    n_folds : int
        Cross-fitting folds of ``"estimate"``.
    clip : float
        Propensities are clipped to ``[clip, 1 - clip]``.
    n_estimators, learning_rate, num_leaves, max_depth, min_child_samples, colsample_bytree,
    reg_lambda, seed, n_jobs
        LightGBM settings of the estimated propensity.

    Attributes
    ----------
    arms_ : list of str
    train_ : DataFrame
        Propensity of each training row per arm (out-of-fold when estimated; NaN for rows of
        other arms), training index.
    auc_ : Series
        Out-of-fold ROC AUC per arm (NaN unless estimated).
    models_ : dict
        Per arm: the LightGBM classifier fitted on all rows (``"estimate"``) or the constant.
    """

    def __init__(
        self,
        propensity: str | dict[str, float] = "estimate",
        control: str = CONTROL,
        n_folds: int = N_FOLDS,
        clip: float = CLIP,
        n_estimators: int = N_ESTIMATORS,
        learning_rate: float = LEARNING_RATE,
        num_leaves: int = NUM_LEAVES,
        max_depth: int = MAX_DEPTH,
        min_child_samples: int = MIN_CHILD_SAMPLES,
        colsample_bytree: float = COLSAMPLE_BYTREE,
        reg_lambda: float = REG_LAMBDA,
        seed: int = SEED,
        n_jobs: int = N_JOBS,
    ) -> None:
        self.propensity = propensity
        self.control = control
        self.n_folds = n_folds
        self.clip = clip
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, X: pd.DataFrame, treatment: Any) -> PropensityModel:
        """Learn ``e_k`` for every treatment arm from features ``X`` and arm names."""
        if not 0.0 <= self.clip < 0.5:
            raise ValueError(f"clip must be in [0, 0.5), got {self.clip}")
        Xe = self._fit_encoder(X)
        arms, self.arms_ = check_arms(treatment, len(Xe), self.control)
        check_propensity(self.propensity, self.control, self.arms_)
        train = pd.DataFrame(np.nan, index=X.index, columns=self.arms_)
        self.auc_ = pd.Series(np.nan, index=self.arms_, name="propensity_auc")
        self.models_: dict[str, Any] = {}
        for arm in self.arms_:
            rows = np.isin(arms, [arm, self.control])
            t = (arms[rows] == arm).astype(int)
            if self.propensity == "estimate":
                e, self.models_[arm] = self._cross_fit(Xe.iloc[np.flatnonzero(rows)], t)
                self.auc_[arm] = roc_auc_score(t, e)
            else:
                e = np.full(t.size, self._constant(arm, t))
                self.models_[arm] = float(e[0]) if e.size else np.nan
            train.loc[rows, arm] = np.clip(e, self.clip, 1.0 - self.clip)
        self.train_ = train
        return self

    def _constant(self, arm: str, t: np.ndarray) -> float:
        if self.propensity == "shares":
            return float(t.mean())
        p_arm, p_control = float(self.propensity[arm]), float(self.propensity[self.control])
        return p_arm / (p_arm + p_control)

    def _cross_fit(self, Xe: pd.DataFrame, t: np.ndarray) -> tuple[np.ndarray, Any]:
        """Out-of-fold propensities and the all-rows model for new rows."""
        oof = np.empty(t.size)
        splitter = StratifiedKFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
        for fit_idx, out_idx in splitter.split(np.zeros(t.size), t):
            model = lgb.LGBMClassifier(objective="binary", **booster_params(self))
            model.fit(Xe.iloc[fit_idx], t[fit_idx])
            oof[out_idx] = model.predict_proba(Xe.iloc[out_idx])[:, 1]
        final = lgb.LGBMClassifier(objective="binary", **booster_params(self)).fit(Xe, t)
        return oof, final

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """``e_k(x)`` per arm for new rows (clipped), ``X``'s index."""
        check_is_fitted(self, "arms_")
        Xe = self._encode(X)
        out = {}
        for arm in self.arms_:
            if self.propensity == "estimate":
                e = self.models_[arm].predict_proba(Xe)[:, 1]
            else:
                e = np.full(len(Xe), self.models_[arm])
            out[arm] = np.clip(e, self.clip, 1.0 - self.clip)
        return pd.DataFrame(out, index=X.index)


def propensity_auc(
    X: pd.DataFrame,
    treatment: Any,
    control: str = CONTROL,
    n_folds: int = N_FOLDS,
    seed: int = SEED,
) -> pd.Series:
    """Out-of-fold ROC AUC of arm k vs control from the features, per arm.

    About 0.5 (within sampling noise, roughly ``± 2 / sqrt(n_smaller_group)``): contacts look
    randomised; clearly above: assignment depended on the features (estimate the propensity).
    """
    model = PropensityModel("estimate", control=control, n_folds=n_folds, seed=seed)
    return model.fit(X, treatment).auc_.copy()
