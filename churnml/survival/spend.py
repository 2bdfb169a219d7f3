"""The spread of spend per period, fitted at training and stored with the survival model.

The lifetime-value interval (:mod:`churnml.survival.lifetime_value`) needs two spreads: of
one period's spend around the customer's own mean (``spend_cv``) and of that mean given the
few periods seen (the Gamma-Gamma posterior shape ``alpha = p n + q``, ``p = 1 /
spend_cv**2``). :func:`fit_spend_model` fits both on the training data as of the latest
training cutoff, from each customer's spend per period over the look-back
(:func:`period_spend`, only rows with ``ts < cutoff``):

* ``spend_cv`` -- :func:`~churnml.survival.lifetime_value.fit_spend_cv` over the periods the
  customer was active (the last ``min(tenure, look-back)`` periods, at least one);
* ``q, gamma`` -- :func:`~churnml.survival.lifetime_value.fit_spend_population` on the
  customers' mean spend over those periods.

``churnml train`` logs them as run parameters of the survival model's run
(:meth:`SpendModel.params`, ``survival.spend_cv``, ``survival.spend_q``,
``survival.spend_gamma``, ``survival.spend_customers``); ``churnml score`` reads them back
(:meth:`SpendModel.from_params`) and passes :meth:`SpendModel.mean_shape` of each customer's
known periods to the interval. Models logged without them (earlier releases) score with
:data:`FALLBACK_SPEND_CV` and the flat-prior shape
(:func:`~churnml.survival.lifetime_value.mean_shape_from_periods`). Coverage of the fitted
intervals: ``benchmarks/README.md``, "Time to churn".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnml.errors import ModelSourceError
from churnml.survival.lifetime_value import (
    fit_spend_cv,
    fit_spend_population,
    mean_shape_from_periods,
)

FALLBACK_SPEND_CV = 1.0  # spread per period of models logged without a fitted one
PARAM_PREFIX = "survival."
DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class SpendModel:
    """Fitted spread of spend: ``spend_cv`` per period and, when the population could be
    fitted, the Gamma-Gamma ``q, gamma`` of the customers' mean spend (``p = 1 /
    spend_cv**2``); ``n_customers`` the customers it was fitted on (0 = not fitted)."""

    spend_cv: float = FALLBACK_SPEND_CV
    q: float | None = None
    gamma: float | None = None
    n_customers: int = 0

    @property
    def fitted(self) -> bool:
        return self.n_customers > 0

    @property
    def p(self) -> float:
        """Gamma shape of one period's spend, ``1 / spend_cv**2`` (inf when the CV is 0)."""
        return math.inf if self.spend_cv == 0 else 1.0 / self.spend_cv ** 2

    def mean_shape(self, n_periods: Any) -> np.ndarray:
        """Inverse-Gamma shape of each customer's mean spend after ``n_periods`` periods
        (below 1 counts as 1): the Gamma-Gamma posterior ``p n + q`` with a fitted
        population, else the flat-prior ``2 + n / spend_cv**2``; inf when the CV is 0."""
        n = np.maximum(np.asarray(n_periods, dtype=float), 1.0)
        if self.q is None or self.gamma is None or self.spend_cv == 0:
            return mean_shape_from_periods(n, self.spend_cv)
        return self.p * n + self.q

    def params(self) -> dict[str, float | int]:
        """Run parameters (without :data:`PARAM_PREFIX`); absent values are left out."""
        out: dict[str, float | int] = {"spend_cv": self.spend_cv,
                                       "spend_customers": self.n_customers}
        if self.q is not None and self.gamma is not None:
            out.update(spend_q=self.q, spend_gamma=self.gamma)
        return out

    @classmethod
    def from_params(cls, params: Mapping[str, str], source: str = "run") -> SpendModel | None:
        """The model logged in run ``params`` (``survival.spend_*``); None when the run
        predates it. Values that are not finite numbers in range are refused."""
        key = f"{PARAM_PREFIX}spend_cv"
        if key not in params:
            return None

        def number(name: str) -> float | None:
            text = params.get(f"{PARAM_PREFIX}{name}")
            if text is None:
                return None
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise ModelSourceError(f"{source}: parameter {PARAM_PREFIX}{name} = {text!r} "
                                       "is not a finite number")
            return value

        cv, q, gamma = number("spend_cv"), number("spend_q"), number("spend_gamma")
        n = number("spend_customers")
        if cv is None or cv < 0 or (q is None) != (gamma is None) or (
                q is not None and not (q > 1 and gamma is not None and gamma > 0)):
            raise ModelSourceError(
                f"{source}: spend parameters out of range (spend_cv {cv} must be >= 0, "
                f"spend_q {q} > 1 and spend_gamma {gamma} > 0, both or neither)")
        return cls(spend_cv=cv, q=q, gamma=gamma, n_customers=int(n or 0))


