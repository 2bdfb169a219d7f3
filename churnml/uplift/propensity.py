"""Propensity ``e_k(x) = P(arm k | x, arm in {control, k})``: known or cross-fitted, and a check.

Each treatment arm is compared with control on the rows of those two groups, so ``e_k`` is the
pairwise propensity the learners need. Three sources:

* ``"shares"`` (randomised design, the default): the arm's share of those rows, a constant;
  with ``groups`` (e.g. the campaign id, when campaigns with different holdout shares are
  pooled) the share within each group for the training rows, and the pooled share for new
  rows.
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
from churnml.models._lgbm import BoosterModel, booster_params
from churnml.models._preprocess import FrameEncoder, FrameModelMixin
from churnml.models._state import params_state, require, restore_params
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
    key_folds,
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

    def fit(self, X: pd.DataFrame, treatment: Any, groups: Any = None,
            keys: np.ndarray | None = None) -> PropensityModel:
        """Learn ``e_k`` for every treatment arm from features ``X`` and arm names.

        ``groups``: one label per row (e.g. campaign id); known shares are taken within each
        group. ``keys``: row hashes (:func:`churnml.uplift._base.row_keys`); cross-fitting
        folds follow them (order-free) instead of a seeded shuffle."""
        if not 0.0 <= self.clip < 0.5:
            raise ValueError(f"clip must be in [0, 0.5), got {self.clip}")
        Xe = self._fit_encoder(X)
        arms, self.arms_ = check_arms(treatment, len(Xe), self.control)
        check_propensity(self.propensity, self.control, self.arms_)
        group_arr = None if groups is None else np.asarray(groups, dtype=object).astype(str)
        if group_arr is not None and group_arr.shape[0] != len(Xe):
            raise ValueError(f"groups has {group_arr.shape[0]} entries for {len(Xe)} rows")
        train = pd.DataFrame(np.nan, index=X.index, columns=self.arms_)
        self.auc_ = pd.Series(np.nan, index=self.arms_, name="propensity_auc")
        self.models_: dict[str, Any] = {}
        for arm in self.arms_:
            rows = np.isin(arms, [arm, self.control])
            t = (arms[rows] == arm).astype(int)
            if self.propensity == "estimate":
                sub_keys = None if keys is None else keys[rows]
                e, self.models_[arm] = self._cross_fit(Xe.iloc[np.flatnonzero(rows)], t,
                                                       sub_keys)
                self.auc_[arm] = roc_auc_score(t, e)
            else:
                self.models_[arm] = self._constant(arm, t) if t.size else np.nan
                if self.propensity == "shares" and group_arr is not None:
                    e = pd.Series(t).groupby(group_arr[rows]).transform("mean").to_numpy()
                else:
                    e = np.full(t.size, self.models_[arm])
            train.loc[rows, arm] = np.clip(e, self.clip, 1.0 - self.clip)
        self.train_ = train
        return self

    def _constant(self, arm: str, t: np.ndarray) -> float:
        if self.propensity == "shares":
            return float(t.mean())
        p_arm, p_control = float(self.propensity[arm]), float(self.propensity[self.control])
        return p_arm / (p_arm + p_control)

    def _cross_fit(self, Xe: pd.DataFrame, t: np.ndarray,
                   keys: np.ndarray | None = None) -> tuple[np.ndarray, BoosterModel]:
        """Out-of-fold propensities and the all-rows model for new rows."""
        oof = np.empty(t.size)
        if keys is not None:
            folds = key_folds(keys, self.n_folds)
        else:
            splitter = StratifiedKFold(n_splits=self.n_folds, shuffle=True,
                                       random_state=self.seed)
            folds = list(splitter.split(np.zeros(t.size), t))
        for fit_idx, out_idx in folds:
            model = lgb.LGBMClassifier(objective="binary", **booster_params(self))
            model.fit(Xe.iloc[fit_idx], t[fit_idx])
            oof[out_idx] = model.predict_proba(Xe.iloc[out_idx])[:, 1]
        final = lgb.LGBMClassifier(objective="binary", **booster_params(self)).fit(Xe, t)
        return oof, BoosterModel.from_fitted(final)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """``e_k(x)`` per arm for new rows (clipped), ``X``'s index."""
        check_is_fitted(self, "arms_")
        Xe = self._encode(X)
        out = {}
        for arm in self.arms_:
            if self.propensity == "estimate":
                e = self.models_[arm].predict(Xe)
            else:
                e = np.full(len(Xe), self.models_[arm])
            out[arm] = np.clip(e, self.clip, 1.0 - self.clip)
        return pd.DataFrame(out, index=X.index)

    def to_state(self) -> dict[str, Any]:
        """Parameters, encoder, arms, out-of-fold AUC and per arm the constant or the
        booster's LightGBM text (the training rows' ``train_`` is not kept)."""
        check_is_fitted(self, "arms_")
        models = {a: m.to_state() if isinstance(m, BoosterModel) else float(m)
                  for a, m in self.models_.items()}
        return {"params": params_state(self), "encoder": self.encoder_.to_state(),
                "arms": list(self.arms_), "auc": {a: float(v) for a, v in self.auc_.items()},
                "models": models}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PropensityModel:
        est = restore_params(cls, state)
        est._set_encoder(FrameEncoder.from_state(require(state, "encoder", dict)))
        est.arms_ = [str(a) for a in require(state, "arms", list)]
        est.auc_ = pd.Series(require(state, "auc", dict), name="propensity_auc",
                             dtype=float).reindex(est.arms_)
        est.models_ = {a: BoosterModel.from_state(m) if isinstance(m, dict) else float(m)
                       for a, m in require(state, "models", dict).items()}
        return est


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
