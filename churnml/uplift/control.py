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
expected cost, ``(1 - share) * cost_per_contact`` per customer. Customers whose ranking value
(``targeting_value`` or ``value_at_risk``) or ``churn_probability`` is missing (NaN) cannot be
ranked: they are left out with a warning naming them, never contacted.

**Checks before anything is written.** The settings are validated by the config's own rules
(:func:`churnml.config.check_campaign_settings`: shares, budgets, a positive cost with a cost
budget); every segment must expect at least ``min_control_per_segment`` controls
(``control_share * n``), so no segment is planned without a holdout to measure it against;
the campaign id must not name another plan already in the campaign folder or the log. A
re-run of the same plan writes the same bytes and appends nothing.

**Files.** ``contacts.csv`` and ``campaign_log.csv`` (and the appended log) are *data tables*:
churnml reads them back, so ids and text are written as they are (``007``, ``-0``, ``=X``
unchanged, no spreadsheet escaping). ``to_contact/<segment>.csv`` are the lists people open in
spreadsheets: their text cells are escaped (``csv_escape_formulas``, :mod:`churnml.io`).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from churnml.config import TableSource, check_campaign_settings
from churnml.data.customer_data import id_strings
from churnml.data.loaders import ids_as_text, read_raw
from churnml.data.schema import CONTROL_ARM
from churnml.data.timestamps import parse_iso_timestamp
from churnml.errors import ChurnmlError, DataValidationError, DataWarning
from churnml.io import write_table
from churnml.scoring.export import segment_file_name
from churnml.scoring.segments import SEGMENT
from churnml.uplift.targeting import NEGATIVE, TARGETING_VALUE, rank_basis

ARM = "arm"
LOG_COLUMNS = ["customer_id", "campaign_id", "ts", "arm", "channel", "cost", "segment", "score"]
CONTACTS_FILE = "contacts.csv"
LOG_FILE = "campaign_log.csv"
TO_CONTACT_DIR = "to_contact"
SCORE_COLUMNS = ("churn_probability",)  # a customer without these is not ranked
TEXT_CSV = {"dtype": str, "keep_default_na": False}  # read_csv: every cell as its text
SHOWN_IDS = 5  # customers named in a warning or error


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
    warnings: list[str] = field(default_factory=list)  # customers left out for missing values

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
    min_control_per_segment: int = 1,
) -> CampaignPlan:
    """Select customers of ``segments`` (default: all) from ``scores``, rank them, apply the
    budget and assign arms stratified by segment (see the module docstring).

    ``contact_ts`` is recorded as the contact time (default: the scores' ``cutoff``); text
    must be ISO 8601. Bad settings raise :class:`~churnml.errors.ConfigError`, a segment
    short of controls a :class:`~churnml.errors.ChurnmlError`.
    """
    check_campaign_settings(
        control_share=control_share, arm=treatment, seed=seed, channel=channel,
        cost_per_contact=cost_per_contact, budget_contacts=budget_contacts,
        budget_cost=budget_cost, min_control_per_segment=min_control_per_segment)
    if str(treatment).strip().lower() == CONTROL_ARM:
        raise ChurnmlError(f"the treatment arm cannot be called {treatment!r}: that names the "
                           "holdout")
    ts = (parse_iso_timestamp(contact_ts, "contact time") if isinstance(contact_ts, str)
          else pd.Timestamp(contact_ts) if contact_ts is not None else _cutoff(scores))
    notes: list[str] = []
    if SEGMENT not in scores:
        raise DataValidationError("scores", SEGMENT, "column is required to plan by segment")
    _check_ids(scores)
    pool = scores
    if segments:
        unknown = sorted(set(segments) - set(scores[SEGMENT].astype(str)))
        if unknown:
            known = ", ".join(sorted(scores[SEGMENT].astype(str).unique()))
            raise ChurnmlError(f"segment(s) {unknown} have no customer in the scores "
                               f"(segments: {known})")
        pool = scores[scores[SEGMENT].isin(segments)]
    basis = rank_basis(pool)
    pool, left_out = _drop_unranked(pool, basis)
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
    _check_controls(pool[SEGMENT].astype(str), control_share, min_control_per_segment)
    contacts = pool.copy()
    contacts[ARM] = assign_arms(contacts["customer_id"], contacts[SEGMENT],
                                control_share=control_share, treatment=treatment, seed=seed)
    contacts.insert(0, "campaign_id", str(campaign_id))
    is_treated = contacts[ARM] != CONTROL_ARM
    log = pd.DataFrame({
        "customer_id": id_strings(contacts["customer_id"]).to_numpy(),
        "campaign_id": str(campaign_id),
        "ts": ts,
        "arm": contacts[ARM].to_numpy(),
        "channel": channel,
        "cost": np.where(is_treated, cost_per_contact, 0.0),
        "segment": contacts[SEGMENT].astype(str).to_numpy(),
        "score": contacts[basis].to_numpy(dtype=float),
    })
    notes.append(f"score column of the log = {basis}")
    return CampaignPlan(contacts.reset_index(drop=True), log, basis, notes, left_out)


