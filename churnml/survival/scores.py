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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnml.survival.curves import curve_summary, extend_survival, horizon_periods
from churnml.survival.lifetime_value import LEVEL, N_DRAWS, SEED, Timing, lifetime_value
from churnml.survival.lifetime_value import per_period_rate as _per_period_rate


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
) -> pd.DataFrame:
    """Survival columns for the rows of ``X`` (module docstring), indexed like ``X``.

    ``spend``: expected spend per active period (see :func:`spend_per_period`); without it
    no lifetime value columns. ``discount_rate_annual`` is converted to the period. Past the
    model's grid (``n_periods_``) the curve follows ``tail_rule``
    (:func:`~churnml.survival.curves.extend_survival`)."""
    h = horizon_periods(horizon_days, period_days)
    grid = max(h, int(np.ceil(max(active_days, default=0) / period_days)))
    # the model's own curve up to its grid, then the configured tail rule
    own = min(grid, int(getattr(model, "n_periods_", grid)))
    surv = np.asarray(model.predict_survival_function(X, np.arange(1, own + 1)))
    if surv.shape != (len(X), own):
        raise ValueError(f"predict_survival_function returned shape {surv.shape}, expected "
                         f"{(len(X), own)}")
    surv = extend_survival(surv, grid, tail_rule)
    out = curve_summary(surv, period_days, active_days, horizon_days)
    if spend is not None:
        rate = _per_period_rate(discount_rate_annual, period_days)
        value = lifetime_value(surv, spend, h, rate, timing=timing, level=level,
                               spend_cv=spend_cv, n_draws=n_draws, seed=seed)
        out = pd.concat([out, value], axis=1)
    out.index = X.index
    return out
