"""Per-customer survival scores from any survival model: the columns ``churnml score`` adds.

:func:`survival_columns` takes a fitted model of the survival protocol
(``predict_survival_function``) and landmark features, and returns, per customer:

* ``p_active_<d>d`` -- probability of still being active ``d`` days after the cutoff;
* ``expected_remaining_lifetime_days`` -- restricted mean over ``lifetime_horizon_days``
  (expected days of whole periods still active within that horizon);
* ``median_time_to_churn_days`` -- days until the churn probability reaches 50 %, NaN with
  ``median_beyond_horizon = True`` when it does not within the horizon;
* ``lifetime_horizon_days`` -- the horizon the two figures above and the lifetime value are
  restricted to (whole periods of the configured horizon);
* with spend: ``lifetime_value``, ``lifetime_value_low``, ``lifetime_value_high`` -- the
  discounted value over the same horizon and its predictive interval
  (:mod:`churnml.survival.lifetime_value`).

**Tail rule** (``tail_rule``, config ``survival.tail_rule``). Within the model's grid
(``n_periods_``) the curve is the model's own whatever the rule. Past it:
``constant_hazard`` continues the last hazard, ``sbg`` a shifted-beta-geometric tail fitted
to each customer's own hazards (:func:`~churnml.survival.curves.extend_survival`), and
``restricted`` does not extend: remaining lifetime, median and lifetime value are restricted
to the grid (``lifetime_horizon_days`` names the shorter horizon), ``p_active_<d>d`` past
the grid is NaN (not estimated) and no period is paid past the grid (for purchase logs, whose
value needs the curve ``lag_periods`` further, the last ones count only if the lapse is
ruled out within the grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnml.survival.curves import TAIL_RULES, curve_summary, extend_survival, horizon_periods
from churnml.survival.lifetime_value import LEVEL, N_DRAWS, SEED, Timing, lifetime_value
from churnml.survival.lifetime_value import per_period_rate as _per_period_rate
from churnml.survival.spend import SpendModel, active_periods, lookback_periods


def spend_per_period(value_if_retained: Any, horizon_days: int, period_days: int
                     ) -> np.ndarray:
    """Expected spend per active period from the value-if-retained model's value over
    ``horizon_days`` (spread evenly): ``value * period_days / horizon_days``."""
    return np.asarray(value_if_retained, dtype=float) * (period_days / float(horizon_days))


def survival_columns(
    model: Any,
    X: pd.DataFrame,
    *,
    period_days: int,
    active_days: Sequence[int] = (30, 90, 365),
    horizon_days: int = 365,
    spend: Any = None,
    discount_rate_annual: float = 0.1,
    level: float = LEVEL,
    spend_cv: Any = 1.0,
    timing: Timing = "end",
    n_draws: int = N_DRAWS,
    seed: int = SEED,
    tail_rule: str = "constant_hazard",
    mean_shape: Any = np.inf,
    lag_periods: float = 0.0,
) -> pd.DataFrame:
    """Survival columns for the rows of ``X`` (module docstring), indexed like ``X``.

    ``spend``: expected spend per active period (see :func:`spend_per_period`); without it
    no lifetime value columns; ``spend_cv`` and ``mean_shape`` its spread per period and the
    uncertainty of each customer's mean (:func:`~churnml.survival.lifetime_value.
    lifetime_value`). ``discount_rate_annual`` is converted to the period. Past the
    model's grid (``n_periods_``) the curve follows ``tail_rule`` (module docstring).
    ``lag_periods``: purchase logs pay until the silence starts, ``horizon_days /
    period_days`` of the churn label before the curve's event
    (:func:`~churnml.survival.lifetime_value.paid_probability`); 0 for subscriptions."""
    if tail_rule not in TAIL_RULES:
        raise ValueError(f"tail_rule must be one of {TAIL_RULES}, got {tail_rule!r}")
    h = horizon_periods(horizon_days, period_days)
    lag = int(np.ceil(lag_periods)) if spend is not None else 0
    grid = max(h + lag, int(np.ceil(max(active_days, default=0) / period_days)))
    # the model's own curve up to its grid, then the configured tail rule
    own = min(grid, int(getattr(model, "n_periods_", grid)))
    surv = np.asarray(model.predict_survival_function(X, np.arange(1, own + 1)))
    if surv.shape != (len(X), own):
        raise ValueError(f"predict_survival_function returned shape {surv.shape}, expected "
                         f"{(len(X), own)}")
    if tail_rule == "restricted":  # figures restricted to the grid, which names the horizon
        h = min(h, own)
    else:
        surv = extend_survival(surv, grid, tail_rule)
    out = curve_summary(surv, period_days, active_days, h * period_days)
    for d in active_days:  # restricted: nothing is estimated past the grid
        if d > surv.shape[1] * period_days:
            out[f"p_active_{int(d)}d"] = np.nan
    if spend is not None:
        rate = _per_period_rate(discount_rate_annual, period_days)
        if surv.shape[1] < h + lag:  # restricted: nothing is paid past the grid
            surv = np.concatenate([surv, np.zeros((len(surv), h + lag - surv.shape[1]),
                                                  surv.dtype)], axis=1)
        value = lifetime_value(surv, spend, h, rate, timing=timing, level=level,
                               spend_cv=spend_cv, mean_shape=mean_shape, n_draws=n_draws,
                               seed=seed, lag_periods=lag_periods)
        out = pd.concat([out, value], axis=1)
    out.index = X.index
    return out


def scored_columns(
    model: Any,
    X: pd.DataFrame,
    value_if_retained: Any,
    spread: SpendModel | None,
    *,
    churn_horizon_days: int,
    lookback_days: int,
    period_days: int,
    tenure_column: str = "tenure",
    **kwargs: Any,
) -> pd.DataFrame:
    """The survival columns ``churnml score`` writes: :func:`survival_columns` with the
    expected spend per active period from the value-if-retained model's value over the churn
    horizon (:func:`spend_per_period`), and the spread as fitted at training (``spread``, a
    :class:`~churnml.survival.spend.SpendModel`; None: its defaults, for models logged
    without one): ``spend_cv`` per period and the Gamma-Gamma posterior shape ``p n + q`` of
    each customer's mean, ``n`` = the periods of tenure within the look-back, at least one
    (:func:`~churnml.survival.spend.active_periods`). ``kwargs`` go to
    :func:`survival_columns` (grid, horizon, discounting, level, tail rule, lag)."""
    spread = SpendModel() if spread is None else spread
    spend = spend_per_period(value_if_retained, churn_horizon_days, period_days)
    known = active_periods(X[tenure_column].to_numpy(float),
                           lookback_periods(lookback_days, period_days))
    return survival_columns(model, X, period_days=period_days, spend=spend,
                            spend_cv=spread.spend_cv, mean_shape=spread.mean_shape(known),
                            **kwargs)