def _ids_text(ids: pd.Series) -> str:
    shown = ", ".join(repr(str(i)) for i in ids.head(SHOWN_IDS))
    return shown + (f" (+{len(ids) - SHOWN_IDS} more)" if len(ids) > SHOWN_IDS else "")


def _check_ids(scores: pd.DataFrame) -> None:
    """Every scored customer has one id, listed once."""
    if "customer_id" not in scores:
        raise DataValidationError("scores", "customer_id", "column is required")
    ids = scores["customer_id"]
    if ids.isna().any():
        rows = np.flatnonzero(ids.isna().to_numpy())[:SHOWN_IDS].tolist()
        raise DataValidationError("scores", "customer_id",
                                  f"{int(ids.isna().sum())} row(s) without a customer id "
                                  f"(rows {rows}): cannot plan contacts for them")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise DataValidationError("scores", "customer_id",
                                  f"customer(s) listed twice: {_ids_text(dup.drop_duplicates())}")


def _drop_unranked(pool: pd.DataFrame, basis: str) -> tuple[pd.DataFrame, list[str]]:
    """``pool`` without the customers whose ranking value or churn probability is missing,
    and the warning naming them (module docstring)."""
    columns = [basis, *[c for c in SCORE_COLUMNS if c in pool and c != basis]]
    missing = pool[columns].isna().any(axis=1)
    if not missing.any():
        return pool, []
    which = " or ".join(columns)
    message = (f"{int(missing.sum())} customer(s) with no {which} left out (they cannot be "
               f"ranked; re-score them to include them): "
               f"{_ids_text(pool.loc[missing, 'customer_id'])}")
    warnings.warn(message, DataWarning, stacklevel=3)
    return pool[~missing], [message]


def _check_controls(segments: pd.Series, share: float, minimum: int) -> None:
    """Refuse a plan in which a segment expects fewer than ``minimum`` controls: with
    randomised rounding a segment of ``n`` gets at least ``floor(share * n)``, so
    ``share * n >= minimum`` guarantees the minimum whatever the draw."""
    if minimum <= 0:
        return
    sizes = segments.value_counts().sort_index()
    short = sizes[share * sizes < minimum]
    if short.empty:
        return
    detail = "; ".join(f"segment {seg!r}: {n} customer(s) x control share {share:g} = "
                       f"{share * n:.2f} expected controls" for seg, n in short.items())
    raise ChurnmlError(
        f"the plan leaves too few controls to measure the campaign ({detail}; "
        f"uplift.min_control_per_segment is {minimum}): raise the control share "
        "(--control-share), widen the budget, leave the segment out (--segments), or lower "
        "uplift.min_control_per_segment")


def _cutoff(scores: pd.DataFrame) -> pd.Timestamp:
    if "cutoff" in scores and scores["cutoff"].notna().any():
        return pd.Timestamp(scores["cutoff"].max())
    return pd.Timestamp.now().floor("s")


def write_plan(plan: CampaignPlan, folder: str | Path,
               log_path: str | Path | None = None, *, escape: bool = True) -> dict[str, Path]:
    """Write ``contacts.csv`` (every selected customer and its arm), ``campaign_log.csv``, and
    ``to_contact/<segment>.csv`` (the treated customers only: the lists to send; text cells
    escaped for spreadsheets unless ``escape=False``) in ``folder``; append the log to
    ``log_path`` (a ``campaigns`` table to load back) if given.

    Everything is checked before the first file is written (module docstring): another plan
    under the same campaign id, in ``folder`` or in the log, is refused and nothing changes;
    the same plan again rewrites the same bytes and appends nothing."""
    folder = Path(folder)
    contacts_text, log_text = _csv_text(plan.contacts), _csv_text(_log_rows(plan.log))
    _check_folder(folder, plan, {CONTACTS_FILE: contacts_text, LOG_FILE: log_text})
    combined = None if log_path is None else _appended_log(plan.log, Path(log_path))
    files = {"contacts": _write_text(contacts_text, folder / CONTACTS_FILE),
             "campaign_log": _write_text(log_text, folder / LOG_FILE)}
    send = plan.contacts[plan.contacts[ARM] != CONTROL_ARM]
    for seg, rows in send.groupby(SEGMENT, sort=True):
        files[f"to_contact:{seg}"] = write_table(
            rows, folder / TO_CONTACT_DIR / segment_file_name(str(seg)), escape=escape)
    if combined is not None:
        files["log"] = write_table(combined, log_path, escape=False)
    elif log_path is not None:
        plan.notes.append(f"{log_path} already holds this campaign's rows: nothing appended")
    return files


