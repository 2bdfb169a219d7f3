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
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        fit, hold = next(splitter.split(positions, groups=groups))
        return fit, hold
    fit, hold = train_test_split(
        positions, test_size=fraction, random_state=seed, stratify=stratify
    )
    return np.sort(fit), np.sort(hold)


def fit_booster(
    model: lgb.LGBMModel,
    X: Any,
    y: np.ndarray,
    fit_idx: np.ndarray | None,
    hold_idx: np.ndarray | None,
    early_stopping_rounds: int | None,
) -> lgb.LGBMModel:
    """Fit ``model`` on the ``fit_idx`` rows, early-stopping on the ``hold_idx`` rows.

    Without a hold-out (``hold_idx is None``) the model is fitted on all rows for
    ``n_estimators`` rounds.
    """
    if hold_idx is None:
        return model.fit(X, y)
    callbacks = (
        [lgb.early_stopping(early_stopping_rounds, verbose=False)]
        if early_stopping_rounds
        else None
    )
    return model.fit(
        X.iloc[fit_idx],
        y[fit_idx],
        eval_X=(X.iloc[hold_idx],),
        eval_y=(y[hold_idx],),
        callbacks=callbacks,
    )
