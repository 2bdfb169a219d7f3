"""S-learner: one outcome model with the arm as a feature.

``mu(x, a) = E[Y | x, arm a]`` is one LightGBM model on the features plus a categorical arm
column; ``tau_k(x) = mu(x, k) - mu(x, control)``. Simple and strongly regularised towards zero
effect (the trees may rarely split on the arm), which suits weak effects on noisy outcomes.
Source: Künzel, Sekhon, Bickel & Yu (2019), "Metalearners for estimating heterogeneous
treatment effects using machine learning", PNAS 116(10):4156-4165.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnml.errors import DataValidationError
from churnml.models._state import stateful
from churnml.uplift._base import UpliftBase

ARM_FEATURE = "__arm__"


@stateful
class SLearner(UpliftBase):
    """S-learner on LightGBM (parameters: :class:`~churnml.uplift._base.UpliftBase`).

    Attributes
    ----------
    arms_ : list of str
        Treatment arms (control excluded), the columns of :meth:`predict`.
    outcome_ : "binary" or "continuous"
    model_ : LightGBM model of ``mu(x, arm)``
    """

    _STATE_ATTRS = ("model_",)

    def fit(self, X: pd.DataFrame, treatment: Any, y: Any, *, ids: Any = None,
            groups: Any = None) -> SLearner:
        """Fit on features ``X``, arm names ``treatment`` and outcome ``y``; ``ids`` (one per
        row) fixes the row order by their hash, so any order of the same rows gives the same
        model; ``groups`` is accepted for a common signature (no propensity here)."""
        Xe, arms, y_arr, _, _ = self._prepare(X, treatment, y, ids)
        if ARM_FEATURE in Xe.columns:
            raise DataValidationError("features", ARM_FEATURE, "reserved column name")
        self.model_ = self._fit(self._with_arm(Xe, arms), y_arr)
        return self

    def _with_arm(self, Xe: pd.DataFrame, arms: Any) -> pd.DataFrame:
        levels = [self.control, *self.arms_]
        values = np.broadcast_to(np.asarray(arms, dtype=object), (len(Xe),))
        return Xe.assign(**{ARM_FEATURE: pd.Categorical(values, categories=levels)})

    def predict_outcome(self, X: pd.DataFrame) -> pd.DataFrame:
        """``mu(x, a)`` for control and every arm (probability or currency), ``X``'s index."""
        Xe = self._encode(X)
        levels = [self.control, *self.arms_]
        return pd.DataFrame(
            {a: self._mean(self.model_, self._with_arm(Xe, a)) for a in levels}, index=X.index
        )

    def _effects(self, Xe: pd.DataFrame) -> dict[str, np.ndarray]:
        base = self._mean(self.model_, self._with_arm(Xe, self.control))
        return {a: self._mean(self.model_, self._with_arm(Xe, a)) - base for a in self.arms_}