def _log_rows(log: pd.DataFrame) -> pd.DataFrame:
    """The log as written: contact times in ISO 8601 with the time of day (every campaign of
    an appended log in one format)."""
    out = log.copy()
    out["ts"] = pd.to_datetime(out["ts"]).map(lambda t: t.isoformat(sep=" "),
                                              na_action="ignore")
    return out


def _csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def _text_frame(text: str) -> pd.DataFrame:
    """A CSV text read back with every cell as its text (nothing parsed or dropped)."""
    return pd.read_csv(io.StringIO(text), **TEXT_CSV)


def _write_text(text: str, path: Path) -> Path:
    from churnml.io import atomic_write

    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def _check_folder(folder: Path, plan: CampaignPlan, texts: dict[str, str]) -> None:
    """Refuse to replace another plan of the same campaign id in ``folder``."""
    if not folder.exists():
        return
    present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    same = all((folder / name).is_file()
                and (folder / name).read_text(encoding="utf-8") == text
                for name, text in texts.items())
    if present and not same:
        cid = plan.log["campaign_id"].iloc[0]
        raise ChurnmlError(
            f"{folder}: campaign {cid!r} is already planned there (files: "
            f"{', '.join(present[:5])}); a plan is never replaced: choose another --campaign "
            "id, or remove the folder to plan this id afresh")


def read_log(path: str | Path) -> pd.DataFrame:
    """A campaigns table as churnml reads it back: by the data contract's loader
    (:func:`churnml.data.loaders.read_raw`), CSV cells as their text (ids ``007``, ``-0``,
    ``NaN`` unchanged), Parquet ids as text."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return ids_as_text(read_raw(path, None, "campaigns"), "campaigns")
    return read_raw(path, TableSource(csv_options=dict(TEXT_CSV)), "campaigns")


def _appended_log(log: pd.DataFrame, path: Path) -> pd.DataFrame | None:
    """The table at ``path`` with ``log`` appended (its rows unchanged, as text for a CSV);
    None if the file already holds exactly these rows. Refuses another campaign under the
    same id."""
    parquet = path.suffix.lower() == ".parquet"
    if not parquet and path.suffix.lower() != ".csv":
        raise ChurnmlError(f"{path}: the campaign log is written as .csv or .parquet")
    new = _log_rows(log)
    new = new.assign(ts=pd.to_datetime(new["ts"])) if parquet else _text_frame(_csv_text(new))
    if not path.exists():
        return new
    old = read_log(path)
    if "campaign_id" not in old:
        raise DataValidationError("campaigns", "campaign_id",
                                  f"{path}: missing column; not a campaigns table to append to")
    cid = str(log["campaign_id"].iloc[0])
    mine = old[old["campaign_id"].astype(str) == cid]
    if len(mine):
        if _same_rows(mine, new):
            return None
        raise ChurnmlError(f"{path}: campaign {cid!r} is already in the log ({len(mine)} "
                           f"contact(s), this plan has {len(new)}); choose another --campaign "
                           "id")
    if parquet:
        old["ts"] = pd.to_datetime(old["ts"], format="ISO8601")
    return pd.concat([old, new], ignore_index=True)


def _same_rows(old: pd.DataFrame, new: pd.DataFrame) -> bool:
    def text(frame: pd.DataFrame) -> pd.DataFrame:
        return _text_frame(_csv_text(frame.reset_index(drop=True)))

    return list(old.columns) == list(new.columns) and text(old).equals(text(new))


def append_log(log: pd.DataFrame, path: str | Path) -> Path:
    """Append a campaign's log rows to the campaigns table at ``path`` (CSV or Parquet;
    created if missing): earlier rows are kept byte for byte (CSV), a campaign id already in
    the file is refused, the same rows again are not appended twice."""
    combined = _appended_log(log, Path(path))
    return Path(path) if combined is None else write_table(combined, path, escape=False)
