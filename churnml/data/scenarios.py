"""Scenarios injected into a dataset: known changes to test monitoring against.

:func:`churn_shock` is a regime change at a known date — e.g. a price rise for one plan — that
makes that plan's customers leave at an extra rate from then on, whatever their history: a
concept drift (P(churn | features) changes) that a model trained before the date cannot know.
:func:`missing_event_month` and :func:`survey_scale_change` are data breaks: the customers
behave as before, the export is wrong (a month of events lost, a survey moved to a 1–5 scale).

:func:`spend_shift` changes what part of the base spends from a known date — e.g. a
competitor's discount taking a share of their basket — while their purchase rhythm, and so
churn, stays as it was: the value side moves, the churn side does not.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from churnml.data.customer_data import CustomerData

DAYS_PER_MONTH = 30.4375


def churn_shock(
    data: CustomerData,
    start: Any,
    *,
    plan: str,
    monthly_hazard: float = 0.3,
    seed: int = 0,
) -> CustomerData:
    """``data`` where each customer of ``customers.plan == plan`` leaves at a random time
    after ``start`` (exponential, rate ``monthly_hazard`` per month): their transactions,
    events and survey answers after that time are removed. Other customers and everything
    before ``start`` are unchanged."""
    if data.customers is None or "plan" not in data.customers:
        raise ValueError("churn_shock needs customers.plan")
    if not 0 < monthly_hazard:
        raise ValueError(f"monthly_hazard must be positive, got {monthly_hazard}")
    start = pd.Timestamp(start)
    hit = data.customers.loc[data.customers["plan"].astype("str") == plan, "customer_id"]
    if hit.empty:
        raise ValueError(f"no customer has plan {plan!r}")
    rng = np.random.default_rng(seed)
    days = rng.exponential(DAYS_PER_MONTH / monthly_hazard, len(hit))
    leave = pd.Series(start + pd.to_timedelta(days, unit="D"), index=hit.to_numpy())

    def cut(table: pd.DataFrame | None) -> pd.DataFrame | None:
        if table is None:
            return None
        gone = table["customer_id"].map(leave)
        keep = gone.isna() | (table["ts"] < gone)
        return table.loc[keep.to_numpy()].reset_index(drop=True)

    changes: dict[str, Any] = {"transactions": cut(data.transactions),
                               "events": cut(data.events), "surveys": cut(data.surveys)}
    return replace(data, **changes)


def missing_event_month(data: CustomerData, month: Any) -> CustomerData:
    """``data`` whose events of the calendar month starting ``month`` are missing, as in a
    broken export (a data break: customers behaved as before, the rows are gone)."""
    if data.events is None:
        raise ValueError("missing_event_month needs an events table")
    start = pd.Timestamp(month).normalize().replace(day=1)
    end = start + pd.DateOffset(months=1)
    ts = data.events["ts"]
    return replace(data, events=data.events.loc[~((ts >= start) & (ts < end)).to_numpy()]
                   .reset_index(drop=True))


def survey_scale_change(data: CustomerData, start: Any, *, kind: str = "nps",
                        old_max: float = 10.0, new_min: float = 1.0, new_max: float = 5.0
                        ) -> CustomerData:
    """``data`` whose ``kind`` survey is answered on ``new_min..new_max`` (default 1–5) from
    ``start`` instead of ``0..old_max``: each later answer ``s`` becomes
    ``round(new_min + s / old_max · (new_max − new_min))`` (a data break: the answers still
    fit the old scale, so validation accepts them)."""
    if data.surveys is None:
        raise ValueError("survey_scale_change needs a surveys table")
    surveys = data.surveys.copy()
    hit = ((surveys["kind"].astype("str") == kind) & (surveys["ts"] >= pd.Timestamp(start))
           ).to_numpy()
    if not hit.any():
        raise ValueError(f"no {kind!r} survey answer from {pd.Timestamp(start)}")
    old = surveys.loc[hit, "score"].to_numpy(float)
    surveys.loc[hit, "score"] = np.round(new_min + old / old_max * (new_max - new_min))
    return replace(data, surveys=surveys)


def spend_shift(
    data: CustomerData,
    start: Any,
    share: float,
    factor: float,
    seed: int = 0,
) -> CustomerData:
    """``data`` where a random ``share`` of the customers (drawn with ``seed``) spend
    ``factor`` times their amounts from ``start`` on (e.g. ``factor=0.7``: 30 % less): the
    amounts of their transactions at or after ``start`` are multiplied, returns included.
    Timestamps, counts and everything before ``start`` are unchanged."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    if not factor >= 0:
        raise ValueError(f"factor must be non-negative, got {factor}")
    if data.transactions is None or data.transactions.empty:
        raise ValueError("spend_shift needs transactions")
    start = pd.Timestamp(start)
    ids = pd.Index(data.transactions["customer_id"].unique())
    rng = np.random.default_rng(seed)
    hit = set(ids[rng.random(len(ids)) < share])
    tx = data.transactions.copy()
    mask = tx["customer_id"].isin(hit).to_numpy() & (tx["ts"] >= start).to_numpy()
    tx["amount"] = tx["amount"].astype(float)
    tx.loc[mask, "amount"] = tx.loc[mask, "amount"] * factor
    return replace(data, transactions=tx)
