"""Shared machinery of the uplift learners: arms, outcomes, LightGBM base models, folds.

Every learner takes a feature frame ``X``, an array ``treatment`` of arm names (``control`` or
a treatment name such as ``coupon_10``) and an outcome ``y`` (0/1 such as ``retained``, or a
number such as ``revenue`` in currency), and predicts one column of effects per treatment arm:
``tau_k(x) = E[Y | x, arm k] - E[Y | x, control]`` (probability points for a 0/1 outcome,
currency for revenue).
"""

from __future__ import annotations

from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from churnml.errors import DataValidationError
from churnml.models._lgbm import BoosterModel, booster_params
from churnml.models._preprocess import (
    MAX_SHOWN_ROWS,
    FrameEncoder,
    FrameModelMixin,
    check_target,
)
from churnml.models._state import ModelStateError, params_state, require, restore_params

Outcome = Literal["auto", "binary", "continuous"]
OUTCOMES = ("auto", "binary", "continuous")
ContinuousObjective = Literal["regression", "tweedie"]
CONTINUOUS_OBJECTIVES = ("regression", "tweedie")
TWEEDIE_POWER = 1.5  # variance power of the Tweedie loss unless lgbm_params sets one
CONTROL = "control"
TREATMENT_TABLE = "campaigns"  # table named in treatment errors (the contract's arm column)

# Defaults of the uplift base models: small, regularised trees (randomised-experiment data are
# noisy and the effect is a small difference of two large quantities).
N_ESTIMATORS = 200
LEARNING_RATE = 0.05
NUM_LEAVES = 15
MAX_DEPTH = 6
MIN_CHILD_SAMPLES = 100
COLSAMPLE_BYTREE = 1.0
REG_LAMBDA = 1.0
N_FOLDS = 5
SEED = 42
N_JOBS = 1
HASH_KEY = "churnml-uplift-0"  # 16 bytes: the key of the row hash behind folds and row order


def row_keys(ids: Any, n_rows: int, seed: int = 0) -> np.ndarray:
    """A stable 64-bit hash per row of ``ids`` (e.g. ``customer_id|campaign_id`` strings),
    mixed with ``seed``: folds are ``key % n_folds`` and rows are fitted in key order, so the
    same rows give the same model whatever order they come in."""
    values = pd.Series(np.asarray(ids, dtype=object).ravel()).astype(str)
    if len(values) != n_rows:
        raise ValueError(f"ids has {len(values)} entries for {n_rows} feature rows")
    if values.duplicated().any():
        dup = values[values.duplicated(keep=False)]
        raise DataValidationError(
            TREATMENT_TABLE, "customer_id", "row ids must be unique (one row per contact)",
            rows=dup.index[:MAX_SHOWN_ROWS].tolist(), values=dup.head(MAX_SHOWN_ROWS).tolist(),
            n_rows=int(dup.size))
    salted = values + f"|{int(seed)}"
    return pd.util.hash_pandas_object(salted, index=False, hash_key=HASH_KEY).to_numpy()


def key_folds(keys: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, held-out)`` positions with fold ``key % n_folds`` (order-free)."""
    fold = keys % np.uint64(n_folds)
    return [(np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(n_folds)]


def check_arms(treatment: Any, n_rows: int, control: str) -> tuple[np.ndarray, list[str]]:
    """Arm names as a str array and the treatment arms (sorted, control excluded)."""
    raw = pd.Series(np.asarray(treatment, dtype=object).ravel())
    if raw.shape[0] != n_rows:
        raise ValueError(f"treatment has {raw.shape[0]} entries for {n_rows} feature rows")
    missing = raw.isna()
    if missing.any():
        rows = np.flatnonzero(missing.to_numpy())
        raise DataValidationError(
            TREATMENT_TABLE, "arm", "missing arm", rows=rows[:MAX_SHOWN_ROWS].tolist(),
            n_rows=int(missing.sum()),
        )
    arms = raw.astype(str).to_numpy()
    names = sorted(set(arms.tolist()))
    if control not in names:
        raise DataValidationError(
            TREATMENT_TABLE, "arm", f"no {control!r} (control) rows; arms found: {names}"
        )
    treated = [a for a in names if a != control]
    if not treated:
        raise DataValidationError(TREATMENT_TABLE, "arm", f"only {control!r} rows, no treatment")
    return arms, treated


def check_outcome(y: Any, n_rows: int, outcome: str, name: str = "y") -> tuple[np.ndarray, str]:
    """Outcome as floats and its resolved kind (``binary`` or ``continuous``)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    arr = check_target(y, n_rows, name)
    binary = bool(np.isin(arr, (0.0, 1.0)).all())
    if outcome == "binary" and not binary:
        bad = np.flatnonzero(~np.isin(arr, (0.0, 1.0)))
        raise DataValidationError(
            "labels", name, "binary outcome must be 0/1", rows=bad[:MAX_SHOWN_ROWS].tolist(),
            values=arr[bad[:MAX_SHOWN_ROWS]].tolist(), n_rows=int(bad.size),
        )
    kind = outcome if outcome != "auto" else ("binary" if binary else "continuous")
    return arr, kind


