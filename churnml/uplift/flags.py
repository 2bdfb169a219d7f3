"""The "negative uplift — do not contact" flag, decided for groups of customers.

The sign of one customer's effect is rarely knowable (a 0/1 or revenue outcome per customer
and one arm observed), but the effect of a *group* is: the difference of the mean outcome of
its treated and control contacts, with a standard error. So:

1. **Cross-fitted effects.** The uplift learner is fitted ``n_folds`` times, each time without
   one fold of the contacts (folds by the contact's row key, so any row order gives the same
   folds), and predicts the effect ``tau_oof`` of the fold it did not see.
2. **Groups.** The contacts are cut into ``n_groups`` groups of equal size by ``tau_oof``
   (``edges`` = its quantiles). In group ``g`` the measured effect is
   ``d_g = mean(y | treated, g) - mean(y | control, g)`` with the Welch standard error
   ``se_g = sqrt(s_t^2 / n_t + s_c^2 / n_c)``, and
   ``P(effect_g < 0) = Phi(-d_g / se_g)`` (normal approximation: the posterior of the group's
   effect under a flat prior; Imbens & Rubin 2015, "Causal Inference for Statistics, Social,
   and Biomedical Sciences", ch. 6).
3. **Flag.** A customer is placed in a group by its effect ``tau(x)`` from the model fitted on
   every contact. Its ``p_negative_uplift`` is the smallest ``P(effect_g < 0)`` of its group
   and every group below it (non-increasing in the predicted effect), and it is flagged when
   that reaches ``flag_level``: groups are flagged from the bottom of the ranking up, and a
   group higher up is never flagged when one below it is not (a stray group in the middle of
   the ranking is noise, not a sleeping-dog segment).

The effects are measured on contacts the ranking model did not see (step 1), so the group
intervals are honest; the flagged share follows from the data (how many groups the evidence
clears), not from a chosen share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from churnml.models._state import ModelStateError, require
from churnml.uplift._base import key_folds

N_GROUPS = 20
N_FOLDS = 5


@dataclass
class GroupFlag:
    """Measured effect per group of predicted effect (module docstring).

    ``edges``: the ``n_groups - 1`` inner cut points of the predicted effect; ``effect``,
    ``se``, ``n_treated``, ``n_control``: per group; ``p_negative``: ``Phi(-effect / se)``.
    """

    edges: np.ndarray
    effect: np.ndarray
    se: np.ndarray
    n_treated: np.ndarray
    n_control: np.ndarray

    @classmethod
    def measure(cls, tau_oof: np.ndarray, y: np.ndarray, treated: np.ndarray,
                n_groups: int = N_GROUPS) -> GroupFlag:
        """Groups of equal size by ``tau_oof`` and the treated - control difference of ``y``
        in each (groups with fewer than two contacts of an arm are merged into the next)."""
        tau_oof = np.asarray(tau_oof, dtype=float)
        y = np.asarray(y, dtype=float)
        treated = np.asarray(treated, dtype=bool)
        if n_groups < 1:
            raise ValueError(f"n_groups must be at least 1, got {n_groups}")
        inner = np.quantile(tau_oof, np.linspace(0, 1, n_groups + 1)[1:-1])
        edges = np.unique(inner)
        while True:
            group = np.searchsorted(edges, tau_oof, side="right")
            n_t = np.bincount(group[treated], minlength=edges.size + 1)
            n_c = np.bincount(group[~treated], minlength=edges.size + 1)
            small = np.flatnonzero((n_t < 2) | (n_c < 2))
            if small.size == 0 or edges.size == 0:
                break
            k = int(small[0])  # merge the group with its upper neighbour (the last: lower)
            edges = np.delete(edges, min(k, edges.size - 1))
        effect, se = np.zeros(edges.size + 1), np.zeros(edges.size + 1)
        for g in range(edges.size + 1):
            a, b = y[(group == g) & treated], y[(group == g) & ~treated]
            if a.size < 2 or b.size < 2:
                raise ValueError("each arm needs at least two contacts to measure an effect")
            effect[g] = a.mean() - b.mean()
            se[g] = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        return cls(edges, effect, se, n_t, n_c)

    @property
    def p_negative(self) -> np.ndarray:
        """``P(effect_g < 0) = Phi(-effect_g / se_g)`` per group (by the sign when se = 0)."""
        safe = np.where(self.se > 0, self.se, 1.0)
        return np.where(self.se > 0, norm.cdf(-self.effect / safe),
                        (self.effect < 0).astype(float))

    def group(self, tau: np.ndarray) -> np.ndarray:
        """Group of each predicted effect ``tau`` (0 = lowest)."""
        return np.searchsorted(self.edges, np.asarray(tau, dtype=float), side="right")

    @property
    def p_flag(self) -> np.ndarray:
        """Per group the smallest ``p_negative`` of it and every group below it."""
        return np.minimum.accumulate(self.p_negative)

    def flagged_groups(self, flag_level: float) -> np.ndarray:
        """Bool per group: ``p_flag >= flag_level`` (from the lowest group up)."""
        return self.p_flag >= flag_level

    def probability(self, tau: np.ndarray) -> np.ndarray:
        """``p_negative_uplift`` of customers with predicted effect ``tau``: their group's
        :attr:`p_flag` (flagged when it reaches ``flag_level``)."""
        return self.p_flag[self.group(tau)]

    def table(self, flag_level: float) -> pd.DataFrame:
        """One row per group: predicted-effect range, contacts, measured effect, its standard
        error, ``p_negative`` and whether it is flagged."""
        lo = np.concatenate([[-np.inf], self.edges])
        hi = np.concatenate([self.edges, [np.inf]])
        return pd.DataFrame({
            "predicted_from": lo, "predicted_to": hi, "n_treated": self.n_treated,
            "n_control": self.n_control, "effect": self.effect, "se": self.se,
            "p_negative": self.p_negative, "p_flag": self.p_flag,
            "flagged": self.flagged_groups(flag_level),
        })

    def to_state(self) -> dict[str, Any]:
        """JSON numbers (no pickle)."""
        return {name: [(int if name.startswith("n_") else float)(v) for v in getattr(self, name)]
                for name in ("edges", "effect", "se", "n_treated", "n_control")}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GroupFlag:
        arrays = {}
        for name in ("edges", "effect", "se", "n_treated", "n_control"):
            values = require(state, name, list)
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                raise ModelStateError(f"group flag {name!r} must be a list of numbers")
            arrays[name] = np.asarray(values, dtype=int if name.startswith("n_") else float)
        sizes = {name: a.size for name, a in arrays.items()}
        if len({sizes.pop("edges") + 1, *sizes.values()}) != 1:
            raise ModelStateError("group flag: edges must number one less than the groups")
        return cls(**arrays)


def cross_fitted_effects(make: Callable[[], Any], X: pd.DataFrame, arm: np.ndarray,
                         y: np.ndarray, treatment: str, keys: np.ndarray,
                         n_folds: int = N_FOLDS, **fit_args: Any) -> np.ndarray:
    """Effect of ``treatment`` for every row predicted by ``make()`` fitted without the row's
    fold (fold ``key % n_folds``, :func:`churnml.uplift._base.key_folds`); ``fit_args``
    (``ids``, ``groups``) are subset with the rows."""
    out = np.empty(len(X))
    for train, held in key_folds(np.asarray(keys, dtype=np.uint64), n_folds):
        args = {k: np.asarray(v)[train] for k, v in fit_args.items() if v is not None}
        model = make().fit(X.iloc[train].reset_index(drop=True), arm[train], y[train], **args)
        out[held] = model.predict(X.iloc[held])[treatment].to_numpy(dtype=float)
    return out


def fit_group_flag(make: Callable[[], Any], X: pd.DataFrame, arm: np.ndarray, y: np.ndarray,
                   treatment: str, keys: np.ndarray, n_groups: int = N_GROUPS,
                   n_folds: int = N_FOLDS, **fit_args: Any) -> GroupFlag:
    """The :class:`GroupFlag` of a learner (``make()``) on contacts ``(X, arm, y)``: groups of
    its cross-fitted effects (:func:`cross_fitted_effects`) and their measured effects."""
    tau_oof = cross_fitted_effects(make, X, arm, y, treatment, keys, n_folds, **fit_args)
    return GroupFlag.measure(tau_oof, y, np.asarray(arm) == treatment, n_groups)
