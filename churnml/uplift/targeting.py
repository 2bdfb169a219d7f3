"""Targeting by incremental value: contact the customers an offer keeps, net of its cost.

For a retention outcome the model's effect ``uplift = tau(x)`` is in probability points
(the change of P(retained) the offer causes), and

    targeting_value = uplift * value_if_retained - cost          (currency)

where ``value_if_retained`` is E[horizon revenue | the customer stays active] from the scores.
For a revenue outcome ``uplift`` is already in currency: ``targeting_value = uplift - cost``.
Customers whose effect is negative with confidence (sleeping dogs: the contact drives them
away) are flagged ``negative_uplift`` ("do not contact") and never targeted, whatever their
value: ``p_negative_uplift`` is the probability that the retention effect of the customer's
group (customers of similar predicted effect) is negative (:mod:`churnml.uplift.flags`), or
``P(tau(x) < 0) = Phi(-tau / sd)`` with ``sd`` the spread of the effect over bootstrap refits
of the uplift model (:mod:`churnml.uplift.fitted`); flagged when at least
``uplift.flag_level``. Without that probability the sign of ``uplift`` decides. Without
campaign history there is no uplift: the ranking falls back to ``value_at_risk`` and says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnml.config import check_campaign_settings
from churnml.errors import DataValidationError

UPLIFT = "uplift"
TARGETING_VALUE = "targeting_value"
NEGATIVE = "negative_uplift"
P_NEGATIVE = "p_negative_uplift"
VALUE_IF_RETAINED = "value_if_retained"
VALUE_AT_RISK = "value_at_risk"
BASIS = "targeting_basis"


def rank_basis(scores: pd.DataFrame) -> str:
    """``targeting_value`` when the scores carry one, else ``value_at_risk`` (fallback)."""
    if TARGETING_VALUE in scores and scores[TARGETING_VALUE].notna().any():
        return TARGETING_VALUE
    if VALUE_AT_RISK in scores:
        return VALUE_AT_RISK
    raise DataValidationError("scores", VALUE_AT_RISK,
                              "column is required to rank customers (no targeting_value either)")


def targeting_values(
    scores: pd.DataFrame,
    uplift: pd.Series | np.ndarray,
    *,
    cost: float | pd.Series = 0.0,
    outcome: str = "retained",
    p_negative: pd.Series | np.ndarray | None = None,
    flag_level: float = 0.9,
) -> pd.DataFrame:
    """``scores`` with ``uplift``, ``targeting_value``, ``negative_uplift`` and
    ``targeting_basis`` (module docstring); ``uplift`` is aligned with the rows of ``scores``.

    ``outcome='retained'`` needs the ``value_if_retained`` column. With ``p_negative`` (the
    probability that the effect is negative) a customer is flagged when it reaches
    ``flag_level`` (and the column ``p_negative_uplift`` is added); without it, when
    ``uplift < 0``.
    """
    out = scores.copy()
    tau = np.asarray(uplift, dtype=float)
    if tau.shape[0] != len(out):
        raise ValueError(f"uplift has {tau.shape[0]} values for {len(out)} scored customers")
    cost_arr = np.asarray(cost, dtype=float)
    if outcome == "retained":
        if VALUE_IF_RETAINED not in out:
            raise DataValidationError(
                "scores", VALUE_IF_RETAINED,
                "column is required for targeting by incremental value (uplift x value if "
                "retained); re-score with a churnml version that writes it")
        value = tau * out[VALUE_IF_RETAINED].to_numpy(dtype=float) - cost_arr
    elif outcome == "revenue":
        value = tau - cost_arr
    else:
        raise ValueError(f"outcome must be 'retained' or 'revenue', got {outcome!r}")
    out[UPLIFT] = tau
    out[TARGETING_VALUE] = value
    if p_negative is None:
        out[NEGATIVE] = tau < 0
    else:
        p = np.asarray(p_negative, dtype=float)
        out[P_NEGATIVE] = p
        out[NEGATIVE] = p >= flag_level
    out[BASIS] = f"uplift ({outcome}) model"
    return out


def fallback_targeting(scores: pd.DataFrame) -> pd.DataFrame:
    """No campaign history: ``targeting_value`` = ``value_at_risk``, basis says so."""
    out = scores.copy()
    if VALUE_AT_RISK not in out:
        raise DataValidationError("scores", VALUE_AT_RISK, "column is required")
    out[UPLIFT] = np.nan
    out[TARGETING_VALUE] = out[VALUE_AT_RISK].astype(float)
    out[NEGATIVE] = False
    out[BASIS] = "value_at_risk (no uplift model: no campaign history)"
    return out


def select_targets(
    frame: pd.DataFrame,
    *,
    budget_contacts: int | None = None,
    budget_cost: float | None = None,
    cost: float = 0.0,
) -> pd.DataFrame:
    """The best set to contact: positive targeting value, no negative uplift, highest value
    first, at most ``budget_contacts`` customers or ``budget_cost`` of total cost.

    The budgets and the cost are checked by the config's rules
    (:func:`churnml.config.check_campaign_settings`): a budget must be positive, and a cost
    budget needs a positive ``cost``."""
    check_campaign_settings(budget_contacts=budget_contacts, budget_cost=budget_cost,
                            cost_per_contact=cost)
    ok = (frame[TARGETING_VALUE] > 0) & ~frame[NEGATIVE].astype(bool)
    chosen = frame[ok].sort_values(TARGETING_VALUE, ascending=False, kind="stable")
    if budget_contacts is not None:
        chosen = chosen.head(int(budget_contacts))
    if budget_cost is not None and cost > 0:
        chosen = chosen.head(int(np.floor(budget_cost / cost + 1e-9)))
    return chosen
