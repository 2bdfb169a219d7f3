"""Customer value over the next horizon: a hurdle (two-part) model or a Tweedie booster.

The label is a customer's net revenue in the horizon after the cutoff, in the input
currency; predictions are the expected value for the same horizon and currency.

Negative labels (returns exceeding purchases in the horizon) are clipped at 0 before
fitting: both model kinds predict the expected *non-negative* value, which overstates net
revenue by the clipped amount (``clipped_value_`` records it at fit time).

- ``kind="hurdle"``: ``E[value] = P(value > 0) x E[value | value > 0]``
  (Cragg 1971; Mullahy 1986): a LightGBM classifier for any purchase and a LightGBM
  regressor with a gamma objective (log link, positive skewed targets) on buyers only.
- ``kind="tweedie"``: one LightGBM regressor with the Tweedie objective (compound
  Poisson-gamma, mass at zero; Tweedie 1984), log link.

Balance correction (``balance=True``): early-stopped log-link boosters systematically
under-predict totals (by about 10 % on the test data here), so the value (Tweedie) or the
spend part (hurdle) is multiplied by ``balance_scale_ = sum(y) / sum(prediction)`` over the
training rows, which restores the balance property of a GLM with intercept: predicted and
observed totals agree on the training data (Wuthrich 2020, "Bias regularization in neural
network models for general insurance pricing", European Actuarial Journal 10).

Value if retained (:meth:`LTVModel.predict_if_retained`): ``E[value | not churned]``, the
horizon revenue a customer brings if they stay, fitted on the *retained* training rows
(churn label 0; ``retained`` of :meth:`LTVModel.fit`, default: rows with a positive value).

- ``if_retained="hurdle"`` reads the hurdle's conditional part ``E[value | value > 0]``: for
  non-contractual churn with target action = purchase, "not churned" is "bought in the
  horizon", so the spend booster was already fitted on (almost exactly) the retained rows;
- ``if_retained="dedicated"`` fits its own LightGBM regressor on the retained rows (gamma
  objective; Tweedie when some retained rows have a zero value, e.g. contractual or
  event-based churn, where staying does not imply buying);
- ``"auto"`` (default) takes the hurdle part when ``kind="hurdle"`` and the retained rows
  differ from the buyers on at most :data:`HURDLE_MASK_TOLERANCE` of the rows, else fits a
  dedicated regressor (``if_retained_`` records the choice).

Either way the prediction is rescaled so that its total over the retained training rows
equals their label total (``retained_scale_``, the balance property restricted to them), and
it is never below 0. Value at risk = churn probability x value if retained (never the
expected value, which already discounts the chance of leaving).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from churnml.models._lgbm import (
    COLSAMPLE_BYTREE,
    EARLY_STOPPING_ROUNDS,
    LEARNING_RATE,
    MAX_DEPTH,
    MIN_CHILD_SAMPLES,
    N_ESTIMATORS,
    N_JOBS,
    NUM_LEAVES,
    REG_LAMBDA,
    SEED,
    VALIDATION_FRACTION,
    BoosterModel,
    booster_params,
    fit_booster,
    holdout_split,
)
from churnml.models._preprocess import FrameEncoder, FrameModelMixin, check_target
from churnml.models._state import ModelStateError, params_state, require, restore_params, stateful

LTVKind = Literal["hurdle", "tweedie"]
KINDS = ("hurdle", "tweedie")
TWEEDIE_VARIANCE_POWER = 1.5  # between Poisson (1) and gamma (2)
SPEND_OBJECTIVE = "gamma"
COMPONENTS = ("p_purchase", "spend_if_purchase", "expected_value")
IF_RETAINED = ("auto", "hurdle", "dedicated")
# "auto" reuses the hurdle's spend part when retained rows and buyers differ on at most this
# share of the training rows (returns can make a non-churned buyer's net value 0)
HURDLE_MASK_TOLERANCE = 0.01
# fitted boosters each kind needs (attribute names); LTVModel.to_state saves every fitted
# booster attribute named like BOOSTER_ATTR (so a sub-model added later is saved too)
BOOSTERS = {"hurdle": ("purchase_model_", "spend_model_"), "tweedie": ("value_model_",)}
BOOSTER_ATTR = re.compile(r"^[a-z][a-z0-9_]*_model_$")


@stateful
class LTVModel(FrameModelMixin, RegressorMixin, BaseEstimator):
    """Expected net revenue per customer over the label horizon (input currency).

    Parameters
    ----------
    kind : "hurdle" or "tweedie"
    n_estimators, learning_rate, num_leaves, max_depth, min_child_samples, colsample_bytree,
    reg_lambda
        LightGBM hyper-parameters shared by all boosters.
    tweedie_variance_power : float
        Tweedie power ``p`` in (1, 2) for ``kind="tweedie"``.
    balance : bool
        Rescale predictions so their training total equals the label total (module doc).
    if_retained : "auto", "hurdle" or "dedicated"
        Source of :meth:`predict_if_retained` (module doc).
    validation_fraction : float or None
        Hold-out share for early stopping (stratified on ``value > 0``, or by ``groups``);
        None fits on all rows for ``n_estimators`` rounds.
    early_stopping_rounds, seed, n_jobs
        As in :class:`~churnml.models.churn.ChurnClassifier`.

    Attributes
    ----------
    purchase_model_ : churnml.models._lgbm.BoosterModel (hurdle, binary)
    spend_model_ : BoosterModel (hurdle, gamma objective, buyers only)
    value_model_ : BoosterModel (tweedie)
    retained_model_ : BoosterModel or None
        Dedicated regressor of the value of retained rows (None: the hurdle part is used).
    if_retained_ : str
        "hurdle" or "dedicated": what :meth:`predict_if_retained` reads.
    retained_scale_ : float
        Factor making the value-if-retained total of the retained rows match their labels.
    balance_scale_ : float
        Factor applied to the value (Tweedie) or spend (hurdle) prediction; 1 without
        ``balance``.
    n_negative_labels_ : int
        Labels below 0 that were clipped to 0.
    clipped_value_ : float
        Sum of the clipped negative labels, as a positive amount.
    feature_names_in_, feature_dtypes_, n_features_in_
    """

    def __init__(
        self,
        kind: LTVKind = "hurdle",
        n_estimators: int = N_ESTIMATORS,
        learning_rate: float = LEARNING_RATE,
        num_leaves: int = NUM_LEAVES,
        max_depth: int = MAX_DEPTH,
        min_child_samples: int = MIN_CHILD_SAMPLES,
        colsample_bytree: float = COLSAMPLE_BYTREE,
        reg_lambda: float = REG_LAMBDA,
        tweedie_variance_power: float = TWEEDIE_VARIANCE_POWER,
        balance: bool = True,
        if_retained: str = "auto",
        validation_fraction: float | None = VALIDATION_FRACTION,
        early_stopping_rounds: int | None = EARLY_STOPPING_ROUNDS,
        seed: int = SEED,
        n_jobs: int = N_JOBS,
    ) -> None:
        self.kind = kind
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.tweedie_variance_power = tweedie_variance_power
        self.balance = balance
        self.if_retained = if_retained
        self.validation_fraction = validation_fraction
        self.early_stopping_rounds = early_stopping_rounds
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, X: pd.DataFrame, y: Any, groups: Any = None, retained: Any = None) -> LTVModel:
        """Fit on features ``X`` and horizon net revenue ``y``; ``groups`` as in
        :meth:`ChurnClassifier.fit <churnml.models.churn.ChurnClassifier.fit>`.

        ``retained``: boolean per row, True where the customer did not churn in the label
        window (``churned == 0``); the value-if-retained part is fitted on these rows.
        Default: the rows with a positive value."""
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.if_retained not in IF_RETAINED:
            raise ValueError(f"if_retained must be one of {IF_RETAINED}, got "
                             f"{self.if_retained!r}")
        Xe = self._fit_encoder(X)
        value = check_target(y, len(Xe), "ltv")
        negative = value < 0
        self.n_negative_labels_ = int(negative.sum())
        self.clipped_value_ = float(-value[negative].sum())
        target = np.where(negative, 0.0, value)
        buyer = (target > 0).astype(int)
        if not buyer.any():
            raise ValueError("ltv: no row has a positive value; nothing to learn")
        in_hold = np.zeros(len(Xe), dtype=bool)
        if self.validation_fraction:
            stratify = buyer if 0 < buyer.sum() < len(buyer) else None
            _, hold_idx = holdout_split(
                len(Xe), self.validation_fraction, self.seed, stratify=stratify, groups=groups
            )
            in_hold[hold_idx] = True
        if self.kind == "tweedie":
            regressor = lgb.LGBMRegressor(
                **booster_params(
                    self,
                    objective="tweedie",
                    tweedie_variance_power=self.tweedie_variance_power,
                )
            )
            self.value_model_ = self._fit_part(regressor, Xe, target, in_hold)
        else:
            if buyer.all():
                raise ValueError(
                    "ltv: every row has a positive value; a hurdle model needs zeros")
            classifier = lgb.LGBMClassifier(**booster_params(self, objective="binary"))
            self.purchase_model_ = self._fit_part(classifier, Xe, buyer, in_hold)
            pos = buyer.astype(bool)
            spend = lgb.LGBMRegressor(**booster_params(self, objective=SPEND_OBJECTIVE))
            self.spend_model_ = self._fit_part(spend, Xe[pos], target[pos], in_hold[pos])
        self._fit_balance(Xe, target)
        keep = buyer.astype(bool) if retained is None else _mask(retained, len(Xe))
        return self._fit_retained(Xe, target, keep, buyer.astype(bool), in_hold)

    def _fit_retained(
        self, Xe: pd.DataFrame, target: np.ndarray, keep: np.ndarray, buyer: np.ndarray,
        in_hold: np.ndarray,
    ) -> LTVModel:
        """The value-if-retained part (module doc) and its scale on the retained rows."""
        if not keep.any():
            raise ValueError("ltv: no retained (non-churned) row to fit the value if retained")
        source = self.if_retained
        if source == "auto":
            close = np.mean(keep != buyer) <= HURDLE_MASK_TOLERANCE
            source = "hurdle" if self.kind == "hurdle" and close else "dedicated"
        if source == "hurdle" and self.kind != "hurdle":
            raise ValueError('if_retained="hurdle" needs kind="hurdle"')
        self.if_retained_ = source
        self.retained_model_ = None
        if source == "dedicated":
            y = target[keep]
            objective = SPEND_OBJECTIVE if (y > 0).all() else "tweedie"
            extra = ({"tweedie_variance_power": self.tweedie_variance_power}
                     if objective == "tweedie" else {})
            model = lgb.LGBMRegressor(**booster_params(self, objective=objective, **extra))
            self.retained_model_ = self._fit_part(model, Xe[keep], y, in_hold[keep])
        self.retained_scale_ = 1.0
        raw = self._retained_raw(Xe[keep])
        if self.balance and raw.sum() > 0 and target[keep].sum() > 0:
            self.retained_scale_ = float(target[keep].sum() / raw.sum())
        return self

    def _retained_raw(self, Xe: pd.DataFrame) -> np.ndarray:
        model = self.spend_model_ if self.retained_model_ is None else self.retained_model_
        return model.predict(Xe)

    def predict_if_retained(self, X: pd.DataFrame) -> np.ndarray:
        """Value if retained: ``E[net revenue over the horizon | not churned]`` (input
        currency, >= 0), the revenue lost if the customer churns."""
        raw = self._retained_raw(self._encode(X)) * self.retained_scale_
        return np.maximum(raw, 0.0)

    def _fit_balance(self, Xe: pd.DataFrame, target: np.ndarray) -> LTVModel:
        self.balance_scale_ = 1.0
        if self.balance:
            self.balance_scale_ = float(target.sum() / self._components(Xe)[-1].sum())
        return self

    def _fit_part(
        self, model: lgb.LGBMModel, Xe: pd.DataFrame, y: np.ndarray, in_hold: np.ndarray
    ) -> lgb.LGBMModel:
        """Fit one booster, early-stopping on the hold-out rows when there are any."""
        if not in_hold.any() or in_hold.all():
            return fit_booster(model, Xe, y, None, None, None)
        fit_idx, hold_idx = np.flatnonzero(~in_hold), np.flatnonzero(in_hold)
        return fit_booster(model, Xe, y, fit_idx, hold_idx, self.early_stopping_rounds)

    def _components(self, Xe: pd.DataFrame) -> tuple[np.ndarray, ...]:
        """``(p_purchase, spend_if_purchase, value)`` (hurdle) or ``(value,)`` (tweedie),
        with the current ``balance_scale_`` applied."""
        scale = self.balance_scale_
        if self.kind == "tweedie":
            return (self.value_model_.predict(Xe) * scale,)
        p = self.purchase_model_.predict_proba(Xe)[:, 1]
        spend = self.spend_model_.predict(Xe) * scale
        return p, spend, p * spend

    def predict_components(self, X: pd.DataFrame) -> pd.DataFrame:
        """Hurdle parts per row: ``p_purchase``, ``spend_if_purchase`` (currency) and their
        product ``expected_value``; the Tweedie model has only ``expected_value``."""
        parts = self._components(self._encode(X))
        return pd.DataFrame(dict(zip(COMPONENTS[-len(parts) :], parts, strict=True)), index=X.index)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected net revenue over the horizon, input currency, >= 0."""
        return self.predict_components(X)[COMPONENTS[-1]].to_numpy()

    def to_state(self) -> dict[str, Any]:
        """Parameters, encoder, every fitted booster (attributes ``*_model_``, LightGBM
        text), balance scale and the clipped-label counts."""
        check_is_fitted(self, "balance_scale_")
        return {
            "params": params_state(self),
            "encoder": self.encoder_.to_state(),
            "boosters": {a: v.to_state() for a, v in vars(self).items()
                         if BOOSTER_ATTR.match(a) and isinstance(v, BoosterModel)},
            "balance_scale": self.balance_scale_,
            "if_retained": self.if_retained_,  # retained_model_ is among the boosters
            "retained_scale": self.retained_scale_,
            "n_negative_labels": self.n_negative_labels_,
            "clipped_value": self.clipped_value_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LTVModel:
        est = restore_params(cls, state)
        if est.kind not in KINDS:
            raise ModelStateError(f"LTVModel kind {est.kind!r} is not one of {KINDS}")
        est._set_encoder(FrameEncoder.from_state(require(state, "encoder", dict)))
        boosters = require(state, "boosters", dict)
        for attr in BOOSTERS[est.kind]:
            require(boosters, attr, dict)
        for attr, booster in boosters.items():
            if not BOOSTER_ATTR.match(attr):
                raise ModelStateError(f"LTVModel: {attr!r} is not a booster attribute name")
            model = BoosterModel.from_state(booster)
            model.check_features(est.feature_names_in_, f"{cls.__name__}.{attr}")
            setattr(est, attr, model)
        est.balance_scale_ = float(require(state, "balance_scale", (int, float)))
        est.if_retained_ = require(state, "if_retained", str)
        if est.if_retained_ not in IF_RETAINED[1:]:
            raise ModelStateError(f"LTVModel if_retained {est.if_retained_!r} is not one of "
                                  f"{IF_RETAINED[1:]}")
        est.retained_scale_ = float(require(state, "retained_scale", (int, float)))
        est.retained_model_ = getattr(est, "retained_model_", None)
        if est.if_retained_ == "dedicated" and est.retained_model_ is None:
            raise ModelStateError("LTVModel state: if_retained is 'dedicated' but the "
                                  "retained_model_ booster is missing")
        est.n_negative_labels_ = int(require(state, "n_negative_labels", int))
        est.clipped_value_ = float(require(state, "clipped_value", (int, float)))
        return est


def _mask(retained: Any, n_rows: int) -> np.ndarray:
    """``retained`` as a boolean array of ``n_rows`` (0/1 or bool, no missing values)."""
    arr = np.asarray(retained)
    if arr.shape != (n_rows,):
        raise ValueError(f"retained has shape {arr.shape}, expected ({n_rows},)")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError("retained must be boolean or 0/1 (True: the customer did not churn)")
        arr = arr.astype(bool)
    return arr
