"""X-learner: impute individual effects from the other arm's model, then weight two models.

Stage 1 (a T-learner): ``mu_0`` on control rows, ``mu_k`` on arm-k rows. Stage 2: imputed
effects ``D1 = Y - mu_0(x)`` on arm-k rows and ``D0 = mu_k(x) - Y`` on control rows, each
regressed on ``x`` (``tau_1``, ``tau_0``). Effect:
``tau_k(x) = e_k(x) * tau_0(x) + (1 - e_k(x)) * tau_1(x)`` with the propensity ``e_k``.
Strong when one group is much larger than the other (e.g. a 10 % holdout). Source: Künzel,
Sekhon, Bickel & Yu (2019), "Metalearners for estimating heterogeneous treatment effects using
machine learning", PNAS 116(10):4156-4165.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnml.models._state import stateful
from churnml.uplift._base import PropensityLearnerBase


@stateful
class XLearner(PropensityLearnerBase):
    """X-learner on LightGBM (parameters: :class:`~churnml.uplift._base.PropensityLearnerBase`).

    Attributes
    ----------
    arms_, outcome_, propensity_, propensity_auc_
    models_ : dict
        Arm name (control included) -> stage-1 outcome model.
    effect_models_ : dict
        Arm -> ``(tau_0, tau_1)`` stage-2 regressors.
    """

    _STATE_ATTRS = ("models_", "effect_models_", "propensity_")

    def fit(self, X: pd.DataFrame, treatment: Any, y: Any, *, ids: Any = None,
            groups: Any = None) -> XLearner:
        """Fit on features ``X``, arm names ``treatment`` and outcome ``y``; ``ids`` fixes
        the row order and folds by their hash (order-free); ``groups`` (e.g. campaign id):
        known propensity shares per group."""
        Xe, arms, y_arr, keys, order = self._prepare(X, treatment, y, ids)
        self._fit_propensity(X.iloc[order], arms,
                             None if groups is None else np.asarray(groups)[order], keys)
        self.models_ = {}
        for i, arm in enumerate([self.control, *self.arms_]):
            rows = np.flatnonzero(arms == arm)
            self.models_[arm] = self._fit(Xe.iloc[rows], y_arr[rows], seed_offset=i)
        control_rows = np.flatnonzero(arms == self.control)
        mu0 = self._mean(self.models_[self.control], Xe)
        self.effect_models_ = {}
        for i, arm in enumerate(self.arms_):
            rows = np.flatnonzero(arms == arm)
            d1 = y_arr[rows] - mu0[rows]
            d0 = self._mean(self.models_[arm], Xe.iloc[control_rows]) - y_arr[control_rows]
            tau0 = self._fit_effect(Xe.iloc[control_rows], d0, 2 * i)
            tau1 = self._fit_effect(Xe.iloc[rows], d1, 2 * i + 1)
            self.effect_models_[arm] = (tau0, tau1)
        return self

    def _effects(self, Xe: pd.DataFrame) -> dict[str, np.ndarray]:
        e = self.propensity_.predict(Xe)
        out = {}
        for arm, (tau0, tau1) in self.effect_models_.items():
            g = e[arm].to_numpy()
            out[arm] = g * tau0.predict(Xe) + (1.0 - g) * tau1.predict(Xe)
        return out
