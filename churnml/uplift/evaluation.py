"""What a campaign did: treatment vs its random control group, overall and per segment.

For each treatment arm against ``control``, on the contacts whose outcome window has passed
(:func:`churnml.uplift.campaigns.contact_outcomes`), with ``n_T``/``n_C`` contacts:

* retention ``p_T``, ``p_C`` (share retained over the horizon) and the lift
  ``p_T - p_C`` with the Wald interval ``± z sqrt(p_T (1 - p_T) / n_T + p_C (1 - p_C) / n_C)``
  (probability points; ``z`` the normal quantile of the level). When a group is too small
  for it (fewer than ``MIN_WALD_COUNT`` retained or not retained contacts in an arm) the
  interval is Newcombe's hybrid score interval from the two Wilson intervals
  (Newcombe 1998, "Interval estimation for the difference between independent
  proportions", Statistics in Medicine 17:873-890, method 10), column
  ``retention_interval`` says which, and a warning names the segments;
* revenue per contact ``r_T``, ``r_C`` (currency over the horizon) and its lift with the Welch
  (unpooled) interval ``± z sqrt(s_T^2 / n_T + s_C^2 / n_C)``, sample variances (ddof 1);
* ``incremental_retained = n_T (p_T - p_C)`` customers and ``incremental_revenue =
  n_T (r_T - r_C)`` — what the treated group gained over what it would have had untreated —
  with intervals ``n_T`` times the lift's; ``cost`` = total cost of the treated contacts; and
  ``net_revenue = incremental_revenue - cost`` (interval shifted by the cost);
* ``qini``: the Qini coefficient (scikit-uplift normalisation,
  :func:`churnml.uplift.metrics.qini_auc_score`) of the log's ``score`` column on retention,
  when the log has one: did the targeting score rank the persuadable first?
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import binomtest, norm

from churnml.data.schema import CONTROL_ARM
from churnml.errors import DataValidationError
from churnml.uplift.metrics import qini_auc_score

OVERALL = "(all)"
SEGMENT = "segment"
SCORE = "score"
MIN_ARM_SIZE = 2  # contacts per arm needed for a variance
MIN_WALD_COUNT = 10  # retained and not-retained contacts per arm needed for a Wald interval


def wald_ok(t: np.ndarray, c: np.ndarray) -> bool:
    """Whether each arm has at least ``MIN_WALD_COUNT`` retained and not retained."""
    return all(min(x.sum(), x.size - x.sum()) >= MIN_WALD_COUNT for x in (t, c))


def newcombe_interval(t: np.ndarray, c: np.ndarray, level: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``p_T - p_C`` (module docstring): with Wilson
    intervals ``(l_T, u_T)``, ``(l_C, u_C)``, ``d - sqrt((p_T - l_T)^2 + (u_C - p_C)^2)`` to
    ``d + sqrt((u_T - p_T)^2 + (p_C - l_C)^2)``."""
    (p1, l1, u1), (p2, l2, u2) = (
        (x.mean(), *binomtest(int(x.sum()), x.size).proportion_ci(level, method="wilson"))
        for x in (t, c))
    d = p1 - p2
    return float(d - np.hypot(p1 - l1, u2 - p2)), float(d + np.hypot(u1 - p1, p2 - l2))


def _lift(t: np.ndarray, c: np.ndarray, binary: bool, z: float) -> tuple[float, float, float]:
    diff = float(t.mean() - c.mean())
    if binary:
        var_t, var_c = t.mean() * (1 - t.mean()), c.mean() * (1 - c.mean())
    else:
        var_t, var_c = t.var(ddof=1), c.var(ddof=1)
    se = float(np.sqrt(var_t / t.size + var_c / c.size))
    return diff, diff - z * se, diff + z * se