def check_non_negative(y: np.ndarray, name: str = "y") -> None:
    """A Tweedie outcome model needs ``y >= 0`` (revenue net of returns can be negative)."""
    bad = np.flatnonzero(y < 0)
    if bad.size:
        raise DataValidationError(
            "labels", name, "the Tweedie loss (continuous_objective='tweedie') needs a "
            "non-negative outcome (net revenue after returns can be negative); use "
            "continuous_objective='regression' (config: uplift.revenue_objective: regression)",
            rows=bad[:MAX_SHOWN_ROWS].tolist(), values=y[bad[:MAX_SHOWN_ROWS]].tolist(),
            n_rows=int(bad.size))


def check_both_classes(y: np.ndarray, mask: np.ndarray, group: str) -> None:
    """A classifier on the ``mask`` rows needs both outcome values."""
    values = np.unique(y[mask])
    if values.size < 2:
        raise DataValidationError(
            "labels", None,
            f"every {group} row has outcome {values[0] if values.size else 'n/a'}; "
            "a binary outcome model needs both 0 and 1 in each arm",
        )


class UpliftBase(FrameModelMixin, BaseEstimator):
    """Hyper-parameters and helpers shared by the S-, T-, X- and DR-learners.

    Parameters
    ----------
    outcome : "auto", "binary" or "continuous"
        ``auto``: binary when ``y`` is all 0/1. Binary outcome models are LightGBM classifiers
        (probabilities); continuous ones L2 regressors.
    control : str
        Arm name of the control group.
    n_estimators, learning_rate, num_leaves, max_depth, min_child_samples, colsample_bytree,
    reg_lambda
        LightGBM hyper-parameters of every base model.
    lgbm_params : dict or None
        Extra LightGBM arguments for every base model (e.g. ``{"monotone_constraints": ...}``
        or ``{"subsample": 0.8, "subsample_freq": 1}``).
    continuous_objective : "regression" or "tweedie"
        Loss of the outcome models of a continuous outcome: L2, or Tweedie deviance with a log
        link (``log E[Y | x, arm] = f(x, arm)``; variance power ``tweedie_variance_power`` of
        ``lgbm_params``, default 1.5) for a non-negative outcome with many zeros such as
        revenue: an arm split then scales the outcome (an offer lifting spend by a share)
        instead of adding the same amount everywhere. Effect (second-stage) models stay L2.
    seed, n_jobs
        LightGBM seed and fixed thread count (deterministic fits).
    """

    def __init__(
        self,
        outcome: Outcome = "auto",
        control: str = CONTROL,
        n_estimators: int = N_ESTIMATORS,
        learning_rate: float = LEARNING_RATE,
        num_leaves: int = NUM_LEAVES,
        max_depth: int = MAX_DEPTH,
        min_child_samples: int = MIN_CHILD_SAMPLES,
        colsample_bytree: float = COLSAMPLE_BYTREE,
        reg_lambda: float = REG_LAMBDA,
        lgbm_params: dict[str, Any] | None = None,
        continuous_objective: ContinuousObjective = "regression",
        seed: int = SEED,
        n_jobs: int = N_JOBS,
    ) -> None:
        self.outcome = outcome
        self.control = control
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.lgbm_params = lgbm_params
        self.continuous_objective = continuous_objective
        self.seed = seed
        self.n_jobs = n_jobs

    # -- fitting helpers -------------------------------------------------------------------
    def _prepare(self, X: pd.DataFrame, treatment: Any, y: Any, ids: Any = None) -> tuple[
        pd.DataFrame, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray
    ]:
        """Encode ``X``, check arms and outcome; sets ``arms_``, ``outcome_``. With ``ids``
        the rows come back in the order of their hash (:func:`row_keys`), with the keys;
        the last item is the positions of the returned rows in ``X``."""
        Xe = self._fit_encoder(X)
        arms, self.arms_ = check_arms(treatment, len(Xe), self.control)
        y_arr, self.outcome_ = check_outcome(y, len(Xe), self.outcome)
        if self.continuous_objective not in CONTINUOUS_OBJECTIVES:
            raise ValueError(f"continuous_objective must be one of {CONTINUOUS_OBJECTIVES}, "
                             f"got {self.continuous_objective!r}")
        if self.outcome_ == "continuous" and self.continuous_objective == "tweedie":
            check_non_negative(y_arr)
        if self.outcome_ == "binary":
            for arm in [self.control, *self.arms_]:
                check_both_classes(y_arr, arms == arm, f"{arm!r}")
        if ids is None:
            return Xe, arms, y_arr, None, np.arange(len(Xe))
        keys = row_keys(ids, len(Xe), self.seed)
        order = np.argsort(keys, kind="stable")
        return Xe.iloc[order], arms[order], y_arr[order], keys[order], order

    def _model(self, kind: str | None = None, seed_offset: int = 0) -> lgb.LGBMModel:
        """A fresh LightGBM base model: classifier for ``binary``, else L2 regressor."""
        kind = kind or self.outcome_
        params = booster_params(self, **(self.lgbm_params or {}))
        params["random_state"] = self.seed + seed_offset
        if kind == "binary":
            return lgb.LGBMClassifier(**{**params, "objective": "binary"})
        if self.continuous_objective == "tweedie":
            params = {"tweedie_variance_power": TWEEDIE_POWER, **params, "objective": "tweedie"}
        return lgb.LGBMRegressor(**{"objective": "regression", **params})

    def _fit(self, Xe: pd.DataFrame, y: np.ndarray, seed_offset: int = 0,
             kind: str | None = None) -> BoosterModel:
        """A base model fitted on ``(Xe, y)``, kept as its booster (code-free state)."""
        return BoosterModel.from_fitted(self._model(kind, seed_offset).fit(Xe, y))

    @staticmethod
    def _mean(model: BoosterModel, Xe: pd.DataFrame) -> np.ndarray:
        """E[Y | x] from a fitted base model (probability of 1 for a binary booster)."""
        return model.predict(Xe)

    def _folds(self, strata: np.ndarray, n_folds: int,
               keys: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(train, held-out)`` positions for cross-fitting: by row key when the fit has
        ids (order-free), else stratified on ``strata``."""
        if n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {n_folds}")
        if keys is not None:
            return key_folds(keys, n_folds)
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=self.seed)
        return list(splitter.split(np.zeros(len(strata)), strata))

    # -- code-free state -------------------------------------------------------------------
    _STATE_ATTRS: tuple[str, ...] = ()  # fitted attributes holding boosters / numbers

    def to_state(self) -> dict[str, Any]:
        """Parameters, encoder, arms, outcome kind and every fitted booster as LightGBM text
        (:mod:`churnml.models._state`; no pickle)."""
        check_is_fitted(self, "arms_")
        state = {"params": params_state(self), "encoder": self.encoder_.to_state(),
                 "arms": list(self.arms_), "outcome": self.outcome_}
        for name in self._STATE_ATTRS:
            state[name] = _dump(getattr(self, name))
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Any:
        est = restore_params(cls, state)
        est._set_encoder(FrameEncoder.from_state(require(state, "encoder", dict)))
        est.arms_ = [str(a) for a in require(state, "arms", list)]
        est.outcome_ = require(state, "outcome", str)
        for name in cls._STATE_ATTRS:
            setattr(est, name, _load(require(state, name)))
        return est

    # -- prediction ------------------------------------------------------------------------
    def _effects(self, Xe: pd.DataFrame) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Estimated effect ``tau_k(x)`` per treatment arm: one column per arm, ``X``'s index.

        Units: probability points (0/1 outcome) or the outcome's currency (revenue).
        """
        check_is_fitted(self, "arms_")
        Xe = self._encode(X)
        effects = self._effects(Xe)
        return pd.DataFrame({arm: effects[arm] for arm in self.arms_}, index=X.index)


class PropensityLearnerBase(UpliftBase):
    """Base of learners that weight by the propensity ``e_k(x)`` (X- and DR-learner).

    Parameters (besides :class:`UpliftBase`'s)
    ----------
    propensity : "shares", "estimate" or dict
        Known shares of a randomised design (default), cross-fitted estimate for non-random
        contacts, or assignment probabilities per arm (:mod:`churnml.uplift.propensity`).
    n_folds : int
        Cross-fitting folds (estimated propensity; DR-learner outcome models).
    clip : float
        Propensities are clipped to ``[clip, 1 - clip]``.
    effect_params : dict or None
        LightGBM arguments overriding the base ones for the effect (second-stage) models,
        e.g. more regularisation: ``{"min_child_samples": 400, "n_estimators": 100}``.

    Attributes (besides the learner's own)
    ----------
    propensity_ : PropensityModel
    propensity_auc_ : Series
        Out-of-fold propensity ROC AUC per arm (NaN unless ``propensity="estimate"``).
    """

    def __init__(
        self,
        outcome: Outcome = "auto",
        control: str = CONTROL,
        propensity: str | dict[str, float] = "shares",
        n_folds: int = N_FOLDS,
        clip: float = 0.01,
        n_estimators: int = N_ESTIMATORS,
        learning_rate: float = LEARNING_RATE,
        num_leaves: int = NUM_LEAVES,
        max_depth: int = MAX_DEPTH,
        min_child_samples: int = MIN_CHILD_SAMPLES,
        colsample_bytree: float = COLSAMPLE_BYTREE,
        reg_lambda: float = REG_LAMBDA,
        lgbm_params: dict[str, Any] | None = None,
        effect_params: dict[str, Any] | None = None,
        continuous_objective: ContinuousObjective = "regression",
        seed: int = SEED,
        n_jobs: int = N_JOBS,
    ) -> None:
        super().__init__(
            outcome=outcome, control=control, n_estimators=n_estimators,
            learning_rate=learning_rate, num_leaves=num_leaves, max_depth=max_depth,
            min_child_samples=min_child_samples, colsample_bytree=colsample_bytree,
            reg_lambda=reg_lambda, lgbm_params=lgbm_params,
            continuous_objective=continuous_objective, seed=seed, n_jobs=n_jobs,
        )
        self.propensity = propensity
        self.n_folds = n_folds
        self.clip = clip
        self.effect_params = effect_params

    def _fit_propensity(self, X: pd.DataFrame, arms: np.ndarray, groups: Any = None,
                        keys: np.ndarray | None = None) -> pd.DataFrame:
        """Fit ``propensity_`` and return the training rows' ``e_k`` (out-of-fold if
        estimated; per group, e.g. campaign, with known shares)."""
        from churnml.uplift.propensity import PropensityModel

        self.propensity_ = PropensityModel(
            self.propensity, control=self.control, n_folds=self.n_folds, clip=self.clip,
            learning_rate=self.learning_rate, num_leaves=self.num_leaves,
            max_depth=self.max_depth, min_child_samples=self.min_child_samples,
            colsample_bytree=self.colsample_bytree, reg_lambda=self.reg_lambda,
            seed=self.seed, n_jobs=self.n_jobs,
        ).fit(X, arms, groups=groups, keys=keys)
        self.propensity_auc_ = self.propensity_.auc_.copy()
        return self.propensity_.train_

    def _fit_effect(self, Xe: pd.DataFrame, target: np.ndarray,
                    seed_offset: int = 0) -> BoosterModel:
        """An L2 regressor of pseudo-outcomes (``effect_params`` applied), as its booster."""
        params = booster_params(self, **(self.lgbm_params or {}))
        params.update(self.effect_params or {})
        params["random_state"] = self.seed + seed_offset
        params.setdefault("objective", "regression")
        return BoosterModel.from_fitted(lgb.LGBMRegressor(**params).fit(Xe, target))


BOOSTER_TAG = "$booster"


def _dump(value: Any) -> Any:
    """Fitted attributes as JSON-able data: boosters as LightGBM text, dicts and tuples of
    them, propensity models and numbers."""
    from churnml.uplift.propensity import PropensityModel

    if isinstance(value, BoosterModel):
        return {BOOSTER_TAG: value.to_state()}
    if isinstance(value, PropensityModel):
        return {"$propensity": value.to_state()}
    if isinstance(value, dict):
        return {str(k): _dump(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise TypeError(f"cannot save a {type(value).__name__} in an uplift model state")


def _load(value: Any) -> Any:
    from churnml.uplift.propensity import PropensityModel

    if isinstance(value, dict):
        if BOOSTER_TAG in value:
            return BoosterModel.from_state(require(value, BOOSTER_TAG, dict))
        if "$propensity" in value:
            return PropensityModel.from_state(require(value, "$propensity", dict))
        return {k: _load(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_load(v) for v in value)
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise ModelStateError(f"unexpected {type(value).__name__} in an uplift model state")