def period_spend(transactions: pd.DataFrame, ids: pd.Index, cutoff: Any, period_days: int,
                 n_periods: int) -> np.ndarray:
    """Spend per customer (rows ``ids``) in each of the ``n_periods`` periods before
    ``cutoff``: period ``k`` holds the transactions with ``(k - 1) p < cutoff - ts <= k p``
    days (``p = period_days``), so only ``ts < cutoff`` is read."""
    cutoff = pd.Timestamp(cutoff)
    days = (cutoff - transactions["ts"]) / DAY
    k = np.ceil(days / period_days)
    keep = ((days > 0) & (k <= n_periods) & transactions["customer_id"].isin(ids)).to_numpy()
    t = transactions[keep]
    out = np.zeros((len(ids), n_periods))
    np.add.at(out, (ids.get_indexer(t["customer_id"]), k[keep].to_numpy(np.int64) - 1),
              t["amount"].to_numpy(dtype=float))
    return out


def lookback_periods(lookback_days: int, period_days: int) -> int:
    """Whole periods of the churn look-back, at least one: the most periods a customer's
    mean spend is known from."""
    return max(1, int(lookback_days) // int(period_days))


def active_periods(tenure: Any, n_periods: int) -> np.ndarray:
    """Periods of the look-back a customer was active: ``clip(tenure, 1, n_periods)``."""
    return np.clip(np.asarray(tenure, dtype=float), 1, n_periods)


def fit_spend_model(transactions: pd.DataFrame, tenure: pd.Series, cutoff: Any,
                    period_days: int, n_periods: int) -> SpendModel | None:
    """:class:`SpendModel` of the customers ``tenure.index`` (their tenure in periods at
    ``cutoff``) from their spend in the ``n_periods`` periods before ``cutoff`` (module
    docstring). None when no customer has two periods with a positive spend; ``q, gamma``
    left out when fewer than 10 customers have a positive mean."""
    tenure = tenure[~tenure.index.duplicated()]
    ids = pd.Index(tenure.index)
    past = period_spend(transactions, ids, cutoff, period_days, n_periods)
    n = active_periods(tenure.to_numpy(float), n_periods)
    active = np.arange(n_periods)[None, :] < n[:, None]
    try:
        cv = fit_spend_cv(past, active)
    except ValueError:
        return None
    q = gamma = None
    if cv > 0:
        try:
            q, gamma = fit_spend_population((past * active).sum(axis=1) / n, n, cv)
        except ValueError:
            pass
    return SpendModel(spend_cv=cv, q=q, gamma=gamma, n_customers=len(ids))


def spend_at_latest_cutoff(transactions: pd.DataFrame, panel: pd.DataFrame, period_days: int,
                           lookback_days: int, tenure_column: str = "tenure") -> SpendModel:
    """The spread training stores with the survival model: :func:`fit_spend_model` of the
    customers of ``panel`` (``customer_id, cutoff`` and their tenure in periods) at its
    latest cutoff, over the churn look-back in whole periods (:func:`lookback_periods`, as
    scoring counts each customer's known periods); the :class:`SpendModel` defaults (not
    fitted) for an empty panel or when no customer has two periods with a positive spend."""
    if panel.empty:
        return SpendModel()
    last = panel["cutoff"].max()
    at = panel[panel["cutoff"] == last].set_index("customer_id")[tenure_column]
    fitted = fit_spend_model(transactions, at, last, period_days,
                             lookback_periods(lookback_days, period_days))
    return SpendModel() if fitted is None else fitted