def _compare(rows: pd.DataFrame, arm: str, z: float,
             level: float = 0.95) -> dict[str, float] | None:
    t = rows[rows["arm"] == arm]
    c = rows[rows["arm"] == CONTROL_ARM]
    if len(t) < MIN_ARM_SIZE or len(c) < MIN_ARM_SIZE:
        return None
    n_t = len(t)
    y_t, y_c = t["retained"].to_numpy(float), c["retained"].to_numpy(float)
    ret, ret_lo, ret_hi = _lift(y_t, y_c, True, z)
    method = "wald"
    if not wald_ok(y_t, y_c):
        ret_lo, ret_hi = newcombe_interval(y_t, y_c, level)
        method = "newcombe"
    rev, rev_lo, rev_hi = _lift(t["revenue"].to_numpy(float), c["revenue"].to_numpy(float),
                                False, z)
    cost = float(t["cost"].sum())
    out = {
        "n_treated": n_t, "n_control": len(c),
        "retention_treated": float(t["retained"].mean()),
        "retention_control": float(c["retained"].mean()),
        "retention_lift": ret, "retention_lift_low": ret_lo, "retention_lift_high": ret_hi,
        "retention_interval": method,
        "revenue_treated": float(t["revenue"].mean()),
        "revenue_control": float(c["revenue"].mean()),
        "revenue_lift": rev, "revenue_lift_low": rev_lo, "revenue_lift_high": rev_hi,
        "incremental_retained": n_t * ret,
        "incremental_revenue": n_t * rev,
        "incremental_revenue_low": n_t * rev_lo, "incremental_revenue_high": n_t * rev_hi,
        "cost": cost,
        "net_revenue": n_t * rev - cost,
        "net_revenue_low": n_t * rev_lo - cost, "net_revenue_high": n_t * rev_hi - cost,
        "qini": np.nan,
    }
    if SCORE in rows and rows[SCORE].notna().all():
        both = pd.concat([t, c])
        y = both["retained"].to_numpy(float)
        treated = (both["arm"] == arm).to_numpy().astype(int)
        if np.unique(y).size > 1:
            out["qini"] = float(qini_auc_score(y, both[SCORE].to_numpy(float), treated))
    return out


def evaluate_campaign(outcomes: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """One row per (treatment arm, segment) plus each arm overall (``segment = '(all)'``);
    columns described in the module docstring. ``outcomes`` are matured contacts of one
    campaign with ``arm, retained, revenue, cost`` and optional ``segment``, ``score``."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    missing = [c for c in ("arm", "retained", "revenue") if c not in outcomes]
    if missing:
        raise DataValidationError("campaigns", missing[0], "column is required to evaluate")
    rows = outcomes[outcomes["retained"].notna()].copy()
    if "cost" not in rows:
        rows["cost"] = 0.0
    arms = sorted(a for a in rows["arm"].astype(str).unique() if a != CONTROL_ARM)
    if CONTROL_ARM not in set(rows["arm"]) or not arms:
        raise DataValidationError(
            "campaigns", "arm",
            f"a campaign evaluation needs {CONTROL_ARM!r} and treated contacts with outcomes; "
            f"arms found: {sorted(rows['arm'].astype(str).unique())}")
    z = float(norm.ppf(0.5 + level / 2))
    groups = [(OVERALL, rows)]
    if SEGMENT in rows:
        groups += [(str(k), g) for k, g in rows.groupby(SEGMENT, sort=True)]
    records = []
    for arm in arms:
        for name, group in groups:
            res = _compare(group, arm, z, level)
            if res is not None:
                records.append({"arm": arm, "segment": name, **res})
    out = pd.DataFrame.from_records(records)
    small = out[out["retention_interval"] != "wald"] if len(out) else out
    if len(small):
        names = ", ".join(f"{r.segment} ({r.n_treated} vs {r.n_control})"
                          for r in small.itertuples())
        warnings.warn(
            f"segment(s) too small for a Wald interval (fewer than {MIN_WALD_COUNT} retained "
            f"or not retained contacts in an arm): {names}; their retention interval is "
            "Newcombe's score interval, and their revenue interval is rough", stacklevel=2)
    out.attrs["level"] = level
    return out
