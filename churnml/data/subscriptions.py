"""Subscription spells: the rule that turns a customer's subscription rows into coverage.

Real exports often hold several rows per customer that overlap in time: a plan change written
as a new row that starts before the old one is closed, an add-on, a re-import. churnml reads a
customer's **coverage as the union of their subscription rows**: rows that overlap or touch
(a row starting at or before the latest end so far) merge into one *spell*, and churn is the
end of the spell, never the end of one row inside it. Overlapping rows are therefore legal;
validation reports their count as a :class:`~churnml.errors.DataWarning` so that an export
that duplicates subscriptions by mistake is noticed. The contractual churn labels
(:mod:`churnml.labels`) follow the same rule, with ``resubscribe_grace_days`` as the gap that
still continues a spell.

Refusing overlaps instead would reject the most common shape of real plan-change exports; a
silent merge would hide a broken export. A merge with a warning keeps both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_OPEN = np.datetime64("9999-12-31")  # an open subscription (null end_ts) never ends


def _ordered(subs: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Rows sorted by customer and start (ties: earlier end first), and for each row the
    latest end of the customer's earlier rows (NaT for the first row; open ends are far in
    the future)."""
    ordered = subs.sort_values(["customer_id", "start_ts", "end_ts"], kind="stable",
                               na_position="last")
    end = ordered["end_ts"].fillna(pd.Timestamp(_OPEN))
    cust = ordered["customer_id"]
    prev_end = end.groupby(cust, sort=False).cummax().groupby(cust, sort=False).shift()
    return ordered, prev_end


def overlapping_rows(subs: pd.DataFrame) -> pd.Series:
    """Boolean mask (aligned with ``subs``): the row starts strictly before the latest end of
    an earlier-starting row of the same customer (an open row overlaps everything after its
    start). A row starting exactly where another ends only touches it: not an overlap."""
    if subs.empty:
        return pd.Series(False, index=subs.index)
    ordered, prev_end = _ordered(subs)
    mask = prev_end.notna() & (ordered["start_ts"] < prev_end)
    return mask.reindex(subs.index)


def coverage_spells(subs: pd.DataFrame, grace_days: float = 0) -> pd.DataFrame:
    """A customer's subscription rows merged into coverage spells.

    Rows sorted by start join the current spell when they start at most ``grace_days`` after
    the latest end so far (overlapping and adjacent rows always do); an open row (null
    ``end_ts``) keeps the spell open. Returns one row per spell: ``customer_id, spell`` (0, 1,
    ... per customer), ``start_ts`` (earliest start), ``end_ts`` (latest end, NaT when any row
    is open), ``n_subscriptions`` (rows merged); sorted by customer and start. With
    ``grace_days`` equal to ``churn.resubscribe_grace_days`` these are the spells of the
    contractual churn labels.
    """
    cols = ["customer_id", "spell", "start_ts", "end_ts", "n_subscriptions"]
    if subs.empty:
        return pd.DataFrame(columns=cols)
    ordered, prev_end = _ordered(subs)
    gap = pd.Timedelta(days=grace_days)
    new = prev_end.isna() | (ordered["start_ts"] > prev_end + gap)
    spell = new.astype("int64").groupby(ordered["customer_id"], sort=False).cumsum() - 1
    end = ordered["end_ts"].fillna(pd.Timestamp(_OPEN))
    out = (pd.DataFrame({"customer_id": ordered["customer_id"], "spell": spell,
                         "start_ts": ordered["start_ts"], "end_ts": end})
           .groupby(["customer_id", "spell"], sort=True, as_index=False)
           .agg(start_ts=("start_ts", "min"), end_ts=("end_ts", "max"),
                n_subscriptions=("start_ts", "size")))
    out["end_ts"] = out["end_ts"].where(out["end_ts"] < pd.Timestamp(_OPEN))
    return out[cols]
