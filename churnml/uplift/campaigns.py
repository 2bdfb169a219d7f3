"""Campaign logs shaped for learning and evaluation: contacts, their outcomes and features.

A *contact* is one row of the ``campaigns`` table: ``customer_id, campaign_id, ts`` (the
contact time), ``arm`` (``control`` or a treatment name), optional ``channel`` and ``cost``
(currency; the control group costs nothing). Extra columns of the log (e.g. ``segment`` and
``score`` written by :func:`churnml.uplift.control.plan_campaign`) are kept.

Outcomes are derived, never supplied, by the label code of :mod:`churnml.labels` evaluated at
each contact's own time ``t`` (horizon ``H`` days of :class:`~churnml.config.ChurnConfig`):

* ``retained`` = 1 iff the customer performs the target action in ``[t, t + H)`` (for a
  contractual business: the subscription running at ``t`` does not end before ``t + H``);
* ``revenue`` = net revenue in ``[t, t + H)`` (returns included), in the input currency.

Features are point-in-time: those of :func:`churnml.features.build_features` at the start of the
contact's day (``floor(t, day) <= t``), so no row at or after the contact is read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnml.config import ChurnConfig
from churnml.data.customer_data import CustomerData
from churnml.data.schema import CONTROL_ARM
from churnml.engine import open_engine
from churnml.errors import ChurnmlError, DataValidationError
from churnml.features.build import build_features
from churnml.features.definitions import CUTOFF
from churnml.labels import UnlabelledCutoffError, label_query, observation_end

OUTCOMES = ("retained", "revenue")
CONTACTS_RELATION = "churnml_contacts"
DAY = pd.Timedelta(days=1)


class NoCampaignsError(ChurnmlError, ValueError):
    """The data hold no campaign log (or not the campaign asked for)."""


def contacts(data: CustomerData, campaign_id: Any = None) -> pd.DataFrame:
    """The campaign log (one campaign's contacts if ``campaign_id`` is given), with ``cost``
    filled with 0 where absent, sorted by campaign, time and customer."""
    log = data.campaigns
    if log is None or log.empty:
        raise NoCampaignsError(
            "the data have no campaigns table: add campaigns.csv/parquet (customer_id, "
            "campaign_id, ts, arm[, channel, cost]) to the data folder, e.g. the log written by "
            "`churnml campaign plan`"
        )
    if campaign_id is not None:
        ids = log["campaign_id"].astype(str)
        sel = log[ids == str(campaign_id)]
        if sel.empty:
            known = ", ".join(sorted(ids.unique())[:20])
            raise NoCampaignsError(f"campaign {campaign_id!r} is not in the campaigns table "
                                   f"(campaigns: {known})")
        log = sel
    out = log.copy()
    out["cost"] = out["cost"].fillna(0.0) if "cost" in out else 0.0
    return out.sort_values(["campaign_id", "ts", "customer_id"], kind="stable",
                           ignore_index=True)


def contact_outcomes(
    data: CustomerData,
    churn: ChurnConfig | None = None,
    campaign_id: Any = None,
    *,
    matured_only: bool = False,
    data_end: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Every contact with its outcome: the contact columns plus ``retained`` (0/1),
    ``revenue`` (currency, over the horizon after the contact) and ``matured`` (the data cover
    the whole window ``[t, t + H)``).

    Outcomes of contacts whose window is not covered are NaN; with ``matured_only`` those rows
    are dropped, and :class:`UnlabelledCutoffError` is raised if none is left. Contractual
    contacts without a subscription running at the contact have NaN outcomes too.
    """
    churn = churn or ChurnConfig()
    log = contacts(data, campaign_id)
    pairs = log[["customer_id", "ts"]].drop_duplicates().rename(columns={"ts": CUTOFF})
    pairs[CUTOFF] = pairs[CUTOFF].astype("datetime64[us]")
    eng, owned = open_engine(data, "duckdb")
    try:
        end = observation_end(eng, data_end)
        rel = eng.register(CONTACTS_RELATION, pairs)
        ctes, select = label_query(eng, churn, rel, per_customer=True)
        labels = eng.run(ctes, select)
    finally:
        if owned:
            eng.close()
    labels = labels.rename(columns={CUTOFF: "ts"})
    labels["ts"] = labels["ts"].astype("datetime64[us]")
    labels["retained"] = 1.0 - labels["churned"].astype("float64")
    labels["revenue"] = labels["ltv"].astype("float64")
    out = log.merge(labels[["customer_id", "ts", *OUTCOMES]], on=["customer_id", "ts"],
                    how="left", validate="many_to_one")
    out["matured"] = out["ts"] + pd.Timedelta(days=churn.horizon_days) <= end
    out.loc[~out["matured"], list(OUTCOMES)] = np.nan
    if matured_only:
        out = out[out["matured"]].reset_index(drop=True)
        if out.empty:
            which = f"campaign {campaign_id!r}" if campaign_id is not None else "any campaign"
            raise UnlabelledCutoffError(
                f"no contact of {which} has a complete outcome window yet: outcomes read "
                f"{churn.horizon_days} days after the contact and the data end at {end} "
                f"(contacts up to {end - pd.Timedelta(days=churn.horizon_days)} are "
                f"measurable)"
            )
    return out


def contact_features(data: CustomerData, log: pd.DataFrame, spec: Any = None) -> pd.DataFrame:
    """Point-in-time features of each contact: those of the start of its day (module
    docstring), one row per row of ``log`` (same order and index).

    Customers with no activity before that day get NaN features.
    """
    days = log["ts"].dt.floor("D").astype("datetime64[us]")
    feats = build_features(data, pd.DatetimeIndex(days.unique()), spec)
    keys = pd.DataFrame({"customer_id": log["customer_id"].to_numpy(), CUTOFF: days.to_numpy()})
    out = keys.merge(feats, on=["customer_id", CUTOFF], how="left", validate="many_to_one")
    out.index = log.index
    return out.drop(columns=["customer_id", CUTOFF])


def campaign_frame(
    data: CustomerData,
    churn: ChurnConfig | None = None,
    spec: Any = None,
    campaign_id: Any = None,
    *,
    data_end: pd.Timestamp | str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(X, contacts)`` for uplift learning on the matured contacts with an outcome:
    features ``X`` and the contact rows (``arm``, ``retained``, ``revenue``, ...) aligned."""
    log = contact_outcomes(data, churn, campaign_id, matured_only=True, data_end=data_end)
    log = log[log["retained"].notna()].reset_index(drop=True)
    if log.empty:
        raise DataValidationError("campaigns", None,
                                  "no contact has an outcome (contractual: no contacted "
                                  "customer had a running subscription at the contact)")
    return contact_features(data, log, spec), log


def treated(arm: pd.Series) -> np.ndarray:
    """0/1 indicator of the treatment arms (any arm but ``control``)."""
    return (arm.astype(str) != CONTROL_ARM).to_numpy().astype("int64")
