"""Shared parts of the model-quality benchmarks (``cdnow.py``, ``simulated.py``): the
LightGBM candidate settings, out-of-fold prediction, and the result table and JSON file.

Every booster runs on ONE thread (``n_jobs=1``): the thread count is part of LightGBM's
determinism contract, and on a machine whose cores are shared with other jobs two OpenMP
threads that spin-wait for each other were measured here to be ~70x slower than one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnml.io import atomic_write

RESULTS_DIR = Path(__file__).resolve().parent / "results"
N_JOBS = 1  # LightGBM threads (see module docstring)
SEED = 0  # fold shuffling

# LightGBM settings compared by the nested selection. "default" is churnml's own default
# (300 trees, learning rate 0.05, 31 leaves, depth 6, 20 rows per leaf); "regularised" is
# a slower, shallower and more strongly penalised ensemble for tens of thousands of rows
# with a handful of informative features: more rows per leaf and column subsampling damp
# the variance of the many highly correlated RFM windows.
PARAM_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "regularised": {
        "n_estimators": 2000,
        "learning_rate": 0.02,
        "num_leaves": 7,
        "max_depth": 3,
        "min_child_samples": 100,
        "colsample_bytree": 0.5,
        "reg_lambda": 10.0,
        "early_stopping_rounds": 100,
    },
}

Predict = Callable[[Any, pd.DataFrame], np.ndarray]


def churn_probability(model: Any, X: pd.DataFrame) -> np.ndarray:
    """Predicted churn probability (second column of ``predict_proba``)."""
    return model.predict_proba(X)[:, 1]


def value(model: Any, X: pd.DataFrame) -> np.ndarray:
    """Predicted customer value."""
    return model.predict(X)


def out_of_fold(
    make: Callable[[], Any],
    X: pd.DataFrame,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    predict: Predict,
) -> np.ndarray:
    """Predictions for every row from a model fitted on the other folds."""
    out = np.full(len(X), np.nan)
    for train, test in folds:
        model = make().fit(X.iloc[train], y[train])
        out[test] = predict(model, X.iloc[test])
    return out


def rounded(obj: Any, digits: int = 6) -> Any:
    """``obj`` with floats rounded (NaN -> None) for a readable JSON file."""
    if isinstance(obj, Mapping):
        return {str(k): rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, digits) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if math.isnan(obj) else round(float(obj), digits)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(name: str, result: Mapping[str, Any]) -> Path:
    """Write ``result`` atomically to ``benchmarks/results/<name>.json``."""
    path = RESULTS_DIR / f"{name}.json"
    text = json.dumps(rounded(result), indent=2)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def print_table(title: str, rows: list[dict[str, Any]], columns: Mapping[str, str]) -> None:
    """Rows as a fixed-width text table; ``columns`` maps keys to headers ('' -> blank)."""
    frame = pd.DataFrame([{h: r.get(k) for k, h in columns.items()} for r in rows])
    print(f"\n{title}")
    print(frame.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.3f}"))
