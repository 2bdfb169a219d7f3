"""Cox proportional-hazards baseline: ridge-penalised partial likelihood, Breslow baseline.

Model (Cox 1972), with ``t`` in periods from the cutoff (a landmark model: every row is a
customer still active at a cutoff, and ``tenure`` — periods already survived — is a
covariate, so the curve is conditional on survival to the cutoff)::

    h(t | x) = h0(t) exp(x'b)        S(t | x) = exp(-H0(t) exp(x'b))

``b`` maximises the Breslow partial log-likelihood minus ``alpha/2 ||b||^2``; ``H0`` is the
Breslow estimate ``H0(t) = sum_{t_j <= t} d_j / sum_{k: T_k >= t_j} exp(x_k'b)``. ``H0`` is a
step function, 0 before the first event time and constant after the last training time.
``predict_risk`` is ``x'b`` (higher = churns sooner).

Design matrix: the logistic churn baseline's (median imputation with missing indicators and
standardisation of numeric columns, one-hot categoricals with unseen levels as all zeros);
design columns constant at fit are dropped, and the ridge penalty keeps collinear columns
(e.g. the full one-hot set, which sums to one) identifiable.

Library: scikit-survival's ``CoxPHSurvivalAnalysis`` (Newton–Raphson on the penalised partial
likelihood). Chosen over lifelines' ``CoxPHFitter`` after installing both here (Nov 2026):
lifelines 0.30.3 (latest, 2026-03) requires ``pandas < 3`` — churnml needs pandas 3 — and
pulls autograd, autograd-gamma and formulaic (pure Python, ~2.5 MB); only 0.30.0 installs next
to pandas 3. scikit-survival 0.28 (2026-07, actively maintained, releases follow each
scikit-learn minor) ships manylinux wheels for CPython 3.11+, supports pandas 3 and numpy 2,
installs ~18 MB with ecos, osqp and numexpr, and also serves as the reference implementation
in the metric tests. Its cost: it pins ``scikit-learn < 1.10`` (the minor it was built for),
so a scikit-learn upgrade waits for a scikit-survival release.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.feature_selection import VarianceThreshold
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from churnml.errors import DataValidationError
from churnml.models._preprocess import FrameModelMixin
from churnml.models.logistic import _columns as design_columns
from churnml.survival.kaplan_meier import check_times, step_at, survival_target

ALPHA = 1.0  # ridge penalty on the standardised design


class CoxBaseline(FrameModelMixin, BaseEstimator):
    """Cox proportional-hazards model on a feature frame (module docstring).

    Parameters
    ----------
    alpha : float
        Ridge penalty ``alpha/2 ||b||^2`` on the standardised design (>= 0; 0 = unpenalised,
        which fails on collinear columns).
    tenure_column : str or None
        Column of ``X`` holding the periods survived at the cutoff; required when not None.

    Attributes
    ----------
    design_ : sklearn Pipeline
        Column transformer (impute, indicators, scale, one-hot) and constant-column filter.
    design_names_ : list of str
        Names of the design columns kept.
    coef_ : ndarray
        ``b`` per design column.
    baseline_times_, baseline_cumhaz_ : ndarray
        Breslow ``H0`` at the distinct training times.
    """

    def __init__(self, alpha: float = ALPHA, tenure_column: str | None = "tenure") -> None:
        self.alpha = alpha
        self.tenure_column = tenure_column

    def fit(self, X: pd.DataFrame, y: pd.DataFrame) -> CoxBaseline:
        if not self.alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        self._check_tenure(X)
        event, duration, _ = survival_target(y, len(X))
        if not event.any():
            raise DataValidationError("durations", "event", "no churn event: the Cox model "
                                      "cannot be fitted")
        Xe = self._fit_encoder(X)
        self.design_ = Pipeline([("columns", design_columns()),
                                 ("constant", VarianceThreshold(0.0))])
        try:
            Z = self.design_.fit_transform(Xe)
        except ValueError as exc:  # every design column constant
            raise DataValidationError(
                "features", None, f"no column varies across the training rows ({exc}); the "
                f"Cox model needs at least one; columns are {list(Xe.columns)}") from None
        self.design_names_ = [str(n) for n in self.design_.get_feature_names_out()]
        model = CoxPHSurvivalAnalysis(alpha=self.alpha, ties="breslow")
        try:
            model.fit(Z, Surv.from_arrays(event, duration))
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise DataValidationError(
                "features", None, f"the Cox model could not be fitted ({exc}); raise alpha "
                "to penalise collinear columns") from None
        self.coef_ = np.asarray(model.coef_, dtype=float)
        self.baseline_times_ = np.asarray(model.cum_baseline_hazard_.x, dtype=float)
        self.baseline_cumhaz_ = np.asarray(model.cum_baseline_hazard_.y, dtype=float)
        return self

    def _check_tenure(self, X: pd.DataFrame) -> None:
        if self.tenure_column is not None and isinstance(X, pd.DataFrame) \
                and self.tenure_column not in X.columns:
            raise DataValidationError(
                "features", self.tenure_column,
                "tenure column missing: the Cox model conditions on survival to the cutoff "
                f"through it (or pass tenure_column=None); columns are {list(X.columns)}")

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        """Linear predictor ``x'b``: higher = churns sooner."""
        check_is_fitted(self, "coef_")
        self._check_tenure(X)
        return self.design_.transform(self._encode(X)) @ self.coef_

    def predict_survival_function(self, X: pd.DataFrame, times: Any) -> np.ndarray:
        """``exp(-H0(t) exp(x'b))``; shape ``(len(X), len(times))``."""
        t = check_times(times)
        h0 = step_at(self.baseline_times_, self.baseline_cumhaz_, t, before=0.0)
        return np.exp(-np.exp(self.predict_risk(X))[:, None] * h0[None, :])
