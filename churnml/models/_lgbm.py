"""Shared LightGBM settings: small deterministic trees, an internal hold-out, early stopping.

Defaults are deliberately small (<= 300 trees, <= 31 leaves, depth <= 6): per-row reason
codes use exact TreeSHAP (``pred_contrib=True``), whose cost grows with
trees x leaves x depth^2. Determinism follows the LightGBM docs: ``deterministic=True``,
``force_row_wise=True``, a fixed ``seed`` and a fixed thread count (``n_jobs``).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from churnml.errors import TrainingDataError

N_ESTIMATORS = 300
LEARNING_RATE = 0.05
NUM_LEAVES = 31
MAX_DEPTH = 6
MIN_CHILD_SAMPLES = 20
COLSAMPLE_BYTREE = 0.9
REG_LAMBDA = 1.0
VALIDATION_FRACTION = 0.2  # share of rows held out for early stopping (and calibration)
EARLY_STOPPING_ROUNDS = 30
SEED = 42
# Fixed thread count (results may depend on it). One thread: on a small or shared machine
# LightGBM's OpenMP threads spin-wait on each other (a 2-thread fit measured ~70x slower than
# 1 thread on 2 busy cores); raise it per model for large data on idle cores.
N_JOBS = 1

BOOSTER_PARAMS = (
    "n_estimators",
    "learning_rate",
    "num_leaves",
    "max_depth",
    "min_child_samples",
    "colsample_bytree",
    "reg_lambda",
)


def booster_params(est: Any, **extra: Any) -> dict[str, Any]:
    """LightGBM constructor arguments from an estimator's hyper-parameters (plus ``extra``)."""
    params = {name: getattr(est, name) for name in BOOSTER_PARAMS}
    params.update(
        random_state=est.seed,
        n_jobs=est.n_jobs,
        deterministic=True,
        force_row_wise=True,
        verbosity=-1,
    )
    params.update(extra)
    return params


def holdout_split(
    n_rows: int,
    fraction: float,
    seed: int,
    stratify: np.ndarray | None = None,
    groups: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(fit, holdout)``; ``fraction`` of rows (or of groups) held out.

    With ``groups`` (e.g. customer ids of a multi-cutoff panel) no group is on both sides,
    so the hold-out measures generalisation to unseen customers; otherwise the split is
    stratified on ``stratify``.
    """
    positions = np.arange(n_rows)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape[0] != n_rows:
            raise ValueError(f"groups has {groups.shape[0]} entries for {n_rows} rows")
    units = len(np.unique(groups)) if groups is not None else n_rows
    if units < 2:
        what = "customer" if groups is not None else "row"
        raise TrainingDataError(
            f"the training panel has {n_rows} row(s) from {units} {what}(s): a model needs "
            f"at least 2 {what}s, one to fit on and one held out ({fraction:.0%}) for early "
            "stopping; train on data with more customers")
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        fit, hold = next(splitter.split(positions, groups=groups))
        return fit, hold
    fit, hold = train_test_split(
        positions, test_size=fraction, random_state=seed, stratify=stratify
    )
    return np.sort(fit), np.sort(hold)


class BoosterModel:
    """A fitted LightGBM booster with the prediction API of LightGBM's scikit-learn wrapper.

    :func:`fit_booster` returns one; :meth:`to_state` / :meth:`from_state` round-trip it
    through LightGBM's text model format (no pickle). Only the trees up to ``n_iter_`` (the
    best iteration under early stopping) are used and saved.

    Attributes
    ----------
    booster_ : lightgbm.Booster
    objective : str
        LightGBM objective (``"binary"``: :meth:`predict_proba` is available).
    n_iter_ : int
        Trees used for prediction.
    """

    def __init__(self, booster: lgb.Booster, objective: str, n_iter: int) -> None:
        self.booster_ = booster
        self.objective = objective
        self.n_iter_ = int(n_iter)

    @property
    def best_iteration_(self) -> int:
        return self.n_iter_

    @classmethod
    def from_fitted(cls, model: lgb.LGBMModel) -> BoosterModel:
        """Wrap the booster of a fitted scikit-learn-style LightGBM model."""
        n_iter = int(model.best_iteration_ or model.n_iter_)
        return cls(model.booster_, str(model.objective_), n_iter)

    def predict(self, X: Any, raw_score: bool = False, pred_leaf: bool = False,
                pred_contrib: bool = False, num_iteration: int | None = None) -> np.ndarray:
        """Booster predictions on the first ``num_iteration`` (default ``n_iter_``) trees:
        probabilities (binary), values (regression), raw scores, leaves or contributions."""
        return self.booster_.predict(
            X, raw_score=raw_score, pred_leaf=pred_leaf, pred_contrib=pred_contrib,
            num_iteration=self.n_iter_ if num_iteration is None else num_iteration,
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[[1 - p, p], ...]`` of a binary booster."""
        if self.objective != "binary":
            raise AttributeError(f"predict_proba needs a binary booster, not {self.objective}")
        p = self.predict(X)
        return np.column_stack([1.0 - p, p])

    def to_state(self) -> dict[str, Any]:
        """``{"objective", "n_iter", "model"}``; ``model`` is LightGBM's text format."""
        text = self.booster_.model_to_string(num_iteration=self.n_iter_)
        return {"objective": self.objective, "n_iter": self.n_iter_, "model": text}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BoosterModel:
        from churnml.models._state import ModelStateError, require

        text = require(state, "model", str)
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise ModelStateError(f"unreadable LightGBM model text: {exc}") from exc
        return cls(booster, require(state, "objective", str), require(state, "n_iter", int))


def fit_booster(
    model: lgb.LGBMModel,
    X: Any,
    y: np.ndarray,
    fit_idx: np.ndarray | None,
    hold_idx: np.ndarray | None,
    early_stopping_rounds: int | None,
) -> BoosterModel:
    """Fit ``model`` on the ``fit_idx`` rows, early-stopping on the ``hold_idx`` rows; returns
    the fitted booster (:class:`BoosterModel`).

    Without a hold-out (``hold_idx is None``) the model is fitted on all rows for
    ``n_estimators`` rounds.
    """
    if hold_idx is None:
        return BoosterModel.from_fitted(model.fit(X, y))
    callbacks = (
        [lgb.early_stopping(early_stopping_rounds, verbose=False)]
        if early_stopping_rounds
        else None
    )
    return BoosterModel.from_fitted(model.fit(
        X.iloc[fit_idx],
        y[fit_idx],
        eval_X=(X.iloc[hold_idx],),
        eval_y=(y[hold_idx],),
        callbacks=callbacks,
    ))
