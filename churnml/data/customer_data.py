"""`CustomerData`: the validated bundle of input tables every stage reads."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields, replace

import pandas as pd

from churnml.config import TableSource, ValidationConfig, VoiceConfig
from churnml.data.schema import PURCHASES_UNIT, TABLES
from churnml.data.validation import (
    check_campaign_customers,
    check_subscription_ends,
    raise_if_any,
    validate_table,
)
from churnml.errors import ChurnmlError, DataValidationError, DataWarning

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
    end_configured: pd.Timestamp | None = None  # ``data.end``: see :func:`data_end`
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
        ts_formats: dict[str, str | list[str] | None] | None = None,
        sources: dict[str, TableSource] | None = None,
        end: pd.Timestamp | str | None = None,
        campaigns: pd.DataFrame | None = None,
        campaign_truth: pd.DataFrame | None = None,
    ) -> CustomerData:
        """Validate and normalise the tables; raise :class:`DataValidationError` if broken.

        ``sources`` gives per-table options (:class:`~churnml.config.TableSource`:
        ``ts_format``, ``drop_missing_ids``, ``drop_duplicates``, ``order_lines``). Without an
        ``amount`` column each transaction counts 1 and ``currency`` becomes
        :data:`~churnml.data.schema.PURCHASES_UNIT`. ``end`` is ``data.end`` (:func:`data_end`).
        Ids get one dtype across tables (:func:`unify_ids`); suspicious data (duplicate rows,
        ids that barely overlap) issue a :class:`~churnml.errors.DataWarning`.
        """
        raw = {
            "transactions": transactions, "events": events, "surveys": surveys,
            "customers": customers, "subscriptions": subscriptions, "campaigns": campaigns,
        }
        if transactions is None:
            raise DataValidationError("transactions", None, "table is required")
        ts_formats = ts_formats or {}
        sources = sources or {}
        if "amount" not in transactions.columns:
            currency = PURCHASES_UNIT
        out: dict[str, pd.DataFrame | None] = {}
        problems: list[DataValidationError] = []
        for tname, df in raw.items():
            if df is None:
                out[tname] = None
                continue
            norm, probs = validate_table(
                tname, df, validation=validation, voice=voice, timezone=timezone,
                ts_format=ts_formats.get(tname), source=sources.get(tname),
            )
            out[tname] = norm
            problems += probs
        end_ts = None if end is None else pd.Timestamp(end)
        if end_ts is not None and end_ts.tzinfo is not None:
            end_ts = end_ts.tz_convert(timezone).tz_localize(None)
        subs = out["subscriptions"]
        if (end_ts is not None and subs is not None and "end_ts" in subs
                and pd.api.types.is_datetime64_any_dtype(subs["end_ts"].dtype)):
            problems += check_subscription_ends(subs, end_ts)
        raise_if_any(problems)
        unify_ids(out)
        if out["campaigns"] is not None:
            raise_if_any(check_campaign_customers(out["campaigns"], out))
        warn_id_overlap(out, (validation or ValidationConfig()).min_id_overlap)
        if end_ts is not None:
            _warn_rows_after(out, end_ts)
        return cls(**out, name=name, currency=currency, truth=truth, end_configured=end_ts,
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


def id_strings(s: pd.Series) -> pd.Series:
    """Ids as text, nulls kept: integers (also integral floats, e.g. an int column with
    nulls read as float) without a decimal point, text as it is (``007`` stays ``007``)."""
    if pd.api.types.is_float_dtype(s.dtype):
        whole = s.dropna()
        if (whole == whole.round()).all():
            s = s.astype("Int64")
    elif pd.api.types.is_string_dtype(s.dtype) and not pd.api.types.is_object_dtype(s.dtype):
        return s.astype("str").where(s.notna())
    return s.map(_id_text, na_action="ignore").astype("str").where(s.notna())


def _id_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def unify_ids(tables: dict[str, pd.DataFrame | None]) -> None:
    """Give every id column the same dtype, in place: all integer (in-memory frames whose ids
    are all integers, e.g. the simulator's) or else all text (:func:`id_strings`)."""
    cols = [
        (t, c) for t, df in tables.items() if df is not None for c in ID_COLUMNS if c in df
    ]
    if not cols:
        return
    all_int = all(
        pd.api.types.is_integer_dtype(tables[t][c].dtype)
        or (pd.api.types.is_float_dtype(tables[t][c].dtype)
            and bool((tables[t][c].dropna() == tables[t][c].dropna().round()).all()))
        or not tables[t][c].notna().any()
        for t, c in cols
    )
    for t, c in cols:
        s = tables[t][c]
        if not all_int:
            tables[t][c] = id_strings(s)
        elif not pd.api.types.is_integer_dtype(s.dtype):
            tables[t][c] = s.astype("Int64")


def id_overlap(tables: dict[str, pd.DataFrame | None]) -> dict[str, float]:
    """Per table other than transactions: the share of the smaller id set (that table's
    customer ids, or the transactions') found in the other; 1 when either is empty."""
    tx = tables.get("transactions")
    if tx is None:
        return {}
    tx_ids = pd.Index(tx["customer_id"].dropna().unique())
    shares: dict[str, float] = {}
    for t, df in tables.items():
        if t == "transactions" or df is None or "customer_id" not in df:
            continue
        ids = pd.Index(df["customer_id"].dropna().unique())
        smaller = min(len(ids), len(tx_ids))
        shares[t] = 1.0 if smaller == 0 else len(ids.intersection(tx_ids)) / smaller
    return shares


def warn_id_overlap(tables: dict[str, pd.DataFrame | None], min_share: float) -> None:
    """A :class:`DataWarning` per table whose customer ids barely meet the transactions'."""
    tx = tables.get("transactions")
    for t, share in id_overlap(tables).items():
        if share < min_share:
            ex_t = tables[t]["customer_id"].dropna().unique()[:3].tolist()  # type: ignore[index]
            ex_x = tx["customer_id"].dropna().unique()[:3].tolist()  # type: ignore[index]
            warnings.warn(
                f"{t}.customer_id: only {share:.0%} of the ids of the smaller table also appear "
                f"in transactions (e.g. {t}: {ex_t}, transactions: {ex_x}); check that both "
                "map the same id column (ids are compared as text: '007' is not '7')",
                DataWarning, stacklevel=3,
            )


def _warn_rows_after(tables: dict[str, pd.DataFrame | None], end: pd.Timestamp) -> None:
    """A :class:`DataWarning` per table with timestamps at or after the configured end."""
    for t, df in tables.items():
        if df is None or "ts" not in df:
            continue
        late = int((df["ts"] >= end).sum())
        if late:
            warnings.warn(
                f"{t}: {late:,} row(s) at or after data.end ({end}), e.g. {df['ts'].max()}: "
                "scores at the data end ignore them; move data.end or drop those rows",
                DataWarning, stacklevel=3,
            )


def data_end(data: CustomerData) -> pd.Timestamp:
    """End of the data, an exclusive bound: ``data.end`` when configured, else midnight after
    the latest timestamp of any table (transactions, events, surveys, subscription starts and
    ends, sign-ups; campaign contacts do not extend it)."""
    if data.end_configured is not None:
        return pd.Timestamp(data.end_configured)
    latest = [df[c].max() for n, df in data.tables().items() for c in df.columns
              if pd.api.types.is_datetime64_any_dtype(df[c].dtype) and n != "campaigns"]
    latest = [t for t in latest if pd.notna(t)]
    return pd.Timestamp(max(latest)).normalize() + pd.Timedelta(days=1)


def data_start(data: CustomerData) -> pd.Timestamp:
    """Earliest timestamp of any table."""
    earliest = [df[c].min() for n, df in data.tables().items() for c in df.columns
                if pd.api.types.is_datetime64_any_dtype(df[c].dtype) and n != "campaigns"]
    return pd.Timestamp(min(t for t in earliest if pd.notna(t)))


def _timestamps(data: CustomerData) -> list[pd.Series]:
    return [df[c] for n, df in data.tables().items() for c in df.columns
            if pd.api.types.is_datetime64_any_dtype(df[c].dtype) and n != "campaigns"]


def quiet_days(data: CustomerData) -> int:
    """The longest run of consecutive calendar days without any record between the first
    and the last recorded day (e.g. 1 for a shop closed on Sundays): how long the data may
    stay silent while still being collected."""
    days = pd.concat([s.dropna().dt.normalize() for s in _timestamps(data)], ignore_index=True)
    days = pd.DatetimeIndex(days.unique()).sort_values()
    if len(days) < 2:
        return 0
    return int(max((days[1:] - days[:-1]).days.max() - 1, 0))


def plural(count: int, noun: str) -> str:
    """``1 day``, ``3 days``, ``1,200 customers``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def cutoff_warnings(data: CustomerData, cutoff: pd.Timestamp | str) -> list[str]:
    """Why scoring at ``cutoff`` is suspicious: it lies after the data end (:func:`data_end`:
    recency grows with no data). An inferred end (midnight after the last record) is a lower
    bound: the data may have been extracted later with nothing recorded in between, so a
    cutoff up to ``max(1, quiet_days)`` days after it (:func:`quiet_days`) is not suspicious;
    after a configured ``data.end`` any cutoff is. A cutoff before the data is an error
    (:func:`check_cutoff`)."""
    cut = pd.Timestamp(cutoff)
    start, end = data_start(data), data_end(data)
    if cut <= start:
        return [f"cutoff {cut} is at or before the start of the data ({start}): no customer "
                "history is known then"]
    if cut <= end:
        return []
    late = cut - end
    if data.end_configured is None and late <= pd.Timedelta(days=max(1, quiet_days(data))):
        return []
    days = late.days + (1 if late % pd.Timedelta(days=1) else 0)  # started days
    return [f"cutoff {cut} lies after the end of the data ({end}): every customer looks up "
            f"to {plural(days, 'day')} more inactive than the data show; score at the data "
            "end (the default) or set data.end"]


def check_cutoff(data: CustomerData, cutoff: pd.Timestamp | str) -> None:
    """Refuse a scoring cutoff at or before the first record: no customer exists yet."""
    cut = pd.Timestamp(cutoff)
    start, end = data_start(data), data_end(data)
    if cut <= start:
        raise ChurnmlError(
            f"cutoff {cut} is at or before the first record of the data ({start}): no "
            f"customer is known then, so there is nothing to score; choose a cutoff after "
            f"{start.date()} (the data end, {end}, is the default)")
