"""Campaign planning: pick the customers, carve a seeded random control group per segment,
write the contact lists and the campaign log.

**Assignment.** Within each stratum (segment) of ``n`` customers, ``floor(share * n + u)``
customers (``u ~ U(0, 1)``: randomised rounding, so the expected control share is exactly
``share`` even in small segments) drawn uniformly without replacement form the ``control``
arm; the others get the treatment arm. Customers are ordered by id before drawing, and strata
in sorted order, so the same seed and customers give the same assignment whatever the input
order.

**Selection.** With a ``targeting_value`` column (``churnml campaign target``) customers are
ranked by it and those flagged ``negative_uplift`` (or with a non-positive targeting value)
are never contacted; without one the plan falls back to ``value_at_risk`` and says so. An
optional budget caps the number of customers in the campaign (holdout included) or its
expected cost, ``(1 - share) * cost_per_contact`` per customer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from churnml.data.schema import CONTROL_ARM
from churnml.errors import ChurnmlError, DataValidationError
from churnml.io import write_table
from churnml.scoring.export import segment_file_name
from churnml.scoring.segments import SEGMENT
from churnml.uplift.targeting import NEGATIVE, TARGETING_VALUE, rank_basis

ARM = "arm"
LOG_COLUMNS = ["customer_id", "campaign_id", "ts", "arm", "channel", "cost", "segment", "score"]
CONTACTS_FILE = "contacts.csv"
LOG_FILE = "campaign_log.csv"
TO_CONTACT_DIR = "to_contact"


def assign_arms(
    customer_ids: pd.Series,
    strata: pd.Series | None = None,
    *,
    control_share: float = 0.1,
    treatment: str = "treatment",
    seed: int = 42,
) -> pd.Series:
    """Arm of each customer: ``control`` for the seeded random holdout, else ``treatment``
    (module docstring); index of ``customer_ids``."""
    if not 0 < control_share < 1:
        raise ValueError(f"control_share must be in (0, 1), got {control_share}")
    if treatment == CONTROL_ARM:
        raise ValueError(f"the treatment arm cannot be called {CONTROL_ARM!r}")
    ids = pd.Series(customer_ids)
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise DataValidationError("scores", "customer_id", f"customer {dup!r} listed twice")
    strata = (pd.Series("all", index=ids.index) if strata is None
              else pd.Series(strata, index=ids.index).astype(str))
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": ids.to_numpy(), "stratum": strata.to_numpy(),
                          "pos": np.arange(len(ids))}).sort_values(["stratum", "id"])
    pos = frame["pos"].to_numpy()
    bounds = np.flatnonzero(frame["stratum"].to_numpy()[1:] != frame["stratum"].to_numpy()[:-1])
    control = np.zeros(len(ids), bool)
    for group in np.split(pos, bounds + 1):
        k = int(np.floor(control_share * group.size + rng.random()))
        control[group[rng.choice(group.size, size=min(k, group.size), replace=False)]] = True
    return pd.Series(np.where(control, CONTROL_ARM, treatment), index=ids.index, dtype=object)


@dataclass
class CampaignPlan:
    """A planned campaign: every selected customer with its arm, and the campaign log rows
    (the contract's ``campaigns`` columns plus ``segment`` and ``score``)."""

    contacts: pd.DataFrame
    log: pd.DataFrame
    basis: str  # the column customers were ranked by
    notes: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """Customers per segment and arm."""
        return (self.contacts.groupby([SEGMENT, ARM]).size().unstack(fill_value=0)
                .reset_index().rename_axis(columns=None))


def plan_campaign(
    scores: pd.DataFrame,
    campaign_id: str,
    *,
    segments: list[str] | None = None,
    control_share: float = 0.1,
    treatment: str = "treatment",
    seed: int = 42,
    contact_ts: pd.Timestamp | str | None = None,
    channel: str | None = None,
    cost_per_contact: float = 0.0,
    budget_contacts: int | None = None,
    budget_cost: float | None = None,
) -> CampaignPlan:
    """Select customers of ``segments`` (default: all) from ``scores``, rank them, apply the
    budget and assign arms stratified by segment (see the module docstring).

    ``contact_ts`` is recorded as the contact time (default: the scores' ``cutoff``).
    """
    notes: list[str] = []
    if SEGMENT not in scores:
        raise DataValidationError("scores", SEGMENT, "column is required to plan by segment")
    pool = scores
    if segments:
        unknown = sorted(set(segments) - set(scores[SEGMENT].astype(str)))
        if unknown:
            known = ", ".join(sorted(scores[SEGMENT].astype(str).unique()))
            raise ChurnmlError(f"segment(s) {unknown} have no customer in the scores "
                               f"(segments: {known})")
        pool = scores[scores[SEGMENT].isin(segments)]
    basis = rank_basis(pool)
    if basis != TARGETING_VALUE:
        notes.append(f"no targeting_value in the scores: customers ranked by {basis} "
                     "(train an uplift model and run `churnml campaign target` to rank by "
                     "incremental value)")
    else:
        negative = pool[NEGATIVE].astype(bool) if NEGATIVE in pool else False
        excluded = negative | (pool[TARGETING_VALUE] <= 0)
        if excluded.any():
            notes.append(f"{int(excluded.sum())} customer(s) left out: negative uplift or "
                         "targeting value <= 0")
        pool = pool[~excluded]
    pool = pool.sort_values(basis, ascending=False, kind="stable")
    if budget_contacts is not None:
        pool = pool.head(int(budget_contacts))
    if budget_cost is not None:
        expected = (1 - control_share) * cost_per_contact
        if expected > 0:
            pool = pool.head(int(np.floor(budget_cost / expected + 1e-9)))
    if pool.empty:
        raise ChurnmlError("no customer to contact: the selection (segments, targeting value, "
                           "budget) is empty")
    contacts = pool.copy()
    contacts[ARM] = assign_arms(contacts["customer_id"], contacts[SEGMENT],
                                control_share=control_share, treatment=treatment, seed=seed)
    ts = pd.Timestamp(contact_ts) if contact_ts is not None else _cutoff(scores)
    contacts.insert(0, "campaign_id", str(campaign_id))
    is_treated = contacts[ARM] != CONTROL_ARM
    log = pd.DataFrame({
        "customer_id": contacts["customer_id"].to_numpy(),
        "campaign_id": str(campaign_id),
        "ts": ts,
        "arm": contacts[ARM].to_numpy(),
        "channel": channel,
        "cost": np.where(is_treated, cost_per_contact, 0.0),
        "segment": contacts[SEGMENT].astype(str).to_numpy(),
        "score": contacts[basis].to_numpy(dtype=float),
    })
    notes.append(f"score column of the log = {basis}")
    return CampaignPlan(contacts.reset_index(drop=True), log, basis, notes)


def _cutoff(scores: pd.DataFrame) -> pd.Timestamp:
    if "cutoff" in scores and scores["cutoff"].notna().any():
        return pd.Timestamp(scores["cutoff"].max())
    return pd.Timestamp.now().floor("s")


def write_plan(plan: CampaignPlan, folder: str | Path,
               log_path: str | Path | None = None) -> dict[str, Path]:
    """Write ``contacts.csv`` (every selected customer and its arm), ``campaign_log.csv``, and
    ``to_contact/<segment>.csv`` (the treated customers only: the lists to send) in
    ``folder``; append the log to ``log_path`` (a ``campaigns`` table to load back) if given.
    """
    folder = Path(folder)
    files = {"contacts": write_table(plan.contacts, folder / CONTACTS_FILE),
             "campaign_log": write_table(plan.log, folder / LOG_FILE)}
    send = plan.contacts[plan.contacts[ARM] != CONTROL_ARM]
    for seg, rows in send.groupby(SEGMENT, sort=True):
        files[f"to_contact:{seg}"] = write_table(
            rows, folder / TO_CONTACT_DIR / segment_file_name(str(seg)))
    if log_path is not None:
        files["log"] = append_log(plan.log, log_path)
    return files


def append_log(log: pd.DataFrame, path: str | Path) -> Path:
    """Append a campaign's log rows to the campaigns table at ``path`` (CSV or Parquet;
    created if missing). Refuses a campaign id already in the file."""
    path = Path(path)
    if path.exists():
        old = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        clash = set(old["campaign_id"].astype(str)) & set(log["campaign_id"].astype(str))
        if clash:
            raise ChurnmlError(f"{path}: campaign {sorted(clash)[0]!r} is already in the log; "
                               "choose another --campaign id")
        old["ts"] = pd.to_datetime(old["ts"], format="ISO8601")
        log = pd.concat([old, log], ignore_index=True)
    return write_table(log, path)
