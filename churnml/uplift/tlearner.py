"""T-learner: one outcome model per arm.

``mu_a(x) = E[Y | x, arm a]`` is fitted on the rows of arm ``a`` only (control included);
``tau_k(x) = mu_k(x) - mu_control(x)``. Unbiased in each arm but the difference of two
independently regularised models is noisy when the effect is small. Source: Künzel et al.
(2019), "Metalearners for estimating heterogeneous treatment effects using machine learning",
PNAS 116(10):4156-4165.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnml.models._state import stateful
from churnml.uplift._base import UpliftBase


@stateful
class TLearner(UpliftBase):
    """T-learner on LightGBM (parameters: :class:`~churnml.uplift._base.UpliftBase`).

    Attributes
    ----------
    arms_ : list of str
    outcome_ : "binary" or "continuous"
    models_ : dict
        Arm name (control included) -> LightGBM model of ``mu_arm(x)``.
    """

    _STATE_ATTRS = ("models_",)

    def fit(self, X: pd.DataFrame, treatment: Any, y: Any, *, ids: Any = None,
            groups: Any = None) -> TLearner:
        """Fit on features ``X``, arm names ``treatment`` and outcome ``y`` (``ids``,
        ``groups``: :meth:`SLearner.fit`)."""
        Xe, arms, y_arr, _, _ = self._prepare(X, treatment, y, ids)
        self.models_ = self._arm_models(Xe, arms, y_arr)
        return self

    def _arm_models(self, Xe: pd.DataFrame, arms: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        models = {}
        for i, arm in enumerate([self.control, *self.arms_]):
            rows = np.flatnonzero(arms == arm)
            models[arm] = self._fit(Xe.iloc[rows], y[rows], seed_offset=i)
        return models

    def predict_outcome(self, X: pd.DataFrame) -> pd.DataFrame:
        """``mu_a(x)`` for control and every arm, ``X``'s index."""
        Xe = self._encode(X)
        return pd.DataFrame({a: self._mean(m, Xe) for a, m in self.models_.items()}, index=X.index)

    def _effects(self, Xe: pd.DataFrame) -> dict[str, np.ndarray]:
        base = self._mean(self.models_[self.control], Xe)
        return {a: self._mean(self.models_[a], Xe) - base for a in self.arms_}
