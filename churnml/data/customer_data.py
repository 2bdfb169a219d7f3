"""`CustomerData`: the validated bundle of input tables every stage reads."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import pandas as pd

from churnml.config import ValidationConfig, VoiceConfig
from churnml.data.schema import TABLES
from churnml.data.validation import check_campaign_customers, raise_if_any, validate_table
from churnml.errors import DataValidationError

ID_COLUMNS = {"customer_id", "referred_by"}


@dataclass(frozen=True)
class CustomerData:
    """The five contract tables (only ``transactions`` is required), validated.

    Build with :meth:`from_frames`, which checks the data contract and normalises dtypes:
    timestamps become naive ``datetime64[us]`` in the business's time zone, numbers
    ``float64``, categories strings, and ``customer_id`` has one dtype across tables.
    ``truth`` holds optional ground truth (e.g. the simulator's true churn probability);
    no feature ever reads it. ``campaigns`` is the optional campaign log (contacts and their
    randomly assigned arm, see :mod:`churnml.uplift.campaigns`); ``campaign_truth`` the
    simulator's true effect of each contact.
    """

    transactions: pd.DataFrame
    events: pd.DataFrame | None = None
    surveys: pd.DataFrame | None = None
    customers: pd.DataFrame | None = None
    subscriptions: pd.DataFrame | None = None
    name: str = "data"
    currency: str = "USD"
    truth: pd.DataFrame | None = field(default=None, repr=False)
    campaigns: pd.DataFrame | None = None
    campaign_truth: pd.DataFrame | None = field(default=None, repr=False)

    @classmethod
    def from_frames(
        cls,
        transactions: pd.DataFrame,
        events: pd.DataFrame | None = None,
        surveys: pd.DataFrame | None = None,
        customers: pd.DataFrame | None = None,
        subscriptions: pd.DataFrame | None = None,
        *,
        name: str = "data",
        currency: str = "USD",
        truth: pd.DataFrame | None = None,
        validation: ValidationConfig | None = None,
        voice: VoiceConfig | None = None,
        timezone: str = "UTC",
        ts_formats: dict[str, str | None] | None = None,
        campaigns: pd.DataFrame | None = None,
        campaign_truth: pd.DataFrame | None = None,
    ) -> CustomerData:
        """Validate and normalise the tables; raise :class:`DataValidationError` if broken."""
        raw = {
            "transactions": transactions, "events": events, "surveys": surveys,
            "customers": customers, "subscriptions": subscriptions, "campaigns": campaigns,
        }
        if transactions is None:
            raise DataValidationError("transactions", None, "table is required")
        ts_formats = ts_formats or {}
        out: dict[str, pd.DataFrame | None] = {}
        problems: list[DataValidationError] = []
        for tname, df in raw.items():
            if df is None:
                out[tname] = None
                continue
            norm, probs = validate_table(
                tname, df, validation=validation, voice=voice, timezone=timezone,
                ts_format=ts_formats.get(tname),
            )
            out[tname] = norm
            problems += probs
        raise_if_any(problems)
        _unify_ids(out)
        if out["campaigns"] is not None:
            raise_if_any(check_campaign_customers(out["campaigns"], out))
        return cls(**out, name=name, currency=currency, truth=truth,
                   campaign_truth=campaign_truth)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables present, by contract name."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name in TABLES and getattr(self, f.name) is not None
        }

    def customer_ids(self) -> pd.Index:
        """Every customer id seen in any table, sorted."""
        ids = [df["customer_id"] for df in self.tables().values()]
        return pd.Index(pd.concat(ids, ignore_index=True).drop_duplicates()).sort_values()

    @property
    def start(self) -> pd.Timestamp:
        """Earliest transaction/event timestamp."""
        return min(df["ts"].min() for n, df in self.tables().items()
                   if "ts" in df and n != "campaigns")

    @property
    def end(self) -> pd.Timestamp:
        """Latest transaction/event timestamp (the observation end; contact times of the
        campaign log do not extend it)."""
        return max(df["ts"].max() for n, df in self.tables().items()
                   if "ts" in df and n != "campaigns")

    def before(self, cutoff: pd.Timestamp | str) -> CustomerData:
        """The data as known at ``cutoff``: only rows with ``ts < cutoff``.

        Subscriptions started before the cutoff are kept; an end after the cutoff is unknown
        then, so it becomes null (still active).
        """
        cutoff = pd.Timestamp(cutoff)
        new: dict[str, pd.DataFrame | None] = {}
        for tname, df in self.tables().items():
            if "ts" in df:
                new[tname] = df[df["ts"] < cutoff]
            elif tname == "subscriptions":
                sub = df[df["start_ts"] < cutoff].copy()
                sub.loc[sub["end_ts"] >= cutoff, "end_ts"] = pd.NaT
                new[tname] = sub
            elif tname == "customers" and "signup_ts" in df:
                new[tname] = df[df["signup_ts"].isna() | (df["signup_ts"] < cutoff)]
            else:
                new[tname] = df
        return replace(self, **new)

    def fingerprint(self) -> dict[str, object]:
        """Row counts, date range and a content hash, for tracking which data a model saw."""
        fp: dict[str, object] = {}
        for tname, df in self.tables().items():
            h = pd.util.hash_pandas_object(df, index=False).sum()
            fp[tname] = {"rows": int(len(df)), "hash": f"{int(h) & 0xFFFFFFFFFFFFFFFF:016x}"}
        fp["start"] = str(self.start)
        fp["end"] = str(self.end)
        return fp


def _unify_ids(tables: dict[str, pd.DataFrame | None]) -> None:
    """Give every id column the same dtype: strings if any table has string ids."""
    cols = [
        (t, c) for t, df in tables.items() if df is not None for c in ID_COLUMNS if c in df
    ]
    if not cols:
        return
    any_str = any(
        not pd.api.types.is_integer_dtype(tables[t][c].dropna().dtype)
        and not pd.api.types.is_integer_dtype(tables[t][c].dtype)
        for t, c in cols
        if tables[t][c].notna().any()
    )
    for t, c in cols:
        s = tables[t][c]
        if any_str:
            tables[t][c] = s.astype("str").where(s.notna())
        elif not pd.api.types.is_integer_dtype(s.dtype):
            tables[t][c] = s.astype("Int64")
