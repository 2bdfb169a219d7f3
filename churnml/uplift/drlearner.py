"""Doubly robust (DR) learner: regress an AIPW pseudo-outcome on the features.

For arm ``k`` against control (``t = 1`` for arm k), with cross-fitted outcome models
``mu_0``, ``mu_k`` (each row predicted by models fitted on the other folds) and propensity
``e = e_k(x)``:

    phi = mu_k(x) - mu_0(x) + t * (Y - mu_k(x)) / e - (1 - t) * (Y - mu_0(x)) / (1 - e)

``E[phi | x] = tau_k(x)`` if either the outcome models or the propensity are right (doubly
robust); ``tau_k`` is a LightGBM regression of ``phi`` on ``x``. Source: Kennedy (2023),
"Towards optimal doubly robust estimation of heterogeneous causal effects", Electronic Journal
of Statistics 17(2):3008-3049; cross-fitting as in Chernozhukov et al. (2018), "Double/debiased
machine learning", The Econometrics Journal 21:C1-C68.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnml.models._state import stateful
from churnml.uplift._base import PropensityLearnerBase


@stateful
class DRLearner(PropensityLearnerBase):
    """DR-learner on LightGBM (parameters: :class:`~churnml.uplift._base.PropensityLearnerBase`).

    Attributes
    ----------
    arms_, outcome_, propensity_, propensity_auc_
    pseudo_outcomes_ : DataFrame
        ``phi`` per training row and arm (NaN for rows of other arms), training index.
    effect_models_ : dict
        Arm -> LightGBM regressor of ``phi``.
    """

    _STATE_ATTRS = ("effect_models_", "propensity_")

    def fit(self, X: pd.DataFrame, treatment: Any, y: Any, *, ids: Any = None,
            groups: Any = None) -> DRLearner:
        """Fit on features ``X``, arm names ``treatment`` and outcome ``y``; ``ids`` fixes
        the row order and the cross-fitting folds by their hash (order-free); ``groups``
        (e.g. campaign id): known propensity shares per group."""
        Xe, arms, y_arr, keys, order = self._prepare(X, treatment, y, ids)
        e_train = self._fit_propensity(X.iloc[order], arms,
                                       None if groups is None else np.asarray(groups)[order],
                                       keys)
        phi_all = np.full((len(Xe), len(self.arms_)), np.nan)
        self.effect_models_ = {}
        for i, arm in enumerate(self.arms_):
            rows = np.flatnonzero(np.isin(arms, [arm, self.control]))
            t = (arms[rows] == arm).astype(int)
            mu0, mu1 = self._cross_fitted_means(Xe.iloc[rows], t, y_arr[rows],
                                                None if keys is None else keys[rows])
            e = e_train[arm].to_numpy()[rows]
            yy = y_arr[rows]
            phi = mu1 - mu0 + t * (yy - mu1) / e - (1 - t) * (yy - mu0) / (1.0 - e)
            phi_all[rows, i] = phi
            self.effect_models_[arm] = self._fit_effect(Xe.iloc[rows], phi, i)
        back = np.empty_like(order)
        back[order] = np.arange(order.size)
        self.pseudo_outcomes_ = pd.DataFrame(phi_all[back], index=X.index, columns=self.arms_)
        return self

    def _cross_fitted_means(
        self, Xe: pd.DataFrame, t: np.ndarray, y: np.ndarray, keys: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-fold ``mu_0(x)``, ``mu_k(x)`` for every row of the pair."""
        mu0, mu1 = np.empty(t.size), np.empty(t.size)
        strata = t * 2 + (y > np.median(y)).astype(int) if self.outcome_ != "binary" else t * 2 + y
        folds = self._folds(strata.astype(int), self.n_folds, keys)
        for j, (fit_idx, out_idx) in enumerate(folds):
            for group, target in ((0, mu0), (1, mu1)):
                idx = fit_idx[t[fit_idx] == group]
                model = self._fit(Xe.iloc[idx], y[idx], seed_offset=2 * j + group)
                target[out_idx] = self._mean(model, Xe.iloc[out_idx])
        return mu0, mu1

    def _effects(self, Xe: pd.DataFrame) -> dict[str, np.ndarray]:
        return {arm: m.predict(Xe) for arm, m in self.effect_models_.items()}
